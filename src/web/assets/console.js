// The operator console: sign-in, then four sections read from the site API
// (GET /v1/…) with the session cookie. Charts are drawn as SVG here (a bar
// per step, bars and a line over time), each with its figures in a table
// beside it for screen readers. Nothing is kept in localStorage: the
// language choice lives in the address (?lang=).

const MESSAGES = {
  en: {
    title: 'Console — ivr-auth', skip: 'Skip to main content', brand: 'ivr-auth console', lang: 'Language',
    sign_out: 'Sign out', nav: 'Sections', refresh: 'Refresh', 'app.title': 'Console',
    'signin.title': 'Sign in to the console',
    'signin.intro': "Use your tenant's API key. An operator signs in with the operator token.",
    'signin.key': 'API key',
    'signin.key_hint': 'Starts with ivr_. Tenants that sign their requests use a sign-in link from the CLI instead.',
    'signin.operator': 'Operator sign-in', 'signin.operator_token': 'Operator token', 'signin.submit': 'Sign in',
    'signin.wrong': 'That key or token is not valid. Check it and try again.',
    'signin.empty': 'Enter an API key or the operator token.',
    'signin.link_invalid': 'This sign-in link has expired or was already used. Ask for a new one.',
    'signin.expired': 'Your session has ended. Sign in again.',
    'signin.failed': 'Sign-in failed. Try again in a moment.',
    'operator.tenant': 'Tenant', 'operator.who': 'Operator', 'tenant.who': 'Tenant: {name}',
    'operator.none': 'No tenants yet.',
    'tab.dashboard': 'Dashboard', 'tab.requests': 'Requests', 'tab.audit': 'Audit', 'tab.usage': 'Usage',
    'stats.range': 'Period', 'stats.24h': 'Last 24 hours', 'stats.7d': 'Last 7 days', 'stats.30d': 'Last 30 days',
    'stats.funnel': 'Funnel', 'stats.dropoffs': 'Drop-offs by reason',
    'stats.over_time': 'Volume and success rate over time', 'stats.top_failing': 'Most-failing numbers',
    'stats.none': 'No data yet.', 'stats.loading': 'Loading…',
    'stats.conversion': 'Verified of registered', 'stats.median': 'Median time to verify',
    'stats.calls': 'Calls', 'stats.call_seconds': 'Call time',
    'stats.funnel_label': 'Funnel: {summary}', 'stats.timeline_label': 'Registered requests and success rate per period',
    'step.registered': 'Registered', 'step.call_placed': 'Called', 'step.answered': 'Answered',
    'step.code_entered': 'Entered code', 'step.verified': 'Verified',
    'col.reason': 'Reason', 'col.count': 'Count', 'col.number': 'Number', 'col.failures': 'Failures',
    'col.period': 'Period', 'col.registered': 'Registered', 'col.verified': 'Verified', 'col.rate': 'Success rate',
    'col.at': 'Time', 'col.type': 'Type', 'col.request': 'Request', 'col.data': 'Details', 'col.sealed': 'Sealed',
    'col.step': 'Step', 'col.detail': 'Detail',
    'col.account': 'Account', 'col.country': 'Country', 'col.calls_placed': 'Calls placed',
    'col.calls_taken': 'Calls taken', 'col.call_seconds': 'Call seconds', 'col.sms': 'Text messages',
    'col.total': 'Total', 'none_rows': 'Nothing to show.',
    'requests.id': 'Request id', 'requests.find': 'Find', 'requests.detail': 'Request', 'requests.timeline': 'Timeline',
    'requests.not_found': 'No request with this id for this tenant.',
    'requests.timeline_na': 'The timeline is not available yet.',
    'audit.type': 'Event type', 'audit.request': 'Request id', 'audit.from': 'From', 'audit.to': 'To',
    'audit.search': 'Search', 'audit.more': 'Older events', 'audit.na': 'The audit trail is not available yet.',
    'usage.month': 'Month', 'usage.csv': 'Download CSV', 'usage.na': 'Usage is not available yet.',
    'error.generic': 'Something went wrong ({status}). Try again.', 'yes': 'yes', 'no': 'no',
    seconds: '{n} s',
  },
  ja: {
    title: 'コンソール — ivr-auth', skip: 'メインコンテンツへ移動', brand: 'ivr-auth コンソール', lang: '言語',
    sign_out: 'サインアウト', nav: 'セクション', refresh: '更新', 'app.title': 'コンソール',
    'signin.title': 'コンソールにサインイン',
    'signin.intro': 'テナントの API キーを入力してください。運用者は運用者トークンでサインインします。',
    'signin.key': 'API キー',
    'signin.key_hint': 'ivr_ で始まります。リクエストに署名するテナントは、CLI で作るサインイン用リンクを使ってください。',
    'signin.operator': '運用者としてサインイン', 'signin.operator_token': '運用者トークン', 'signin.submit': 'サインイン',
    'signin.wrong': 'キーまたはトークンが正しくありません。確認してもう一度お試しください。',
    'signin.empty': 'API キーまたは運用者トークンを入力してください。',
    'signin.link_invalid': 'このサインイン用リンクは期限切れか、すでに使われています。新しいリンクを依頼してください。',
    'signin.expired': 'セッションが終了しました。もう一度サインインしてください。',
    'signin.failed': 'サインインできませんでした。しばらくしてからお試しください。',
    'operator.tenant': 'テナント', 'operator.who': '運用者', 'tenant.who': 'テナント: {name}',
    'operator.none': 'テナントはまだありません。',
    'tab.dashboard': 'ダッシュボード', 'tab.requests': 'リクエスト', 'tab.audit': '監査ログ', 'tab.usage': '利用量',
    'stats.range': '期間', 'stats.24h': '過去 24 時間', 'stats.7d': '過去 7 日間', 'stats.30d': '過去 30 日間',
    'stats.funnel': 'ファネル', 'stats.dropoffs': '離脱の理由',
    'stats.over_time': '件数と成功率の推移', 'stats.top_failing': '失敗の多い番号',
    'stats.none': 'まだデータがありません。', 'stats.loading': '読み込み中…',
    'stats.conversion': '登録に対する認証成功', 'stats.median': '認証までの時間（中央値）',
    'stats.calls': '通話数', 'stats.call_seconds': '通話時間',
    'stats.funnel_label': 'ファネル: {summary}', 'stats.timeline_label': '期間ごとの登録件数と成功率',
    'step.registered': '登録', 'step.call_placed': '発信', 'step.answered': '応答',
    'step.code_entered': 'コード入力', 'step.verified': '認証成功',
    'col.reason': '理由', 'col.count': '件数', 'col.number': '番号', 'col.failures': '失敗数',
    'col.period': '期間', 'col.registered': '登録', 'col.verified': '認証成功', 'col.rate': '成功率',
    'col.at': '日時', 'col.type': '種類', 'col.request': 'リクエスト', 'col.data': '詳細', 'col.sealed': '封印',
    'col.step': 'ステップ', 'col.detail': '詳細',
    'col.account': 'アカウント', 'col.country': '国', 'col.calls_placed': '発信数',
    'col.calls_taken': '着信数', 'col.call_seconds': '通話秒数', 'col.sms': 'SMS 件数',
    'col.total': '合計', 'none_rows': '表示するものはありません。',
    'requests.id': 'リクエスト ID', 'requests.find': '検索', 'requests.detail': 'リクエスト', 'requests.timeline': 'タイムライン',
    'requests.not_found': 'このテナントにこの ID のリクエストはありません。',
    'requests.timeline_na': 'タイムラインはまだ利用できません。',
    'audit.type': 'イベントの種類', 'audit.request': 'リクエスト ID', 'audit.from': '開始', 'audit.to': '終了',
    'audit.search': '検索', 'audit.more': 'さらに古いイベント', 'audit.na': '監査ログはまだ利用できません。',
    'usage.month': '月', 'usage.csv': 'CSV をダウンロード', 'usage.na': '利用量はまだ利用できません。',
    'error.generic': 'エラーが発生しました（{status}）。もう一度お試しください。', 'yes': 'はい', 'no': 'いいえ',
    seconds: '{n} 秒',
  },
};

const STEPS = ['registered', 'call_placed', 'answered', 'code_entered', 'verified'];
const SVG = 'http://www.w3.org/2000/svg';
const $ = (sel) => document.querySelector(sel);

let lang = pickLang();
let session = null;
let tenantId = null;
let auditNext = null;
let lastStats = null;

function pickLang() {
  const asked = new URLSearchParams(location.search).get('lang');
  if (asked && MESSAGES[asked]) return asked;
  return (navigator.language || 'en').toLowerCase().startsWith('ja') ? 'ja' : 'en';
}

function t(key, vars = {}) {
  const text = MESSAGES[lang][key] ?? MESSAGES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

function translatePage() {
  document.documentElement.lang = lang;
  document.querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
  $('[data-lang]').value = lang;
  document.title = t('title');
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

const number = (n) => new Intl.NumberFormat(lang).format(n ?? 0);
const percent = (x) => new Intl.NumberFormat(lang, { style: 'percent', maximumFractionDigits: 1 }).format(x ?? 0);
const when = (iso) => new Intl.DateTimeFormat(lang, { dateStyle: 'short', timeStyle: 'short' }).format(new Date(iso));

/** A GET of the site API with the session; the operator names the tenant. */
async function api(path) {
  const headers = { Accept: 'application/json' };
  if (session?.role === 'operator' && tenantId) headers['X-Console-Tenant'] = tenantId;
  const res = await fetch(path, { headers, credentials: 'same-origin' });
  if (res.status === 401) {
    showSignIn(t('signin.expired'));
    throw new Error('signed out');
  }
  const body = res.headers.get('content-type')?.includes('json') ? await res.json() : null;
  return { status: res.status, body };
}

/** A table of `rows` under `columns` ([key, label, format?]). */
function fillTable(table, columns, rows, caption) {
  table.replaceChildren();
  if (caption) table.append(el('caption', { class: 'visually-hidden' }, caption));
  const head = el('tr');
  columns.forEach(([, label, , num]) => head.append(el('th', { scope: 'col', class: num ? 'num' : '' }, label)));
  table.append(el('thead', {}, head));
  const body = el('tbody');
  if (!rows.length) body.append(el('tr', {}, el('td', { colspan: columns.length }, t('none_rows'))));
  rows.forEach((row) => {
    const tr = el('tr');
    columns.forEach(([key, , fmt, num]) => {
      const value = typeof key === 'function' ? key(row) : row[key];
      tr.append(el('td', { class: num ? 'num' : '' }, fmt ? fmt(value) : String(value ?? '')));
    });
    body.append(tr);
  });
  table.append(body);
}

// ---- sign-in ----

function showSignIn(message) {
  session = null;
  $('[data-app]').hidden = true;
  $('[data-sign-out]').hidden = true;
  $('[data-who]').hidden = true;
  $('[data-signin]').hidden = false;
  const alert = $('[data-signin-error]');
  alert.hidden = !message;
  alert.textContent = message || '';
}

function showApp() {
  $('[data-signin]').hidden = true;
  $('[data-app]').hidden = false;
  $('[data-sign-out]').hidden = false;
  const who = $('[data-who]');
  who.hidden = false;
  who.textContent = session.role === 'operator' ? t('operator.who') : t('tenant.who', { name: session.tenant.name });
  const pick = $('[data-tenant-pick]');
  pick.hidden = session.role !== 'operator';
  if (session.role === 'operator') {
    const select = $('[data-tenant]');
    select.replaceChildren(...session.tenants.map((x) => el('option', { value: x.id }, x.name)));
    if (!session.tenants.length) select.append(el('option', { value: '' }, t('operator.none')));
    tenantId = tenantId && session.tenants.some((x) => x.id === tenantId) ? tenantId : session.tenants[0]?.id ?? null;
    if (tenantId) select.value = tenantId;
  } else {
    tenantId = session.tenant.id;
  }
  showTab(currentTab());
}

async function signIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const apiKey = form.api_key.value.trim();
  const operatorToken = form.operator_token.value.trim();
  if (!apiKey && !operatorToken) return showSignIn(t('signin.empty'));
  const res = await fetch('/console/session', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ api_key: apiKey, operator_token: operatorToken }),
    credentials: 'same-origin',
  });
  if (res.status === 401) {
    showSignIn(t('signin.wrong'));
    form.api_key.focus();
    return;
  }
  if (!res.ok) return showSignIn(t('signin.failed'));
  form.reset();
  session = await res.json();
  showApp();
  $('#main').focus();
}

async function signOut() {
  const res = await fetch('/console/session/delete', {
    method: 'POST',
    headers: { 'X-CSRF-Token': session?.csrf_token ?? '' },
    credentials: 'same-origin',
  });
  if (res.ok || res.status === 401) showSignIn('');
  $('#api-key').focus();
}

// ---- sections ----

const TABS = ['dashboard', 'requests', 'audit', 'usage'];
const loaders = { dashboard: loadStats, requests: () => {}, audit: () => loadAudit(false), usage: loadUsage };

function currentTab() {
  const tab = location.hash.slice(1);
  return TABS.includes(tab) ? tab : 'dashboard';
}

function showTab(tab) {
  if (!session) return;
  TABS.forEach((name) => {
    $(`[data-panel="${name}"]`).hidden = name !== tab;
    const link = $(`[data-tab="${name}"]`);
    if (name === tab) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  });
  loaders[tab]();
}

function range() {
  const hours = { '24h': 24, '7d': 24 * 7, '30d': 24 * 30 }[$('#stats-range').value] ?? 24;
  const to = new Date();
  const from = new Date(to.getTime() - hours * 3600e3);
  return { from: from.toISOString(), to: to.toISOString(), granularity: hours > 48 ? 'day' : 'hour' };
}

async function loadStats() {
  const status = $('[data-stats-status]');
  status.textContent = t('stats.loading');
  const { status: code, body } = await api(`/v1/stats?${new URLSearchParams(range())}`);
  const box = $('[data-stats]');
  if (code === 404 || (code === 200 && !body?.totals?.registered)) {
    box.hidden = true;
    status.textContent = t('stats.none');
    return;
  }
  if (code !== 200) {
    box.hidden = true;
    status.textContent = t('error.generic', { status: code });
    return;
  }
  status.textContent = '';
  box.hidden = false;
  drawFigures(body);
  lastStats = body;
  drawFunnel(body.totals);
  const failed = Object.entries(body.totals.failed ?? {}).map(([reason, count]) => ({ reason, count }));
  failed.sort((a, b) => b.count - a.count);
  fillTable($('[data-failed]'), [['reason', t('col.reason')], ['count', t('col.count'), number, true]], failed,
    t('stats.dropoffs'));
  drawTimeline(body.periods ?? []);
  fillTable($('[data-top]'), [['number', t('col.number')], ['failures', t('col.failures'), number, true]],
    (body.top_failing_numbers ?? []).slice(0, 10), t('stats.top_failing'));
}

function drawFigures(s) {
  const dl = $('[data-figures]');
  dl.replaceChildren();
  const add = (label, value) => dl.append(el('div', {}, el('dt', {}, label), el('dd', {}, value)));
  add(t('stats.conversion'), percent(s.conversion));
  add(t('stats.median'), s.median_seconds_to_verify == null ? '—' : t('seconds', { n: number(s.median_seconds_to_verify) }));
  add(t('stats.calls'), number(s.calls));
  add(t('stats.call_seconds'), t('seconds', { n: number(s.call_seconds) }));
}

/** The drawing's width in CSS pixels, so that its text keeps its size at any screen width. */
function chartWidth(sel) {
  return Math.round(Math.max(280, Math.min(640, $(sel).clientWidth || 600)));
}

/** One horizontal bar per step, its count and share of the registered at its end. */
function drawFunnel(totals) {
  const max = Math.max(1, totals.registered ?? 0);
  const rowH = 34;
  const w = chartWidth('[data-funnel]');
  const barX = Math.min(150, w * 0.32);
  const barW = w - barX - 120;
  const chart = svg('svg', { viewBox: `0 0 ${w} ${STEPS.length * rowH}`, role: 'img', class: 'funnel' });
  const summary = STEPS.map((s) => `${t(`step.${s}`)} ${number(totals[s])}`).join(', ');
  chart.append(svg('title', {}, t('stats.funnel_label', { summary })));
  STEPS.forEach((step, i) => {
    const value = totals[step] ?? 0;
    const y = i * rowH;
    chart.append(svg('text', { x: 0, y: y + 22, class: 'label' }, t(`step.${step}`)));
    chart.append(svg('rect', { x: barX, y: y + 6, width: Math.max(2, (value / max) * barW), height: 22, class: `bar bar-${i}` }));
    chart.append(svg('text', { x: w - 4, y: y + 22, 'text-anchor': 'end', class: 'value' },
      `${number(value)} (${percent(value / max)})`));
  });
  $('[data-funnel]').replaceChildren(chart);
}

/** Registered per period as bars, the success rate (verified / registered) as a line on 0–100 %. */
function drawTimeline(periods) {
  const w = chartWidth('[data-timeline]');
  const h = 220;
  const pad = { l: 40, r: 40, t: 10, b: 30 };
  const max = Math.max(1, ...periods.map((p) => p.registered ?? 0));
  const step = (w - pad.l - pad.r) / Math.max(1, periods.length);
  const chart = svg('svg', { viewBox: `0 0 ${w} ${h}`, role: 'img', class: 'timeline' });
  chart.append(svg('title', {}, t('stats.timeline_label')));
  const y = (v) => h - pad.b - v * (h - pad.t - pad.b);
  chart.append(svg('line', { x1: pad.l, x2: w - pad.r, y1: y(0), y2: y(0), class: 'axis' }));
  chart.append(svg('text', { x: pad.l - 6, y: y(1) + 4, 'text-anchor': 'end', class: 'tick' }, number(max)));
  chart.append(svg('text', { x: w - pad.r + 6, y: y(1) + 4, class: 'tick' }, '100%'));
  let line = '';
  periods.forEach((p, i) => {
    const x = pad.l + i * step;
    const reg = p.registered ?? 0;
    chart.append(svg('rect', { x: x + step * 0.15, y: y(reg / max), width: step * 0.7, height: y(0) - y(reg / max), class: 'bar bar-0' }));
    if (reg) line += `${line ? 'L' : 'M'}${x + step / 2},${y((p.verified ?? 0) / reg)}`;
  });
  if (line) chart.append(svg('path', { d: line, class: 'rate' }));
  if (periods.length) {
    chart.append(svg('text', { x: pad.l, y: h - 8, class: 'tick' }, when(periods[0].start)));
    chart.append(svg('text', { x: w - pad.r, y: h - 8, 'text-anchor': 'end', class: 'tick' }, when(periods[periods.length - 1].start)));
  }
  const table = el('table');
  fillTable(table, [
    ['start', t('col.period'), when], ['registered', t('col.registered'), number, true],
    ['verified', t('col.verified'), number, true],
    [(p) => (p.registered ? p.verified / p.registered : 0), t('col.rate'), percent, true],
  ], periods, t('stats.over_time'));
  const details = el('details', {}, el('summary', {}, t('stats.over_time')), el('div', { class: 'table-wrap' }, table));
  $('[data-timeline]').replaceChildren(chart, details);
}

async function findRequest(event) {
  event.preventDefault();
  const id = $('#request-id').value.trim();
  const status = $('[data-request-status]');
  const box = $('[data-request]');
  box.hidden = true;
  if (!id) return;
  const { status: code, body } = await api(`/v1/auth-requests/${encodeURIComponent(id)}`);
  if (code === 404) { status.textContent = t('requests.not_found'); return; }
  if (code !== 200) { status.textContent = t('error.generic', { status: code }); return; }
  status.textContent = '';
  box.hidden = false;
  $('[data-request-json]').textContent = JSON.stringify(body, null, 2);
  const list = $('[data-timeline-list]');
  const tl = await api(`/v1/auth-requests/${encodeURIComponent(id)}/timeline`);
  if (tl.status !== 200) { list.replaceChildren(el('p', {}, t('requests.timeline_na'))); return; }
  const table = el('table');
  fillTable(table, [['at', t('col.at'), when], ['step', t('col.step')],
    ['detail', t('col.detail'), (d) => (typeof d === 'string' ? d : JSON.stringify(d ?? ''))]],
  tl.body.events ?? [], t('requests.timeline'));
  list.replaceChildren(el('div', { class: 'table-wrap' }, table));
}

async function loadAudit(more) {
  const form = $('[data-audit-form]');
  const q = new URLSearchParams();
  for (const name of ['type', 'request_id']) if (form[name].value.trim()) q.set(name, form[name].value.trim());
  for (const name of ['from', 'to']) if (form[name].value) q.set(name, new Date(form[name].value).toISOString());
  q.set('limit', '50');
  if (more && auditNext) q.set('before', auditNext);
  const status = $('[data-audit-status]');
  const { status: code, body } = await api(`/v1/audit-events?${q}`);
  const table = $('[data-audit]');
  if (code !== 200) {
    status.textContent = code === 404 ? t('audit.na') : t('error.generic', { status: code });
    table.replaceChildren();
    $('[data-audit-more]').hidden = true;
    return;
  }
  status.textContent = '';
  const rows = more ? [...(table.rowsData ?? []), ...body.events] : body.events;
  table.rowsData = rows;
  fillTable(table, [['at', t('col.at'), when], ['type', t('col.type')], ['request_id', t('col.request')],
    ['data', t('col.data'), (d) => JSON.stringify(d ?? {})], ['sealed', t('col.sealed'), (s) => (s ? t('yes') : t('no'))]],
  rows, t('tab.audit'));
  auditNext = body.next ?? null;
  $('[data-audit-more]').hidden = !auditNext;
}

function months() {
  const now = new Date();
  const fmt = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
  return [fmt(now), fmt(new Date(now.getFullYear(), now.getMonth() - 1, 1))];
}

const USAGE_COLUMNS = ['account', 'country', 'calls_placed', 'calls_taken', 'call_seconds', 'sms'];

async function loadUsage(event) {
  event?.preventDefault();
  const month = $('[data-usage-month]').value;
  const status = $('[data-usage-status]');
  const csv = $('[data-usage-csv]');
  const { status: code, body } = await api(`/v1/usage?month=${encodeURIComponent(month)}`);
  const table = $('[data-usage]');
  if (code !== 200) {
    status.textContent = code === 404 ? t('usage.na') : t('error.generic', { status: code });
    table.replaceChildren();
    csv.hidden = true;
    return;
  }
  status.textContent = '';
  const rows = [...(body.rows ?? [])];
  if (body.totals) rows.push({ ...body.totals, account: t('col.total'), country: '' });
  fillTable(table, USAGE_COLUMNS.map((c, i) => [c, t(`col.${c}`), i > 1 ? number : undefined, i > 1]), rows, t('tab.usage'));
  // The CSV is made here from the same JSON: the figures as numbers, no formatting.
  const lines = [USAGE_COLUMNS.join(','), ...(body.rows ?? []).map((r) => USAGE_COLUMNS.map((c) => csvCell(r[c])).join(','))];
  if (csv.href.startsWith('blob:')) URL.revokeObjectURL(csv.href);
  csv.href = URL.createObjectURL(new Blob([`${lines.join('\r\n')}\r\n`], { type: 'text/csv' }));
  csv.download = `usage-${month}.csv`;
  csv.hidden = false;
}

function csvCell(v) {
  const s = String(v ?? '');
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

// ---- start ----

async function start() {
  translatePage();
  $('[data-usage-month]').replaceChildren(...months().map((m) => el('option', { value: m }, m)));
  $('[data-signin-form]').addEventListener('submit', signIn);
  $('[data-sign-out]').addEventListener('click', signOut);
  $('[data-stats-form]').addEventListener('submit', (e) => { e.preventDefault(); loadStats(); });
  $('[data-request-form]').addEventListener('submit', findRequest);
  $('[data-audit-form]').addEventListener('submit', (e) => { e.preventDefault(); loadAudit(false); });
  $('[data-audit-more]').addEventListener('click', () => loadAudit(true));
  $('[data-usage-form]').addEventListener('submit', loadUsage);
  $('[data-tenant]').addEventListener('change', (e) => { tenantId = e.target.value; showTab(currentTab()); });
  $('[data-lang]').addEventListener('change', (e) => {
    lang = e.target.value;
    const url = new URL(location.href);
    url.searchParams.set('lang', lang);
    history.replaceState(null, '', url);
    translatePage();
    if (session) showApp();
  });
  // The charts are laid out for their width: drawn again when it changes.
  window.addEventListener('resize', () => {
    if (lastStats && !$('[data-stats]').hidden) {
      drawFunnel(lastStats.totals);
      drawTimeline(lastStats.periods ?? []);
    }
  });
  window.addEventListener('hashchange', () => {
    showTab(currentTab());
    $(`#${currentTab()}-title`)?.focus();
  });
  const params = new URLSearchParams(location.search);
  const linkRefused = params.get('link') === 'invalid';
  const res = await fetch('/console/session', { credentials: 'same-origin' });
  if (res.ok) {
    session = await res.json();
    showApp();
  } else {
    showSignIn(linkRefused ? t('signin.link_invalid') : '');
  }
}

start();

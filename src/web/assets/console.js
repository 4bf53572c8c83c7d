// The operator console: sign-in, then four sections read from the site API
// (GET /v1/…) with the session cookie. Charts are drawn by uPlot (vendored,
// served by the binary: /console/assets/uPlot.iife.min.js, a global
// `uPlot`), each with its figures in a table beside it for screen readers.
// Nothing is kept in localStorage: the language choice lives in the
// address (?lang=).

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
    'stats.timeline_summary': 'Registered requests (bars) and success rate (line) per period, {n} periods; the figures are in the table below.',
    'stats.as_table': 'The figures as a table', 'col.share': 'Of registered',
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
    'requests.raw': 'As the API answers it (JSON)', 'requests.loading': 'Loading the request…',
    'requests.timeline_empty': 'Nothing recorded yet.',
    'search.title': 'Search', 'search.external_id': 'External id', 'search.user_id': 'User id',
    'search.phone_last4': 'Last 4 digits of the number', 'search.phone_last4_hint': 'Four digits, like 5678',
    'search.status': 'Status', 'search.any': 'Any', 'search.submit': 'Search', 'search.more': 'More results',
    'search.searching': 'Searching…', 'search.found': 'Requests shown: {n}.', 'search.none': 'No request matches.',
    'search.more_found': 'Requests shown: {n}; more are available.',
    'search.na': 'Searching is not available yet.', 'search.last4_bad': 'Enter exactly four digits for the number, or leave it empty.',
    'search.invalid': 'The search was refused: {message}',
    'col.created': 'Created', 'col.id': 'Request id', 'col.external_id': 'External id', 'col.user_id': 'User id',
    'col.phone': 'Number', 'col.status': 'Status', 'col.failure': 'Failure reason',
    'status.pending': 'Pending', 'status.calling': 'Calling', 'status.in_progress': 'In progress',
    'status.verified': 'Verified', 'status.failed': 'Failed', 'status.expired': 'Expired', 'status.canceled': 'Canceled',
    'reason.wrong_code': 'Wrong code', 'reason.no_input': 'No input', 'reason.no_answer': 'No answer',
    'reason.busy': 'Line busy', 'reason.call_failed': 'Call failed', 'reason.rejected': 'Call rejected',
    'reason.attestation': 'Caller not verified (STIR/SHAKEN)', 'reason.delivery_failed': 'Text message not delivered',
    'reason.not_placed': 'Call not placed in time', 'reason.unknown': 'Unknown reason',
    'reason.at': '{reason} (during {prompt})',
    'prompt.greeting': 'the greeting', 'prompt.wrong_code': 'the wrong-code prompt', 'prompt.no_input': 'the no-input prompt',
    'prompt.result': 'the result', 'prompt.code_read': 'the code read aloud',
    'kind.registered': 'Registered', 'kind.call_placed': 'Call placed', 'kind.call_connected': 'Call answered',
    'kind.keys_pressed': 'Keys pressed', 'kind.no_input': 'No keys pressed', 'kind.code_checked': 'Code checked',
    'kind.call_status': 'Call status from the provider', 'kind.call_ended': 'Call ended', 'kind.sms_sent': 'Text message sent',
    'kind.canceled': 'Canceled by the site', 'kind.expired': 'Expired', 'kind.callback': 'Result sent to the site',
    'kind.call_refused': 'Call refused by the provider', 'kind.call_queued': 'Call queued (call rate)',
    'kind.call_not_placed': 'Call not placed in time', 'kind.machine_answered': 'An answering machine answered',
    'kind.caller_id_unverified': 'Caller not verified (STIR/SHAKEN)', 'kind.code_entered': 'Code entered',
    'kind.inbound_code_entered': 'Code entered on an incoming call', 'kind.code_read': 'Code read aloud',
    'kind.sms_delivered': 'Text message delivered', 'kind.sms_failed': 'Text message not delivered',
    'field.sip_code': 'SIP code', 'prompt.code_prompt': 'the request for the code',
    'field.mode': 'Mode', 'field.channel': 'Channel', 'field.account': 'Account', 'field.keys': 'Keys',
    'field.correct': 'Code', 'field.status': 'Request status', 'field.seconds': 'Call time',
    'field.attempt': 'Attempt', 'field.outcome': 'Outcome', 'field.http_status': 'HTTP status', 'field.error': 'Error',
    'field.reached': 'Steps reached', 'field.failure_reason': 'Failure reason', 'field.prompt': 'The call said next',
    'field.call_status': 'Call status', 'field.attempts': 'Wrong codes', 'field.created_at': 'Created',
    'field.expires_at': 'Expires', 'field.verified_at': 'Verified at', 'field.phone_number': 'Number',
    'field.external_id': 'External id', 'field.user_id': 'User id', 'field.id': 'Request id',
    'call.queued': 'queued', 'call.initiated': 'dialling', 'call.ringing': 'ringing', 'call.in-progress': 'connected',
    'call.completed': 'completed', 'call.busy': 'busy', 'call.failed': 'failed', 'call.no-answer': 'no answer',
    'call.canceled': 'canceled',
    'keys.n': '{n} keys', 'correct.true': 'right', 'correct.false': 'wrong',
    'outcome.delivered': 'delivered', 'outcome.retry': 'failed, will retry', 'outcome.gave_up': 'failed, given up',
    'mode.outbound': 'we call the user', 'mode.inbound': 'the user calls us',
    'channel.voice_dtmf': 'voice call, code typed on the phone', 'channel.voice_otp': 'voice call, code read aloud',
    'channel.sms': 'text message',
    'reached.call_placed': 'Called', 'reached.ringing': 'Ringing', 'reached.answered': 'Answered',
    'reached.code_entered': 'Entered code', 'reached.sms_sent': 'Text sent', 'reached.verified': 'Verified',
    'reached.failed': 'Failed', 'reached.canceled': 'Canceled', 'reached.expired': 'Expired', 'reached.registered': 'Registered',
    'audit.any': 'Any', 'audit.request.registered': 'Request registered', 'audit.request.verified': 'Request verified',
    'audit.request.failed': 'Request failed', 'audit.request.canceled': 'Request canceled',
    'audit.request.expired': 'Request expired', 'audit.tenant.created': 'Tenant created',
    'audit.tenant.key_rotated': 'API key rotated', 'audit.tenant.settings_changed': 'Settings changed',
    'audit.refusals': 'Refused requests',
    'chain.check': 'Check the chain', 'chain.checking': 'Checking the chain…',
    'chain.intact': 'The chain is intact: {n} events checked.',
    'chain.broken': 'The chain is broken at event {seq} (id {id}): {problem}. {n} events checked.',
    'chain.na': 'Checking the chain is not available yet.',
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
    'stats.timeline_summary': '期間ごとの登録件数（棒）と成功率（線）、{n} 期間。数値は下の表にあります。',
    'stats.as_table': '数値を表で見る', 'col.share': '登録に対する割合',
    'step.registered': '登録', 'step.call_placed': '発信', 'step.answered': '応答',
    'step.code_entered': 'コード入力', 'step.verified': '認証成功',
    'col.reason': '理由', 'col.count': '件数', 'col.number': '番号', 'col.failures': '失敗数',
    'col.period': '期間', 'col.registered': '登録', 'col.verified': '認証成功', 'col.rate': '成功率',
    'col.at': '日時', 'col.type': '種類', 'col.request': 'リクエスト', 'col.data': '詳細', 'col.sealed': '封印',
    'col.step': 'ステップ', 'col.detail': '詳細',
    'col.account': 'アカウント', 'col.country': '国', 'col.calls_placed': '発信数',
    'col.calls_taken': '着信数', 'col.call_seconds': '通話秒数', 'col.sms': 'SMS 件数',
    'col.total': '合計', 'none_rows': '表示するものはありません。',
    'requests.id': 'リクエスト ID', 'requests.find': '開く', 'requests.detail': 'リクエスト', 'requests.timeline': 'タイムライン',
    'requests.not_found': 'このテナントにこの ID のリクエストはありません。',
    'requests.timeline_na': 'タイムラインはまだ利用できません。',
    'requests.raw': 'API の応答（JSON）', 'requests.loading': 'リクエストを読み込み中…',
    'requests.timeline_empty': 'まだ記録はありません。',
    'search.title': '検索', 'search.external_id': '外部 ID', 'search.user_id': 'ユーザー ID',
    'search.phone_last4': '電話番号の下 4 桁', 'search.phone_last4_hint': '4 桁の数字（例: 5678）',
    'search.status': '状態', 'search.any': 'すべて', 'search.submit': '検索', 'search.more': 'さらに表示',
    'search.searching': '検索中…', 'search.found': '{n} 件を表示しています。', 'search.none': '該当するリクエストはありません。',
    'search.more_found': '{n} 件を表示しています。続きがあります。',
    'search.na': '検索はまだ利用できません。', 'search.last4_bad': '電話番号は下 4 桁の数字を入力するか、空欄にしてください。',
    'search.invalid': '検索できませんでした: {message}',
    'col.created': '登録日時', 'col.id': 'リクエスト ID', 'col.external_id': '外部 ID', 'col.user_id': 'ユーザー ID',
    'col.phone': '電話番号', 'col.status': '状態', 'col.failure': '失敗の理由',
    'status.pending': '待機中', 'status.calling': '発信中', 'status.in_progress': '通話中',
    'status.verified': '認証成功', 'status.failed': '失敗', 'status.expired': '期限切れ', 'status.canceled': 'キャンセル',
    'reason.wrong_code': 'コードの誤り', 'reason.no_input': '入力なし', 'reason.no_answer': '応答なし',
    'reason.busy': '話し中', 'reason.call_failed': '発信の失敗', 'reason.rejected': '着信拒否',
    'reason.attestation': '発信者を確認できない（STIR/SHAKEN）', 'reason.delivery_failed': 'SMS が届かなかった',
    'reason.not_placed': '期限内に発信できなかった', 'reason.unknown': '不明な理由',
    'reason.at': '{reason}（{prompt}の途中）',
    'prompt.greeting': '最初の案内', 'prompt.wrong_code': 'コード誤りの案内', 'prompt.no_input': '入力なしの案内',
    'prompt.result': '結果の案内', 'prompt.code_read': 'コードの読み上げ',
    'kind.registered': '登録', 'kind.call_placed': '発信', 'kind.call_connected': '応答',
    'kind.keys_pressed': 'キー入力', 'kind.no_input': 'キー入力なし', 'kind.code_checked': 'コードの照合',
    'kind.call_status': '通話事業者からの通話状態', 'kind.call_ended': '通話終了', 'kind.sms_sent': 'SMS 送信',
    'kind.canceled': 'サイトによるキャンセル', 'kind.expired': '期限切れ', 'kind.callback': 'サイトへの結果通知',
    'kind.call_refused': '通話事業者が発信を拒否', 'kind.call_queued': '発信待ち（発信レート）',
    'kind.call_not_placed': '期限内に発信できなかった', 'kind.machine_answered': '留守番電話が応答',
    'kind.caller_id_unverified': '発信者を確認できない（STIR/SHAKEN）', 'kind.code_entered': 'コード入力',
    'kind.inbound_code_entered': '着信でのコード入力', 'kind.code_read': 'コードの読み上げ',
    'kind.sms_delivered': 'SMS 配信済み', 'kind.sms_failed': 'SMS が届かなかった',
    'field.sip_code': 'SIP コード', 'prompt.code_prompt': 'コード入力の案内',
    'field.mode': '方式', 'field.channel': '経路', 'field.account': 'アカウント', 'field.keys': 'キー',
    'field.correct': 'コード', 'field.status': 'リクエストの状態', 'field.seconds': '通話時間',
    'field.attempt': '試行', 'field.outcome': '結果', 'field.http_status': 'HTTP ステータス', 'field.error': 'エラー',
    'field.reached': '到達したステップ', 'field.failure_reason': '失敗の理由', 'field.prompt': '次の案内',
    'field.call_status': '通話状態', 'field.attempts': 'コード誤りの回数', 'field.created_at': '登録日時',
    'field.expires_at': '有効期限', 'field.verified_at': '認証日時', 'field.phone_number': '電話番号',
    'field.external_id': '外部 ID', 'field.user_id': 'ユーザー ID', 'field.id': 'リクエスト ID',
    'call.queued': '発信待ち', 'call.initiated': '発信中', 'call.ringing': '呼び出し中', 'call.in-progress': '通話中',
    'call.completed': '終了', 'call.busy': '話し中', 'call.failed': '失敗', 'call.no-answer': '応答なし',
    'call.canceled': 'キャンセル',
    'keys.n': '{n} 桁', 'correct.true': '正しい', 'correct.false': '誤り',
    'outcome.delivered': '配信済み', 'outcome.retry': '失敗（再試行予定）', 'outcome.gave_up': '失敗（再試行終了）',
    'mode.outbound': 'こちらから発信', 'mode.inbound': '利用者からの着信',
    'channel.voice_dtmf': '音声通話（電話でコード入力）', 'channel.voice_otp': '音声通話（コード読み上げ）',
    'channel.sms': 'SMS',
    'reached.call_placed': '発信', 'reached.ringing': '呼び出し', 'reached.answered': '応答',
    'reached.code_entered': 'コード入力', 'reached.sms_sent': 'SMS 送信', 'reached.verified': '認証成功',
    'reached.failed': '失敗', 'reached.canceled': 'キャンセル', 'reached.expired': '期限切れ', 'reached.registered': '登録',
    'audit.any': 'すべて', 'audit.request.registered': 'リクエスト登録', 'audit.request.verified': 'リクエスト認証成功',
    'audit.request.failed': 'リクエスト失敗', 'audit.request.canceled': 'リクエストのキャンセル',
    'audit.request.expired': 'リクエストの期限切れ', 'audit.tenant.created': 'テナント作成',
    'audit.tenant.key_rotated': 'API キーの更新', 'audit.tenant.settings_changed': '設定の変更',
    'audit.refusals': '拒否したリクエスト',
    'chain.check': 'チェーンを検証', 'chain.checking': 'チェーンを検証中…',
    'chain.intact': 'チェーンは改ざんされていません（{n} 件を検証）。',
    'chain.broken': 'チェーンが壊れています: イベント {seq}（ID {id}）: {problem}。{n} 件を検証。',
    'chain.na': 'チェーンの検証はまだ利用できません。',
    'audit.type': 'イベントの種類', 'audit.request': 'リクエスト ID', 'audit.from': '開始', 'audit.to': '終了',
    'audit.search': '検索', 'audit.more': 'さらに古いイベント', 'audit.na': '監査ログはまだ利用できません。',
    'usage.month': '月', 'usage.csv': 'CSV をダウンロード', 'usage.na': '利用量はまだ利用できません。',
    'error.generic': 'エラーが発生しました（{status}）。もう一度お試しください。', 'yes': 'はい', 'no': 'いいえ',
    seconds: '{n} 秒',
  },
};

const STEPS = ['registered', 'call_placed', 'answered', 'code_entered', 'verified'];
const $ = (sel) => document.querySelector(sel);

// Chart colours: the bars as the buttons (7.9:1 on white), the line in a
// dark orange (5.5:1), axis text as the page's muted text.
const INK = { bar: '#0b4fa8', rate: '#b54708', text: '#142033', muted: '#475467', grid: '#e3e8ef' };

let lang = pickLang();
let session = null;
let tenantId = null;
let auditNext = null;
let searchNext = null;
let openedId = null;
const charts = { funnel: null, timeline: null };

function pickLang() {
  const asked = new URLSearchParams(location.search).get('lang');
  if (asked && MESSAGES[asked]) return asked;
  return (navigator.language || 'en').toLowerCase().startsWith('ja') ? 'ja' : 'en';
}

function t(key, vars = {}) {
  const text = MESSAGES[lang][key] ?? MESSAGES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

/** The translation of `key`, or null when neither language has one (the caller shows the raw value). */
function known(key, vars) {
  return MESSAGES[lang][key] ?? MESSAGES.en[key] ? t(key, vars) : null;
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

const number = (n) => new Intl.NumberFormat(lang).format(n ?? 0);
const percent = (x) => new Intl.NumberFormat(lang, { style: 'percent', maximumFractionDigits: 1 }).format(x ?? 0);
const when = (iso) => (iso ? new Intl.DateTimeFormat(lang, { dateStyle: 'short', timeStyle: 'short' }).format(new Date(iso)) : '');
const instant = (iso) => new Intl.DateTimeFormat(lang, {
  year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  fractionalSecondDigits: 3,
}).format(new Date(iso));

/** A request status in words; an unknown one as it came. */
const statusText = (s) => (s ? known(`status.${s}`) ?? s : '');

/**
 * A failure reason in words: `no_input` → "No input", and a funnel drop-off
 * `no_input@greeting` (reason@prompt) → "No input (during the greeting)".
 * Unknown reasons and prompts are shown as they came.
 */
function reasonText(raw) {
  if (!raw) return '';
  const [reason, prompt] = String(raw).split('@', 2);
  const r = known(`reason.${reason}`) ?? reason;
  if (prompt === undefined) return r;
  return t('reason.at', { reason: r, prompt: known(`prompt.${prompt}`) ?? prompt });
}

/** A GET of the site API with the session; the operator names the tenant. */
async function api(path) {
  const headers = { Accept: 'application/json' };
  if (session?.role === 'operator' && tenantId) headers['X-Console-Tenant'] = tenantId;
  const res = await fetch(path, { headers, credentials: 'same-origin' });
  if (res.status === 401) {
    showSignIn(t('signin.expired'));
    throw new Error('signed out');
  }
  const body = res.headers.get('content-type')?.includes('json') ? await res.json().catch(() => null) : null;
  return { status: res.status, body };
}

/**
 * A table of `rows` under `columns` ([key, label, format?, numeric?, long?]);
 * a format may answer a node; a `long` column (ids, JSON) may break its
 * values anywhere. Each cell carries its column's label
 * (`data-label`), which narrow screens show beside the value.
 */
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
    columns.forEach(([key, label, fmt, num, long]) => {
      const value = typeof key === 'function' ? key(row) : row[key];
      const shown = fmt ? fmt(value, row) : String(value ?? '');
      const cls = [num ? 'num' : '', long ? 'long' : ''].filter(Boolean).join(' ');
      tr.append(el('td', { class: cls, 'data-label': label }, shown));
    });
    body.append(tr);
  });
  table.append(body);
}

/** The API's error message (422 names the field), or its status. */
function errorText(code, body) {
  return body?.error?.message ? `${body.error.message}` : t('error.generic', { status: code });
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
  if (res.ok || res.status === 401) {
    clearTenantViews();
    showSignIn('');
  }
  $('#api-key').focus();
}

/** Forgets what one tenant's session showed (another may sign in next, or the operator picks another). */
function clearTenantViews() {
  for (const sel of ['[data-search-results]', '[data-request]']) $(sel).hidden = true;
  for (const sel of ['[data-search-status]', '[data-request-status]', '[data-chain-status]', '[data-timeline-status]']) {
    $(sel).textContent = '';
  }
  $('[data-search-more]').hidden = true;
  $('[data-search-results]').rowsData = null;
  searchNext = null;
  openedId = null;
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

// ---- dashboard ----

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
    status.textContent = errorText(code, body);
    return;
  }
  status.textContent = '';
  box.hidden = false;
  drawFigures(body);
  drawFunnel(body.totals);
  const failed = Object.entries(body.totals.failed ?? {}).map(([reason, count]) => ({ reason, count }));
  failed.sort((a, b) => b.count - a.count);
  fillTable($('[data-failed]'), [['reason', t('col.reason'), reasonText], ['count', t('col.count'), number, true]], failed,
    t('stats.dropoffs'));
  drawTimeline(body.periods ?? [], body.granularity);
  fillTable($('[data-top]'), [['number', t('col.number')], ['failures', t('col.failures'), number, true]],
    (body.top_failing_numbers ?? []).slice(0, 10), t('stats.top_failing'));
}

function drawFigures(s) {
  const dl = $('[data-figures]');
  dl.replaceChildren();
  const add = (label, value) => dl.append(el('div', {}, el('dt', {}, label), el('dd', {}, value)));
  add(t('stats.conversion'), s.conversion == null ? '—' : percent(s.conversion));
  add(t('stats.median'), s.median_seconds_to_verify == null ? '—'
    : t('seconds', { n: new Intl.NumberFormat(lang, { maximumFractionDigits: 1 }).format(s.median_seconds_to_verify) }));
  add(t('stats.calls'), number(s.calls));
  add(t('stats.call_seconds'), t('seconds', { n: number(s.call_seconds) }));
}

/** The page's font at `px` pixels, for the text uPlot draws on its canvas. */
function chartFont(px) {
  return `${px}px ${getComputedStyle(document.body).fontFamily}`;
}

/** The widest of `texts` in `font`, in CSS pixels. */
function textWidth(texts, font) {
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = font;
  return Math.max(0, ...texts.map((s) => ctx.measureText(s).width));
}

/** Integer steps for count axes (no "0.5 requests"). */
const COUNT_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 1e6, 1e7];

/**
 * (Re)draws a uPlot chart into `box` at the box's width; the chart is
 * replaced, never stacked, and sized again when the box changes width.
 */
function plot(name, box, opts, data) {
  charts[name]?.destroy();
  charts[name] = null;
  box.replaceChildren();
  if (typeof window.uPlot !== 'function') return; // the tables beside still hold every figure
  charts[name] = new window.uPlot({ ...opts, width: Math.max(200, box.clientWidth) }, data, box);
}

/** One horizontal bar per step, each labelled with its count and its share of the registered. */
function drawFunnel(totals) {
  const box = $('[data-funnel]');
  const values = STEPS.map((s) => totals[s] ?? 0);
  const max = Math.max(1, values[0], ...values);
  const labels = STEPS.map((s) => t(`step.${s}`));
  const summary = STEPS.map((s, i) => `${labels[i]} ${number(values[i])}`).join(', ');
  box.setAttribute('aria-label', t('stats.funnel_label', { summary }));
  fillTable($('[data-funnel-table]'), [['step', t('col.step')], ['count', t('col.count'), number, true],
    ['share', t('col.share'), percent, true]],
  STEPS.map((s, i) => ({ step: labels[i], count: values[i], share: values[i] / max })), t('stats.funnel'));
  const font = chartFont(14);
  const valueText = (i) => `${number(values[i])} (${percent(values[i] / max)})`;
  plot('funnel', box, {
    height: STEPS.length * 40 + 16,
    legend: { show: false },
    cursor: { show: false },
    select: { show: false },
    padding: [8, 8, 8, 0],
    scales: {
      // Vertical category axis, the first step at the top.
      x: { time: false, ori: 1, dir: -1, range: [-0.5, STEPS.length - 0.5] },
      y: { ori: 0, range: [0, max] },
    },
    axes: [
      {
        side: 3, font, stroke: INK.text, gap: 8, grid: { show: false }, ticks: { show: false },
        splits: () => STEPS.map((_, i) => i),
        values: (u, splits) => splits.map((i) => labels[i] ?? ''),
        size: () => Math.ceil(textWidth(labels, font)) + 16,
      },
      { show: false },
    ],
    series: [
      {},
      {
        label: t('col.count'), fill: INK.bar, stroke: INK.bar, width: 0, points: { show: false },
        paths: window.uPlot?.paths.bars({ size: [0.7, 30] }),
      },
    ],
    hooks: {
      // Each bar's count and share, inside its end when it fits, else just after it.
      draw: [(u) => {
        const { ctx } = u;
        const ratio = window.uPlot.pxRatio;
        ctx.save();
        ctx.font = chartFont(14 * ratio);
        ctx.textBaseline = 'middle';
        values.forEach((v, i) => {
          const text = valueText(i);
          const w = ctx.measureText(text).width;
          const end = u.valToPos(v, 'y', true);
          const y = u.valToPos(i, 'x', true);
          const inside = end - u.bbox.left > w + 12 * ratio;
          ctx.fillStyle = inside ? '#fff' : INK.text;
          ctx.textAlign = inside ? 'right' : 'left';
          ctx.fillText(text, inside ? end - 6 * ratio : Math.min(end + 6 * ratio, u.bbox.left + u.bbox.width - w), y);
        });
        ctx.restore();
      }],
    },
  }, [STEPS.map((_, i) => i), values]);
}

/** Registered per period as bars (left axis), the success rate (verified / registered) as a line on 0–100 % (right axis). */
function drawTimeline(periods, granularity) {
  const box = $('[data-timeline]');
  box.setAttribute('aria-label', t('stats.timeline_summary', { n: number(periods.length) }));
  const rate = (p) => (p.registered ? p.verified / p.registered : null);
  fillTable($('[data-periods]'), [
    ['start', t('col.period'), when], ['registered', t('col.registered'), number, true],
    ['verified', t('col.verified'), number, true],
    [rate, t('col.rate'), (x) => (x == null ? '—' : percent(x)), true],
  ], periods, t('stats.over_time'));
  const xs = periods.map((p) => Date.parse(p.start) / 1000);
  const registered = periods.map((p) => p.registered ?? 0);
  const rates = periods.map((p) => (rate(p) == null ? null : rate(p) * 100));
  const max = Math.max(1, ...registered);
  const step = granularity === 'day' ? 86400 : 3600;
  const font = chartFont(13);
  const tick = new Intl.DateTimeFormat(lang, granularity === 'day'
    ? { month: 'numeric', day: 'numeric' } : { hour: '2-digit', minute: '2-digit' });
  const axis = { font, stroke: INK.muted, grid: { stroke: INK.grid, width: 1 }, ticks: { stroke: INK.grid, width: 1 } };
  plot('timeline', box, {
    height: 240,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    select: { show: false },
    scales: {
      x: { time: true, range: (u, lo, hi) => [(xs[0] ?? lo) - step / 2, (xs[xs.length - 1] ?? hi) + step / 2] },
      n: { range: [0, max] },
      pct: { range: [0, 100] },
    },
    axes: [
      { ...axis, space: 64, values: (u, splits) => splits.map((s) => tick.format(new Date(s * 1000))) },
      {
        ...axis, scale: 'n', side: 3, incrs: COUNT_INCRS, values: (u, splits) => splits.map((v) => number(v)),
        size: () => Math.ceil(textWidth([number(max)], font)) + 20,
      },
      {
        ...axis, scale: 'pct', side: 1, grid: { show: false }, incrs: [25, 50],
        values: (u, splits) => splits.map((v) => percent(v / 100)),
        size: () => Math.ceil(textWidth([percent(1)], font)) + 20,
      },
    ],
    series: [
      {},
      {
        label: t('col.registered'), scale: 'n', fill: INK.bar, stroke: INK.bar, width: 0, points: { show: false },
        paths: window.uPlot?.paths.bars({ size: [0.7, 48] }),
      },
      {
        label: t('col.rate'), scale: 'pct', stroke: INK.rate, width: 3,
        points: { show: true, size: 7, fill: INK.rate, stroke: INK.rate },
      },
    ],
  }, [xs, registered, rates]);
}

/** The charts follow their box's width (a window resized, a phone turned). */
function watchChartSizes() {
  if (typeof ResizeObserver !== 'function') return;
  const seen = new WeakMap();
  const observer = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const width = Math.round(entry.contentRect.width);
      if (!width || seen.get(entry.target) === width) continue;
      seen.set(entry.target, width);
      const name = entry.target.matches('[data-funnel]') ? 'funnel' : 'timeline';
      charts[name]?.setSize({ width: Math.max(200, width), height: charts[name].height });
    }
  });
  observer.observe($('[data-funnel]'));
  observer.observe($('[data-timeline]'));
}

// ---- requests: search, one request, its timeline ----

async function findRequest(event) {
  event.preventDefault();
  const id = $('#request-id').value.trim();
  if (id) await openRequest(id);
}

const SEARCH_FIELDS = ['external_id', 'user_id', 'phone_last4', 'status'];

async function search(more) {
  const form = $('[data-search-form]');
  const status = $('[data-search-status]');
  const table = $('[data-search-results]');
  const last4 = form.phone_last4;
  const bad = last4.value.trim() !== '' && !/^\d{4}$/.test(last4.value.trim());
  last4.toggleAttribute('aria-invalid', bad);
  if (bad) {
    status.textContent = t('search.last4_bad');
    last4.focus();
    return;
  }
  const q = new URLSearchParams();
  for (const name of SEARCH_FIELDS) if (form[name].value.trim()) q.set(name, form[name].value.trim());
  q.set('limit', '20');
  if (more && searchNext) q.set('before', searchNext);
  status.textContent = t('search.searching');
  status.dataset.busy = '';
  const { status: code, body } = await api(`/v1/auth-requests?${q}`).finally(() => delete status.dataset.busy);
  if (code !== 200) {
    table.hidden = true;
    $('[data-search-more]').hidden = true;
    if (code === 404) status.textContent = t('search.na');
    else if (code === 422) status.textContent = t('search.invalid', { message: errorText(code, body) });
    else status.textContent = errorText(code, body);
    return;
  }
  const rows = more ? [...(table.rowsData ?? []), ...(body.requests ?? [])] : body.requests ?? [];
  table.rowsData = rows;
  searchNext = body.next ?? null;
  showResults(rows);
}

/** The search results held (`rowsData`), drawn in the current language. */
function showResults(rows) {
  const table = $('[data-search-results]');
  const status = $('[data-search-status]');
  fillTable(table, [
    ['created_at', t('col.created'), when],
    ['id', t('col.id'), (id) => el('button', { type: 'button', class: 'link', 'data-open': id }, id)],
    ['external_id', t('col.external_id'), undefined, false, true], ['user_id', t('col.user_id'), undefined, false, true],
    ['phone_number', t('col.phone')], ['status', t('col.status'), statusText],
    ['failure_reason', t('col.failure'), reasonText],
  ], rows, t('search.title'));
  table.hidden = false;
  $('[data-search-more]').hidden = !searchNext;
  if (!rows.length) status.textContent = t('search.none');
  else status.textContent = t(searchNext ? 'search.more_found' : 'search.found', { n: number(rows.length) });
}

/** The request `id` and its timeline, below the search; with `focus`, the focus moves to it. */
async function openRequest(id, { focus = false } = {}) {
  openedId = id;
  const status = $('[data-request-status]');
  const box = $('[data-request]');
  box.hidden = true;
  status.textContent = t('requests.loading');
  const path = `/v1/auth-requests/${encodeURIComponent(id)}`;
  const { status: code, body } = await api(path);
  if (code === 404) { status.textContent = t('requests.not_found'); return; }
  if (code !== 200) { status.textContent = errorText(code, body); return; }
  status.textContent = '';
  showFacts(body);
  $('[data-request-json]').textContent = JSON.stringify(body, null, 2);
  box.hidden = false;
  if (focus) $('#request-title').focus();
  const list = $('[data-timeline-list]');
  const tlStatus = $('[data-timeline-status]');
  list.replaceChildren();
  const tl = await api(`${path}/timeline`);
  if (tl.status === 404) {
    // The request was found a moment ago: the route itself is missing (an older server).
    tlStatus.textContent = t('requests.timeline_na');
    return;
  }
  if (tl.status !== 200) { tlStatus.textContent = errorText(tl.status, tl.body); return; }
  const entries = Array.isArray(tl.body?.entries) ? tl.body.entries : [];
  tlStatus.textContent = entries.length ? '' : t('requests.timeline_empty');
  list.replaceChildren(...entries.map(timelineEntry));
}

/** The request's main facts in words. */
function showFacts(r) {
  const dl = $('[data-request-facts]');
  const rows = [
    ['id', r.id], ['status', statusText(r.status)], ['failure_reason', reasonText(r.failure_reason)],
    ['mode', r.mode ? known(`mode.${r.mode}`) ?? r.mode : ''], ['channel', r.channel ? known(`channel.${r.channel}`) ?? r.channel : ''],
    ['phone_number', r.phone_number], ['external_id', r.external_id], ['user_id', r.user_id],
    ['attempts', r.max_attempts != null ? `${number(r.attempts)} / ${number(r.max_attempts)}` : ''],
    ['created_at', when(r.created_at)], ['verified_at', when(r.verified_at)], ['expires_at', when(r.expires_at)],
  ];
  dl.replaceChildren(...rows.filter(([, v]) => v != null && v !== '')
    .map(([k, v]) => el('div', {}, el('dt', {}, t(`field.${k}`)), el('dd', {}, String(v)))));
}

/** One timeline field's value in words; unknown ones as JSON. */
function fieldValue(key, value) {
  switch (key) {
    case 'call_status': return known(`call.${value}`) ?? String(value);
    case 'status': return statusText(value);
    case 'failure_reason': return reasonText(value);
    case 'prompt': return known(`prompt.${value}`) ?? String(value);
    case 'reached': return Array.isArray(value) ? value.map((s) => known(`reached.${s}`) ?? s).join(' → ') : JSON.stringify(value);
    case 'keys': return typeof value === 'number' ? t('keys.n', { n: number(value) }) : JSON.stringify(value);
    case 'correct': return known(`correct.${value}`) ?? JSON.stringify(value);
    case 'seconds': return typeof value === 'number' ? t('seconds', { n: number(value) }) : JSON.stringify(value);
    case 'outcome': return known(`outcome.${value}`) ?? String(value);
    case 'mode': return known(`mode.${value}`) ?? String(value);
    case 'channel': return known(`channel.${value}`) ?? String(value);
    case 'attempt': case 'attempts': case 'http_status': case 'sip_code': return typeof value === 'number' ? number(value) : JSON.stringify(value);
    case 'account': case 'error': return String(value);
    default: return typeof value === 'string' ? value : JSON.stringify(value);
  }
}

const TIMELINE_FIELDS = ['mode', 'channel', 'account', 'call_status', 'sip_code', 'keys', 'correct', 'attempts', 'seconds', 'attempt', 'outcome', 'http_status',
  'error', 'status', 'failure_reason', 'prompt', 'reached'];

/** One timeline entry as a list item: when, what (translated when known), and its details. */
function timelineEntry(entry) {
  const kind = String(entry?.kind ?? '');
  const item = el('li', { 'data-kind': kind });
  const at = entry?.at ? el('time', { datetime: entry.at }, instant(entry.at)) : el('span', {}, '');
  const title = el('span', { class: 'what' }, known(`kind.${kind}`) ?? kind);
  item.append(at, ' ', title);
  const detail = entry?.detail && typeof entry.detail === 'object' && !Array.isArray(entry.detail) ? entry.detail : {};
  const keys = Object.keys(detail).sort((a, b) => {
    const ia = TIMELINE_FIELDS.indexOf(a);
    const ib = TIMELINE_FIELDS.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
  if (entry?.detail !== undefined && (typeof entry.detail !== 'object' || Array.isArray(entry.detail) || entry.detail === null)) {
    item.append(el('div', { class: 'raw' }, JSON.stringify(entry.detail)));
  }
  if (keys.length) {
    const dl = el('dl', { class: 'details' });
    for (const key of keys) {
      const label = known(`field.${key}`);
      dl.append(el('div', {}, el('dt', {}, label ?? key), el('dd', {}, label === null ? fieldValue('', detail[key]) : fieldValue(key, detail[key]))));
    }
    item.append(dl);
  }
  return item;
}

// ---- audit ----

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
    status.textContent = code === 404 ? t('audit.na') : errorText(code, body);
    table.replaceChildren();
    $('[data-audit-more]').hidden = true;
    return;
  }
  status.textContent = '';
  const rows = more ? [...(table.rowsData ?? []), ...body.events] : body.events;
  table.rowsData = rows;
  fillTable(table, [['at', t('col.at'), when], ['type', t('col.type'), (k) => known(`audit.${k}`) ?? k],
    ['request_id', t('col.request'), undefined, false, true],
    ['data', t('col.data'), (d) => JSON.stringify(d ?? {}), false, true], ['sealed', t('col.sealed'), (s) => (s ? t('yes') : t('no'))]],
  rows, t('tab.audit'));
  auditNext = body.next ?? null;
  $('[data-audit-more]').hidden = !auditNext;
}

/** GET /v1/audit-events/verify: the tenant's chain intact, or where it breaks. */
async function checkChain() {
  const status = $('[data-chain-status]');
  status.textContent = t('chain.checking');
  const { status: code, body } = await api('/v1/audit-events/verify');
  if (code === 404) { status.textContent = t('chain.na'); return; }
  if (code !== 200) { status.textContent = errorText(code, body); return; }
  const n = number(body.checked);
  status.dataset.intact = String(Boolean(body.intact));
  if (body.intact) {
    status.textContent = t('chain.intact', { n });
  } else {
    const b = body.first_broken ?? {};
    status.textContent = t('chain.broken', { seq: b.seq ?? '?', id: b.id ?? '?', problem: b.problem ?? '', n });
  }
}

// ---- usage ----

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
    status.textContent = code === 404 ? t('usage.na') : errorText(code, body);
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
  $('[data-search-form]').addEventListener('submit', (e) => { e.preventDefault(); search(false); });
  $('[data-search-more]').addEventListener('click', () => search(true));
  // A result's id is a button; a click anywhere on its row does the same.
  $('[data-search-results]').addEventListener('click', (e) => {
    const button = e.target.closest('button[data-open]') ?? e.target.closest('tr')?.querySelector('button[data-open]');
    if (button) openRequest(button.dataset.open, { focus: true });
  });
  $('[data-audit-form]').addEventListener('submit', (e) => { e.preventDefault(); loadAudit(false); });
  $('[data-audit-more]').addEventListener('click', () => loadAudit(true));
  $('[data-chain-check]').addEventListener('click', checkChain);
  $('[data-usage-form]').addEventListener('submit', loadUsage);
  $('[data-tenant]').addEventListener('change', (e) => {
    tenantId = e.target.value;
    clearTenantViews();
    showTab(currentTab());
  });
  $('[data-lang]').addEventListener('change', (e) => {
    lang = e.target.value;
    const url = new URL(location.href);
    url.searchParams.set('lang', lang);
    history.replaceState(null, '', url);
    translatePage();
    if (!session) return;
    showApp();
    // What the Requests tab shows, again in the new language.
    const results = $('[data-search-results]');
    if (!results.hidden && results.rowsData) showResults(results.rowsData);
    if (openedId && !$('[data-request]').hidden) openRequest(openedId);
  });
  watchChartSizes();
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

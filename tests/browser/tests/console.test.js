// The operator console (/console), against the real API: sign-in with an
// API key; simulated calls (the simulator's JSON API) moving the dashboard's
// funnel; searching requests and reading one's timeline (keys counted, the
// code never shown); the audit log filtered by type and its chain checked;
// the usage month and its CSV; every section axe-clean, no sideways scroll
// at 360 px, screenshots at both widths in ja and en; sign-out; tenants kept
// apart; CSRF and session fixation refused; a wrong key explained; the
// CLI's one-time link used once.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { before, test } from 'node:test';

import { BASE_URL, DESKTOP, WAIT_MS, assertAccessible, screenshot, useBrowser } from '../lib/harness.js';

const withContext = useBrowser();
const PHONE_360 = { width: 360, height: 740 };
const SECTIONS = ['dashboard', 'requests', 'audit', 'usage'];

/** `ivr-auth …` on the server's database; its standard output. */
function cli(...args) {
  return execFileSync(process.env.IVR_AUTH_BIN, args, {
    env: { ...process.env, IVR_AUTH_DATABASE_URL: process.env.IVR_AUTH_TEST_DATABASE_URL },
    encoding: 'utf8',
  }).trim();
}

const suffix = `${process.pid}-${Date.now()}`;
const first = JSON.parse(cli('tenant', 'create', `console-a-${suffix}`));
const second = JSON.parse(cli('tenant', 'create', `console-b-${suffix}`));

// Numbers of this run: +81 90 2ppp nnnn, each lifecycle its own, so a call
// is found by the number it rings and a search by last four digits is ours.
const prefix = `+81902${String(process.pid % 1000).padStart(3, '0')}`;
let nextNumber = 4100;
const newNumber = () => `${prefix}${nextNumber++}`;

/** Waits until `probe()` answers something truthy; answers it. */
async function until(probe, what) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function siteApi(tenant, path, body) {
  const res = await fetch(`${BASE_URL}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { Authorization: `Bearer ${tenant.api_key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function simulator(path, body) {
  const res = await fetch(`${BASE_URL}/simulator${path}`, body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  assert.ok(res.ok, `${path} answered ${res.status}`);
  return res.json();
}

/** Registers a request for `tenant` through the site API; answers it (with its `code`). */
async function register(tenant, fields = {}) {
  const res = await siteApi(tenant, '/v1/auth-requests', { phone_number: '+819012345678', code: '123456', ...fields });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body;
}

/**
 * One outbound request of `tenant` to a number of its own, and its call
 * taken on the simulator: `verified` (answered, the right code typed),
 * `declined`, or `hung_up` (answered, hung up during the greeting). Answers
 * the request as it ended.
 */
async function lifecycle(tenant, outcome, fields = {}) {
  const phone = newNumber();
  const request = await register(tenant, { phone_number: phone, ...fields });
  const call = await until(async () => (await simulator(`/calls?to=${encodeURIComponent(phone)}`)).calls
    .find((c) => c.state === 'ringing'), `the call to ${phone}`);
  if (outcome === 'declined') {
    await simulator(`/calls/${call.sid}/decline`, {});
  } else {
    await simulator(`/calls/${call.sid}/answer`, {});
    await until(async () => (await simulator(`/calls/${call.sid}`)).awaiting_digits, 'the call to ask for the code');
    if (outcome === 'verified') await simulator(`/calls/${call.sid}/digits`, { digits: request.code });
    else await simulator(`/calls/${call.sid}/hangup`, {});
  }
  const want = outcome === 'verified' ? 'verified' : 'failed';
  return until(async () => {
    const res = await siteApi(tenant, `/v1/auth-requests/${request.id}`);
    return res.body?.status === want ? { ...res.body, code: request.code } : null;
  }, `request ${request.id} ${want}`);
}

async function signIn(page, apiKey, lang = 'en') {
  await page.goto(`/console?lang=${lang}`);
  await page.getByLabel(lang === 'ja' ? 'API キー' : 'API key').fill(apiKey);
  await page.locator('[data-signin-form] button[type=submit]').click();
  await page.locator('[data-app]').waitFor({ state: 'visible' });
}

async function sessionCookie(context) {
  return (await context.cookies()).find((c) => c.name === 'ivr_console');
}

/** No sideways scroll, axe-clean, and a screenshot, at the desktop width and at 360 px. */
async function checkBothWidths(page, label, name) {
  for (const [size, viewport] of [['desktop', DESKTOP], ['phone', PHONE_360]]) {
    await page.setViewportSize(viewport);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${label} at ${viewport.width}px is ${overflow}px too wide`);
    await assertAccessible(page, `${label} (${size})`);
    await screenshot(page, `${name}-${size}`);
  }
  await page.setViewportSize(DESKTOP);
}

/** The Requests tab's search: fills the fields given, presses Search, waits for the answer. */
async function search(page, fields) {
  await page.locator('[data-tab="requests"]').click();
  const form = page.locator('[data-search-form]');
  for (const name of ['external_id', 'user_id', 'phone_last4']) await form.locator(`[name="${name}"]`).fill(fields[name] ?? '');
  await form.locator('[name="status"]').selectOption(fields.status ?? '');
  const answered = page.waitForResponse((res) => res.url().includes('/v1/auth-requests?'));
  await form.locator('button[type=submit]').click();
  await answered;
  await page.locator('[data-search-status]:not([data-busy])').waitFor();
}

/** The ids the search results list, in their order. */
async function resultIds(page) {
  return page.locator('[data-search-results] button[data-open]').allInnerTexts();
}

// A finished call of the first tenant, for the timeline in the screenshots.
let shown;
before(async () => {
  shown = await lifecycle(first, 'verified', { user_id: `shown-${suffix}`, external_id: `shown-${suffix}` });
});

for (const lang of ['en', 'ja']) {
  test(`console in ${lang}: sign in, every section accessible and fitting at 360 px, sign out`, () =>
    withContext({ lang }, async (context) => {
      const page = await context.newPage();
      await page.goto(`/console?lang=${lang}`);
      await assertAccessible(page, `console sign-in (${lang})`);
      await screenshot(page, `console-${lang}-signin-desktop`);
      await signIn(page, first.api_key, lang);
      const cookie = await sessionCookie(context);
      assert.ok(cookie.httpOnly && cookie.sameSite === 'Strict', JSON.stringify(cookie));
      assert.deepEqual(await page.evaluate(() => Object.keys(localStorage)), [], 'nothing in local storage');
      for (const section of SECTIONS) {
        await page.locator(`[data-tab="${section}"]`).click();
        await page.locator(`[data-panel="${section}"]`).waitFor({ state: 'visible' });
        if (section === 'dashboard') {
          await page.locator('[data-funnel] canvas').first().waitFor();
        }
        if (section === 'requests') {
          // Search results and one request's timeline on the page.
          await search(page, { user_id: shown.user_id });
          await page.locator('[data-search-results] button[data-open]').first().click();
          await page.locator('[data-timeline-list] li[data-kind="keys_pressed"]').waitFor();
        }
        if (section === 'audit') {
          await page.locator('[data-audit] tbody tr').first().waitFor();
          await page.locator('[data-chain-check]').click();
          await page.locator('[data-chain-status][data-intact]').waitFor();
        }
        if (section === 'usage') await page.locator('[data-usage-csv]').waitFor();
        await checkBothWidths(page, `console ${section} (${lang})`, `console-${lang}-${section}`);
      }
      await page.locator('[data-sign-out]').click();
      await page.locator('[data-signin]').waitFor({ state: 'visible' });
      assert.equal(await sessionCookie(context), undefined, 'signed out: the cookie is gone');
    }));
}

test('the dashboard funnel moves with real calls: registered, called, answered, entered code, verified; drop-offs in words', () =>
  withContext({}, async (context) => {
    const fresh = JSON.parse(cli('tenant', 'create', `console-fresh-${suffix}`));
    const page = await context.newPage();
    await signIn(page, fresh.api_key);
    await page.locator('[data-stats-status]').filter({ hasText: 'No data yet' }).waitFor();

    await lifecycle(fresh, 'verified');
    await lifecycle(fresh, 'declined');
    await lifecycle(fresh, 'hung_up');
    await page.getByRole('button', { name: 'Refresh' }).click();
    const funnel = page.locator('[data-funnel-table] tbody tr');
    await funnel.first().waitFor();
    const rows = (await funnel.allInnerTexts()).map((r) => r.split('\t').slice(0, 2).join(' '));
    assert.deepEqual(rows, ['Registered 3', 'Called 3', 'Answered 2', 'Entered code 1', 'Verified 1']);
    assert.match(await page.locator('[data-funnel]').getAttribute('aria-label'),
      /Registered 3, Called 3, Answered 2, Entered code 1, Verified 1/);
    assert.equal(await page.locator('[data-funnel] canvas').count() > 0, true, 'uPlot drew the funnel');
    assert.equal(await page.locator('[data-timeline] canvas').count() > 0, true, 'uPlot drew the periods');
    assert.match(await page.locator('[data-figures]').innerText(), /33\.3%/);
    // Two drop-offs, each in words (a call hung up at the greeting names it).
    const reasons = await page.locator('[data-failed] tbody td:first-child').allInnerTexts();
    assert.equal(reasons.length, 2, reasons.join(' | '));
    for (const reason of reasons) assert.doesNotMatch(reason, /^[a-z_@-]+$/, `a reason in words: ${reason}`);
    assert.ok(reasons.some((r) => /\(during the greeting\)/.test(r)), reasons.join(' | '));
    // The periods' table holds the same: 3 registered and 1 verified over its periods.
    const periods = await page.locator('[data-periods] tbody tr')
      .evaluateAll((rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
    const sum = (i) => periods.reduce((n, cells) => n + Number(cells[i]), 0);
    assert.deepEqual([sum(1), sum(2)], [3, 1], periods.join('\n'));
    await checkBothWidths(page, 'console dashboard with calls', 'console-en-dashboard-data');

    // The charts follow the width: drawn again narrower at 360 px. checkBothWidths
    // ended at the desktop width, and the chart follows on the observer's next
    // frame: wait for it, or the width read here could still be the narrow one.
    await page.waitForFunction(() => document.querySelector('[data-timeline] canvas').getBoundingClientRect().width > 400);
    const wide = await page.locator('[data-timeline] canvas').first().evaluate((c) => c.getBoundingClientRect().width);
    await page.setViewportSize(PHONE_360);
    await page.waitForFunction((w) => document.querySelector('[data-timeline] canvas').getBoundingClientRect().width < w - 100, wide);
  }));

test('requests: search by external id, by last four digits and status; a result opens its timeline, keys counted, never the code', () =>
  withContext({}, async (context) => {
    const tag = `s-${suffix}`;
    const verified = await lifecycle(first, 'verified', { external_id: `${tag}-1`, user_id: tag, code: '86429753' });
    const declined = await lifecycle(first, 'declined', { external_id: `${tag}-2`, user_id: tag });
    const page = await context.newPage();
    await signIn(page, first.api_key);

    await search(page, { external_id: `${tag}-2` });
    assert.deepEqual(await resultIds(page), [declined.id]);
    assert.match(await page.locator('[data-search-results] tbody').innerText(), /Failed/);

    // Last four digits: ours and only numbers ending in them.
    const last4 = verified.phone_number.slice(-4);
    await search(page, { phone_last4: last4 });
    assert.deepEqual(await resultIds(page), [verified.id]);
    const numbers = await page.locator('[data-search-results] td[data-label="Number"]').allInnerTexts();
    for (const n of numbers) assert.ok(n.endsWith(last4), n);

    // The user id and a status: newest first, only the verified one.
    await search(page, { user_id: tag });
    assert.deepEqual(await resultIds(page), [declined.id, verified.id]);
    await search(page, { user_id: tag, status: 'verified' });
    assert.deepEqual(await resultIds(page), [verified.id]);

    // Not four digits: said on the page, nothing asked of the API.
    await page.locator('#search-last4').fill('12a');
    await page.locator('[data-search-form] button[type=submit]').click();
    await page.locator('[data-search-status]').filter({ hasText: 'exactly four digits' }).waitFor();
    assert.equal(await page.locator('#search-last4').getAttribute('aria-invalid'), '');
    await page.locator('#search-last4').fill('');

    // A click on the row opens the request and moves the focus to it.
    await search(page, { user_id: tag, status: 'verified' });
    await page.locator('[data-search-results] tbody tr').first().locator('td').first().click();
    await page.locator('[data-request-facts]').filter({ hasText: verified.id }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'request-title');
    const keys = page.locator('[data-timeline-list] li[data-kind="keys_pressed"]');
    await keys.waitFor();
    assert.match(await keys.innerText(), /8 keys/);
    assert.match(await keys.innerText(), /Code\s*:?\s*right/);
    const kinds = await page.locator('[data-timeline-list] li').evaluateAll((items) => items.map((i) => i.dataset.kind));
    assert.deepEqual(kinds.slice(0, 2), ['registered', 'call_placed']);
    for (const item of await page.locator('[data-timeline-list] li .what').allInnerTexts()) {
      assert.doesNotMatch(item, /^[a-z_]+$/, `a timeline kind in words: ${item}`);
    }
    const panel = await page.locator('[data-panel="requests"]').innerText();
    assert.ok(!panel.includes(verified.code), 'the code is never shown');
    assert.ok(!(await page.content()).includes(verified.code), 'the code is nowhere in the page');
    await checkBothWidths(page, 'console search and timeline (en)', 'console-en-timeline');

    // Switching the language redraws the results and the timeline in it.
    await page.getByLabel('Language').selectOption('ja');
    await page.locator('[data-timeline-list] li[data-kind="keys_pressed"]').filter({ hasText: 'キー入力' }).waitFor();
    assert.match(await page.locator('[data-search-results] tbody').innerText(), /認証成功/);
    await page.getByLabel('言語').selectOption('en');
    await page.locator('[data-timeline-list] li[data-kind="keys_pressed"]').filter({ hasText: 'Keys pressed' }).waitFor();

    // The keyboard reaches a result: Tab onto its id, Enter opens it.
    await search(page, { external_id: `${tag}-2` });
    await page.locator('[data-search-results] button[data-open]').focus();
    await page.keyboard.press('Enter');
    await page.locator('[data-request-facts]').filter({ hasText: declined.id }).waitFor();
  }));

test('audit: filtered by type, and the chain checked intact', () =>
  withContext({}, async (context) => {
    const page = await context.newPage();
    await signIn(page, first.api_key);
    await page.locator('[data-tab="audit"]').click();
    await page.locator('[data-audit] tbody tr').first().waitFor();
    await page.getByLabel('Event type').selectOption('request.verified');
    const answered = page.waitForResponse((res) => res.url().includes('/v1/audit-events?') && res.url().includes('type=request.verified'));
    await page.locator('[data-audit-form] button[type=submit]').click();
    assert.equal((await answered).status(), 200);
    const types = await page.locator('[data-audit] tbody td[data-label="Type"]').allInnerTexts();
    assert.ok(types.length >= 1, 'verified requests are listed');
    assert.deepEqual([...new Set(types)], ['Request verified']);

    await page.getByRole('button', { name: 'Check the chain' }).click();
    const status = page.locator('[data-chain-status]');
    await status.filter({ hasText: /The chain is intact: \d+ events checked\./ }).waitFor();
    assert.equal(await status.getAttribute('role'), 'status');
    assert.equal(await status.getAttribute('data-intact'), 'true');
    await checkBothWidths(page, 'console audit filtered and checked', 'console-en-audit-checked');
  }));

test('usage: the current month and its CSV link', () =>
  withContext({}, async (context) => {
    const page = await context.newPage();
    await signIn(page, first.api_key);
    await page.locator('[data-tab="usage"]').click();
    const now = new Date();
    const month = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}`;
    assert.equal(await page.getByLabel('Month').inputValue(), month);
    const csv = page.getByRole('link', { name: 'Download CSV' });
    await csv.waitFor();
    assert.equal(await csv.getAttribute('download'), `usage-${month}.csv`);
    assert.match(await csv.getAttribute('href'), /^blob:/);
  }));

test('a tenant never sees another tenant\'s requests: search, the request and its timeline are not found', () =>
  withContext({}, async (context) => {
    const id = (await register(first, { external_id: `mine-${suffix}` })).id;
    const page = await context.newPage();
    await signIn(page, first.api_key);
    await page.locator('[data-tab="requests"]').click();
    await page.locator('#request-id').fill(id);
    await page.getByRole('button', { name: 'Find' }).click();
    await page.locator('[data-request-facts]').filter({ hasText: id }).waitFor();
    await page.locator('[data-timeline-list] li[data-kind="registered"]').waitFor();

    // Another browser, the other tenant; its 404s are the point, so its
    // pages are not watched for them.
    const other = await context.browser().newContext({ baseURL: BASE_URL });
    try {
      const otherPage = await other.newPage();
      await signIn(otherPage, second.api_key);
      const statuses = await otherPage.evaluate(async (rid) => Promise.all([
        `/v1/auth-requests/${rid}`, `/v1/auth-requests/${rid}/timeline`,
      ].map(async (p) => (await fetch(p)).status)), id);
      assert.deepEqual(statuses, [404, 404]);
      const found = await otherPage.evaluate(async (ext) => (await fetch(`/v1/auth-requests?external_id=${ext}`)).json(), `mine-${suffix}`);
      assert.deepEqual(found.requests, []);
      await search(otherPage, { external_id: `mine-${suffix}` });
      await otherPage.locator('[data-search-status]').filter({ hasText: 'No request matches' }).waitFor();
      await otherPage.locator('#request-id').fill(id);
      await otherPage.getByRole('button', { name: 'Find' }).click();
      await otherPage.locator('[data-request-status]').filter({ hasText: 'No request with this id' }).waitFor();
      assert.equal(await otherPage.locator('[data-request]').isVisible(), false);
    } finally {
      await other.close();
    }
  }));

test('sign-out without the CSRF token, or from another origin, is refused 403', () =>
  withContext({}, async (context) => {
    const page = await context.newPage();
    await signIn(page, first.api_key);
    const noToken = await page.evaluate(async () => (await fetch('/console/session/delete', { method: 'POST' })).status);
    assert.equal(noToken, 403);
    const cookie = await sessionCookie(context);
    const session = await page.evaluate(async () => (await fetch('/console/session')).json());
    const foreign = await fetch(`${BASE_URL}/console/session/delete`, {
      method: 'POST',
      headers: { Cookie: `ivr_console=${cookie.value}`, 'X-CSRF-Token': session.csrf_token, Origin: 'https://evil.example' },
    });
    assert.equal(foreign.status, 403);
    assert.equal((await foreign.json()).error.code, 'forbidden');
    // Still signed in after both attempts.
    assert.equal(await page.evaluate(async () => (await fetch('/console/session')).status), 200);
  }));

test('a cookie planted before sign-in is not a session, and sign-in issues another', () =>
  withContext({}, async (context) => {
    const planted = 'v1.s.o.9999999999.planted.AAAA';
    await context.addCookies([{ name: 'ivr_console', value: planted, url: BASE_URL }]);
    const page = await context.newPage();
    await page.goto('/console?lang=en');
    await page.locator('[data-signin]').waitFor({ state: 'visible' });
    await signIn(page, first.api_key);
    const cookie = await sessionCookie(context);
    assert.notEqual(cookie.value, planted);
  }));

test('a wrong key shows a clear error', () =>
  withContext({}, async (context) => {
    const page = await context.newPage();
    await page.goto('/console?lang=en');
    await page.getByLabel('API key').fill(`${first.api_key}x`);
    await page.locator('[data-signin-form] button[type=submit]').click();
    const alert = page.getByRole('alert');
    await alert.filter({ hasText: 'not valid' }).waitFor();
    assert.equal(await sessionCookie(context), undefined);
    await assertAccessible(page, 'console wrong key');
    await screenshot(page, 'console-en-wrong-key-desktop');
  }));

test('the operator picks a tenant, finds and searches its requests', () =>
  withContext({}, async (context) => {
    const page = await context.newPage();
    await page.goto('/console?lang=en');
    await page.getByText('Operator sign-in').click();
    await page.getByLabel('Operator token').fill(process.env.IVR_AUTH_OPERATOR_TOKEN);
    await page.locator('[data-signin-form] button[type=submit]').click();
    await page.getByLabel('Tenant').selectOption({ label: second.name });
    const id = (await register(second, { external_id: `op-${suffix}` })).id;
    await page.locator('[data-tab="requests"]').click();
    await page.locator('#request-id').fill(id);
    await page.getByRole('button', { name: 'Find' }).click();
    await page.locator('[data-request-facts]').filter({ hasText: id }).waitFor();
    await search(page, { external_id: `op-${suffix}` });
    assert.deepEqual(await resultIds(page), [id]);
    await assertAccessible(page, 'console operator');
    await screenshot(page, 'console-en-operator-desktop');
  }));

test('the one-time sign-in link works once, not twice', () =>
  withContext({}, async (context) => {
    const link = cli('console', 'link', '--tenant', first.name, '--minutes', '5');
    const path = link.slice(link.indexOf('/console/link?'));
    const page = await context.newPage();
    await page.goto(path);
    await page.locator('[data-app]').waitFor({ state: 'visible' });
    assert.ok(await sessionCookie(context));
    await context.clearCookies();
    await page.goto(path);
    await page.getByRole('alert').filter({ hasText: 'already used' }).waitFor();
    assert.equal(await sessionCookie(context), undefined);
  }));

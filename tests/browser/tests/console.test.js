// The operator console (/console): sign-in with an API key, each section
// (axe-clean, no sideways scroll at 360 px, screenshots at both widths in
// ja and en), sign-out; tenants kept apart; CSRF and session fixation
// refused; a wrong key explained; the CLI's one-time link used once.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

import { BASE_URL, DESKTOP, assertAccessible, screenshot, useBrowser } from '../lib/harness.js';

const withBrowser = useBrowser();
const PHONE_360 = { width: 360, height: 740 };
const SECTIONS = ['dashboard', 'requests', 'audit', 'usage'];

// The console reads routes another change adds (/v1/stats, /v1/usage, the
// timeline, and the audit trail until it lands): their 404 is "no data yet"
// on the page, not a missing file, so the harness's 404 check skips them.
const PENDING_ROUTES = /404 for .*\/v1\/(stats|usage|audit-events|auth-requests\/[^/]+\/timeline)\b/;

function withContext(options, body) {
  return withBrowser(options, async (context) => {
    await body(context);
    context.pageErrors = context.pageErrors.filter((e) => !PENDING_ROUTES.test(e));
  });
}

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

/** Registers a request for `tenant` through the site API; its id. */
async function register(tenant) {
  const res = await fetch(`${BASE_URL}/v1/auth-requests`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${tenant.api_key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ phone_number: '+819012345678', code: '123456' }),
  });
  assert.equal(res.status, 201);
  return (await res.json()).id;
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
        if (section === 'dashboard') await page.locator('[data-stats-status]').filter({ hasNotText: /Loading|読み込み/ }).waitFor();
        for (const [size, viewport] of [['desktop', DESKTOP], ['phone', PHONE_360]]) {
          await page.setViewportSize(viewport);
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          assert.ok(overflow <= 0, `${section} at ${viewport.width}px is ${overflow}px too wide`);
          await assertAccessible(page, `console ${section} (${lang}, ${size})`);
          await screenshot(page, `console-${lang}-${section}-${size}`);
        }
        await page.setViewportSize(DESKTOP);
      }
      await page.locator('[data-sign-out]').click();
      await page.locator('[data-signin]').waitFor({ state: 'visible' });
      assert.equal(await sessionCookie(context), undefined, 'signed out: the cookie is gone');
    }));
}

test('a request found by id, and another tenant cannot read it (404)', () =>
  withContext({}, async (context) => {
    const id = await register(first);
    const page = await context.newPage();
    await signIn(page, first.api_key);
    await page.locator('[data-tab="requests"]').click();
    await page.locator('#request-id').fill(id);
    await page.getByRole('button', { name: 'Find' }).click();
    await page.locator('[data-request-facts]').filter({ hasText: id }).waitFor();
    await assertAccessible(page, 'console request shown');
    await screenshot(page, 'console-en-request-found-desktop');

    const other = await context.browser().newContext({ baseURL: BASE_URL });
    try {
      const otherPage = await other.newPage();
      await signIn(otherPage, second.api_key);
      const status = await otherPage.evaluate(async (rid) => (await fetch(`/v1/auth-requests/${rid}`)).status, id);
      assert.equal(status, 404);
      await otherPage.locator('[data-tab="requests"]').click();
      await otherPage.locator('#request-id').fill(id);
      await otherPage.getByRole('button', { name: 'Find' }).click();
      await otherPage.locator('[data-request-status]').filter({ hasText: 'No request with this id' }).waitFor();
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

test('the operator picks a tenant', () =>
  withContext({}, async (context) => {
    const page = await context.newPage();
    await page.goto('/console?lang=en');
    await page.getByText('Operator sign-in').click();
    await page.getByLabel('Operator token').fill(process.env.IVR_AUTH_OPERATOR_TOKEN);
    await page.locator('[data-signin-form] button[type=submit]').click();
    await page.getByLabel('Tenant').selectOption({ label: second.name });
    const id = await register(second);
    await page.locator('[data-tab="requests"]').click();
    await page.locator('#request-id').fill(id);
    await page.getByRole('button', { name: 'Find' }).click();
    await page.locator('[data-request-facts]').filter({ hasText: id }).waitFor();
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

test('the dashboard draws the funnel, the periods and the top numbers (stats answered by the test until /v1/stats lands)', () =>
  withContext({}, async (context) => {
    const period = (h, registered, verified) => ({
      start: new Date(Date.now() - h * 3600e3).toISOString(), registered, call_placed: registered, answered: registered - 1,
      code_entered: verified + 1, verified, failed: { no_answer: 1 },
    });
    const stats = {
      from: new Date(Date.now() - 86400e3).toISOString(), to: new Date().toISOString(), granularity: 'hour',
      periods: [period(3, 10, 7), period(2, 6, 5), period(1, 12, 9)],
      totals: { registered: 28, call_placed: 27, answered: 24, code_entered: 22, verified: 21, failed: { no_answer: 3, wrong_code: 2, hangup: 2 } },
      conversion: 0.75, median_seconds_to_verify: 23, calls: 27, call_seconds: 610,
      top_failing_numbers: [{ number: '*******5678', failures: 3 }, { number: '*******1234', failures: 1 }],
    };
    await context.route('**/v1/stats?*', (route) => route.fulfill({ json: stats }));
    const page = await context.newPage();
    await signIn(page, first.api_key);
    await page.locator('[data-funnel] canvas').first().waitFor();
    assert.match(await page.locator('[data-funnel]').getAttribute('aria-label'), /Registered 28.*Verified 21/);
    for (const [size, viewport] of [['desktop', DESKTOP], ['phone', PHONE_360]]) {
      await page.setViewportSize(viewport);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `dashboard at ${viewport.width}px is ${overflow}px too wide`);
      await assertAccessible(page, `console dashboard with data (${size})`);
      await screenshot(page, `console-en-dashboard-data-${size}`);
    }
  }));

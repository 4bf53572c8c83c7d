// Shared set-up for the browser tests: Debian's Chromium driven by
// playwright-core (one per test file, a fresh context per test: `useBrowser`),
// page helpers for the dev phone and the demo site, the axe accessibility
// check and screenshots. The longer steps built from these are in flows.js.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

export const BASE_URL = process.env.IVR_AUTH_BASE_URL;
if (!BASE_URL) {
  throw new Error('IVR_AUTH_BASE_URL is not set: run the tests with tests/browser/run.sh <ivr-auth binary>');
}

export const INBOUND_NUMBER = process.env.IVR_AUTH_INBOUND_NUMBER ?? '+81312345678';
export const SCREENSHOTS = join(here, '..', 'screenshots');

export const DESKTOP = { width: 1280, height: 900 };
export const PHONE = { width: 390, height: 844 };
/** The narrowest phone the pages are checked on (iPhone mini, SE). */
export const SMALL_PHONE = { width: 375, height: 812 };

/** How long a test waits for something the server does (a call, a poll). */
export const WAIT_MS = 20_000;

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/**
 * A fresh browser context (own storage) with errors collected: every test
 * ends with `assertNoPageErrors`, so a script exception or a CSP refusal
 * fails it even when the page still looks right.
 */
export async function newContext(browser, { lang = 'en', viewport = DESKTOP, isMobile = false } = {}) {
  const context = await browser.newContext({
    baseURL: BASE_URL,
    viewport,
    isMobile,
    hasTouch: isMobile,
    deviceScaleFactor: 1,
    locale: lang === 'ja' ? 'ja-JP' : 'en-US',
    reducedMotion: 'reduce',
  });
  context.setDefaultTimeout(WAIT_MS);
  context.pageErrors = [];
  context.on('page', (page) => watchErrors(context, page));
  return context;
}

function watchErrors(context, page) {
  page.on('pageerror', (err) => context.pageErrors.push(`${page.url()}: ${err.message}`));
  // Nothing a page loads by itself is missing (the favicon included); a
  // refused action answers 409 or 422, never 404.
  page.on('response', (res) => {
    if (res.status() === 404) context.pageErrors.push(`${page.url()}: 404 for ${res.url()}`);
  });
  page.on('console', (msg) => {
    // A refused action (409) logs "Failed to load resource"; the pages show
    // those themselves. Anything else on the error console is a bug.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) {
      context.pageErrors.push(`${page.url()}: ${msg.text()}`);
    }
  });
}

export function assertNoPageErrors(context) {
  assert.deepEqual(context.pageErrors, [], 'the pages logged errors');
}

/**
 * One Chromium for the whole test file, launched before its first test and
 * closed after its last. Answers `withContext(options, body)`: runs
 * `body(context)` in a fresh `newContext(browser, options)`, checks at the end
 * of it that the pages logged no errors, and always closes the context.
 *
 *   const withContext = useBrowser();
 *   test('…', () => withContext({ lang: 'en' }, async (context) => { … }));
 */
export function useBrowser() {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });
  return async function withContext(options, body) {
    const context = await newContext(browser, options);
    try {
      await body(context);
      assertNoPageErrors(context);
    } finally {
      await context.close();
    }
  };
}

export const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

// ---------- The demo site ----------

export async function openDemo(context, lang = 'en') {
  const page = await context.newPage();
  await page.goto(`/demo?lang=${lang}`);
  await byTestId(page, 'start-form').waitFor();
  return page;
}

/**
 * Fills the password-reset form without sending it. `mode` (when given) is
 * the choice of how to verify: `outbound` (we call, the code is typed on the
 * phone), `voice_otp`, `sms` or `inbound`; `fallback: true` ticks "if I don't
 * answer, send a text message instead".
 */
export async function fillDemoForm(page, { userId, phone, mode, fallback = false }) {
  await byTestId(page, 'user-id').fill(userId);
  await byTestId(page, 'phone-number').fill(phone);
  if (mode !== undefined) await page.locator(`label[for="mode-${mode}"]`).click();
  if (fallback) await byTestId(page, 'fallback-sms').check();
}

/** Waits for the demo page to show a registered request; answers its code. */
export async function waitForCode(page) {
  await byTestId(page, 'progress-view').waitFor();
  return byTestId(page, 'code').getAttribute('data-code');
}

/** Fills and sends the password-reset form; answers the code shown. */
export async function registerOnDemo(page, { userId = 'taro', phone, mode = 'outbound' }) {
  await fillDemoForm(page, { userId, phone, mode });
  await byTestId(page, 'submit').click();
  const code = await waitForCode(page);
  assert.match(code, /^\d{4,10}$/, 'the demo page shows a numeric code');
  return code;
}

export async function waitForResult(page, result) {
  await page.locator(`[data-testid="result-view"][data-result="${result}"]`).waitFor();
}

/** Waits until the demo page asks for the code (voice_otp, sms, or after a fallback to sms). */
export async function waitForCheckForm(page) {
  await byTestId(page, 'check-form').waitFor({ state: 'visible' });
}

/** Types `code` into the demo page's code box and presses Verify. */
export async function submitCodeOnDemo(page, code) {
  await byTestId(page, 'check-code').fill(code);
  await byTestId(page, 'verify').click();
}

/** Waits until the demo page shows a code error of `kind` (wrong, malformed…); answers its text. */
export async function waitForCodeError(page, kind) {
  const handle = await page.waitForFunction(
    (k) => {
      const slot = document.querySelector(`[data-testid="error-code"][data-kind="${k}"]`);
      return slot && slot.textContent.trim() !== '' ? slot.textContent.trim() : false;
    },
    kind,
    { timeout: WAIT_MS },
  );
  return handle.jsonValue();
}

// ---------- The dev phone ----------

export async function openPhone(context, lang = 'en') {
  const page = await context.newPage();
  await page.goto(`/dev/phone?lang=${lang}`);
  await page.locator('[data-testid="connection"][data-state="live"]').waitFor();
  return page;
}

/** Shows the newest call to `to` on the handset. */
export async function selectCallTo(phonePage, to) {
  const item = phonePage.locator(`[data-testid="call-item"][data-to="${to}"]`).first();
  await item.waitFor();
  await item.click();
  await phonePage.locator(`[data-testid="call-item"][data-to="${to}"][aria-current="true"]`).first().waitFor();
}

/**
 * Waits until the handset shows, by itself, the call to `to` (or from
 * `from`); unlike `selectCallTo` it does not click anything.
 */
export async function waitForShownCall(phonePage, { to, from }) {
  const match = to !== undefined ? `[data-to="${to}"]` : `[data-from="${from}"]`;
  await phonePage.locator(`[data-testid="call-item"]${match}[aria-current="true"]`).waitFor();
}

export async function waitForCallState(phonePage, state) {
  await phonePage.locator(`[data-testid="screen"][data-state="${state}"]`).waitFor();
}

/** Waits until the handset shows the verification request as `status`. */
export async function waitForRequestStatus(phonePage, status) {
  await phonePage.locator(`[data-testid="request-status"][data-status="${status}"]`).waitFor();
}

/** Clicks the keypad buttons for each digit of `digits`. */
export async function clickKeys(phonePage, digits) {
  for (const key of digits) {
    const id = key === '*' ? 'key-star' : key === '#' ? 'key-hash' : `key-${key}`;
    await byTestId(phonePage, id).click();
  }
}

/** Waits until the shown call's timeline has at least `count` entries of `kind`. */
export async function waitForTimelineCount(phonePage, kind, count) {
  await phonePage.waitForFunction(
    ([k, n]) => document.querySelectorAll(`[data-testid="timeline-entry"][data-kind="${k}"]`).length >= n,
    [kind, count],
    { timeout: WAIT_MS },
  );
}

export async function timelineTexts(phonePage, kind) {
  return phonePage.locator(`[data-testid="timeline-entry"][data-kind="${kind}"]`).allInnerTexts();
}

/**
 * The page's icon and `/favicon.ico` both load as images. Headless Chromium
 * fetches neither by itself, so the 404 watch above cannot see them missing;
 * a visible browser asks for both and logs a 404 for any that is not there.
 */
export async function assertIconsLoad(page) {
  const linked = await page.evaluate(() => document.querySelector('link[rel="icon"]')?.getAttribute('href'));
  assert.ok(linked, 'the page links an icon');
  for (const path of [linked, '/favicon.ico']) {
    const res = await page.request.get(new URL(path, page.url()).href);
    assert.equal(res.status(), 200, `${path} answers 200`);
    assert.match(res.headers()['content-type'] ?? '', /^image\//, `${path} is an image`);
  }
}

/** The digits of a code read aloud as "4, 8, 2, 9, 1, 3" (contract §8), or null. */
export function codeReadAloud(text) {
  const match = /\d(?:, \d){3,9}/.exec(text);
  return match ? match[0].replaceAll(', ', '') : null;
}

/** Waits until the shown call's timeline has a prompt reading a code aloud; answers its digits. */
export async function waitForCodeReadAloud(phonePage) {
  const handle = await phonePage.waitForFunction(
    () => {
      const texts = [...document.querySelectorAll('[data-testid="timeline-entry"][data-kind="say"]')].map((e) => e.innerText);
      return texts.find((text) => /\d(?:, \d){3,9}/.test(text)) ?? false;
    },
    null,
    { timeout: WAIT_MS },
  );
  return codeReadAloud(await handle.jsonValue());
}

/** The code in a text message's body (the first run of 4 to 10 digits), or null. */
export function codeInMessage(body) {
  return /(?<!\d)\d{4,10}(?!\d)/.exec(body)?.[0] ?? null;
}

/** Waits until the dev phone lists a text message to `to` (E.164); answers the newest one's body. */
export async function waitForMessageTo(phonePage, to) {
  const item = phonePage.locator(`[data-testid="message-item"][data-to="${to}"]`).first();
  await item.waitFor();
  return (await item.locator('[data-testid="message-body"]').innerText()).trim();
}

// ---------- Accessibility and screenshots ----------

const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe on the page as it is now and fails on any serious or critical
 * violation. The source is evaluated through the DevTools protocol, which the
 * pages' Content-Security-Policy (script-src 'self') does not apply to.
 */
export async function assertAccessible(page, label) {
  const hasAxe = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!hasAxe) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')} — ${n.failureSummary}`),
      }));
  });
  assert.deepEqual(violations, [], `axe found serious or critical violations on ${label}`);
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true, animations: 'disabled' });
}

/** `assertAccessible`, then a screenshot `name`.png of the page as checked. */
export async function assertAccessibleAndScreenshot(page, label, name) {
  await assertAccessible(page, label);
  await screenshot(page, name);
}

/**
 * `assertAccessibleAndScreenshot` at the desktop width (`name`-desktop.png)
 * and at a 375×812 phone width (`name`-phone.png); the page's own size is
 * restored afterwards. Also checks that nothing scrolls sideways on the phone.
 */
export async function assertAccessibleAtBothWidths(page, label, name) {
  const original = page.viewportSize();
  try {
    await page.setViewportSize(DESKTOP);
    await assertAccessibleAndScreenshot(page, `${label} (desktop)`, `${name}-desktop`);
    await page.setViewportSize(SMALL_PHONE);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${label}: the page is ${overflow}px wider than a 375px screen`);
    await assertAccessibleAndScreenshot(page, `${label} (375px)`, `${name}-phone`);
  } finally {
    if (original) await page.setViewportSize(original);
  }
}

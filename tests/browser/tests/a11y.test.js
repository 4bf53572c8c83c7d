// Accessibility (axe: no serious or critical violations) and screenshots of
// both pages, in Japanese and English, on a desktop and a 390×844 phone.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  DESKTOP,
  PHONE,
  assertAccessible,
  assertNoPageErrors,
  byTestId,
  launch,
  newContext,
  screenshot,
} from '../lib/harness.js';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

const PAGES = [
  { name: 'phone', path: '/dev/phone', ready: '[data-testid="connection"][data-state="live"]' },
  { name: 'demo', path: '/demo', ready: '[data-testid="start-form"]' },
];
const LANGS = { en: { title: /Dev phone|Reset your password/ }, ja: { title: /開発用電話|パスワードの再設定/ } };
const SIZES = [
  { name: 'desktop', viewport: DESKTOP, isMobile: false },
  { name: 'phone', viewport: PHONE, isMobile: true },
];

for (const page of PAGES) {
  for (const [lang, expect] of Object.entries(LANGS)) {
    for (const size of SIZES) {
      test(`${page.path} in ${lang} on a ${size.name} screen: accessible, translated, fits`, async () => {
        const context = await newContext(browser, { lang, viewport: size.viewport, isMobile: size.isMobile });
        try {
          const tab = await context.newPage();
          await tab.goto(`${page.path}?lang=${lang}`);
          await tab.locator(page.ready).waitFor();
          assert.equal(await tab.getAttribute('html', 'lang'), lang);
          assert.match(await tab.title(), expect.title);
          assert.equal(await byTestId(tab, `lang-${lang}`).getAttribute('aria-pressed'), 'true');

          // Nothing may force sideways scrolling on a phone.
          const overflow = await tab.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);

          await assertAccessible(tab, `${page.path} (${lang}, ${size.name})`);
          await screenshot(tab, `${page.name}-${lang}-${size.name}`);
          assertNoPageErrors(context);
        } finally {
          await context.close();
        }
      });
    }
  }
}

test('the language follows the browser, is remembered, and ?lang= overrides it', async () => {
  const context = await newContext(browser, { lang: 'ja' });
  try {
    const tab = await context.newPage();
    await tab.goto('/demo');
    assert.equal(await tab.getAttribute('html', 'lang'), 'ja', 'a Japanese browser gets Japanese');

    await byTestId(tab, 'lang-en').click();
    assert.equal(await tab.getAttribute('html', 'lang'), 'en');
    assert.match(await byTestId(tab, 'submit').innerText(), /Continue/);

    await tab.goto('/dev/phone');
    assert.equal(await tab.getAttribute('html', 'lang'), 'en', 'the choice is remembered across pages');

    await tab.goto('/dev/phone?lang=ja');
    assert.equal(await tab.getAttribute('html', 'lang'), 'ja', '?lang= forces the language');
    assert.match(await byTestId(tab, 'dial-button').innerText(), /発信/);
    assertNoPageErrors(context);
  } finally {
    await context.close();
  }
});

test('a refused field is named next to that field', async () => {
  const context = await newContext(browser, { lang: 'en' });
  try {
    const tab = await context.newPage();
    await tab.goto('/demo?lang=en');
    await byTestId(tab, 'user-id').fill('taro');
    await byTestId(tab, 'phone-number').fill('12');
    await byTestId(tab, 'submit').click();
    await byTestId(tab, 'error-phone_number').waitFor();
    assert.equal(await byTestId(tab, 'phone-number').getAttribute('aria-invalid'), 'true');
    assert.equal(await tab.evaluate(() => document.activeElement?.dataset.testid), 'phone-number');
    assert.equal(await byTestId(tab, 'error-user_id').isVisible(), false);
    await assertAccessible(tab, '/demo with a field error');
    await screenshot(tab, 'demo-en-field-error');
    assertNoPageErrors(context);
  } finally {
    await context.close();
  }
});

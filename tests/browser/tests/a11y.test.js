// Accessibility (axe: no serious or critical violations) and screenshots of
// both pages, in Japanese and English, on a desktop and a 390×844 phone.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  DESKTOP,
  PHONE,
  assertAccessibleAndScreenshot,
  assertIconsLoad,
  byTestId,
  fillDemoForm,
  openDemo,
  openPhone,
  useBrowser,
} from '../lib/harness.js';

const withContext = useBrowser();

const PAGES = [
  { name: 'phone', path: '/dev/phone', open: openPhone },
  { name: 'demo', path: '/demo', open: openDemo },
];
const LANGS = { en: { title: /Dev phone|Reset your password/ }, ja: { title: /開発用電話|パスワードの再設定/ } };
const SIZES = [
  { name: 'desktop', viewport: DESKTOP, isMobile: false },
  { name: 'phone', viewport: PHONE, isMobile: true },
];

for (const page of PAGES) {
  for (const [lang, expect] of Object.entries(LANGS)) {
    for (const size of SIZES) {
      test(`${page.path} in ${lang} on a ${size.name} screen: accessible, translated, fits`, () =>
        withContext({ lang, viewport: size.viewport, isMobile: size.isMobile }, async (context) => {
          const tab = await page.open(context, lang);
          assert.equal(await tab.getAttribute('html', 'lang'), lang);
          await assertIconsLoad(tab);
          assert.match(await tab.title(), expect.title);
          assert.equal(await byTestId(tab, `lang-${lang}`).getAttribute('aria-pressed'), 'true');

          // Nothing may force sideways scrolling on a phone.
          const overflow = await tab.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);

          await assertAccessibleAndScreenshot(tab, `${page.path} (${lang}, ${size.name})`, `${page.name}-${lang}-${size.name}`);
        }));
    }
  }
}

test('the language follows the browser, is remembered, and ?lang= overrides it', () =>
  withContext({ lang: 'ja' }, async (context) => {
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
  }));

test('a refused field is named next to that field', () =>
  withContext({ lang: 'en' }, async (context) => {
    const tab = await openDemo(context, 'en');
    await fillDemoForm(tab, { userId: 'taro', phone: '12' });
    await byTestId(tab, 'submit').click();
    await byTestId(tab, 'error-phone_number').waitFor();
    assert.equal(await byTestId(tab, 'phone-number').getAttribute('aria-invalid'), 'true');
    assert.equal(await tab.evaluate(() => document.activeElement?.dataset.testid), 'phone-number');
    assert.equal(await byTestId(tab, 'error-user_id').isVisible(), false);
    await assertAccessibleAndScreenshot(tab, '/demo with a field error', 'demo-en-field-error');
  }));

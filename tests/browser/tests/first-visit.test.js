// What a newcomer meets first: the server's root page, the demo's words
// about where to type what, and the demo when the server goes away.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { startRequestOnDemo } from '../lib/flows.js';
import {
  assertAccessible,
  byTestId,
  fillDemoForm,
  openDemo,
  openPhone,
  useBrowser,
  waitForCheckForm,
  waitForMessageTo,
} from '../lib/harness.js';

const withContext = useBrowser();

test('the root page links the demo site and the dev phone', () =>
  withContext({ lang: 'en' }, async (context) => {
    const page = await context.newPage();
    const response = await page.goto('/');
    assert.equal(response.status(), 200);
    await assertAccessible(page, 'the root page');
    await byTestId(page, 'index-phone').waitFor();
    await byTestId(page, 'index-demo').click();
    await byTestId(page, 'start-form').waitFor();
    assert.equal(new URL(page.url()).pathname, '/demo');
  }));

for (const lang of ['en', 'ja']) {
  test(`demo (${lang}): the steps ask for no # key, and the status box points up to the code box`, () =>
    withContext({ lang }, async (context) => {
      // The call ends on the code's last digit: nobody is asked for #.
      const { demo } = await startRequestOnDemo(context, { lang, userId: 'goro', phone: '090-3333-0001' });
      const steps = await byTestId(demo, 'steps').innerText();
      assert.doesNotMatch(steps, /#/, steps);

      // A text message: the code box is above the status box, and the status says so.
      const phone = await openPhone(context, lang);
      const sms = await openDemo(context, lang);
      await fillDemoForm(sms, { userId: 'goro', phone: '090-3333-0002', mode: 'sms' });
      await byTestId(sms, 'submit').click();
      await waitForCheckForm(sms);
      await waitForMessageTo(phone, '+819033330002');
      const status = byTestId(sms, 'demo-status');
      await status.filter({ hasText: lang === 'en' ? /sent the text message/ : /SMSをお送りしました/ }).waitFor();
      const said = await status.innerText();
      assert.match(said, lang === 'en' ? /above/ : /上の欄/, said);
      assert.doesNotMatch(said, lang === 'en' ? /below/ : /下の欄/, said);
      const box = await byTestId(sms, 'check-code').boundingBox();
      const where = await status.boundingBox();
      assert.ok(box.y < where.y, 'the code box is above the status box');
    }));
}

test('demo: when the server cannot be reached, the page says so instead of "your phone is ringing"', () =>
  withContext({ lang: 'en' }, async (context) => {
    const { demo } = await startRequestOnDemo(context, { lang: 'en', userId: 'rokuro', phone: '090-3333-0003' });
    const status = byTestId(demo, 'demo-status');
    await status.filter({ hasText: /ringing/ }).waitFor();
    // The server stops: every poll fails to connect.
    await demo.route('**/demo/api/requests/**', (route) => route.abort('connectionrefused'));
    await demo.locator('[data-testid="demo-status"][data-status="offline"]').waitFor();
    const said = await status.innerText();
    assert.match(said, /connection to the server is lost/i, said);
    assert.doesNotMatch(said, /ringing/, said);
    await assertAccessible(demo, 'the demo page with the server gone');
    // It comes back: the page says what is true again.
    await demo.unroute('**/demo/api/requests/**');
    await status.filter({ hasText: /ringing/ }).waitFor();
    assert.notEqual(await status.getAttribute('data-status'), 'offline');
  }));

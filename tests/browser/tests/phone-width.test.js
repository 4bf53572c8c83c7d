// The dev phone on a 375-pixel phone, in Japanese and English: the prompt
// playing is shown whole, the keys box starts empty again after a wrong
// code, an ended call is not shown as incoming, the timeline speaks the
// page's language, and no resource (the favicon included) is missing.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { answerCall, openPhoneWithRingingCall, startRequestOnDemo } from '../lib/flows.js';
import {
  SMALL_PHONE,
  assertAccessibleAndScreenshot,
  byTestId,
  clickKeys,
  screenshot,
  timelineTexts,
  useBrowser,
  waitForCallState,
  waitForTimelineCount,
} from '../lib/harness.js';

const withContext = useBrowser();

const CASES = [
  { lang: 'ja', phone: '090-1111-0007', e164: '+819011110007', ended: '通話は終了しました' },
  { lang: 'en', phone: '090-1111-0008', e164: '+819011110008', ended: 'Call ended' },
];

/** Whether the element shows all its content (nothing clipped by its box). */
const showsWhole = (page, id) =>
  page.evaluate((testId) => {
    const node = document.querySelector(`[data-testid="${testId}"]`);
    return node.scrollHeight <= node.clientHeight + 1 && node.scrollWidth <= node.clientWidth + 1;
  }, id);

for (const c of CASES) {
  test(`the dev phone at 375 px in ${c.lang}: whole prompt, keys cleared after a wrong code, ended call`, () =>
    withContext({ lang: c.lang, viewport: SMALL_PHONE, isMobile: true }, async (context) => {
      const { code } = await startRequestOnDemo(context, { lang: c.lang, userId: 'goro', phone: c.phone });
      const phone = await openPhoneWithRingingCall(context, { lang: c.lang, to: c.e164 });
      await answerCall(phone);
      await byTestId(phone, 'awaiting').waitFor();

      // The guidance is long (it reads the instructions); all of it is on screen.
      const prompt = await byTestId(phone, 'now-playing').innerText();
      assert.ok(prompt.length > 20, `a prompt is playing: ${prompt}`);
      assert.ok(await showsWhole(phone, 'now-playing'), 'the prompt is not cut off');
      const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
      await assertAccessibleAndScreenshot(phone, `the dev phone in a call (${c.lang}, 375 px)`, `phone-375-${c.lang}-call`);

      // A wrong code: once the phone asks again, the keys box is empty.
      const wrong = [...code].map((d) => String((Number(d) + 1) % 10)).join('');
      await clickKeys(phone, wrong);
      await waitForTimelineCount(phone, 'digits', 1);
      await byTestId(phone, 'awaiting').waitFor();
      assert.equal(await byTestId(phone, 'typed-digits').innerText(), '');
      await screenshot(phone, `phone-375-${c.lang}-after-wrong-code`);
      await clickKeys(phone, code.slice(0, 2));
      assert.equal(await byTestId(phone, 'typed-digits').innerText(), code.slice(0, 2), 'new keys show again');

      // Hung up: the handset says the call ended, not that one is coming in.
      await byTestId(phone, 'hangup').click();
      await waitForCallState(phone, 'completed');
      assert.equal(await byTestId(phone, 'call-title').innerText(), c.ended);
      assert.equal(await byTestId(phone, 'typed-digits').innerText(), code.slice(0, 2), 'the last attempt\'s keys');

      // The timeline's call statuses are in the page's language.
      await waitForTimelineCount(phone, 'status', 3);
      const statuses = await timelineTexts(phone, 'status');
      if (c.lang === 'ja') {
        for (const text of statuses) assert.doesNotMatch(text, /ringing|in-progress|completed|initiated/, text);
        assert.ok(statuses.some((text) => text.includes('通話中')), JSON.stringify(statuses));
      }
      await assertAccessibleAndScreenshot(phone, `the dev phone after a call (${c.lang}, 375 px)`, `phone-375-${c.lang}-ended`);

      // Opened afresh with no call going on, the phone shows the last call as ended.
      const fresh = await context.newPage();
      await fresh.goto(`/dev/phone?lang=${c.lang}`);
      await fresh.locator('[data-testid="connection"][data-state="live"]').waitFor();
      await fresh.locator('[data-testid="screen"]:not([data-state="idle"])').waitFor();
      const shown = await fresh.locator('[data-testid="screen"]').getAttribute('data-state');
      if (shown !== 'ringing' && shown !== 'in-progress') {
        assert.equal(await byTestId(fresh, 'call-title').innerText(), c.ended);
      }
      await screenshot(fresh, `phone-375-${c.lang}-idle`);
    }));
}

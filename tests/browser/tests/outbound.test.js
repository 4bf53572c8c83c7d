// Outbound verification end to end: the demo site registers a request, the
// dev phone answers the call and types the code with its keypad buttons.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { answerCall, openPhoneWithRingingCall, startRequestOnDemo } from '../lib/flows.js';
import {
  PHONE,
  assertAccessibleAndScreenshot,
  byTestId,
  clickKeys,
  screenshot,
  useBrowser,
  waitForCallState,
  waitForCode,
  waitForRequestStatus,
  waitForResult,
  waitForTimelineCount,
} from '../lib/harness.js';

const withContext = useBrowser();

/** A code that differs from `code` in every digit. */
function wrongCode(code) {
  return [...code].map((d) => String((Number(d) + 1) % 10)).join('');
}

test('outbound: answering and typing the right code verifies and shows a temporary password', () =>
  withContext({ lang: 'en' }, async (context) => {
    const { demo, code } = await startRequestOnDemo(context, { lang: 'en', userId: 'taro', phone: '090-1111-0001' });
    await assertAccessibleAndScreenshot(demo, 'the demo page showing a code', 'flow-demo-code-en');
    // The number the server calls, not the text typed (issue 13, item 1).
    assert.match(await byTestId(demo, 'steps').innerText(), /We are calling \+819011110001 now\./);

    const phone = await openPhoneWithRingingCall(context, { lang: 'en', to: '+819011110001' });
    await screenshot(phone, 'flow-phone-ringing-en');
    await answerCall(phone);
    await byTestId(phone, 'awaiting').waitFor();
    await clickKeys(phone, code.slice(0, 3));
    await screenshot(phone, 'flow-phone-typing-en');
    await clickKeys(phone, code.slice(3));

    await waitForResult(demo, 'verified');
    const password = (await byTestId(demo, 'temp-password').innerText()).trim();
    assert.match(password, /^\S{8,}$/, 'a temporary password is shown');
    await assertAccessibleAndScreenshot(demo, 'the demo page after verification', 'flow-demo-verified-en');

    // The phone shows what happened: the digits sent and the request verified.
    await waitForTimelineCount(phone, 'digits', 1);
    assert.equal(await byTestId(phone, 'typed-digits').innerText(), code);
    await waitForRequestStatus(phone, 'verified');
    await waitForCallState(phone, 'completed');
    await assertAccessibleAndScreenshot(phone, 'the dev phone after a call', 'flow-phone-verified-en');
  }));

test('outbound: a wrong code three times fails, and the demo offers a retry', () =>
  withContext({ lang: 'ja' }, async (context) => {
    const { demo, code } = await startRequestOnDemo(context, { lang: 'ja', userId: 'hanako', phone: '090-1111-0002' });

    // The handset on a phone-size screen.
    const phone = await openPhoneWithRingingCall(context, { lang: 'ja', to: '+819011110002', viewport: PHONE });
    await screenshot(phone, 'flow-phone-ringing-ja-phone');
    await answerCall(phone);

    const wrong = wrongCode(code);
    for (let attempt = 1; attempt <= 3; attempt += 1) {
      await byTestId(phone, 'awaiting').waitFor();
      await clickKeys(phone, wrong);
      await waitForTimelineCount(phone, 'digits', attempt);
      if (attempt === 1) await screenshot(phone, 'flow-phone-wrong-ja-phone');
      if (attempt < 3) {
        await demo.locator(`[data-testid="demo-status"][data-attempts="${attempt}"]`).waitFor();
      }
    }

    await waitForResult(demo, 'failed');
    assert.equal(await byTestId(demo, 'result-body').getAttribute('data-reason'), 'wrong_code');
    assert.equal(await byTestId(demo, 'temp-password').isVisible(), false, 'no password after a failure');
    await waitForRequestStatus(phone, 'failed');
    await waitForCallState(phone, 'completed');
    await screenshot(demo, 'flow-demo-failed-ja');
    await screenshot(phone, 'flow-phone-failed-ja');

    // "Try again" registers a new request at once: a new code, a new call.
    await byTestId(demo, 'retry').click();
    const second = await waitForCode(demo);
    assert.match(second, /^\d+$/);
    await phone.locator('[data-testid="call-item"][data-to="+819011110002"][data-state="ringing"]').waitFor();

    // Canceling it on the site ends that call too.
    await byTestId(demo, 'cancel').click();
    await waitForResult(demo, 'canceled');
    await phone.locator('[data-testid="call-item"][data-to="+819011110002"][data-state="ringing"]').waitFor({ state: 'detached' });
  }));

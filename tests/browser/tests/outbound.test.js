// Outbound verification end to end: the demo site registers a request, the
// dev phone answers the call and types the code with its keypad buttons.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  PHONE,
  assertAccessible,
  assertNoPageErrors,
  byTestId,
  clickKeys,
  launch,
  newContext,
  openDemo,
  openPhone,
  registerOnDemo,
  screenshot,
  selectCallTo,
  waitForCallState,
  waitForResult,
  waitForTimelineCount,
} from '../lib/harness.js';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** A code that differs from `code` in every digit. */
function wrongCode(code) {
  return [...code].map((d) => String((Number(d) + 1) % 10)).join('');
}

test('outbound: answering and typing the right code verifies and shows a temporary password', async () => {
  const context = await newContext(browser, { lang: 'en' });
  try {
    const demo = await openDemo(context, 'en');
    const code = await registerOnDemo(demo, { userId: 'taro', phone: '090-1111-0001' });
    await assertAccessible(demo, 'the demo page showing a code');
    await screenshot(demo, 'flow-demo-code-en');

    const phone = await openPhone(context, 'en');
    await selectCallTo(phone, '+819011110001');
    await waitForCallState(phone, 'ringing');
    await screenshot(phone, 'flow-phone-ringing-en');
    await byTestId(phone, 'answer').click();
    await waitForCallState(phone, 'in-progress');
    await byTestId(phone, 'awaiting').waitFor();
    await clickKeys(phone, code.slice(0, 3));
    await screenshot(phone, 'flow-phone-typing-en');
    await clickKeys(phone, code.slice(3));

    await waitForResult(demo, 'verified');
    const password = (await byTestId(demo, 'temp-password').innerText()).trim();
    assert.match(password, /^\S{8,}$/, 'a temporary password is shown');
    await assertAccessible(demo, 'the demo page after verification');
    await screenshot(demo, 'flow-demo-verified-en');

    // The phone shows what happened: the digits sent and the request verified.
    await waitForTimelineCount(phone, 'digits', 1);
    assert.equal(await byTestId(phone, 'typed-digits').innerText(), code);
    await phone.locator('[data-testid="request-status"][data-status="verified"]').waitFor();
    await waitForCallState(phone, 'completed');
    await assertAccessible(phone, 'the dev phone after a call');
    await screenshot(phone, 'flow-phone-verified-en');
    assertNoPageErrors(context);
  } finally {
    await context.close();
  }
});

test('outbound: a wrong code three times fails, and the demo offers a retry', async () => {
  const context = await newContext(browser, { lang: 'ja' });
  try {
    const demo = await openDemo(context, 'ja');
    const code = await registerOnDemo(demo, { userId: 'hanako', phone: '090-1111-0002' });

    // The handset on a phone-size screen.
    const phone = await openPhone(context, 'ja');
    await phone.setViewportSize(PHONE);
    await selectCallTo(phone, '+819011110002');
    await waitForCallState(phone, 'ringing');
    await screenshot(phone, 'flow-phone-ringing-ja-phone');
    await byTestId(phone, 'answer').click();
    await waitForCallState(phone, 'in-progress');

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
    await phone.locator('[data-testid="request-status"][data-status="failed"]').waitFor();
    await waitForCallState(phone, 'completed');
    await screenshot(demo, 'flow-demo-failed-ja');
    await screenshot(phone, 'flow-phone-failed-ja');

    // "Try again" registers a new request at once: a new code, a new call.
    await byTestId(demo, 'retry').click();
    await byTestId(demo, 'progress-view').waitFor();
    const second = await byTestId(demo, 'code').getAttribute('data-code');
    assert.match(second, /^\d+$/);
    await phone.locator('[data-testid="call-item"][data-to="+819011110002"][data-state="ringing"]').waitFor();

    // Canceling it on the site ends that call too.
    await byTestId(demo, 'cancel').click();
    await waitForResult(demo, 'canceled');
    await phone.locator('[data-testid="call-item"][data-to="+819011110002"][data-state="ringing"]').waitFor({ state: 'detached' });
    assertNoPageErrors(context);
  } finally {
    await context.close();
  }
});

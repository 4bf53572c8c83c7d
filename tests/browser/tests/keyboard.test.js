// Keyboard only: the demo form, answering, the keypad and hanging up all
// work without a mouse.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openPhoneWithRingingCall } from '../lib/flows.js';
import {
  byTestId,
  openDemo,
  useBrowser,
  waitForCallState,
  waitForCode,
  waitForResult,
  waitForTimelineCount,
} from '../lib/harness.js';

const withContext = useBrowser();

const focusedTestId = (page) => page.evaluate(() => document.activeElement?.dataset?.testid ?? null);

/** Presses Tab until the element `id` has focus (bounded, so a broken order fails). */
async function tabTo(page, id, limit = 15) {
  for (let i = 0; i < limit; i += 1) {
    if ((await focusedTestId(page)) === id) return;
    await page.keyboard.press('Tab');
  }
  assert.fail(`Tab never reached ${id}`);
}

/** Fills the demo form from the keyboard and submits it with Enter; answers the code. */
async function registerByKeyboard(demo, { userId, phone }) {
  await tabTo(demo, 'user-id');
  await demo.keyboard.type(userId);
  await demo.keyboard.press('Tab');
  assert.equal(await focusedTestId(demo), 'phone-number', 'the phone number follows the user ID');
  await demo.keyboard.type(phone);
  await demo.keyboard.press('Enter');
  return waitForCode(demo);
}

test('keyboard: Enter answers, digit keys type the code, and the keypad is in the tab order', () =>
  withContext({ lang: 'en' }, async (context) => {
    const demo = await openDemo(context, 'en');
    const code = await registerByKeyboard(demo, { userId: 'saburo', phone: '09011110005' });

    const phone = await openPhoneWithRingingCall(context, { lang: 'en', to: '+819011110005', useMouse: false });
    await phone.keyboard.press('Enter');
    await waitForCallState(phone, 'in-progress');

    // Hang up comes before the keypad, which runs 1, 2, 3 … in reading order.
    await byTestId(phone, 'hangup').focus();
    await phone.keyboard.press('Tab');
    assert.equal(await focusedTestId(phone), 'key-1');
    await phone.keyboard.press('Tab');
    assert.equal(await focusedTestId(phone), 'key-2');

    await byTestId(phone, 'awaiting').waitFor();
    for (const digit of code) await phone.keyboard.press(digit);
    await waitForTimelineCount(phone, 'digits', 1);
    assert.equal(await byTestId(phone, 'typed-digits').innerText(), code);
    await waitForResult(demo, 'verified');
  }));

test('keyboard: Escape declines a ringing call, and the demo says it was declined', () =>
  withContext({ lang: 'ja' }, async (context) => {
    const demo = await openDemo(context, 'ja');
    await registerByKeyboard(demo, { userId: 'shiro', phone: '090-1111-0006' });

    const phone = await openPhoneWithRingingCall(context, { lang: 'ja', to: '+819011110006', useMouse: false });
    await phone.keyboard.press('Escape');
    await waitForCallState(phone, 'busy');

    await waitForResult(demo, 'failed');
    assert.equal(await byTestId(demo, 'result-body').getAttribute('data-reason'), 'rejected');
    // Focus moved to the result, and Tab reaches "Try again".
    assert.equal(await focusedTestId(demo), 'result-title');
    await tabTo(demo, 'retry', 3);
  }));

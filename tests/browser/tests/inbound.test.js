// Inbound verification: the user calls the published number. A withheld
// caller ID is refused with the "dial 186" prompt; the registered number,
// typing the code on the computer keyboard, verifies.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { startRequestOnDemo } from '../lib/flows.js';
import {
  INBOUND_NUMBER,
  byTestId,
  openPhone,
  screenshot,
  timelineTexts,
  useBrowser,
  waitForCallState,
  waitForResult,
  waitForShownCall,
  waitForTimelineCount,
} from '../lib/harness.js';

const withContext = useBrowser();

/** The withheld-caller-ID prompt, in either voice language. */
const DIAL_186 = /186|いち、はち、ろく/;

test('inbound: a withheld caller ID is refused; the registered number verifies', () =>
  withContext({ lang: 'en' }, async (context) => {
    const { demo, code } = await startRequestOnDemo(context, {
      lang: 'en',
      userId: 'jiro',
      phone: '090-1111-0003',
      mode: 'inbound',
    });
    assert.equal(await byTestId(demo, 'inbound-number').innerText(), INBOUND_NUMBER);
    await screenshot(demo, 'flow-demo-inbound-en');

    const phone = await openPhone(context, 'en');
    assert.equal(await byTestId(phone, 'inbound-number').innerText(), INBOUND_NUMBER);
    // The caller ID is the number just registered on the demo site, and the hint names it.
    assert.equal(await byTestId(phone, 'dial-from').inputValue(), '+819011110003');
    assert.match(await byTestId(phone, 'dial-from-hint').innerText(), /registered on the demo site \(\+819011110003\)/);

    // 1. Withheld caller ID: told to dial 186, then hung up.
    await byTestId(phone, 'dial-withhold').check();
    assert.equal(await byTestId(phone, 'dial-from').isDisabled(), true, 'the number field is off while withheld');
    await byTestId(phone, 'dial-button').click();
    await waitForShownCall(phone, { from: 'anonymous' });
    await waitForCallState(phone, 'completed');
    const prompts = await timelineTexts(phone, 'say');
    assert.ok(prompts.some((text) => DIAL_186.test(text)), `a prompt mentions 186: ${JSON.stringify(prompts)}`);
    await waitForTimelineCount(phone, 'hangup', 1);
    await screenshot(phone, 'flow-phone-withheld-en');

    // The request is untouched: still waiting for a call, not verified.
    await demo.waitForTimeout(1500);
    assert.equal(await byTestId(demo, 'demo-status').getAttribute('data-status'), 'pending');
    assert.equal(await byTestId(demo, 'result-view').isVisible(), false);

    // 2. From the registered number, typing the code on the keyboard.
    await byTestId(phone, 'dial-withhold').uncheck();
    await byTestId(phone, 'dial-from').fill('+819011110003');
    await byTestId(phone, 'dial-button').click();
    await waitForShownCall(phone, { from: '+819011110003' });
    await waitForCallState(phone, 'in-progress');
    await byTestId(phone, 'awaiting').waitFor();
    await phone.keyboard.type(code);

    await waitForResult(demo, 'verified');
    assert.notEqual((await byTestId(demo, 'temp-password').innerText()).trim(), '');
    await waitForTimelineCount(phone, 'digits', 1);
    assert.deepEqual(await timelineTexts(phone, 'digits').then((t) => t.map((s) => s.includes(code))), [true]);
  }));

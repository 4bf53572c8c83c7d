// The steps the end-to-end tests take again and again, built from the page
// helpers in harness.js: registering a request on the demo site, and picking
// up its call on the dev phone.

import {
  byTestId,
  openDemo,
  openPhone,
  registerOnDemo,
  selectCallTo,
  waitForCallState,
  waitForShownCall,
} from './harness.js';

/**
 * Opens /demo in `lang` and registers a password reset for `userId` at
 * `phone` (see `registerOnDemo`); answers the demo page and the code it shows.
 */
export async function startRequestOnDemo(context, { lang = 'en', userId, phone, mode }) {
  const demo = await openDemo(context, lang);
  const code = await registerOnDemo(demo, { userId, phone, mode });
  return { demo, code };
}

/**
 * Opens /dev/phone in `lang` (resized to `viewport` when given) and waits
 * until it shows the call to `to` ringing. The call is picked from the list
 * with the mouse, or with `useMouse: false` the handset must show it by
 * itself. Answers the phone page.
 */
export async function openPhoneWithRingingCall(context, { lang = 'en', to, viewport, useMouse = true }) {
  const phone = await openPhone(context, lang);
  if (viewport) await phone.setViewportSize(viewport);
  if (useMouse) {
    await selectCallTo(phone, to);
  } else {
    await waitForShownCall(phone, { to });
  }
  await waitForCallState(phone, 'ringing');
  return phone;
}

/** Clicks "Answer" on the ringing call and waits until it is in progress. */
export async function answerCall(phone) {
  await byTestId(phone, 'answer').click();
  await waitForCallState(phone, 'in-progress');
}

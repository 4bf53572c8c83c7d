// The demo site: a bank's password-reset page playing the tenant's role.
// It registers a verification request, shows the code and what to do with
// it (or, when the code reaches the phone by a call reading it aloud or by a
// text message, asks for it and checks it), polls the result about once a
// second, and shows a temporary password once the user is verified.

import { t, has, initLanguage, onLangChange, voiceLocale } from '/assets/i18n.js';

const FINAL = new Set(['verified', 'failed', 'expired', 'canceled']);
const FIELDS = ['user_id', 'phone_number', 'mode', 'fallback'];
/** Server field names shown next to another field of this form. */
const FIELD_OF = { channel: 'mode' };
/** The choices in which we call the user, so a text message can stand in. */
const VOICE_CHOICES = new Set(['outbound', 'voice_otp']);
const POLL_MS = 1000;

const byId = (id) => document.querySelector(`[data-testid="${id}"]`);

const ui = {
  views: {
    form: byId('form-view'),
    progress: byId('progress-view'),
    result: byId('result-view'),
  },
  form: byId('start-form'),
  userId: byId('user-id'),
  phone: byId('phone-number'),
  fallbackBox: byId('fallback-box'),
  fallback: byId('fallback-sms'),
  submit: byId('submit'),
  formError: byId('form-error'),
  progressTitle: byId('progress-title'),
  code: byId('code'),
  callin: byId('callin'),
  inboundNumber: byId('inbound-number'),
  steps: byId('steps'),
  newCodeNote: byId('new-code-note'),
  checkForm: byId('check-form'),
  checkCode: byId('check-code'),
  checkHint: byId('check-hint'),
  checkError: byId('error-code'),
  verify: byId('verify'),
  status: byId('demo-status'),
  statusText: byId('status-text'),
  statusDetail: byId('status-detail'),
  expiry: byId('expiry'),
  cancel: byId('cancel'),
  resultTitle: byId('result-title'),
  resultBody: byId('result-body'),
  passwordBox: byId('password-box'),
  password: byId('temp-password'),
  copy: byId('copy'),
  copyStatus: byId('copy-status'),
  retry: byId('retry'),
  startOver: byId('start-over'),
};

const state = {
  view: 'form',
  /** What the user last submitted, for "try again". */
  input: null,
  /** The registration answer: id, code, channel, mode, phone_number, inbound_number, expires_at. */
  started: null,
  /** The latest result-API answer. */
  request: null,
  /** What the progress view is drawn for (see `phase`), to redraw it when that changes. */
  phase: null,
  /** Whether a code check is on its way. */
  checking: false,
  /** Bumped to stop a poll loop that belongs to an older request. */
  pollToken: 0,
  /** The last poll could not reach the server (it stopped, or the network went away). */
  offline: false,
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => null);
  return { status: res.status, ok: res.ok, data };
}

// ---------- Views ----------

function showView(name, { focus = true } = {}) {
  state.view = name;
  for (const [key, section] of Object.entries(ui.views)) section.hidden = key !== name;
  // Moving focus to the new heading tells screen-reader users where they are
  // and puts keyboard users at the start of the new step.
  if (focus) ui.views[name].querySelector('h1')?.focus();
}

// ---------- Step 1: the form ----------

function fieldInput(field) {
  if (field === 'mode') return ui.form.querySelector('input[name="mode"]:checked');
  return ui.form.elements.namedItem(field);
}

function chosen() {
  return ui.form.querySelector('input[name="mode"]:checked')?.value ?? 'outbound';
}

/** The fallback is offered only for the ways in which we call. */
function renderFallback() {
  ui.fallbackBox.hidden = !VOICE_CHOICES.has(chosen());
}

for (const radio of ui.form.querySelectorAll('input[name="mode"]')) {
  radio.addEventListener('change', renderFallback);
}

// Errors are kept as functions that produce their text, so a language
// switch can redraw them in the new language.
const errors = { fields: new Map(), form: null, check: null };

function clearErrors() {
  errors.fields.clear();
  errors.form = null;
  renderErrors();
}

function showFieldError(field, message) {
  errors.fields.set(field, message);
  renderErrors();
}

function showFormError(message) {
  errors.form = message;
  renderErrors();
}

function renderErrors() {
  for (const field of FIELDS) {
    const message = errors.fields.get(field);
    const slot = byId(`error-${field}`);
    slot.textContent = message ? message() : '';
    slot.hidden = !message;
    for (const input of ui.form.querySelectorAll(`[name="${field}"]`)) {
      if (message) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  }
  ui.formError.textContent = errors.form ? errors.form() : '';
  ui.formError.hidden = !errors.form;
}

/** The form as the demo API takes it: one choice becomes a mode, a channel and a fallback. */
function readForm() {
  const choice = chosen();
  return {
    user_id: ui.userId.value.trim(),
    phone_number: ui.phone.value.trim(),
    mode: choice === 'inbound' ? 'inbound' : 'outbound',
    channel: choice === 'voice_otp' || choice === 'sms' ? choice : 'voice_dtmf',
    fallback: VOICE_CHOICES.has(choice) && ui.fallback.checked ? ['sms'] : [],
  };
}

/** Whether a registration sends a text message, now or as its fallback. */
const texts = (input) => input.channel === 'sms' || input.fallback.includes('sms');

/** Checks what the browser can check, so obvious slips need no round trip. */
function checkForm(input) {
  const missing = ['user_id', 'phone_number'].filter((field) => !input[field]);
  for (const field of missing) showFieldError(field, () => t(`demo.required.${field}`));
  return missing;
}

function setBusy(busy) {
  ui.submit.disabled = busy;
  ui.submit.querySelector('span').textContent = t(busy ? 'demo.submitting' : 'demo.submit');
  ui.retry.disabled = busy;
}

async function start(input) {
  clearErrors();
  setBusy(true);
  try {
    const { status, ok, data } = await api('POST', '/demo/api/start', { ...input, locale: voiceLocale() });
    if (!ok) {
      failStart(status, data?.error, input);
      return;
    }
    state.input = input;
    state.started = data;
    shareNumber(data.phone_number);
    state.request = { status: data.status, attempts: 0, max_attempts: null, channel: data.channel, deliveries: [] };
    state.phase = null;
    state.offline = false;
    resetCheck();
    renderProgress();
    showView('progress');
    poll(++state.pollToken, data.id);
  } catch {
    showView('form');
    showFormError(() => t('demo.error.network'));
  } finally {
    setBusy(false);
  }
}

/**
 * Tells the dev phone (same origin, so same storage, even in another tab)
 * which number was registered: it dials the inbound number from it and says
 * so. The user is the one who typed it; nothing else reads it.
 */
function shareNumber(e164) {
  if (!e164) return;
  try {
    localStorage.setItem('ivr-auth.registered-number', e164);
    localStorage.setItem('ivr-auth.dial-from', e164);
  } catch {
    // Storage blocked: the dev phone's field is typed by hand instead.
  }
}

/** Puts a refused registration back on the form, next to the field at fault. */
function failStart(status, error, input) {
  showView('form', { focus: false });
  const field = FIELD_OF[error?.field] ?? error?.field;
  if (status === 422 && FIELDS.includes(field)) {
    // A landline cannot receive text messages: say so when one was asked for.
    const key = field === 'phone_number' && texts(input) ? 'demo.invalid.phone_number_sms' : `demo.invalid.${field}`;
    showFieldError(field, () => (has(key) ? t(key) : error.message));
    fieldInput(field)?.focus();
    return;
  }
  if (status === 429) showFormError(() => t('demo.error.rate_limited'));
  else showFormError(() => t('demo.error.generic', { message: error?.message ?? `HTTP ${status}` }));
}

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  clearErrors();
  const input = readForm();
  const missing = checkForm(input);
  if (missing.length) {
    fieldInput(missing[0])?.focus();
    return;
  }
  start(input);
});

// ---------- Step 2: the code and the live status ----------

/** The latest attempt to reach the user (`deliveries` lists them, the current one last). */
function currentDelivery() {
  const deliveries = state.request?.deliveries ?? [];
  return deliveries[deliveries.length - 1] ?? null;
}

/**
 * What the progress view shows: `inbound` and `voice_dtmf` (the code is
 * typed on the phone), `voice_otp` and `sms` (the user types the code here),
 * or `fallback` (the call reached nobody and a text message went out instead).
 */
function phase() {
  if (state.started.mode === 'inbound') return 'inbound';
  if (state.started.channel !== 'sms' && currentDelivery()?.channel === 'sms') return 'fallback';
  return state.started.channel ?? 'voice_dtmf';
}

/** Whether the user types the code on this page (and the site checks it). */
const checkedHere = (p = phase()) => p === 'voice_otp' || p === 'sms' || p === 'fallback';

function renderCode() {
  const shown = !checkedHere();
  // Once a text message carries the code, the one shown before proves nothing.
  const code = shown ? state.started?.code ?? '' : '';
  ui.code.hidden = !shown;
  ui.code.dataset.code = code;
  ui.code.querySelector('.code-digits').textContent = code;
  // Read digit by digit, not as one large number.
  ui.code.querySelector('.code-spoken').textContent = code.split('').join(' ');
  ui.progressTitle.textContent = t(shown ? 'demo.code_label' : 'demo.enter_heading');
  ui.progressTitle.classList.toggle('code-label', shown);
}

const STEPS = {
  inbound: 'demo.inbound',
  voice_dtmf: 'demo.outbound',
  voice_otp: 'demo.voice_otp',
  sms: 'demo.sms',
  fallback: 'demo.fallback',
};

function renderSteps() {
  const { mode, inbound_number: inbound } = state.started;
  // The number the server calls (E.164), not the text typed: what was typed
  // may read as another number, and the user should see the one that rings.
  const phone = state.started.phone_number;
  const current = phase();
  const steps = [1, 2, 3].map((n) => {
    const li = document.createElement('li');
    li.textContent = t(`${STEPS[current]}.step${n}`, { phone });
    return li;
  });
  ui.steps.replaceChildren(...steps);
  // A voice_dtmf request's text message carries a second code.
  const newCode = current === 'fallback' && state.started.channel === 'voice_dtmf';
  ui.newCodeNote.hidden = !newCode;
  ui.newCodeNote.textContent = newCode ? t('demo.fallback.new_code') : '';
  ui.callin.hidden = mode !== 'inbound';
  if (mode === 'inbound') {
    ui.inboundNumber.textContent = inbound ?? '—';
    ui.inboundNumber.href = inbound ? `tel:${inbound}` : '#';
  }
}

function liveText(request) {
  // What the page knew last may no longer be true ("your phone is ringing").
  if (state.offline) return t('demo.live.offline');
  const current = phase();
  if (current === 'sms' || current === 'fallback') {
    const sent = ['sent', 'delivered'].includes(currentDelivery()?.status);
    return t(`demo.live.${current}_${sent ? 'sent' : 'sending'}`);
  }
  switch (request.status) {
    case 'pending':
      return t(current === 'inbound' ? 'demo.live.pending_inbound' : 'demo.live.pending_outbound');
    case 'calling':
      return t('demo.live.calling');
    case 'in_progress':
      if (current !== 'voice_otp') return t('demo.live.in_progress');
      // The call reads the code and hangs up; the request waits for the page.
      return t(request.call_status === 'completed' ? 'demo.live.otp_ended' : 'demo.live.otp_in_progress');
    default:
      return '';
  }
}

function setText(node, text) {
  // Rewriting an unchanged live region can make screen readers repeat it.
  if (node.textContent !== text) node.textContent = text;
}

function renderStatus() {
  const request = state.request;
  ui.status.dataset.status = state.offline ? 'offline' : request.status;
  ui.status.dataset.attempts = String(request.attempts ?? 0);
  setText(ui.statusText, liveText(request));
  const attempts = request.attempts > 0 && request.max_attempts
    ? t('demo.attempts', { attempts: request.attempts, max: request.max_attempts })
    : '';
  setText(ui.statusDetail, attempts);
  ui.statusDetail.hidden = !attempts;
}

function renderExpiry() {
  const expires = Date.parse(state.started?.expires_at ?? '');
  if (Number.isNaN(expires)) {
    ui.expiry.textContent = '';
    return;
  }
  const left = Math.max(0, Math.round((expires - Date.now()) / 1000));
  const time = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
  ui.expiry.textContent = left > 0 ? t('demo.expires_in', { time }) : t('demo.expired_now');
}

setInterval(() => {
  if (state.view === 'progress') renderExpiry();
}, 1000);

function renderProgress() {
  state.phase = phase();
  renderCode();
  renderSteps();
  renderCheck();
  renderStatus();
  renderExpiry();
}

// ---------- Step 2b: the code the user types here ----------

function resetCheck() {
  ui.checkCode.value = '';
  errors.check = null;
  setChecking(false);
  renderCheckError({ announce: false });
}

function renderCheck() {
  ui.checkForm.hidden = !checkedHere();
  ui.checkHint.textContent = t(phase() === 'voice_otp' ? 'demo.check.hint_call' : 'demo.check.hint_sms');
  ui.verify.querySelector('span').textContent = t(state.checking ? 'demo.check.checking' : 'demo.check.submit');
}

function setChecking(busy) {
  state.checking = busy;
  ui.verify.disabled = busy;
  ui.verify.querySelector('span').textContent = t(busy ? 'demo.check.checking' : 'demo.check.submit');
}

/** Why the code was refused: `kind` for tests and styles, `text()` for a language switch. */
function showCheckError(kind, text) {
  errors.check = { kind, text };
  renderCheckError({ announce: true });
}

function renderCheckError({ announce }) {
  const error = errors.check;
  const slot = ui.checkError;
  slot.dataset.kind = error?.kind ?? '';
  if (error) ui.checkCode.setAttribute('aria-invalid', 'true');
  else ui.checkCode.removeAttribute('aria-invalid');
  const text = error ? error.text() : '';
  if (!announce) {
    slot.textContent = text;
    return;
  }
  // The slot is an alert: emptying it first makes the same text (a second
  // malformed code) a change that screen readers announce again.
  slot.textContent = '';
  setTimeout(() => {
    if (errors.check === error) slot.textContent = text;
  }, 50);
}

/** Full-width digits (a Japanese input method) become ASCII; spaces and hyphens go. */
function normalizeCode(raw) {
  return raw
    .replace(/[０-９]/g, (d) => String.fromCharCode(d.charCodeAt(0) - 0xfee0))
    .replace(/[\s\-‐－ー]/g, '');
}

function wrongCodeText(request) {
  const left = Math.max(0, (request.max_attempts ?? 0) - (request.attempts ?? 0));
  return left === 1 ? t('demo.check.wrong_one') : t('demo.check.wrong', { left });
}

/** Fetches the request once; shows the result (answering true) if it has ended. */
async function refreshRequest(id) {
  const { ok, data } = await api('GET', `/demo/api/requests/${encodeURIComponent(id)}`);
  if (!ok || !data) return false;
  state.request = data;
  if (FINAL.has(data.status)) {
    state.pollToken += 1;
    showResult();
    return true;
  }
  renderStatus();
  return false;
}

ui.checkForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const id = state.started?.id;
  if (!id || state.checking) return;
  const code = normalizeCode(ui.checkCode.value);
  if (!code) {
    showCheckError('required', () => t('demo.check.required'));
    ui.checkCode.focus();
    return;
  }
  if (!/^\d{4,10}$/.test(code)) {
    showCheckError('malformed', () => t('demo.check.malformed'));
    ui.checkCode.focus();
    return;
  }
  setChecking(true);
  try {
    const { status, ok, data } = await api('POST', `/demo/api/requests/${encodeURIComponent(id)}/check`, { code });
    if (id !== state.started?.id) return;
    if (ok && data) {
      state.request = data;
      if (FINAL.has(data.status)) {
        state.pollToken += 1;
        showResult();
        return;
      }
      renderStatus();
      showCheckError('wrong', () => wrongCodeText(state.request));
      // Typing the next try replaces the wrong one.
      ui.checkCode.focus();
      ui.checkCode.select();
    } else if (status === 422) {
      showCheckError('malformed', () => t('demo.check.malformed'));
      ui.checkCode.focus();
    } else if (status === 409) {
      // Ended meanwhile (expired, canceled, failed): show how.
      if (!(await refreshRequest(id))) showCheckError('ended', () => t('demo.check.ended'));
    } else {
      showCheckError('error', () => t('demo.error.generic', { message: data?.error?.message ?? `HTTP ${status}` }));
    }
  } catch {
    showCheckError('network', () => t('demo.error.network'));
  } finally {
    setChecking(false);
  }
});

async function poll(token, id) {
  while (token === state.pollToken) {
    try {
      const { status, ok, data } = await api('GET', `/demo/api/requests/${encodeURIComponent(id)}`);
      if (token !== state.pollToken) return;
      // A proxy in front of a stopped server answers 502-504 instead of failing.
      setOffline(status >= 502 && status <= 504);
      if (ok && data) {
        state.request = data;
        if (FINAL.has(data.status)) {
          showResult();
          return;
        }
        // A call that reached nobody fell back to a text message: now the
        // code is asked for here. The status region announces the change.
        if (phase() !== state.phase) renderProgress();
        else renderStatus();
      }
    } catch {
      // A dropped connection is retried on the next tick; meanwhile the page says so.
      if (token === state.pollToken) setOffline(true);
    }
    await sleep(POLL_MS);
  }
}

function setOffline(offline) {
  if (state.offline === offline) return;
  state.offline = offline;
  renderStatus();
}

ui.cancel.addEventListener('click', async () => {
  const id = state.started?.id;
  if (!id) return;
  ui.cancel.disabled = true;
  try {
    await api('POST', `/demo/api/requests/${encodeURIComponent(id)}/cancel`);
    // Whether it was canceled now or had just ended (409), the result API
    // says what it is; the poll loop shows it.
    state.pollToken += 1;
    poll(state.pollToken, id);
  } catch {
    // The poll loop goes on; the user may press again.
  } finally {
    ui.cancel.disabled = false;
  }
});

// ---------- Step 3: the result ----------

function showResult({ focus = true } = {}) {
  const request = state.request;
  const status = request.status;
  ui.views.result.dataset.result = status;
  ui.resultBody.dataset.reason = request.failure_reason ?? '';
  ui.passwordBox.hidden = status !== 'verified';
  ui.retry.hidden = status === 'verified';

  if (status === 'verified') {
    ui.resultTitle.textContent = t('demo.verified.heading');
    ui.resultBody.textContent = t('demo.verified.body');
    ui.password.textContent = request.temporary_password ?? '';
  } else if (status === 'failed') {
    const pageReason = request.failure_reason === 'wrong_code' && checkedHere();
    const key = pageReason ? 'demo.reason.wrong_code_page' : `reason.${request.failure_reason}`;
    ui.resultTitle.textContent = t('demo.failed.heading');
    ui.resultBody.textContent = has(key) ? t(key) : request.failure_reason ?? '';
  } else {
    ui.resultTitle.textContent = t(`demo.${status}.heading`);
    ui.resultBody.textContent = t(`demo.${status}.body`);
  }
  if (state.view !== 'result' || !focus) showView('result', { focus });
}

ui.retry.addEventListener('click', () => {
  if (state.input) start(state.input);
  else showView('form');
});

ui.startOver.addEventListener('click', () => {
  state.pollToken += 1;
  state.started = null;
  state.request = null;
  clearErrors();
  showView('form');
});

ui.copy.addEventListener('click', async () => {
  const text = ui.password.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Without clipboard access, select the text so Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents(ui.password);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    return;
  }
  ui.copyStatus.textContent = t('demo.copied');
  ui.copy.textContent = t('demo.copied');
  setTimeout(() => {
    ui.copy.textContent = t('demo.copy');
    ui.copyStatus.textContent = '';
  }, 2000);
});

// ---------- Start ----------

initLanguage();
onLangChange(() => {
  setBusy(ui.submit.disabled);
  renderErrors();
  if (state.view === 'progress') {
    renderProgress();
    renderCheckError({ announce: false });
  }
  if (state.view === 'result') showResult({ focus: false });
});
renderFallback();
showView('form', { focus: false });

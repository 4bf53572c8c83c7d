// The demo site: a bank's password-reset page playing the tenant's role.
// It registers a verification request, shows the code and what to do with
// it, polls the result about once a second, and shows a temporary password
// once the phone call has verified the user.

import { t, has, initLanguage, onLangChange, voiceLocale } from '/assets/i18n.js';

const FINAL = new Set(['verified', 'failed', 'expired', 'canceled']);
const FIELDS = ['user_id', 'phone_number', 'mode'];
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
  submit: byId('submit'),
  formError: byId('form-error'),
  code: byId('code'),
  callin: byId('callin'),
  inboundNumber: byId('inbound-number'),
  steps: byId('steps'),
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
  /** The registration answer: id, code, mode, phone_number, inbound_number, expires_at. */
  started: null,
  /** The latest result-API answer. */
  request: null,
  /** Bumped to stop a poll loop that belongs to an older request. */
  pollToken: 0,
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

// Errors are kept as functions that produce their text, so a language
// switch can redraw them in the new language.
const errors = { fields: new Map(), form: null };

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

function readForm() {
  return {
    user_id: ui.userId.value.trim(),
    phone_number: ui.phone.value.trim(),
    mode: ui.form.querySelector('input[name="mode"]:checked')?.value ?? 'outbound',
  };
}

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
      failStart(status, data?.error);
      return;
    }
    state.input = input;
    state.started = data;
    shareNumber(data.phone_number);
    state.request = { status: data.status, attempts: 0, max_attempts: null };
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
function failStart(status, error) {
  showView('form', { focus: false });
  const field = error?.field;
  if (status === 422 && FIELDS.includes(field)) {
    const key = `demo.invalid.${field}`;
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

function renderCode() {
  const code = state.started?.code ?? '';
  ui.code.dataset.code = code;
  ui.code.querySelector('.code-digits').textContent = code;
  // Read digit by digit, not as one large number.
  ui.code.querySelector('.code-spoken').textContent = code.split('').join(' ');
}

function renderSteps() {
  const { mode, inbound_number: inbound } = state.started;
  // The number as the user typed it is the one they recognise.
  const phone = state.input?.phone_number || state.started.phone_number;
  const prefix = mode === 'inbound' ? 'demo.inbound' : 'demo.outbound';
  const steps = [1, 2, 3].map((n) => {
    const li = document.createElement('li');
    li.textContent = t(`${prefix}.step${n}`, { phone });
    return li;
  });
  ui.steps.replaceChildren(...steps);
  ui.callin.hidden = mode !== 'inbound';
  if (mode === 'inbound') {
    ui.inboundNumber.textContent = inbound ?? '—';
    ui.inboundNumber.href = inbound ? `tel:${inbound}` : '#';
  }
}

function liveText(request) {
  switch (request.status) {
    case 'pending':
      return t(state.started.mode === 'inbound' ? 'demo.live.pending_inbound' : 'demo.live.pending_outbound');
    case 'calling':
      return t('demo.live.calling');
    case 'in_progress':
      return t('demo.live.in_progress');
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
  ui.status.dataset.status = request.status;
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
  renderCode();
  renderSteps();
  renderStatus();
  renderExpiry();
}

async function poll(token, id) {
  while (token === state.pollToken) {
    try {
      const { ok, data } = await api('GET', `/demo/api/requests/${encodeURIComponent(id)}`);
      if (token !== state.pollToken) return;
      if (ok && data) {
        state.request = data;
        if (FINAL.has(data.status)) {
          showResult();
          return;
        }
        renderStatus();
      }
    } catch {
      // A dropped connection is retried on the next tick.
    }
    await sleep(POLL_MS);
  }
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
    const key = `reason.${request.failure_reason}`;
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
  if (state.view === 'progress') renderProgress();
  if (state.view === 'result') showResult({ focus: false });
});
showView('form', { focus: false });

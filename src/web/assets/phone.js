// The dev phone: a handset in the browser for the simulator provider.
// It follows every simulated call live over Server-Sent Events, answers,
// declines and hangs up, shows (and speaks) each prompt, and sends every key
// press as DTMF the moment it is pressed, like a real phone.

import { t, initLanguage, onLangChange, formatTime, has } from '/assets/i18n.js';

const LIVE_CALL = new Set(['ringing', 'in-progress']);
const FINAL_REQUEST = new Set(['verified', 'failed', 'expired', 'canceled']);
const SOUND_KEY = 'ivr-auth.sound';
// The number calls to the inbound number come from; the demo site sets it
// too when it registers a request (same origin, same storage).
const FROM_KEY = 'ivr-auth.dial-from';
// The phone number of the request last registered on the demo site.
const REGISTERED_KEY = 'ivr-auth.registered-number';
const MAX_LISTED_CALLS = 50;

// Dual-tone frequencies (Hz) of each key: row tone + column tone.
const DTMF = {
  1: [697, 1209], 2: [697, 1336], 3: [697, 1477],
  4: [770, 1209], 5: [770, 1336], 6: [770, 1477],
  7: [852, 1209], 8: [852, 1336], 9: [852, 1477],
  '*': [941, 1209], 0: [941, 1336], '#': [941, 1477],
};

// Caller IDs that mean "withheld", as providers spell them (for display only;
// the server makes its own decision).
const WITHHELD = new Set(['', 'anonymous', 'restricted', 'unknown', 'unavailable', 'blocked', 'private',
  '+266696687', '+7378742833', '+17378742833', '+2562533', '+8656696', '+86282452253']);

const byId = (id) => document.querySelector(`[data-testid="${id}"]`);

const ui = {
  screen: byId('screen'),
  title: byId('call-title'),
  number: byId('call-number'),
  sub: byId('call-sub'),
  state: byId('call-state'),
  awaiting: byId('awaiting'),
  idleHint: byId('idle-hint'),
  nowBox: byId('now-playing-box'),
  now: byId('now-playing'),
  typedBox: byId('typed-box'),
  typed: byId('typed-digits'),
  answer: byId('answer'),
  decline: byId('decline'),
  hangup: byId('hangup'),
  keys: [...document.querySelectorAll('.key[data-key]')],
  error: byId('phone-error'),
  conn: byId('connection'),
  sound: byId('mute-toggle'),
  dialForm: byId('dial-form'),
  dialFrom: byId('dial-from'),
  dialWithhold: byId('dial-withhold'),
  dialButton: byId('dial-button'),
  dialError: byId('dial-error'),
  dialFromHint: document.getElementById('dial-from-hint'),
  dialDisabled: byId('dial-disabled'),
  inboundNumber: byId('inbound-number'),
  requestNone: byId('request-none'),
  requestFacts: byId('request-facts'),
  requestStatus: byId('request-status'),
  requestAttempts: byId('request-attempts'),
  requestReasonRow: byId('request-reason-row'),
  requestReason: byId('request-reason'),
  requestExpires: byId('request-expires'),
  requestLocale: byId('request-locale'),
  timeline: byId('timeline'),
  timelineEmpty: byId('timeline-empty'),
  callList: byId('call-list'),
  callsEmpty: byId('calls-empty'),
  announcer: byId('announcer'),
};

const state = {
  /** sid → Call, as the server last described it. */
  calls: new Map(),
  /** The call shown on the handset. */
  selected: null,
  /** sid → keys pressed on this page during that call. */
  typed: new Map(),
  /** sid → how many timeline entries have been voiced; older ones are never replayed. */
  heard: new Map(),
  /** The selected call's auth request, as last fetched. */
  request: null,
  sound: loadSound(),
  connection: 'connecting',
  /** What the timeline list currently shows, so new entries can be appended. */
  shown: { sid: null, count: 0 },
  /** Until when (ms) the request is looked at often: its call just ended, or a message went out. */
  watchUntil: 0,
};

/** How long, and how often, a request is looked at after its call ends. */
const WATCH_MS = 5000;
const WATCH_EVERY_MS = 300;

// ---------- Small helpers ----------

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === 'text') node.textContent = value;
    else if (key === 'class') node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/** Sets text only when it changed: rewriting a live region makes screen readers repeat it. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function loadSound() {
  try {
    return localStorage.getItem(SOUND_KEY) !== 'off';
  } catch {
    return true;
  }
}

function recall(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function remember(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Only a convenience; nothing breaks without it.
  }
}

async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error(data?.error?.message || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function isWithheld(number) {
  return WITHHELD.has(String(number ?? '').trim().toLowerCase());
}

function showNumber(number) {
  return isWithheld(number) ? t('phone.withheld') : number;
}

function selectedCall() {
  return state.calls.get(state.selected) ?? null;
}

function isLive(call) {
  return Boolean(call && LIVE_CALL.has(call.state));
}

/** Answer and decline make sense only for a call ivr-auth placed to us that still rings. */
function canAnswer(call) {
  return Boolean(call && call.state === 'ringing' && call.direction !== 'inbound');
}

function callTone(callState) {
  if (callState === 'ringing') return 'info';
  if (callState === 'in-progress') return 'ok';
  if (callState === 'completed') return undefined;
  return 'bad';
}

function requestTone(status) {
  if (status === 'verified') return 'ok';
  if (status === 'failed') return 'bad';
  if (status === 'expired' || status === 'canceled') return 'warn';
  return 'info';
}

function setBadge(node, text, tone) {
  node.textContent = text;
  if (tone) node.dataset.tone = tone;
  else delete node.dataset.tone;
}

function newestFirst(a, b) {
  return String(b.created_at).localeCompare(String(a.created_at));
}

let errorTimer = null;
function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => {
    ui.error.hidden = true;
  }, 6000);
}

function announce(message) {
  // Clearing first makes screen readers repeat an identical message.
  ui.announcer.textContent = '';
  setTimeout(() => {
    ui.announcer.textContent = message;
  }, 50);
}

// ---------- Sound: key tones, ring, speech, recorded prompts ----------

let audioCtx = null;

/** The shared AudioContext, created on a user gesture (browsers refuse it otherwise). */
function audio({ create = true } = {}) {
  if (!audioCtx && create) {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    try {
      audioCtx = new Context();
    } catch {
      return null;
    }
  }
  if (audioCtx?.state === 'suspended') audioCtx.resume().catch(() => {});
  return audioCtx;
}

function playTone(frequencies, { at = 0, seconds = 0.15, volume = 0.08, create = true } = {}) {
  const ctx = audio({ create });
  if (!ctx || ctx.state !== 'running') return;
  const start = ctx.currentTime + at;
  const gain = ctx.createGain();
  gain.connect(ctx.destination);
  // Short ramps avoid clicks at the start and end of the tone.
  gain.gain.setValueAtTime(0, start);
  gain.gain.linearRampToValueAtTime(volume, start + 0.01);
  gain.gain.setValueAtTime(volume, start + seconds - 0.02);
  gain.gain.linearRampToValueAtTime(0, start + seconds);
  for (const frequency of frequencies) {
    const osc = ctx.createOscillator();
    osc.frequency.value = frequency;
    osc.connect(gain);
    osc.start(start);
    osc.stop(start + seconds);
  }
}

// A soft double ring every three seconds while the shown call rings. It
// never creates the audio context itself: only a gesture may do that.
setInterval(() => {
  const call = selectedCall();
  if (!state.sound || !canAnswer(call)) return;
  for (const at of [0, 0.5]) playTone([523, 659], { at, seconds: 0.35, volume: 0.05, create: false });
}, 3000);

function voiceFor(language) {
  const voices = window.speechSynthesis?.getVoices() ?? [];
  const wanted = language.toLowerCase();
  const norm = (v) => v.lang.toLowerCase().replace('_', '-');
  return voices.find((v) => norm(v) === wanted) ?? voices.find((v) => norm(v).startsWith(wanted.slice(0, 2)));
}

function speak(text, language) {
  if (!state.sound || !window.speechSynthesis || !text) return;
  const voice = voiceFor(language || 'en-US');
  // Without a voice for the language the browser would read it in the wrong
  // accent, or not at all; the text is on screen either way.
  if (!voice) return;
  const utterance = new SpeechSynthesisUtterance(text);
  utterance.lang = language;
  utterance.voice = voice;
  window.speechSynthesis.speak(utterance);
}

/** Like a provider, a key press stops the prompt that is playing. */
function silencePrompts() {
  window.speechSynthesis?.cancel();
  for (const player of ui.timeline.querySelectorAll('audio')) player.pause();
}

function renderSound() {
  // The label stays "Sound"; whether it is on is the pressed state (and the icon).
  ui.sound.setAttribute('aria-pressed', String(state.sound));
}

ui.sound.addEventListener('click', () => {
  state.sound = !state.sound;
  remember(SOUND_KEY, state.sound ? 'on' : 'off');
  if (state.sound) audio();
  else silencePrompts();
  renderSound();
});

/** Voices the entries of `call` that arrived since it was last heard. */
function voiceNewEntries(call) {
  const from = state.heard.get(call.sid) ?? 0;
  state.heard.set(call.sid, call.timeline.length);
  if (call.sid !== state.selected) return;
  call.timeline.slice(from).forEach((entry, offset) => {
    if (entry.kind === 'say') speak(entry.text, entry.language);
    if (entry.kind === 'play' && state.sound) {
      const player = ui.timeline.querySelector(`li[data-index="${from + offset}"] audio`);
      player?.play().catch(() => {});
    }
  });
}

// ---------- Rendering ----------

function renderHandset() {
  const call = selectedCall();
  const active = document.activeElement;
  const hadActionFocus = [ui.answer, ui.decline, ui.hangup, ...ui.keys].includes(active);

  ui.screen.dataset.state = call ? call.state : 'idle';
  ui.idleHint.hidden = Boolean(call);
  if (!call) {
    ui.title.textContent = t('phone.idle');
    ui.number.textContent = '';
    ui.sub.textContent = '';
    ui.state.hidden = true;
  } else {
    const inbound = call.direction === 'inbound';
    // A call that has ended is the last call, not an incoming one.
    ui.title.textContent = t(!isLive(call) ? 'phone.ended' : inbound ? 'phone.outgoing' : 'phone.incoming');
    // The big number is the other party; the small line says which phone this is.
    ui.number.textContent = inbound ? call.to : showNumber(call.from);
    ui.sub.textContent = inbound
      ? `${t('phone.from')}: ${showNumber(call.from)}`
      : `${t('phone.to')}: ${call.to}`;
    ui.state.hidden = false;
    setBadge(ui.state, t(`phone.state.${call.state}`), callTone(call.state));
  }

  const connected = call?.state === 'in-progress';
  ui.awaiting.hidden = !(connected && call.awaiting_digits);
  ui.answer.hidden = !canAnswer(call);
  ui.decline.hidden = !canAnswer(call);
  ui.hangup.hidden = !(isLive(call) && !canAnswer(call));
  for (const key of ui.keys) key.disabled = !connected;

  const prompt = isLive(call) ? lastPrompt(call) : null;
  ui.nowBox.hidden = !isLive(call);
  setText(ui.now, prompt?.text ?? (prompt?.kind === 'play' ? prompt.url : t('phone.nothing_playing')));
  if (prompt?.language) ui.now.lang = prompt.language;
  else ui.now.removeAttribute('lang');

  const typed = call ? shownKeys(call) : '';
  ui.typedBox.hidden = !(connected || typed);
  renderTyped(typed);

  // A button that just disappeared would drop focus to the page; keep it on
  // the handset so keyboard users stay where they were.
  if (hadActionFocus && (active.hidden || active.disabled)) {
    const next = [ui.answer, ui.hangup].find((b) => !b.hidden);
    (next ?? ui.screen).focus();
  }
}

/**
 * The keys of the current attempt. Once a code has been sent, the box keeps
 * showing it until the call asks for keys again (after a wrong code) or a new
 * key is pressed; then it starts empty. Keys are counted from the call's
 * timeline, so a key pressed before its echo arrives is never lost.
 */
function shownKeys(call) {
  const typed = state.typed.get(call.sid) ?? '';
  let keys = 0;
  const sent = [0]; // keys pressed when each code was sent
  for (const entry of call.timeline) {
    if (entry.kind === 'key') keys += 1;
    else if (entry.kind === 'digits') sent.push(keys);
  }
  const last = sent[sent.length - 1];
  const fresh = call.awaiting_digits || typed.length > last;
  return typed.slice(fresh ? last : sent[sent.length - 2]);
}

/** Like a phone's display, a long run of keys shows its latest part. */
function renderTyped(typed) {
  const MAX = 16;
  ui.typed.textContent = typed.length > MAX ? `…${typed.slice(-(MAX - 1))}` : typed;
}

function lastPrompt(call) {
  for (let i = call.timeline.length - 1; i >= 0; i -= 1) {
    const entry = call.timeline[i];
    if (entry.kind === 'say' || entry.kind === 'play') return entry;
  }
  return null;
}

function timelineItem(entry, index) {
  const label = has(`kind.${entry.kind}`) ? t(`kind.${entry.kind}`) : entry.kind;
  const head = el('p', { class: 'tl-head' }, [el('span', { class: 'tl-kind', text: label })]);
  const body = el('div', { class: 'tl-body' }, [head]);
  const inline = (text, cls = 'tl-inline') => head.append(' ', el('span', { class: cls, text }));
  switch (entry.kind) {
    case 'say': {
      if (entry.language) inline(entry.language, 'tl-inline tl-lang');
      body.append(el('p', { class: 'tl-text', lang: entry.language, text: entry.text ?? '' }));
      break;
    }
    case 'play':
      body.append(
        el('audio', { controls: '', preload: 'none', src: entry.url }),
        el('p', { class: 'tl-detail', text: entry.url ?? '' }),
      );
      break;
    case 'pause':
      inline(t('kind.pause_seconds', { seconds: entry.text ?? '1' }));
      break;
    case 'key':
    case 'digits':
      inline(entry.text ?? '', 'tl-inline tl-code');
      break;
    case 'status':
      // The provider's call status (ringing, in-progress, completed…), in the page's language.
      inline(has(`callstatus.${entry.text}`) ? t(`callstatus.${entry.text}`) : entry.text ?? '');
      break;
    case 'gather':
      inline(gatherText(entry.text));
      break;
    case 'error':
      body.append(el('p', { class: 'tl-text', text: entry.text ?? '' }));
      break;
    default:
      if (entry.text || entry.url) inline(entry.text ?? entry.url);
  }
  return el('li', { 'data-testid': 'timeline-entry', 'data-kind': entry.kind, 'data-index': index }, [
    el('time', { datetime: entry.at, text: formatTime(entry.at) }),
    body,
  ]);
}

/** A Gather's `timeout=10s numDigits=6`, in the page's language. */
function gatherText(text) {
  const match = /^timeout=(\d+)s numDigits=(\S+)$/.exec(text ?? '');
  if (!match) return text ?? '';
  const [, seconds, digits] = match;
  return digits === '-' ? t('kind.gather_timeout', { seconds }) : t('kind.gather_digits', { seconds, digits });
}

/** Appends new timeline entries; rebuilds only when another call is shown (or on `rebuild`). */
function renderTimeline({ rebuild = false } = {}) {
  const call = selectedCall();
  ui.timelineEmpty.hidden = Boolean(call);
  if (!call) {
    ui.timeline.replaceChildren();
    state.shown = { sid: null, count: 0 };
    return;
  }
  if (rebuild || state.shown.sid !== call.sid || call.timeline.length < state.shown.count) {
    ui.timeline.replaceChildren();
    state.shown = { sid: call.sid, count: 0 };
  }
  const fresh = call.timeline.slice(state.shown.count);
  ui.timeline.append(...fresh.map((entry, i) => timelineItem(entry, state.shown.count + i)));
  state.shown.count = call.timeline.length;
}

function callItemParts(call) {
  const direction = t(call.direction === 'inbound' ? 'phone.calls.inbound' : 'phone.calls.outbound');
  return {
    route: `${showNumber(call.from)} → ${call.to}`,
    meta: `${direction} · ${formatTime(call.created_at)}`,
    state: t(`phone.state.${call.state}`),
  };
}

function updateCallItem(button, call) {
  const parts = callItemParts(call);
  button.dataset.state = call.state;
  button.setAttribute('aria-current', String(call.sid === state.selected));
  button.querySelector('.call-item-route').textContent = parts.route;
  button.querySelector('.call-item-meta').textContent = parts.meta;
  setBadge(button.querySelector('.badge'), parts.state, callTone(call.state));
}

function newCallItem(call) {
  const button = el(
    'button',
    { type: 'button', class: 'call-item', 'data-testid': 'call-item', 'data-sid': call.sid, 'data-from': call.from, 'data-to': call.to },
    [el('span', { class: 'call-item-route' }), el('span', { class: 'call-item-meta' }), el('span', { class: 'badge' })],
  );
  button.addEventListener('click', () => select(call.sid));
  updateCallItem(button, call);
  return el('li', { 'data-sid': call.sid }, [button]);
}

/**
 * Keeps the list in step without replacing existing buttons, so a focused
 * button keeps its focus while calls change around it.
 */
function renderCallList({ rebuild = false } = {}) {
  const calls = [...state.calls.values()].sort(newestFirst).slice(0, MAX_LISTED_CALLS);
  if (rebuild) ui.callList.replaceChildren();
  const items = new Map([...ui.callList.children].map((li) => [li.dataset.sid, li]));
  const wanted = new Set(calls.map((c) => c.sid));
  for (const [sid, li] of items) {
    if (!wanted.has(sid)) li.remove();
  }
  let previous = null;
  for (const call of calls) {
    let li = items.get(call.sid);
    if (li) {
      updateCallItem(li.firstElementChild, call);
    } else {
      li = newCallItem(call);
      if (previous) previous.after(li);
      else ui.callList.prepend(li);
    }
    previous = li;
  }
  ui.callsEmpty.hidden = calls.length > 0;
}

function renderRequest() {
  const request = state.request;
  ui.requestNone.textContent = t(selectedCall() ? 'phone.request.none' : 'phone.request.no_call');
  ui.requestNone.hidden = Boolean(request);
  ui.requestFacts.hidden = !request;
  if (!request) return;
  // After a fallback the request waits for the code from the text message, not on a call.
  const texted = request.deliveries?.at(-1)?.channel === 'sms' && !['verified', 'failed', 'expired', 'canceled'].includes(request.status);
  setBadge(ui.requestStatus, t(texted ? 'status.texted' : `status.${request.status}`), requestTone(request.status));
  ui.requestStatus.dataset.status = request.status;
  ui.requestAttempts.textContent = `${request.attempts ?? 0} / ${request.max_attempts ?? '—'}`;
  ui.requestReasonRow.hidden = !request.failure_reason;
  ui.requestReason.textContent = request.failure_reason
    ? (has(`reason.${request.failure_reason}`) ? t(`reason.${request.failure_reason}`) : request.failure_reason)
    : '';
  ui.requestExpires.textContent = request.expires_at ? formatTime(request.expires_at) : '—';
  ui.requestLocale.textContent = request.locale ?? '—';
}

function renderConnection() {
  ui.conn.dataset.state = state.connection;
  ui.conn.querySelector('.conn-text').textContent = t(`phone.${state.connection}`);
}

function renderAll({ rebuild = false } = {}) {
  renderHandset();
  renderTimeline({ rebuild });
  renderCallList({ rebuild });
  renderRequest();
  renderConnection();
  renderSound();
  renderFromHint();
}

// ---------- The selected call's auth request ----------

let requestTimer = null;

function refreshRequest(delay = 150) {
  clearTimeout(requestTimer);
  requestTimer = setTimeout(loadRequest, delay);
}

async function loadRequest() {
  const id = selectedCall()?.request_id;
  if (!id) {
    state.request = null;
    renderRequest();
    return;
  }
  try {
    const request = await api('GET', `/simulator/requests/${encodeURIComponent(id)}`);
    if (selectedCall()?.request_id !== id) return;
    state.request = request;
    renderRequest();
  } catch {
    // A missing or unreachable request leaves the last view; try again below.
  }
  // Expiry and late status callbacks change a request without any call
  // event, so look again while it can still change: often just after its
  // call ended, when a fallback to a text message may follow at any moment.
  if (!FINAL_REQUEST.has(state.request?.status)) refreshRequest(Date.now() < state.watchUntil ? WATCH_EVERY_MS : 2000);
}

// ---------- Selecting and updating calls ----------

function select(sid) {
  if (state.selected === sid) return;
  state.selected = sid;
  state.request = null;
  renderAll();
  refreshRequest(0);
}

/** The call to show when nothing is chosen: the newest live call, else the newest one. */
function defaultCall() {
  const calls = [...state.calls.values()].sort(newestFirst);
  return (calls.find(isLive) ?? calls[0])?.sid ?? null;
}

function onSnapshot(calls) {
  state.calls = new Map(calls.map((c) => [c.sid, c]));
  // After a reconnect the page may have missed entries; voicing them late
  // would be confusing, so only what arrives from now on is heard.
  for (const call of calls) state.heard.set(call.sid, call.timeline.length);
  if (!state.calls.has(state.selected)) state.selected = defaultCall();
  state.request = null;
  renderAll({ rebuild: true });
  refreshRequest(0);
}

function onCall(call) {
  const previous = state.calls.get(call.sid);
  state.calls.set(call.sid, call);
  if (!previous) {
    state.heard.set(call.sid, 0);
    // A new call takes the handset unless the person is busy with another.
    if (isLive(call) && !isLive(selectedCall())) select(call.sid);
    if (canAnswer(call)) announce(t('phone.announce.ringing', { from: showNumber(call.from) }));
  } else if (call.sid === state.selected && previous.state !== call.state) {
    if (call.state === 'in-progress') announce(t('phone.announce.in-progress'));
    else if (!isLive(call)) announce(t('phone.announce.ended', { state: t(`phone.state.${call.state}`) }));
    if (isLive(previous) && !isLive(call)) state.watchUntil = Date.now() + WATCH_MS;
  }

  if (call.sid === state.selected) {
    renderHandset();
    renderTimeline();
    voiceNewEntries(call);
    if (call.request_id) refreshRequest();
  } else {
    state.heard.set(call.sid, call.timeline.length);
  }
  renderCallList();
}

// ---------- Live updates ----------

function connect() {
  const source = new EventSource('/simulator/events');
  source.addEventListener('open', () => {
    state.connection = 'live';
    renderConnection();
  });
  source.addEventListener('snapshot', (event) => {
    state.connection = 'live';
    renderConnection();
    onSnapshot(JSON.parse(event.data).calls ?? []);
  });
  source.addEventListener('call', (event) => onCall(JSON.parse(event.data)));
  // A text message to the selected call's number is a fallback (or the sms
  // channel) that has just happened: show it on the request card at once.
  source.addEventListener('message', (event) => {
    const message = JSON.parse(event.data);
    const call = selectedCall();
    if (call?.request_id && message.to === call.to) {
      state.watchUntil = Date.now() + WATCH_MS;
      refreshRequest(0);
    }
  });
  source.addEventListener('error', () => {
    state.connection = 'reconnecting';
    renderConnection();
    // EventSource retries by itself unless the server refused outright.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
  });
}

// ---------- Actions ----------

async function act(action) {
  const call = selectedCall();
  if (!call) return;
  if (action === 'answer') audio();
  try {
    await api('POST', `/simulator/calls/${encodeURIComponent(call.sid)}/${action}`);
  } catch (err) {
    showError(t('phone.action_failed', { message: err.message }));
  }
}

ui.answer.addEventListener('click', () => act('answer'));
ui.decline.addEventListener('click', () => act('decline'));
ui.hangup.addEventListener('click', () => act('hangup'));

// Presses go out one at a time, in order: parallel requests could overtake
// each other and deliver the digits scrambled.
let sending = Promise.resolve();

function pressKey(key) {
  const call = selectedCall();
  if (call?.state !== 'in-progress') return;
  const button = ui.keys.find((b) => b.dataset.key === key);
  button?.classList.add('is-pressed');
  setTimeout(() => button?.classList.remove('is-pressed'), 140);
  if (state.sound) playTone(DTMF[key]);
  silencePrompts();
  state.typed.set(call.sid, (state.typed.get(call.sid) ?? '') + key);
  renderTyped(shownKeys(call));
  const path = `/simulator/calls/${encodeURIComponent(call.sid)}/digits`;
  sending = sending
    .then(() => api('POST', path, { digits: key }))
    .catch((err) => showError(t('phone.action_failed', { message: err.message })));
}

for (const button of ui.keys) {
  button.addEventListener('click', () => pressKey(button.dataset.key));
}

function isTextEntry(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || target.matches('textarea, select')) return true;
  return target.matches('input') && !['checkbox', 'radio', 'button', 'submit'].includes(target.type);
}

// The computer keyboard works the keypad anywhere on the page except while
// typing into a field: digits, * and # press keys; Enter answers a ringing
// call (unless a button has focus, which Enter activates); Escape declines
// or hangs up.
document.addEventListener('keydown', (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (isTextEntry(event.target)) return;
  if (event.key in DTMF) {
    event.preventDefault();
    if (!event.repeat) pressKey(event.key);
    return;
  }
  const call = selectedCall();
  if (event.key === 'Enter' && canAnswer(call) && !event.target.closest?.('button, a, summary')) {
    event.preventDefault();
    act('answer');
  } else if (event.key === 'Escape' && isLive(call)) {
    event.preventDefault();
    act(canAnswer(call) ? 'decline' : 'hangup');
  }
});

// Any gesture unlocks audio for the ring and later prompts.
for (const type of ['pointerdown', 'keydown']) {
  document.addEventListener(type, () => state.sound && audio(), { capture: true });
}

// ---------- Calling the inbound number ----------

/** Whether `typed` (E.164, or national format like 090-…) is the E.164 number `e164`. */
function sameNumber(typed, e164) {
  const digits = (text) => String(text).replace(/\D/g, '');
  const mine = digits(typed);
  if (mine.length < 6) return false;
  return typed.trim().startsWith('+') ? mine === digits(e164) : digits(e164).endsWith(mine.replace(/^0/, ''));
}

/**
 * The hint under the caller ID says which number the demo site registered,
 * and whether the call will come from it: the server matches the caller ID
 * against the registered number.
 */
function renderFromHint() {
  const registered = recall(REGISTERED_KEY);
  let hint = t('phone.dial.from_hint');
  if (registered && sameNumber(ui.dialFrom.value, registered)) hint = t('phone.dial.from_registered', { number: registered });
  else if (registered) hint = t('phone.dial.from_other', { number: registered });
  setText(ui.dialFromHint, hint);
}

function renderDialState() {
  ui.dialFrom.disabled = ui.dialWithhold.checked;
  renderFromHint();
}

ui.dialWithhold.addEventListener('change', renderDialState);
ui.dialFrom.addEventListener('input', renderFromHint);

// A request registered on the demo site in another tab: dial from its number
// (unless the person is typing another one right now).
window.addEventListener('storage', (event) => {
  if (event.key !== FROM_KEY && event.key !== REGISTERED_KEY) return;
  const from = recall(FROM_KEY);
  if (from && document.activeElement !== ui.dialFrom) ui.dialFrom.value = from;
  renderFromHint();
});

ui.dialForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  ui.dialError.hidden = true;
  const from = ui.dialWithhold.checked ? 'anonymous' : ui.dialFrom.value.trim();
  if (!from) {
    ui.dialFrom.setAttribute('aria-invalid', 'true');
    ui.dialFrom.focus();
    return;
  }
  ui.dialFrom.removeAttribute('aria-invalid');
  if (!ui.dialWithhold.checked) remember(FROM_KEY, from);
  audio();
  ui.dialButton.disabled = true;
  try {
    const call = await api('POST', '/simulator/calls', { from });
    // The live feed may already have delivered a newer copy of this call.
    if (!state.calls.has(call.sid)) {
      state.calls.set(call.sid, call);
      state.heard.set(call.sid, 0);
    }
    select(call.sid);
  } catch (err) {
    ui.dialError.textContent = t('phone.dial.failed', { message: err.message });
    ui.dialError.hidden = false;
  } finally {
    ui.dialButton.disabled = false;
  }
});

async function loadInfo() {
  try {
    const info = await api('GET', '/simulator/info');
    const enabled = Boolean(info.inbound_number);
    ui.inboundNumber.textContent = info.inbound_number ?? '—';
    ui.dialDisabled.hidden = enabled;
    ui.dialButton.disabled = !enabled;
  } catch {
    // Leave the form usable; a failed call will explain itself.
  }
}

/** The caller ID to dial from: `?from=`, else the last one used or registered on the demo site. */
function initDialFrom() {
  const value = new URLSearchParams(location.search).get('from') || recall(FROM_KEY);
  if (value) ui.dialFrom.value = value;
  renderDialState();
}

// ---------- Start ----------

initLanguage();
onLangChange(() => renderAll({ rebuild: true }));
// Chrome loads its voice list lazily; asking early has it ready for the first prompt.
window.speechSynthesis?.getVoices();
initDialFrom();
renderAll();
loadInfo();
connect();

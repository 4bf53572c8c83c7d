// The dev phone's text-message inbox: every message ivr-auth sent through the
// simulator (codes by SMS, and SMS fallbacks of unanswered calls), newest
// first, with sender, text and time, kept live from /simulator/events. A new
// message is announced like a phone's notification.
//
// A module of its own beside phone.js: it fills the `data-messages` container
// of phone.html and needs nothing else from that page. It follows the page's
// language (phone.js sets it up through i18n.js) but wires no controls itself.

import { formatTime, onLangChange, t } from '/assets/i18n.js';

/** The newest messages only, so the inbox does not push the dialler far down the page. */
const MAX_LISTED = 10;
/** Status badge tone per message status. */
const TONES = { queued: 'info', sent: 'info', delivered: 'ok', undelivered: 'bad', failed: 'bad' };
/** Japanese script: the message's language, so screen readers pick the right voice. */
const JAPANESE = /[\u3040-\u30ff\u3400-\u9fff\uff00-\uffef]/;

const root = document.querySelector('[data-messages]');

const state = {
  /** sid → message, as the server last described it. */
  messages: new Map(),
  /** Whether the first snapshot arrived: messages in it are not announced. */
  loaded: false,
};

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

const ui = root && {
  heading: el('h2', { id: 'messages-title', class: 'card-title', 'data-testid': 'messages-heading' }),
  empty: el('p', { class: 'muted', 'data-testid': 'messages-empty' }),
  list: el('ol', { class: 'message-list', 'data-testid': 'message-list' }),
  announcer: el('p', { class: 'visually-hidden', role: 'status', 'aria-live': 'polite', 'data-testid': 'messages-announcer' }),
};

const newestFirst = (a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0);
const languageOf = (text) => (JAPANESE.test(text) ? 'ja' : 'en');

function statusText(status) {
  const key = `messages.status.${status}`;
  const text = t(key);
  return text === key ? status : text;
}

function fillItem(li, message) {
  li.dataset.status = message.status;
  li.querySelector('.message-from').textContent = message.from;
  li.querySelector('.message-to').textContent = `${t('messages.to')} ${message.to}`;
  const time = li.querySelector('time');
  time.dateTime = message.created_at;
  time.textContent = formatTime(message.created_at);
  const body = li.querySelector('.message-body');
  body.textContent = message.body;
  body.lang = languageOf(message.body);
  const badge = li.querySelector('.badge');
  badge.textContent = statusText(message.status);
  badge.dataset.tone = TONES[message.status] ?? '';
}

function newItem(message) {
  const li = el('li', { class: 'message', 'data-testid': 'message-item', 'data-sid': message.sid, 'data-to': message.to }, [
    el('p', { class: 'message-head' }, [
      el('span', { class: 'visually-hidden', text: `${t('messages.from')} ` }),
      el('span', { class: 'message-from' }),
      el('time', { class: 'message-time' }),
    ]),
    el('p', { class: 'message-body', 'data-testid': 'message-body' }),
    el('p', { class: 'message-foot' }, [el('span', { class: 'message-to' }), el('span', { class: 'badge' })]),
  ]);
  fillItem(li, message);
  return li;
}

/** Keeps the list in step, reusing items so nothing jumps under the reader. */
function render({ rebuild = false } = {}) {
  ui.heading.textContent = t('messages.heading');
  ui.empty.textContent = t('messages.empty');
  const messages = [...state.messages.values()].sort(newestFirst).slice(0, MAX_LISTED);
  if (rebuild) ui.list.replaceChildren();
  const items = new Map([...ui.list.children].map((li) => [li.dataset.sid, li]));
  const wanted = new Set(messages.map((m) => m.sid));
  for (const [sid, li] of items) {
    if (!wanted.has(sid)) li.remove();
  }
  let previous = null;
  for (const message of messages) {
    let li = items.get(message.sid);
    if (li) fillItem(li, message);
    else li = newItem(message);
    if (previous) {
      if (previous.nextElementSibling !== li) previous.after(li);
    } else if (ui.list.firstElementChild !== li) {
      ui.list.prepend(li);
    }
    previous = li;
  }
  ui.empty.hidden = messages.length > 0;
  ui.list.hidden = messages.length === 0;
}

function announce(message) {
  ui.announcer.textContent = t('messages.announce', { from: message.from, to: message.to, body: message.body });
}

function onSnapshot(messages) {
  state.messages = new Map(messages.map((m) => [m.sid, m]));
  state.loaded = true;
  render({ rebuild: true });
}

function onMessage(message) {
  const known = state.messages.has(message.sid);
  state.messages.set(message.sid, message);
  render();
  // A status change of a known message (sent, delivered) is shown, not spoken.
  if (!known && state.loaded) announce(message);
}

function connect() {
  const source = new EventSource('/simulator/events');
  source.addEventListener('snapshot', (event) => onSnapshot(JSON.parse(event.data).messages ?? []));
  source.addEventListener('message', (event) => onMessage(JSON.parse(event.data)));
  source.addEventListener('error', () => {
    // EventSource retries by itself unless the server refused outright.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
  });
}

if (ui) {
  root.setAttribute('aria-labelledby', 'messages-title');
  root.append(ui.heading, ui.empty, ui.list, ui.announcer);
  render();
  onLangChange(() => render({ rebuild: true }));
  connect();
}

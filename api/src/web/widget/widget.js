// <switchboard-chat>: the customer's chat window, for any page.
//
//   <script src="https://chat.example.com/widget.js" async></script>
//   <switchboard-chat token="CUSTOMER_JWT"></switchboard-chat>
//
// Attributes in: token, server (defaults to where this script came from),
// heading, topics (comma-separated skills the customer may pick). Property
// in: getToken (a function returning a token or a promise of one, asked on
// every request and reconnect; wins over the attribute). With neither, the
// visitor becomes a guest when they start a chat (createGuest, solving the
// server's challenge if it asks one); the guest token is kept in the page
// origin's localStorage, so a reload or a second tab is the same guest.
// Events out, on the
// element: switchboard:message (detail: the message), switchboard:state
// (detail: { status }). Everything else lives in the shadow root, so the
// host page's CSS cannot reach in, nor ours out. This file is wrapped in a
// function together with ../client.js when served: nothing is global but
// the element's name.

const SCRIPT_ORIGIN = (() => {
  try {
    return new URL(document.currentScript.src).origin;
  } catch (e) {
    return location.origin;
  }
})();

const SESSION = `id status subject createdAt endedAt endReason queuePosition estimatedWaitSeconds lastSeq agent { id name } rating { score }`;
const Q_MINE = `query { me { id } mySessions(first: 30) { nodes { ${SESSION} } } }`;
const Q_TRANSCRIPT = `query($id: ID!) { session(id: $id) { ${SESSION} messages(last: 200) { nodes { ${MESSAGE_FIELDS} } } } }`;
const Q_SESSION = `query($id: ID!) { session(id: $id) { ${SESSION} } }`;
const M_START = `mutation($input: StartSessionInput!) { startSession(input: $input) { ${SESSION} } }`;
const M_END = SESSION_OPS.end(SESSION);
const M_RATE = `mutation($id: ID!, $score: Int!, $comment: String) { rateSession(sessionId: $id, score: $score, comment: $comment) { ${SESSION} } }`;
const Q_CHALLENGE = 'query { guestChallenge { challenge difficulty } }';
const M_GUEST = 'mutation($c: String, $s: String) { createGuest(challenge: $c, solution: $s) { token expiresAt } }';
const SCORES = ['very unhappy', 'unhappy', 'so-so', 'happy', 'very happy'];
const S_EVENTS = SESSION_OPS.events(SESSION);

/** Chats older than this are not listed (the API keeps a customer's last 14 days). */
const LIST_DAYS = 14;

const STYLE = `
:host { all: initial; position: fixed; right: 16px; bottom: 16px; z-index: 2147483000; }
:host([inline]) { position: static; }
/* The host element may be styled by the page (even with !important), and
   inherited properties would flow in from it: start again below it. */
.sb { all: initial; display: block; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a1a1a; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
button, input, textarea, select { font: inherit; }
button { cursor: pointer; }
:focus-visible { outline: 3px solid #0b57d0; outline-offset: 2px; }
.launcher { position: relative; display: flex; align-items: center; justify-content: center; width: 56px; height: 56px; border-radius: 50%; border: none;
  background: #0b57d0; color: #fff; box-shadow: 0 2px 8px rgba(0,0,0,.3); margin-left: auto; }
.badge { position: absolute; top: -4px; right: -4px; min-width: 22px; height: 22px; padding: 0 6px;
  border-radius: 11px; background: #b3261e; color: #fff; font-size: 13px; line-height: 22px; font-weight: 700; }
.panel { width: min(380px, calc(100vw - 32px)); height: min(560px, calc(100vh - 100px)); margin-bottom: 12px;
  background: #fff; border-radius: 12px; box-shadow: 0 4px 24px rgba(0,0,0,.25); display: flex; flex-direction: column; overflow: hidden; }
header { background: #0b57d0; color: #fff; padding: 10px 12px; display: flex; align-items: flex-start; gap: 8px; }
header .titles { flex: 1; min-width: 0; }
h2 { font-size: 16px; margin: 0; }
.status { margin: 2px 0 0; font-size: 13px; }
.icon { background: transparent; color: inherit; border: 1px solid rgba(255,255,255,.6); border-radius: 6px; padding: 2px 8px; }
.banner { background: #fff4ce; color: #3d2e00; padding: 6px 12px; font-size: 13px; border-bottom: 1px solid #e0c97a; }
.error { background: #fce8e6; color: #8c1d18; padding: 6px 12px; font-size: 13px; }
.view { flex: 1; display: flex; flex-direction: column; min-height: 0; }
.scroll { flex: 1; overflow-y: auto; padding: 12px; }
ol { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 6px; }
.msg { max-width: 85%; padding: 6px 10px; border-radius: 12px; background: #eef0f3; align-self: flex-start; word-wrap: break-word; white-space: pre-wrap; }
.msg.mine { align-self: flex-end; background: #0b57d0; color: #fff; }
.msg .meta { display: block; font-size: 12px; opacity: .9; margin-top: 2px; text-align: right; }
.msg.failed { background: #fce8e6; color: #8c1d18; }
.system { align-self: center; font-size: 13px; color: #474747; font-style: italic; text-align: center; }
.typing { padding: 0 12px 4px; font-size: 13px; color: #474747; min-height: 1.4em; }
form.composer { display: flex; gap: 6px; padding: 8px; border-top: 1px solid #dadce0; }
textarea { flex: 1; resize: none; height: 40px; padding: 8px; border: 1px solid #747775; border-radius: 8px; }
.primary { background: #0b57d0; color: #fff; border: none; border-radius: 8px; padding: 8px 14px; }
.secondary { background: #fff; color: #0b57d0; border: 1px solid #0b57d0; border-radius: 8px; padding: 6px 12px; }
.after-end { padding: 8px 12px 12px; border-top: 1px solid #dadce0; max-height: 55%; overflow-y: auto; flex-shrink: 0; }
.after-end p { margin: 0 0 8px; }
.actions { display: flex; gap: 8px; padding: 0 8px 8px; flex-wrap: wrap; }
label { display: block; font-size: 14px; margin: 8px 0 4px; }
input, select { width: 100%; padding: 8px; border: 1px solid #747775; border-radius: 8px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
.chats { display: flex; flex-direction: column; gap: 4px; }
.chats button { text-align: left; background: #f6f8fc; border: 1px solid #dadce0; border-radius: 8px; padding: 6px 10px; color: #1a1a1a; }
.note, .kicker { color: #474747; font-size: 13px; }
.msg a { color: inherit; font-weight: 600; }
.card { display: flex; flex-direction: column; border-left: 3px solid #0b57d0; padding-left: 8px; }
.mine .card { border-color: #fff; }
.mine .kicker { color: inherit; }
.caption { display: block; }
fieldset { border: none; margin: 0 0 4px; padding: 0; }
legend { font-weight: 600; padding: 0; }
.scores { display: flex; gap: 4px; }
.scores label { flex: 1; margin: 4px 0 0; text-align: center; font-size: 12px; border: 1px solid #dadce0; border-radius: 8px; padding: 4px 2px; }
.scores input { width: auto; display: block; margin: 0 auto 2px; }
.after-end textarea { width: 100%; height: 56px; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

/**
 * The guest challenge's answer: a counter for which SHA-256 of challenge ‖
 * counter starts with `difficulty` zero bits. Digests are asked in batches:
 * one at a time, the round trips to the browser's crypto cost more than
 * the hashing.
 */
async function solve({ challenge, difficulty }) {
  const enc = new TextEncoder();
  const zeros = (h) => {
    let bits = 0;
    for (const b of new Uint8Array(h)) {
      if (b) return bits + Math.clz32(b) - 24;
      bits += 8;
    }
    return bits;
  };
  for (let n = 0; ; n += 64) {
    const batch = await Promise.all(Array.from({ length: 64 }, (_, i) => crypto.subtle.digest('SHA-256', enc.encode(challenge + (n + i)))));
    const hit = batch.findIndex((h) => zeros(h) >= difficulty);
    if (hit >= 0) return String(n + hit);
  }
}

/** The page origin's localStorage, or nothing where it is refused (blocked cookies, sandboxes). */
function store() {
  try {
    return window.localStorage;
  } catch (e) {
    return null;
  }
}

/** A speech bubble, drawn: no emoji font needed. */
function icon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '28');
  svg.setAttribute('height', '28');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('fill', 'currentColor');
  path.setAttribute('d', 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm3 6a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3zm5 0a1.5 1.5 0 1 0 0 3 1.5 1.5 0 0 0 0-3z');
  svg.append(path);
  return svg;
}


class SwitchboardChat extends HTMLElement {
  static get observedAttributes() {
    return ['token', 'heading'];
  }

  constructor() {
    super();
    this.getToken = null;
    this.root = this.attachShadow({ mode: 'open' });
    this.open = false;
    this.client = null;
    this.me = null;
    this.session = null; // the session on screen (open, or just ended)
    this.transcript = null;
    this.stopFeed = null;
    this.sessions = []; // the last 14 days
    this.unread = 0;
    this.markedRead = 0;
    this.typing = new TypingSignal((typing) => {
      if (this.session) this.client.request(SESSION_OPS.typing, { id: this.session.id, typing }).catch(() => {});
    });
    this.agentTypingTimer = null;
    this.view = 'home';
    this.connection = 'closed';
    this.guestToken = null;
    this.build();
  }

  connectedCallback() {
    if (!this.client) {
      const server = (this.getAttribute('server') || SCRIPT_ORIGIN).replace(/\/$/, '');
      this.server = server;
      this.guestKey = `switchboard.guest ${server}`;
      this.guestToken = this.storedGuest();
      this.client = createClient({
        url: `${server}/graphql`,
        token: () => this.currentToken(),
        onState: (s) => {
          this.connection = s;
          this.renderBanner();
        },
      });
      this.onOnline = () => this.renderBanner();
      window.addEventListener('online', this.onOnline);
      window.addEventListener('offline', this.onOnline);
      this.load();
    }
  }

  disconnectedCallback() {
    if (this.client) this.client.close();
    this.client = null;
    if (this.stopFeed) this.stopFeed();
    this.stopFeed = null;
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOnline);
  }

  attributeChangedCallback(name) {
    if (name === 'heading' && this.headingEl) this.headingEl.textContent = this.getAttribute('heading') || 'Chat with us';
  }

  async currentToken() {
    if (typeof this.getToken === 'function') return this.getToken();
    return this.getAttribute('token') || this.guestToken;
  }

  /** No token from the host page: the visitor chats as a guest. */
  get guest() {
    return typeof this.getToken !== 'function' && !this.getAttribute('token');
  }

  storedGuest() {
    try {
      const g = JSON.parse(store().getItem(this.guestKey));
      // A token about to expire would fail mid-chat: a new guest instead.
      if (g && Date.parse(g.expiresAt) - Date.now() > 600e3) return g.token;
    } catch (e) {
      // None kept, or not readable.
    }
    return null;
  }

  forgetGuest() {
    this.guestToken = null;
    try {
      store().removeItem(this.guestKey);
    } catch (e) {
      // Nothing kept.
    }
  }

  /** A guest token, minted only when the visitor starts a chat: a page view costs the server nothing. */
  async becomeGuest() {
    this.statusEl.textContent = 'Getting the chat ready…';
    const { guestChallenge: c } = await this.client.request(Q_CHALLENGE);
    if (c && !(window.crypto && crypto.subtle)) throw new Error('this page is not served over https');
    const g = (await this.client.request(M_GUEST, c ? { c: c.challenge, s: await solve(c) } : {})).createGuest;
    this.guestToken = g.token;
    try {
      store().setItem(this.guestKey, JSON.stringify(g));
    } catch (e) {
      // Not kept: a reload starts as a new guest.
    }
  }

  // ---- the fixed frame: launcher, panel, header, banner, three views ----

  build() {
    const sheet = el('style', { text: STYLE });
    this.badge = el('span', { class: 'badge', 'data-testid': 'unread-badge', hidden: true, 'aria-hidden': 'true' });
    this.launcher = el('button', {
      class: 'launcher', type: 'button', 'data-testid': 'launcher', 'aria-expanded': 'false',
      'aria-controls': 'panel', 'aria-label': 'Open chat', onclick: () => this.toggle(),
    }, icon(), this.badge);

    this.headingEl = el('h2', { id: 'heading', text: this.getAttribute('heading') || 'Chat with us' });
    this.statusEl = el('p', { class: 'status', 'data-testid': 'status', role: 'status' });
    this.banner = el('div', { class: 'banner', 'data-testid': 'reconnecting', role: 'status', hidden: true, text: 'Reconnecting… your messages will be sent when the connection is back.' });
    this.errorEl = el('div', { class: 'error', 'data-testid': 'error', role: 'alert', hidden: true });
    this.announcer = el('div', { class: 'sr', 'aria-live': 'polite', 'data-testid': 'announcer' });

    // Home: start a chat, the chats of the last 14 days.
    this.subject = el('input', { id: 'subject', 'data-testid': 'subject', maxlength: 200, autocomplete: 'off' });
    this.topic = el('select', { id: 'topic', 'data-testid': 'topic' });
    this.topicRow = el('div', {}, el('label', { for: 'topic', text: 'Topic' }), this.topic);
    this.chatList = el('div', { class: 'chats', 'data-testid': 'chat-list' });
    this.startForm = el('form', { 'data-testid': 'start-form', onsubmit: (e) => { e.preventDefault(); this.start(); } },
      el('label', { for: 'subject', text: 'What can we help you with? (optional)' }), this.subject,
      this.topicRow,
      el('p', {}, el('button', { class: 'primary', type: 'submit', 'data-testid': 'start', text: 'Start chat' })));
    this.home = el('div', { class: 'view scroll', 'data-testid': 'home' },
      this.startForm,
      el('h3', { id: 'past', text: `Your chats (last ${LIST_DAYS} days)` }),
      this.chatList);

    // Chat: the transcript, typing, the composer, end.
    this.list = el('ol', { 'data-testid': 'messages', 'aria-labelledby': 'heading' });
    this.scroller = el('div', { class: 'scroll', tabindex: '0', 'aria-label': 'Messages' }, this.list);
    this.typingEl = el('div', { class: 'typing', 'data-testid': 'typing' });
    this.input = el('textarea', { id: 'message', 'data-testid': 'message-input', rows: 1, maxlength: 4000,
      oninput: () => this.typed(), onkeydown: (e) => this.composerKey(e) });
    this.composer = el('form', { class: 'composer', 'data-testid': 'composer', onsubmit: (e) => { e.preventDefault(); this.sendTyped(); } },
      el('label', { for: 'message', class: 'sr', text: 'Message' }), this.input,
      el('button', { class: 'primary', type: 'submit', 'data-testid': 'send', text: 'Send' }));
    this.endButton = el('button', { class: 'secondary', type: 'button', 'data-testid': 'end-chat', text: 'End chat', onclick: () => this.end() });
    // The survey: after a chat an agent served, until it is rated (or the
    // server says it can no longer be). The transcript stays above it.
    this.comment = el('textarea', { id: 'comment', 'data-testid': 'rating-comment', maxlength: 1000 });
    this.survey = el('form', { 'data-testid': 'survey', hidden: true, onchange: () => this.showError(''), onsubmit: (e) => { e.preventDefault(); this.rate(); } },
      el('fieldset', {}, el('legend', { text: 'How was this chat?' }),
        el('div', { class: 'scores' }, ...SCORES.map((word, i) => el('label', {},
          el('input', { type: 'radio', name: 'score', value: i + 1, 'data-testid': `score-${i + 1}` }), `${i + 1} `, el('span', { text: word }))))),
      el('label', { for: 'comment', text: 'Anything to add? (optional)' }), this.comment,
      el('p', {}, el('button', { class: 'primary', type: 'submit', 'data-testid': 'rate', text: 'Send rating' })));
    this.rated = el('p', { 'data-testid': 'rated', hidden: true });
    this.unratable = new Set();
    this.afterEnd = el('div', { class: 'after-end', 'data-testid': 'after-end', hidden: true },
      el('p', { class: 'note', text: 'This chat has ended. Its transcript stays here, and in your chats of the last 14 days.' }),
      this.survey, this.rated,
      el('button', { class: 'secondary', type: 'button', 'data-testid': 'new-chat', text: 'Start a new chat', onclick: () => this.showHome() }));
    this.chat = el('div', { class: 'view', 'data-testid': 'chat', hidden: true },
      this.scroller, this.typingEl, this.composer,
      this.actions = el('div', { class: 'actions' }, this.endButton,
        el('button', { class: 'secondary', type: 'button', 'data-testid': 'back', text: 'All chats', onclick: () => this.showHome() })),
      this.afterEnd);

    this.panel = el('section', { class: 'panel', id: 'panel', role: 'dialog', 'aria-labelledby': 'heading', 'data-testid': 'panel', hidden: true,
      onkeydown: (e) => { if (e.key === 'Escape') this.toggle(false); } },
      el('header', {},
        el('div', { class: 'titles' }, this.headingEl, this.statusEl),
        el('button', { class: 'icon', type: 'button', 'aria-label': 'Close chat window', 'data-testid': 'close', text: '✕', onclick: () => this.toggle(false) })),
      this.banner, this.errorEl, this.home, this.chat);

    if ('adoptedStyleSheets' in this.root && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
      const s = new CSSStyleSheet();
      s.replaceSync(STYLE);
      this.root.adoptedStyleSheets = [s];
    } else {
      this.root.append(sheet);
    }
    this.root.append(el('div', { class: 'sb' }, this.panel, this.launcher, this.announcer));
    this.renderTopics();
  }

  renderTopics() {
    const topics = (this.getAttribute('topics') || '').split(',').map((t) => t.trim()).filter(Boolean);
    this.topic.replaceChildren(el('option', { value: '', text: 'Any' }), ...topics.map((t) => el('option', { value: t, text: t })));
    this.topicRow.hidden = topics.length === 0;
  }

  toggle(force) {
    this.open = force === undefined ? !this.open : force;
    this.panel.hidden = !this.open;
    this.launcher.setAttribute('aria-expanded', String(this.open));
    if (this.open) {
      this.unread = 0;
      this.renderBadge();
      this.markRead();
      this.focusView();
    } else {
      this.launcher.focus();
    }
  }

  /** Focus where the customer most likely goes next. */
  focusView() {
    if (this.view === 'chat') (this.composer.hidden ? this.afterEnd.querySelector('input:not([hidden] *), [data-testid="new-chat"]') : this.input).focus();
    else (this.startForm.hidden ? this.chatList.querySelector('button') || this.panel.querySelector('button') : this.subject).focus();
  }

  showError(text) {
    this.errorEl.textContent = text || '';
    this.errorEl.hidden = !text;
  }

  renderBanner() {
    const following = Boolean(this.stopFeed);
    this.banner.hidden = navigator.onLine !== false && (!following || this.connection === 'connected');
    // The first connection is not a reconnection.
    if (this.connection === 'connected') this.everConnected = true;
    this.banner.textContent = this.everConnected || navigator.onLine === false
      ? 'Reconnecting… your messages will be sent when the connection is back.'
      : 'Connecting…';
  }

  renderBadge() {
    this.badge.textContent = String(this.unread);
    this.badge.hidden = this.unread === 0;
    this.launcher.setAttribute('aria-label', this.unread ? `Open chat, ${this.unread} unread` : 'Open chat');
  }

  // ---- data ----

  async load() {
    // A visitor who has not chatted yet: nothing to ask the server.
    if (this.guest && !this.guestToken) {
      this.sessions = [];
      return this.showHome();
    }
    try {
      const data = await this.client.request(Q_MINE);
      this.showError('');
      this.me = data.me;
      const since = Date.now() - LIST_DAYS * 86400e3;
      this.sessions = data.mySessions.nodes.filter((s) => Date.parse(s.createdAt) >= since);
      this.renderChatList();
      const open = this.sessions.find((s) => s.status !== 'ENDED');
      if (open) this.follow(open);
      else this.showHome();
    } catch (e) {
      // An expired guest starts over as a new one.
      if (e.code === 'UNAUTHENTICATED' && this.guest && this.guestToken) {
        this.forgetGuest();
        return this.load();
      }
      this.showError(e.code === 'UNAUTHENTICATED' ? 'Please sign in to chat with us.' : 'The chat service cannot be reached. Retrying…');
      if (e.code !== 'UNAUTHENTICATED') setTimeout(() => this.isConnected && this.load(), 3000);
    }
  }

  renderChatList() {
    const items = this.sessions.map((s) => el('button', {
      type: 'button', 'data-testid': 'past-chat', 'data-session': s.id,
      onclick: () => (s.status === 'ENDED' ? this.showTranscript(s.id) : this.follow(s)),
    }, `${s.subject || 'Chat'} · ${new Date(s.createdAt).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' })} · ${s.status === 'ENDED' ? 'ended' : 'open'}`));
    this.chatList.replaceChildren(...(items.length ? items : [el('p', { class: 'note', text: 'No chats yet.' })]));
  }

  showHome() {
    if (this.stopFeed) this.stopFeed();
    this.stopFeed = null;
    this.session = null;
    this.view = 'home';
    this.home.hidden = false;
    this.chat.hidden = true;
    this.statusEl.textContent = '';
    this.startForm.hidden = this.sessions.some((s) => s.status !== 'ENDED');
    this.renderChatList();
    this.renderBanner();
  }

  async start() {
    const subject = this.subject.value.trim();
    const topic = this.topic.value;
    try {
      if (this.guest && !this.guestToken) await this.becomeGuest();
      const data = await this.client.request(M_START, { input: { subject: subject || null, ...(topic ? { skills: [topic] } : {}) } });
      this.showError('');
      const s = data.startSession;
      this.sessions = [s, ...this.sessions.filter((x) => x.id !== s.id)];
      this.subject.value = '';
      this.follow(s);
      this.input.focus();
    } catch (e) {
      this.statusEl.textContent = '';
      this.showError(e.code === 'RATE_LIMITED' ? 'Too many chats started; please wait a minute.' : `Could not start the chat: ${e.message}`);
    }
  }

  /** Shows a session and, unless it is over, follows it live, resuming after what is held. */
  follow(session, live = true) {
    if (this.stopFeed) this.stopFeed();
    this.stopFeed = null;
    this.session = session;
    this.transcript = new Transcript();
    this.markedRead = 0;
    this.view = 'chat';
    this.home.hidden = true;
    this.chat.hidden = false;
    this.list.replaceChildren();
    this.caughtUp = false;
    this.renderSession();
    const t = this.transcript;
    if (!live) return this.renderBanner();
    this.stopFeed = this.client.subscribe(S_EVENTS, () => ({ id: session.id, after: t.lastSeq }), {
      next: (data) => this.onEvent(t, data.sessionEvents),
      error: (e) => {
        this.stopFeed = null;
        this.renderBanner();
        this.showError(`The chat stopped updating: ${e.message}`);
      },
    });
    this.renderBanner();
  }

  onEvent(t, ev) {
    if (t !== this.transcript) return;
    switch (ev.__typename) {
      case 'MessagePosted': {
        const m = ev.message;
        if (!t.add(m)) break;
        this.renderMessages();
        if (m.sender !== 'CUSTOMER') {
          if (this.caughtUp) this.announce(m);
          if (m.sender === 'AGENT') this.setAgentTyping(false);
          if (this.open && document.visibilityState !== 'hidden') this.markRead();
          else if (this.caughtUp && m.seq > this.markedRead) {
            this.unread += 1;
            this.renderBadge();
          }
        }
        this.dispatchEvent(new CustomEvent('switchboard:message', { detail: m }));
        break;
      }
      case 'TypingChanged':
        if (ev.sender === 'AGENT') this.setAgentTyping(ev.typing);
        break;
      case 'ReceiptUpdated':
        if (t.receipt(ev, 'AGENT')) this.renderMessages();
        break;
      case 'SessionChanged':
        this.sessionChanges = (this.sessionChanges || 0) + 1;
        this.session = { ...this.session, ...ev.session };
        this.sessions = this.sessions.map((s) => (s.id === ev.session.id ? this.session : s));
        this.renderSession();
        break;
      case 'CaughtUp':
        this.caughtUp = true;
        if (this.open) this.markRead();
        // A replay brings messages, not the session's changes: one made
        // before the feed (re)started (accepted while connecting, ended
        // while offline) is read now.
        this.refreshSession(t);
        break;
      default:
        break;
    }
  }

  async refreshSession(t) {
    const seen = this.sessionChanges;
    try {
      const data = await this.client.request(Q_SESSION, { id: this.session.id });
      // A change the feed brought meanwhile is newer than this answer.
      if (t === this.transcript && seen === this.sessionChanges && data.session) {
        this.onEvent(t, { __typename: 'SessionChanged', session: data.session });
      }
    } catch (e) {
      // The live feed brings the next change; nothing to show meanwhile.
    }
  }

  announce(m) {
    const who = m.sender === 'SYSTEM' ? '' : `${(this.session.agent && this.session.agent.name) || 'Agent'}: `;
    this.announcer.textContent = `${who}${m.body}`;
  }

  setAgentTyping(on) {
    clearTimeout(this.agentTypingTimer);
    const name = (this.session && this.session.agent && this.session.agent.name) || 'The agent';
    this.typingEl.textContent = on ? `${name} is typing…` : '';
    // A lost "stopped typing" must not leave the line up for ever.
    if (on) this.agentTypingTimer = setTimeout(() => this.setAgentTyping(false), 10000);
  }

  renderSession() {
    const s = this.session;
    const ended = s.status === 'ENDED';
    this.composer.hidden = ended;
    this.actions.hidden = ended;
    this.afterEnd.hidden = !ended;
    this.survey.hidden = !ended || !s.agent || Boolean(s.rating) || this.unratable.has(s.id);
    this.rated.hidden = !s.rating;
    if (s.rating) this.rated.textContent = `Thank you for rating this chat ${s.rating.score} out of 5.`;
    let text;
    if (s.status === 'WAITING') {
      const place = s.queuePosition ? `You are number ${s.queuePosition} in the queue.` : 'You are in the queue.';
      const wait = typeof s.estimatedWaitSeconds === 'number' ? ` Estimated wait: ${duration(s.estimatedWaitSeconds)}.` : '';
      text = place + wait;
    } else if (s.status === 'OFFERED') {
      text = 'Connecting you to an agent…';
    } else if (s.status === 'ACTIVE') {
      text = `You are chatting with ${(s.agent && s.agent.name) || 'an agent'}.`;
    } else {
      text = 'This chat has ended.';
      this.setAgentTyping(false);
    }
    this.statusEl.textContent = text;
    this.statusEl.dataset.sessionStatus = s.status;
    this.dispatchEvent(new CustomEvent('switchboard:state', { detail: { status: s.status } }));
  }

  renderMessages() {
    const agent = (this.session.agent && this.session.agent.name) || 'Agent';
    renderTranscript(this.list, this.scroller, this.transcript, 'CUSTOMER', (m) => (m.sender === 'CUSTOMER' ? 'You' : agent), this.server);
  }

  async markRead() {
    const t = this.transcript;
    if (!t || !this.session || !this.open) return;
    let seq = 0;
    for (const m of t.bySeq.values()) if (m.sender !== 'CUSTOMER' && m.seq > seq) seq = m.seq;
    if (seq <= this.markedRead) return;
    this.markedRead = seq;
    try {
      await this.client.request(SESSION_OPS.read, { id: this.session.id, seq });
    } catch (e) {
      this.markedRead = 0; // tried again on the next message or opening
    }
  }

  typed() {
    if (this.session && this.session.status !== 'ENDED') this.typing.typed();
  }

  composerKey(e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.sendTyped();
    }
  }

  sendTyped() {
    const body = this.input.value.trim();
    if (!body || !this.session) return;
    this.input.value = '';
    this.typing.stop();
    this.send(body);
  }

  /** Optimistic: shown at once, retried with the same clientMessageId until stored. */
  async send(body) {
    const t = this.transcript;
    const clientMessageId = newClientMessageId();
    t.pending.set(clientMessageId, { body, failed: null });
    this.renderMessages();
    this.scroller.scrollTop = this.scroller.scrollHeight;
    try {
      const m = await sendReliably(this.client, SESSION_OPS.send, { sessionId: this.session.id, body, clientMessageId });
      t.add(m, { inOrder: false });
    } catch (e) {
      const p = t.pending.get(clientMessageId);
      if (p) p.failed = e.message;
    }
    if (t === this.transcript) this.renderMessages();
  }

  async end() {
    if (!this.session) return;
    try {
      const data = await this.client.request(M_END, { id: this.session.id });
      this.onEvent(this.transcript, { __typename: 'SessionChanged', session: data.endSession });
      this.focusView();
    } catch (e) {
      this.showError(`Could not end the chat: ${e.message}`);
    }
  }

  async rate() {
    const chosen = this.survey.querySelector('input:checked');
    if (!chosen) return this.showError('Choose a score from 1 to 5, or leave the survey.');
    const id = this.session.id;
    try {
      const data = await this.client.request(M_RATE, { id, score: Number(chosen.value), comment: this.comment.value.trim() || null });
      this.showError('');
      this.comment.value = '';
      this.onEvent(this.transcript, { __typename: 'SessionChanged', session: data.rateSession });
      this.rated.setAttribute('tabindex', '-1');
      this.rated.focus();
    } catch (e) {
      if (e.code !== 'CONFLICT') return this.showError(`Could not send the rating: ${e.message}`);
      // Rated already (another tab) or too late: no survey then.
      this.unratable.add(id);
      this.renderSession();
      this.showError('This chat can no longer be rated.');
    }
  }

  /** A past chat, read only. */
  async showTranscript(id) {
    try {
      const data = await this.client.request(Q_TRANSCRIPT, { id });
      if (!data.session) return this.showError('That chat is no longer available.');
      this.showError('');
      const { messages, ...session } = data.session;
      this.follow(session, false);
      for (const m of messages.nodes) this.transcript.add(m);
      this.renderMessages();
      this.focusView();
    } catch (e) {
      this.showError(`Could not load the chat: ${e.message}`);
    }
  }
}

if (!customElements.get('switchboard-chat')) customElements.define('switchboard-chat', SwitchboardChat);

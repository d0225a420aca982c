// Switchboard's own GraphQL client, shared by the widget and the console:
// queries and mutations over HTTP POST, subscriptions over one
// graphql-transport-ws socket that reconnects with backoff and starts every
// subscription again with fresh variables (so a session feed resumes with
// the afterSeq its owner has reached). No globals: the widget wraps this
// file in a function, the console imports it as a module.

/** A GraphQL error with its `extensions.code` (or NETWORK when unreachable). */
class GraphQLError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

/**
 * @param {object} options
 * @param {string} options.url      the /graphql endpoint (absolute)
 * @param {() => Promise<string|null>|string|null} options.token  the caller's token, asked on every request and connect
 * @param {(state: 'connecting'|'connected'|'reconnecting'|'closed', detail?: string) => void} [options.onState]
 */
function createClient({ url, token, onState = () => {} }) {
  const wsUrl = url.replace(/^http/, 'ws');
  const subs = new Map(); // id -> { query, variables(), sink, active }
  let socket = null;
  let acked = false;
  let attempt = 0;
  let timer = null;
  let nextId = 1;
  let closed = false;
  let state = 'closed';

  const setState = (s, detail) => {
    if (s !== state || detail) {
      state = s;
      onState(s, detail);
    }
  };

  async function bearer() {
    const t = await token();
    return t ? `Bearer ${t}` : null;
  }

  async function request(query, variables = {}) {
    const auth = await bearer();
    let response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
        body: JSON.stringify({ query, variables }),
      });
    } catch (e) {
      throw new GraphQLError('The server cannot be reached.', 'NETWORK');
    }
    let body;
    try {
      body = await response.json();
    } catch (e) {
      throw new GraphQLError(`The server answered ${response.status}.`, 'NETWORK');
    }
    if (body.errors && body.errors.length) {
      const e = body.errors[0];
      throw new GraphQLError(e.message, (e.extensions && e.extensions.code) || 'INTERNAL');
    }
    return body.data;
  }

  function send(message) {
    if (socket && socket.readyState === 1) socket.send(JSON.stringify(message));
  }

  function start(id) {
    const sub = subs.get(id);
    if (!sub || !acked) return;
    sub.active = true;
    send({ id, type: 'subscribe', payload: { query: sub.query, variables: sub.variables() } });
  }

  function schedule() {
    // Offline: the 'online' event reconnects, at once.
    if (closed || timer || navigator.onLine === false) return;
    // 0.5 s, 1 s, 2 s ... up to 15 s, with jitter so a restarted server is
    // not met by every client at once.
    const delay = Math.min(15000, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
    attempt += 1;
    timer = setTimeout(() => {
      timer = null;
      connect();
    }, delay);
  }

  async function connect() {
    if (closed || socket) return;
    setState(attempt === 0 ? 'connecting' : 'reconnecting');
    let auth;
    try {
      auth = await bearer();
    } catch (e) {
      auth = null;
    }
    if (closed || socket) return;
    const ws = new WebSocket(wsUrl, 'graphql-transport-ws');
    socket = ws;
    acked = false;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init', payload: auth ? { authorization: auth } : {} }));
    ws.onmessage = (event) => {
      let m;
      try {
        m = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      switch (m.type) {
        case 'connection_ack':
          acked = true;
          attempt = 0;
          setState('connected');
          for (const id of subs.keys()) start(id);
          break;
        case 'ping':
          ws.send(JSON.stringify({ type: 'pong' }));
          break;
        case 'next': {
          const sub = subs.get(m.id);
          if (!sub) break;
          if (m.payload.errors && m.payload.errors.length) {
            const e = m.payload.errors[0];
            sub.sink.error(new GraphQLError(e.message, (e.extensions && e.extensions.code) || 'INTERNAL'));
          } else {
            sub.sink.next(m.payload.data);
          }
          break;
        }
        case 'error': {
          const sub = subs.get(m.id);
          if (!sub) break;
          subs.delete(m.id);
          const e = (Array.isArray(m.payload) && m.payload[0]) || {};
          sub.sink.error(new GraphQLError(e.message || 'subscription refused', (e.extensions && e.extensions.code) || 'INTERNAL'));
          break;
        }
        case 'complete': {
          const sub = subs.get(m.id);
          if (!sub) break;
          subs.delete(m.id);
          if (sub.sink.complete) sub.sink.complete();
          break;
        }
        default:
          break;
      }
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      acked = false;
      for (const sub of subs.values()) sub.active = false;
      if (closed) return setState('closed');
      // 4403: the token was refused or has expired; a fresh one may be
      // given by the host's getToken(), so this is retried like the rest.
      setState('reconnecting', event.code === 4403 ? 'UNAUTHENTICATED' : undefined);
      schedule();
    };
    ws.onerror = () => {};
  }

  /**
   * Starts a subscription; `variables` is a function, called on every
   * (re)start. Returns a function that stops it.
   */
  function subscribe(query, variables, sink) {
    const id = String(nextId++);
    subs.set(id, { query, variables, sink, active: false });
    if (acked) start(id);
    else connect();
    return () => {
      const sub = subs.get(id);
      subs.delete(id);
      if (sub && sub.active) send({ id, type: 'complete' });
    };
  }

  /** Reconnects at once (the browser said it is online again). */
  function retryNow() {
    if (closed) return;
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    attempt = 0;
    if (!socket && subs.size) connect();
  }

  // The browser knows first when the network goes (a sleeping laptop, a
  // tunnel): drop the socket rather than wait for it to time out, and come
  // back as soon as the network does. Each start resumes with fresh
  // variables, so nothing is lost on the way.
  function wentOffline() {
    if (closed) return;
    const ws = socket;
    socket = null;
    acked = false;
    for (const sub of subs.values()) sub.active = false;
    if (ws) ws.close(1000);
    setState('reconnecting');
  }
  globalThis.addEventListener('offline', wentOffline);
  globalThis.addEventListener('online', retryNow);

  function close() {
    globalThis.removeEventListener('offline', wentOffline);
    globalThis.removeEventListener('online', retryNow);
    closed = true;
    if (timer) clearTimeout(timer);
    if (socket) socket.close(1000);
    socket = null;
    subs.clear();
  }

  return { request, subscribe, retryNow, close, get state() { return state; } };
}

/** A message id for optimistic sends: the same one is used for every retry. */
function newClientMessageId() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `m-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** Waits `ms`, or less when the browser comes back online. */
function pause(ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      globalThis.removeEventListener('online', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    globalThis.addEventListener('online', done);
  });
}

/** Error codes a retry cannot change. */
function permanent(code) {
  return ['FORBIDDEN', 'NOT_FOUND', 'BAD_USER_INPUT', 'CONFLICT'].includes(code);
}

/**
 * Sends one message until the server acknowledges it, with the same
 * clientMessageId every time (the server stores it once). Resolves with the
 * stored message; rejects only on a refusal no retry can change.
 */
async function sendReliably(client, mutation, input, { onRetry = () => {} } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const data = await client.request(mutation, { input });
      return data.sendMessage;
    } catch (e) {
      if (permanent(e.code)) throw e;
      onRetry(e);
      await pause(Math.min(10000, 400 * 2 ** attempt));
    }
  }
}

/** Escapes nothing: every caller sets textContent, never innerHTML. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = v;
    else if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** "2 min", "45 s": a short duration for wait times. */
function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Local time of day, for message stamps. */
function clock(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** A message as both UIs select it. */
const MESSAGE_FIELDS = 'id seq sender senderId body clientMessageId createdAt status kind attachment { filename size url } article { url title }';

/** The operations the widget and the console both run on a session. */
const SESSION_OPS = {
  send: `mutation($input: SendMessageInput!) { sendMessage(input: $input) { ${MESSAGE_FIELDS} } }`,
  read: 'mutation($id: ID!, $seq: Int!) { markRead(sessionId: $id, seq: $seq) { id } }',
  typing: 'mutation($id: ID!, $typing: Boolean!) { setTyping(sessionId: $id, typing: $typing) }',
  end: (sessionFields) => `mutation($id: ID!) { endSession(sessionId: $id) { ${sessionFields} } }`,
  /**
   * The live feed, resumed after `$after`; `sessionFields` as the caller
   * shows a session; `more` selects further events (staff's NoteAdded).
   */
  events: (sessionFields, more = '') => `subscription($id: ID!, $after: Int) { sessionEvents(sessionId: $id, afterSeq: $after) {
  __typename
  ... on MessagePosted { message { ${MESSAGE_FIELDS} } }
  ... on TypingChanged { sender typing }
  ... on ReceiptUpdated { reader deliveredSeq readSeq }
  ... on SessionChanged { session { ${sessionFields} } }
  ... on CaughtUp { seq }
  ${more}
} }`,
};

/**
 * The "typing" flag one side sends: on at the first key, off after a pause
 * or when the message goes, and sent again now and then while typing goes
 * on, as a flag sent before the other side was listening is not stored.
 */
class TypingSignal {
  /** `send(typing)` tells the server; errors are the caller's to ignore. */
  constructor(send, { idleMs = 2500, refreshMs = 4000 } = {}) {
    this.send = send;
    this.idleMs = idleMs;
    this.refreshMs = refreshMs;
    this.on = false;
    this.sentAt = 0;
    this.timer = null;
  }

  typed() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.stop(), this.idleMs);
    if (!this.on || Date.now() - this.sentAt > this.refreshMs) {
      this.on = true;
      this.sentAt = Date.now();
      this.send(true);
    }
  }

  stop() {
    clearTimeout(this.timer);
    if (!this.on) return;
    this.on = false;
    this.send(false);
  }
}

/** What a tick says. */
const TICKS = { sending: 'Sending…', sent: '✓ Sent', delivered: '✓✓ Delivered', read: '✓✓ Read' };

/**
 * One session's transcript as the page holds it: messages by seq (nothing
 * doubled however often they arrive: replay, live, the mutation's answer),
 * pending sends by clientMessageId until the server has them, and the
 * receipts of the other side.
 */
class Transcript {
  constructor() {
    this.bySeq = new Map();
    this.pending = new Map(); // clientMessageId -> { body, failed }
    // Where the live feed resumes: the highest seq that came in order (the
    // feed, or a page of history up to the newest). A send's own answer
    // does not move it: it may overtake messages the feed has yet to bring
    // (the other side's, sent while this page was offline), and resuming
    // after it would skip them for good.
    this.lastSeq = 0;
    this.firstSeq = null;
    this.delivered = 0; // the other side's receipts
    this.read = 0;
  }

  /** Takes a message; `inOrder` false for one that may have overtaken others (a send's answer). */
  add(message, { inOrder = true } = {}) {
    if (inOrder && message.seq > this.lastSeq) this.lastSeq = message.seq;
    if (this.bySeq.has(message.seq)) {
      const old = this.bySeq.get(message.seq);
      if (old.status !== message.status) this.bySeq.set(message.seq, { ...old, status: message.status });
      return false;
    }
    this.bySeq.set(message.seq, message);
    if (message.clientMessageId) this.pending.delete(message.clientMessageId);
    if (this.firstSeq === null || message.seq < this.firstSeq) this.firstSeq = message.seq;
    return true;
  }

  ordered() {
    return [...this.bySeq.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Takes the other side's receipt (`reader` is who that is); whether it moved. */
  receipt(event, reader) {
    if (event.reader !== reader) return false;
    const before = [this.delivered, this.read];
    this.delivered = Math.max(this.delivered, event.deliveredSeq);
    this.read = Math.max(this.read, event.readSeq);
    return before[0] !== this.delivered || before[1] !== this.read;
  }

  /** What a message of `mine` shows: sending, sent, delivered or read. */
  tick(message) {
    if (message.seq <= this.read || message.status === 'READ') return 'read';
    if (message.seq <= this.delivered || message.status === 'DELIVERED') return 'delivered';
    return 'sent';
  }
}

/** "12 KB": a file's size. */
function bytes(n) {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${Math.round(n / 1024)} KB` : `${(n / 1048576).toFixed(1)} MB`;
}

/**
 * A link out of a message. The API gives download links relative to the
 * server when PUBLIC_URL is unset, so they resolve against `base` (the
 * widget lives on another origin). Only http(s) becomes a link: anything
 * else could run script in the page.
 */
function linkTo(url, base, attrs, text) {
  let href = null;
  try {
    const u = new URL(url, base);
    if (u.protocol === 'https:' || u.protocol === 'http:') href = u.href;
  } catch (e) {
    // Shown as text only.
  }
  return el('a', { href, target: '_blank', rel: 'noopener noreferrer', ...attrs, text });
}

/** What a message shows: its text, a file to download, or an article's card. */
function messageContent(m, base) {
  if (m.kind === 'FILE') {
    const a = m.attachment;
    return [
      a ? el('span', { class: 'file', 'data-testid': 'attachment' }, linkTo(a.url, base, { 'data-testid': 'attachment-link', download: a.filename }, a.filename), ` (${bytes(a.size)})`)
        : el('span', { class: 'file', 'data-testid': 'attachment', text: 'A file (not available here)' }),
      m.body ? el('span', { class: 'caption', text: m.body }) : null,
    ];
  }
  if (m.kind === 'ARTICLE' && m.article) {
    let host = '';
    try {
      host = new URL(m.article.url).host;
    } catch (e) {
      // No host line.
    }
    return [el('span', { class: 'card', 'data-testid': 'article-card' },
      el('span', { class: 'kicker', text: 'Article' }), linkTo(m.article.url, base, { 'data-testid': 'article-link' }, m.article.title),
      host ? el('span', { class: 'kicker', text: host }) : null)];
  }
  return [m.body];
}

/**
 * Draws a transcript into `list` (inside `scroller`): messages in seq
 * order, then the sends still pending; stays at the bottom if it was there.
 * `mine` is the viewer's SenderRole (their messages get ticks); `who(m)`
 * names a sender for screen readers; `base` is the server's address, for
 * file links.
 */
function renderTranscript(list, scroller, t, mine, who, base = location.href) {
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
  const rows = t.ordered().map((m) => {
    if (m.sender === 'SYSTEM') return el('li', { class: 'system', 'data-testid': 'system-line', 'data-seq': m.seq, text: m.body });
    const tick = m.sender === mine ? t.tick(m) : null;
    return el('li', { class: `msg${tick ? ' mine' : ''}`, 'data-testid': 'message', 'data-seq': m.seq, 'data-sender': m.sender, 'data-kind': m.kind },
      el('span', { class: 'sr', text: `${who(m)}: ` }), ...messageContent(m, base),
      el('span', { class: 'meta' }, clock(m.createdAt), tick ? el('span', { 'data-testid': 'tick', 'data-tick': tick, text: ` ${TICKS[tick]}` }) : null));
  });
  for (const [cmid, p] of t.pending) {
    rows.push(el('li', { class: `msg mine${p.failed ? ' failed' : ''}`, 'data-testid': 'message', 'data-pending': cmid }, p.body,
      el('span', { class: 'meta', 'data-testid': 'tick', text: p.failed ? `Not sent: ${p.failed}` : TICKS.sending })));
  }
  list.replaceChildren(...rows);
  if (atBottom) scroller.scrollTop = scroller.scrollHeight;
}

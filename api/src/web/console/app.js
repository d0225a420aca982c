// The console: sign-in, the agent's shift, offers, the queue and "my chats".
// Each open chat is a ChatPane (chat.js); admins get the overview (admin.js).

import { createClient, el, duration } from './client.js';
import { ChatPane, SESSION } from './chat.js';
import { Admin } from './admin.js';

const TOKEN_KEY = 'switchboard.token';
const AGENT = 'id name status capacity activeSessionCount';
const Q_ME = `query { me { id role agent { ${AGENT} } } }`;
const Q_MINE = `query { mySessions(first: 50) { nodes { ${SESSION} } } }`;
const Q_QUEUE = `query { queue { ${SESSION} } queueStats { waiting offered active availableAgents freeSlots longestWaitSeconds } }`;
const S_AGENT = `subscription { agentEvents { __typename
  ... on SessionOffered { session { ${SESSION} } expiresAt }
  ... on SessionAssigned { session { ${SESSION} } }
  ... on AgentChanged { agent { ${AGENT} } } } }`;
const S_QUEUE = `subscription { queueEvents { session { id status agent { id } } stats { waiting offered active availableAgents freeSlots longestWaitSeconds } } }`;
const SHIFT = {
  startShift: `mutation { startShift { ${AGENT} } }`,
  requestBreak: `mutation { requestBreak { ${AGENT} } }`,
  endBreak: `mutation { endBreak { ${AGENT} } }`,
  endShift: `mutation { endShift { ${AGENT} } }`,
};
const M_ACCEPT = `mutation($id: ID!) { acceptSession(sessionId: $id) { ${SESSION} } }`;
const M_DECLINE = `mutation($id: ID!) { declineSession(sessionId: $id) { id } }`;
const M_ASSIGN = `mutation($id: ID!, $agent: ID!) { assignSession(sessionId: $id, agentId: $agent) { id } }`;

const STATUS_TEXT = {
  OFFLINE: 'Off shift',
  AVAILABLE: 'Available',
  BREAK_REQUESTED: 'Break requested',
  ON_BREAK: 'On break',
  SHIFT_ENDING: 'Ending shift',
};

const $ = (id) => document.getElementById(id);

/** The token: from a #token= fragment (then removed from the address), else this tab's storage. */
function takeToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const fromHash = hash.get('token');
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

class Console {
  constructor() {
    this.client = null;
    this.me = null;
    this.agent = null;
    this.offers = new Map(); // sessionId -> { session, expiresAt }
    this.panes = new Map(); // sessionId -> ChatPane
    this.current = null;
    this.queue = [];
    this.stats = null;
    this.admin = null;
    this.queueRefresh = null;
    $('signin-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const token = $('token').value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      this.signIn();
    });
    $('sign-out').addEventListener('click', () => this.signOut());
    for (const [id, op] of [['start-shift', 'startShift'], ['request-break', 'requestBreak'], ['end-break', 'endBreak'], ['end-shift', 'endShift']]) {
      $(id).addEventListener('click', () => this.shift(op));
    }
    // Countdowns and wait times: the figures move, the data does not.
    setInterval(() => this.tick(), 1000);
  }

  announce(text) {
    $('announcer').textContent = text;
  }

  showSignIn(error = '') {
    $('signin').hidden = false;
    $('workspace').hidden = true;
    $('shift').hidden = true;
    $('sign-out').hidden = true;
    $('who').textContent = '';
    $('signin-error').textContent = error;
    $('token').focus();
  }

  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  }

  async signIn() {
    if (this.client) this.client.close();
    const token = takeToken();
    if (!token) return this.showSignIn();
    this.client = createClient({
      url: new URL('/graphql', location.href).href,
      token: () => sessionStorage.getItem(TOKEN_KEY),
      onState: (s, detail) => {
        $('connection').textContent = s === 'connected' ? '' : detail === 'UNAUTHENTICATED' ? 'Your token has expired: sign in again.' : 'Reconnecting…';
        $('connection').dataset.state = s;
        if (s === 'connected' && this.queueRefresh === null) this.refreshQueue();
      },
    });
    let me;
    try {
      me = (await this.client.request(Q_ME)).me;
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      return this.showSignIn(e.code === 'UNAUTHENTICATED' ? 'That token is not valid or has expired.' : `Cannot sign in: ${e.message}`);
    }
    if (me.role === 'CUSTOMER') {
      sessionStorage.removeItem(TOKEN_KEY);
      return this.showSignIn('This console is for agents and admins; that is a customer token.');
    }
    this.me = me;
    $('signin').hidden = true;
    $('workspace').hidden = false;
    $('sign-out').hidden = false;
    $('who').textContent = `Signed in as ${(me.agent && me.agent.name) || me.id} (${me.role.toLowerCase()})`;
    if (me.agent) {
      this.agent = me.agent;
      $('shift').hidden = false;
      $('offers-section').hidden = false;
      this.renderShift();
      this.renderOffers();
      this.client.subscribe(S_AGENT, () => ({}), { next: (d) => this.onAgentEvent(d.agentEvents), error: (e) => this.announce(`Agent events stopped: ${e.message}`) });
    } else {
      $('mine-section').hidden = true;
    }
    if (me.role === 'ADMIN') {
      this.admin = new Admin(this.client, (s) => this.openSession(s, { readOnly: true }));
      this.admin.start();
    }
    this.client.subscribe(S_QUEUE, () => ({}), { next: (d) => this.onQueueEvent(d.queueEvents), error: () => {} });
    await Promise.all([this.refreshQueue(), this.loadMine()]);
  }

  // ---- shift ----

  renderShift() {
    const a = this.agent;
    const finishing = a.status === 'BREAK_REQUESTED' || a.status === 'SHIFT_ENDING';
    const n = a.activeSessionCount;
    $('agent-status').textContent = `${STATUS_TEXT[a.status] || a.status}${finishing ? ` — finishing ${n} chat${n === 1 ? '' : 's'}` : ''} · ${n}/${a.capacity} chats`;
    $('agent-status').dataset.status = a.status;
    $('start-shift').hidden = !(a.status === 'OFFLINE');
    $('request-break').hidden = !(a.status === 'AVAILABLE');
    $('end-break').hidden = !(a.status === 'ON_BREAK' || a.status === 'BREAK_REQUESTED');
    $('end-shift').hidden = a.status === 'OFFLINE' || a.status === 'SHIFT_ENDING';
  }

  async shift(op) {
    try {
      this.agent = (await this.client.request(SHIFT[op]))[op];
      this.renderShift();
      this.announce($('agent-status').textContent);
    } catch (e) {
      this.announce(`Could not change your status: ${e.message}`);
    }
  }

  // ---- agent events: offers, assignments, status ----

  onAgentEvent(ev) {
    switch (ev.__typename) {
      case 'SessionOffered':
        this.offers.set(ev.session.id, { session: ev.session, expiresAt: ev.expiresAt });
        this.renderOffers();
        this.announce(`New chat offered${ev.session.subject ? `: ${ev.session.subject}` : ''}`);
        break;
      case 'SessionAssigned':
        this.offers.delete(ev.session.id);
        this.renderOffers();
        this.openSession(ev.session, { focus: !this.current });
        this.announce('A chat was assigned to you.');
        break;
      case 'AgentChanged':
        this.agent = ev.agent;
        this.renderShift();
        break;
      default:
        break;
    }
  }

  renderOffers() {
    const items = [...this.offers.values()].map(({ session: s, expiresAt }) => el('li', { class: 'offer', 'data-testid': 'offer', 'data-session': s.id },
      el('p', {}, el('strong', { text: s.subject || 'New chat' }), ` · customer ${s.customer.id}`),
      expiresAt ? el('p', { class: 'note', 'data-testid': 'offer-countdown', 'data-expires': expiresAt }) : null,
      el('div', { class: 'row' },
        el('button', { type: 'button', 'data-testid': 'accept', 'aria-label': `Accept chat${s.subject ? `: ${s.subject}` : ''}`, text: 'Accept', onclick: () => this.accept(s.id) }),
        el('button', { type: 'button', class: 'secondary', 'data-testid': 'decline', 'aria-label': `Decline chat${s.subject ? `: ${s.subject}` : ''}`, text: 'Decline', onclick: () => this.decline(s.id) }))));
    $('offers').replaceChildren(...(items.length ? items : [el('li', { class: 'note', text: 'No offers.' })]));
    this.tick();
  }

  async accept(id) {
    try {
      const s = (await this.client.request(M_ACCEPT, { id })).acceptSession;
      this.offers.delete(id);
      this.renderOffers();
      this.openSession(s, { focus: true });
      this.refreshQueue();
    } catch (e) {
      this.offers.delete(id);
      this.renderOffers();
      this.refreshQueue();
      this.announce(e.code === 'CONFLICT' ? 'Someone else took that chat first.' : `Could not accept: ${e.message}`);
      this.flash(e.code === 'CONFLICT' ? 'Someone else took that chat first.' : `Could not accept: ${e.message}`);
    }
  }

  async decline(id) {
    this.offers.delete(id);
    this.renderOffers();
    try {
      await this.client.request(M_DECLINE, { id });
    } catch (e) {
      this.flash(`Could not decline: ${e.message}`);
    }
  }

  flash(text) {
    const note = el('p', { class: 'error', role: 'alert', 'data-testid': 'notice', text });
    $('queue-stats').after(note);
    setTimeout(() => note.remove(), 8000);
  }

  // ---- the queue ----

  async refreshQueue() {
    clearTimeout(this.queueRefresh);
    this.queueRefresh = undefined;
    try {
      const data = await this.client.request(Q_QUEUE);
      this.queue = data.queue;
      this.stats = data.queueStats;
      this.renderQueue();
    } catch (e) {
      // The next queue event or reconnect tries again.
    }
  }

  onQueueEvent(ev) {
    this.stats = ev.stats;
    const offer = this.offers.get(ev.session.id);
    // An offer that lapsed, or went to someone else, is gone.
    if (offer && this.me && !(ev.session.status === 'OFFERED' && ev.session.agent && ev.session.agent.id === this.me.id)) {
      this.offers.delete(ev.session.id);
      this.renderOffers();
    }
    // Many events may come at once: one refresh for all of them.
    clearTimeout(this.queueRefresh);
    this.queueRefresh = setTimeout(() => this.refreshQueue(), 150);
    if (this.admin) this.admin.changed();
    this.renderQueue();
  }

  renderQueue() {
    const s = this.stats;
    if (s) {
      $('queue-stats').textContent = `${s.waiting} waiting · ${s.offered} offered · ${s.active} active · ${s.availableAgents} agent${s.availableAgents === 1 ? '' : 's'} available, ${s.freeSlots} free slot${s.freeSlots === 1 ? '' : 's'} · longest wait ${duration(s.longestWaitSeconds)}`;
    }
    const isAdmin = this.me && this.me.role === 'ADMIN';
    const items = this.queue.map((q) => el('li', { class: 'queued', 'data-testid': 'queued', 'data-session': q.id },
      el('p', {}, el('strong', { text: q.subject || 'Chat' }), ` · ${q.priority.toLowerCase()} · ${q.status === 'OFFERED' ? `offered to ${(q.agent && q.agent.name) || 'an agent'}` : 'waiting'}`),
      el('p', { class: 'note', 'data-testid': 'wait', 'data-since': q.queuedAt || q.createdAt }),
      el('div', { class: 'row' },
        this.agent ? el('button', { type: 'button', 'data-testid': 'take', 'aria-label': `Take chat${q.subject ? `: ${q.subject}` : ''}`, text: 'Take', onclick: () => this.accept(q.id) }) : null,
        isAdmin && this.admin ? this.admin.assignControl(q, (agentId) => this.assign(q.id, agentId)) : null)));
    $('queue').replaceChildren(...(items.length ? items : [el('li', { class: 'note', text: 'The queue is empty.' })]));
    this.tick();
  }

  async assign(id, agentId) {
    try {
      await this.client.request(M_ASSIGN, { id, agent: agentId });
      this.announce('Assigned.');
      this.refreshQueue();
    } catch (e) {
      this.flash(e.code === 'CONFLICT' ? 'That agent has no free slot, or the chat was taken.' : `Could not assign: ${e.message}`);
    }
  }

  tick() {
    const now = Date.now();
    for (const node of document.querySelectorAll('[data-testid="offer-countdown"]')) {
      const left = Math.ceil((Date.parse(node.dataset.expires) - now) / 1000);
      node.textContent = left > 0 ? `Expires in ${left} s` : 'Expired';
      if (left <= 0) {
        // Lapsed: the session moves on to the next agent.
        const id = node.closest('[data-session]').dataset.session;
        if (this.offers.delete(id)) {
          this.announce('An offer lapsed.');
          setTimeout(() => this.renderOffers());
        }
      }
    }
    for (const node of document.querySelectorAll('[data-testid="wait"]')) {
      node.textContent = `Waiting ${duration((now - Date.parse(node.dataset.since)) / 1000)}`;
    }
  }

  // ---- my chats ----

  async loadMine() {
    if (!this.agent) return;
    try {
      const data = await this.client.request(Q_MINE);
      for (const s of data.mySessions.nodes) {
        if (s.agent && s.agent.id === this.me.id) {
          if (s.status === 'ACTIVE') this.openSession(s, { focus: false });
          else if (s.status === 'OFFERED' && !this.offers.has(s.id)) {
            this.offers.set(s.id, { session: s, expiresAt: null });
            this.renderOffers();
          }
        }
      }
      this.renderMine();
    } catch (e) {
      this.flash(`Could not load your chats: ${e.message}`);
    }
  }

  openSession(session, { focus = true, readOnly = false } = {}) {
    let pane = this.panes.get(session.id);
    if (!pane) {
      pane = new ChatPane(this.client, session, {
        me: this.me,
        readOnly,
        onChange: () => this.renderMine(),
        onGone: (why) => this.closePane(session.id, why),
        announce: (t) => this.announce(t),
        previousChats: (customerId) => this.previousChats(customerId, session.id),
      });
      this.panes.set(session.id, pane);
      $('panes').append(pane.root);
    }
    if (focus || !this.current) this.select(session.id, focus);
    this.renderMine();
    return pane;
  }

  closePane(id, why) {
    const pane = this.panes.get(id);
    if (!pane) return;
    pane.stop();
    pane.root.remove();
    this.panes.delete(id);
    if (why) this.announce(why);
    if (this.current === id) {
      this.current = null;
      const next = this.panes.keys().next();
      if (!next.done) this.select(next.value, false);
    }
    this.renderMine();
  }

  select(id, focus) {
    this.current = id;
    for (const [sid, pane] of this.panes) pane.setVisible(sid === id);
    $('no-chat').hidden = this.panes.size > 0;
    if (focus) this.panes.get(id).focus();
    this.renderMine();
  }

  renderMine() {
    const items = [...this.panes.values()].filter((p) => !p.readOnly).map((p) => {
      const unread = p.unread();
      return el('li', {}, el('button', {
        type: 'button', class: `chat-tab${p.session.id === this.current ? ' current' : ''}`, 'data-testid': 'my-chat', 'data-session': p.session.id,
        'aria-current': p.session.id === this.current ? 'true' : null, onclick: () => this.select(p.session.id, true),
      }, `${p.session.subject || 'Chat'} · ${p.session.customer.id}${p.session.status === 'ENDED' ? ' · ended' : ''}`,
      unread ? el('span', { class: 'badge', 'data-testid': 'unread', text: String(unread), 'aria-label': `${unread} unread` }) : null));
    });
    $('my-chats').replaceChildren(...(items.length ? items : [el('li', { class: 'note', text: 'No chats.' })]));
    $('no-chat').hidden = this.panes.size > 0;
  }

  /** The customer's earlier chats this agent can see. */
  async previousChats(customerId, exceptId) {
    const data = await this.client.request(Q_MINE);
    return data.mySessions.nodes.filter((s) => s.customer.id === customerId && s.id !== exceptId);
  }
}

const app = new Console();
app.signIn();

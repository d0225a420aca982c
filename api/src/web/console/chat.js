// One chat in the console: the transcript with scroll back, typing both
// ways, read marks, transfer, end, and the customer pane.

import { el, newClientMessageId, sendReliably, renderTranscript, Transcript, TypingSignal, MESSAGE_FIELDS, SESSION_OPS } from './client.js';

export const SESSION = 'id status subject priority createdAt queuedAt endedAt endReason lastSeq customer { id } agent { id name }';
const PAGE = 30;
const Q_PAGE = `query($id: ID!, $last: Int!, $before: String) { session(id: $id) { ${SESSION} messages(last: $last, before: $before) { nodes { ${MESSAGE_FIELDS} } pageInfo { hasPreviousPage } } } }`;
const Q_AGENTS = 'query { agents { id name status activeSessionCount capacity online } }';
const M_END = SESSION_OPS.end(SESSION);
const M_TRANSFER = `mutation($id: ID!, $to: ID) { transferSession(sessionId: $id, toAgentId: $to) { ${SESSION} } }`;
const S_EVENTS = SESSION_OPS.events(SESSION);

let paneCount = 0;

export class ChatPane {
  /**
   * @param client  the console's GraphQL client
   * @param session the session, as SESSION selects it
   * @param options { me, readOnly, onChange(), onGone(why), announce(text), previousChats(customerId) }
   */
  constructor(client, session, options) {
    this.client = client;
    this.session = session;
    this.options = options;
    this.readOnly = options.readOnly;
    this.t = new Transcript();
    this.markedRead = 0;
    this.visible = false;
    this.typing = new TypingSignal((typing) => this.client.request(SESSION_OPS.typing, { id: this.session.id, typing }).catch(() => {}));
    this.hasEarlier = false;
    this.loadingEarlier = false;
    this.stopFeed = null;
    const n = ++paneCount;
    this.ids = { title: `chat-${n}-title`, input: `chat-${n}-input`, transfer: `chat-${n}-transfer` };
    this.build();
    this.start();
  }

  build() {
    const s = this.session;
    this.title = el('h2', { id: this.ids.title, tabindex: '-1' });
    this.statusEl = el('p', { class: 'note', 'data-testid': 'chat-status' });
    this.list = el('ol', { class: 'messages', 'data-testid': 'messages' });
    this.earlier = el('button', { type: 'button', class: 'secondary', 'data-testid': 'load-earlier', hidden: true, text: 'Load earlier messages', onclick: () => this.loadEarlier() });
    this.scroller = el('div', { class: 'scroller', tabindex: '0', role: 'region', 'aria-label': 'Transcript',
      onscroll: () => { if (this.scroller.scrollTop < 40) this.loadEarlier(); } }, this.earlier, this.list);
    this.typingEl = el('p', { class: 'typing', 'data-testid': 'typing' });
    this.input = el('textarea', { id: this.ids.input, 'data-testid': 'message-input', rows: 2, maxlength: 4000,
      oninput: () => this.typing.typed(), onkeydown: (e) => this.key(e) });
    // The canned-response picker ("/" in the composer, with a preview of the
    // filled text) hooks in here once the API has cannedResponses.
    this.composer = el('form', { class: 'composer', 'data-testid': 'composer', onsubmit: (e) => { e.preventDefault(); this.sendTyped(); } },
      el('label', { for: this.ids.input, text: 'Reply' }), this.input,
      el('button', { type: 'submit', 'data-testid': 'send', text: 'Send' }));
    this.transferSelect = el('select', { id: this.ids.transfer, 'data-testid': 'transfer-to', onfocus: () => this.loadAgents() },
      el('option', { value: '', text: 'Back to the queue' }));
    this.controls = el('div', { class: 'row controls' },
      el('label', { for: this.ids.transfer, text: 'Transfer to' }), this.transferSelect,
      el('button', { type: 'button', class: 'secondary', 'data-testid': 'transfer', text: 'Transfer', onclick: () => this.transfer() }),
      el('button', { type: 'button', class: 'danger', 'data-testid': 'end-chat', text: 'End chat', onclick: () => this.end() }));
    this.closeButton = el('button', { type: 'button', class: 'secondary', 'data-testid': 'close-chat', text: 'Close', hidden: true, onclick: () => this.options.onGone('') });
    // The customer pane: who this is and their earlier chats. The customer
    // context (customerContext) and notes go here once the API has them.
    this.previous = el('ul', { class: 'list', 'data-testid': 'previous-chats' });
    this.customerPane = el('aside', { class: 'customer', 'aria-label': 'Customer', 'data-testid': 'customer-pane' },
      el('h3', { text: 'Customer' }),
      el('p', { 'data-testid': 'customer-id', text: s.customer.id }),
      el('h4', { text: 'Earlier chats' }), this.previous);
    this.root = el('article', { class: 'pane', 'data-testid': 'chat-pane', 'data-session': s.id, 'aria-labelledby': this.ids.title, hidden: true },
      el('div', { class: 'pane-main' },
        el('header', {}, this.title, this.statusEl, this.closeButton),
        this.scroller, this.typingEl,
        this.readOnly ? null : this.composer,
        this.readOnly ? null : this.controls),
      this.customerPane);
    this.render();
  }

  async start() {
    // The newest page first, then the live feed from just after it.
    try {
      await this.loadPage(null);
    } catch (e) {
      this.options.announce(`Could not load the chat: ${e.message}`);
    }
    const t = this.t;
    this.stopFeed = this.client.subscribe(S_EVENTS, () => ({ id: this.session.id, after: t.lastSeq }), {
      next: (d) => this.onEvent(d.sessionEvents),
      error: (e) => {
        this.stopFeed = null;
        // Handed on (transfer) or no longer ours: the pane goes.
        if (e.code === 'FORBIDDEN' && !this.readOnly) this.options.onGone('A chat was handed on.');
        else this.statusEl.textContent = `Live updates stopped: ${e.message}`;
      },
    });
    this.loadPrevious();
  }

  async loadPage(before) {
    const data = await this.client.request(Q_PAGE, { id: this.session.id, last: PAGE, before });
    if (!data.session) return;
    const { messages, ...session } = data.session;
    if (before === null) this.session = { ...this.session, ...session };
    for (const m of messages.nodes) this.t.add(m);
    this.hasEarlier = messages.pageInfo.hasPreviousPage;
    this.render();
  }

  async loadEarlier() {
    if (!this.hasEarlier || this.loadingEarlier || this.t.firstSeq === null) return;
    this.loadingEarlier = true;
    const height = this.scroller.scrollHeight;
    try {
      await this.loadPage(String(this.t.firstSeq));
      // Keep the message that was at the top where it was.
      this.scroller.scrollTop += this.scroller.scrollHeight - height;
    } catch (e) {
      this.options.announce(`Could not load earlier messages: ${e.message}`);
    } finally {
      this.loadingEarlier = false;
    }
  }

  async loadPrevious() {
    try {
      const chats = await this.options.previousChats(this.session.customer.id);
      this.previous.replaceChildren(...(chats.length
        ? chats.map((c) => el('li', { text: `${c.subject || 'Chat'} · ${new Date(c.createdAt).toLocaleDateString()} · ${c.status.toLowerCase()}` }))
        : [el('li', { class: 'note', text: 'None you handled.' })]));
    } catch (e) {
      this.previous.replaceChildren(el('li', { class: 'note', text: 'Not available.' }));
    }
  }

  onEvent(ev) {
    const t = this.t;
    switch (ev.__typename) {
      case 'MessagePosted': {
        if (!t.add(ev.message)) break;
        if (ev.message.sender === 'CUSTOMER') {
          this.setTyping(false);
          if (this.caughtUp) this.options.announce(`${this.session.customer.id}: ${ev.message.body}`);
        }
        this.render();
        this.markRead();
        this.options.onChange();
        break;
      }
      case 'TypingChanged':
        if (ev.sender === 'CUSTOMER') this.setTyping(ev.typing);
        break;
      case 'ReceiptUpdated':
        if (t.receipt(ev, 'CUSTOMER')) this.render();
        break;
      case 'SessionChanged':
        this.session = { ...this.session, ...ev.session };
        this.render();
        this.options.onChange();
        break;
      case 'CaughtUp':
        this.caughtUp = true;
        // Live from here on (ephemeral events such as typing reach it now).
        this.root.dataset.live = 'true';
        this.markRead();
        break;
      default:
        break;
    }
  }

  setTyping(on) {
    clearTimeout(this.typingTimer);
    this.typingEl.textContent = on ? 'The customer is typing…' : '';
    if (on) this.typingTimer = setTimeout(() => this.setTyping(false), 10000);
  }

  /** Customer messages this agent has not read. */
  unread() {
    let n = 0;
    for (const m of this.t.bySeq.values()) if (m.sender === 'CUSTOMER' && m.seq > this.markedRead && m.status !== 'READ') n += 1;
    return n;
  }

  setVisible(on) {
    this.visible = on;
    this.root.hidden = !on;
    if (on) {
      this.scroller.scrollTop = this.scroller.scrollHeight;
      this.markRead();
    }
  }

  focus() {
    (this.readOnly || this.session.status === 'ENDED' ? this.title : this.input).focus();
  }

  async markRead() {
    if (!this.visible || this.readOnly || document.visibilityState === 'hidden') return;
    let seq = 0;
    for (const m of this.t.bySeq.values()) if (m.sender === 'CUSTOMER' && m.seq > seq && m.status !== 'READ') seq = m.seq;
    if (seq <= this.markedRead) return;
    this.markedRead = seq;
    this.options.onChange();
    try {
      await this.client.request(SESSION_OPS.read, { id: this.session.id, seq });
    } catch (e) {
      this.markedRead = 0;
    }
  }

  render() {
    const s = this.session;
    const ended = s.status === 'ENDED';
    this.title.textContent = `${s.subject || 'Chat'} — ${s.customer.id}`;
    this.statusEl.textContent = ended ? 'Ended' : s.status === 'ACTIVE' ? `Active${s.agent ? ` with ${s.agent.name}` : ''}` : s.status.toLowerCase();
    this.statusEl.dataset.status = s.status;
    this.composer.hidden = ended;
    this.controls.hidden = ended;
    this.closeButton.hidden = !ended && !this.readOnly;
    this.earlier.hidden = !this.hasEarlier;
    renderTranscript(this.list, this.scroller, this.t, 'AGENT', (m) => (m.sender === 'AGENT' ? 'Agent' : 'Customer'));
  }

  key(e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.sendTyped();
    }
  }

  sendTyped() {
    const body = this.input.value.trim();
    if (!body) return;
    this.input.value = '';
    this.typing.stop();
    this.send(body);
  }

  async send(body) {
    const clientMessageId = newClientMessageId();
    this.t.pending.set(clientMessageId, { body, failed: null });
    this.render();
    this.scroller.scrollTop = this.scroller.scrollHeight;
    try {
      this.t.add(await sendReliably(this.client, SESSION_OPS.send, { sessionId: this.session.id, body, clientMessageId }), { inOrder: false });
    } catch (e) {
      const p = this.t.pending.get(clientMessageId);
      if (p) p.failed = e.message;
    }
    this.render();
  }

  async loadAgents() {
    try {
      const { agents } = await this.client.request(Q_AGENTS);
      const chosen = this.transferSelect.value;
      const others = agents.filter((a) => !this.options.me || a.id !== this.options.me.id);
      this.transferSelect.replaceChildren(el('option', { value: '', text: 'Back to the queue' }),
        ...others.map((a) => el('option', { value: a.id, text: `${a.name} (${a.status.toLowerCase()}, ${a.activeSessionCount}/${a.capacity})` })));
      this.transferSelect.value = chosen;
    } catch (e) {
      // The queue is still there to transfer to.
    }
  }

  async transfer() {
    const to = this.transferSelect.value || null;
    try {
      await this.client.request(M_TRANSFER, { id: this.session.id, to });
      this.options.onGone(to ? 'The chat was transferred.' : 'The chat went back to the queue.');
    } catch (e) {
      this.options.announce(`Could not transfer: ${e.message}`);
      this.statusEl.textContent = `Could not transfer: ${e.message}`;
    }
  }

  async end() {
    try {
      const s = (await this.client.request(M_END, { id: this.session.id })).endSession;
      this.onEvent({ __typename: 'SessionChanged', session: s });
      this.title.focus();
    } catch (e) {
      this.statusEl.textContent = `Could not end: ${e.message}`;
    }
  }

  stop() {
    if (this.stopFeed) this.stopFeed();
    this.stopFeed = null;
    clearTimeout(this.typingTimer);
    clearTimeout(this.typing.timer);
  }
}

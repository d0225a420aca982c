// One chat in the console: the transcript with scroll back, typing both
// ways, read marks, canned responses ("/" in the reply box), internal
// notes, transfer, end, convert to ticket, and the customer pane (the
// shop's context on the customer, their earlier chats).

import { el, newClientMessageId, sendReliably, renderTranscript, Transcript, TypingSignal, MESSAGE_FIELDS, SESSION_OPS } from './client.js';

export const SESSION = 'id status subject priority createdAt queuedAt endedAt endReason lastSeq customer { id } agent { id name }';
const PAGE = 30;
const Q_PAGE = `query($id: ID!, $last: Int!, $before: String) { session(id: $id) { ${SESSION} messages(last: $last, before: $before) { nodes { ${MESSAGE_FIELDS} } pageInfo { hasPreviousPage } } } }`;
const Q_SESSION = `query($id: ID!) { session(id: $id) { ${SESSION} } }`;
const Q_AGENTS = 'query { agents { id name status activeSessionCount capacity online } }';
const M_END = SESSION_OPS.end(SESSION);
const M_TRANSFER = `mutation($id: ID!, $to: ID) { transferSession(sessionId: $id, toAgentId: $to) { ${SESSION} } }`;
const NOTE = 'id authorId body createdAt';
const TICKET = 'ticket { externalId url }';
const S_EVENTS = SESSION_OPS.events(SESSION, `... on NoteAdded { note { ${NOTE} } }`);
const Q_EXTRA = `query($id: ID!) { session(id: $id) { id notes { ${NOTE} } ${TICKET} } }`;
// Apart: the provider may take up to CONTEXT_TIMEOUT_MS, the rest must not wait for it.
const Q_CONTEXT = 'query($id: ID!) { session(id: $id) { id customerContext { data error } } }';
const Q_CANNED = 'query($q: String) { cannedResponses(search: $q) { id shortCode title } }';
const Q_RENDER = 'query($id: ID!, $session: ID!) { renderCannedResponse(id: $id, sessionId: $session) { text unresolved } }';
const M_NOTE = `mutation($id: ID!, $body: String!) { addNote(sessionId: $id, body: $body) { ${NOTE} } }`;
const M_TICKET = `mutation($id: ID!) { convertToTicket(sessionId: $id) { id ${TICKET} } }`;
const CONTEXT_ERRORS = {
  NOT_CONFIGURED: 'No context provider is configured.',
  TIMEOUT: 'The shop did not answer in time.',
  UNAVAILABLE: 'The shop\'s systems are unavailable.',
  BAD_RESPONSE: 'The shop answered something unreadable.',
};

/** A context value as one line of text: nested objects flattened, arrays listed. */
function contextText(v) {
  if (v === null || v === undefined) return '—';
  if (Array.isArray(v)) return v.map(contextText).join('; ');
  if (typeof v === 'object') return Object.values(v).map(contextText).join(' · ');
  return String(v);
}

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
    this.ids = { title: `chat-${n}-title`, input: `chat-${n}-input`, transfer: `chat-${n}-transfer`, canned: `chat-${n}-canned`, help: `chat-${n}-canned-help`, note: `chat-${n}-note` };
    this.notes = new Map(); // id -> note: the feed may bring one again on resume
    this.canned = []; // the picker's choices
    this.active = -1;
    this.rendered = new Map(); // canned id -> { text, unresolved }, for this session
    this.ticket = null;
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
      'aria-describedby': this.ids.help, oninput: () => this.typed(), onkeydown: (e) => this.key(e), onblur: () => this.closePicker() });
    // "/" at the start of the reply box searches canned responses; the
    // highlighted one is previewed filled in for this session, and choosing
    // it puts that text in the box, to edit or send.
    this.cannedList = el('ul', { id: this.ids.canned, class: 'canned', role: 'listbox', 'aria-label': 'Canned responses', 'data-testid': 'canned-list' });
    this.preview = el('p', { class: 'preview', 'data-testid': 'canned-preview' });
    this.picker = el('div', { class: 'picker', 'data-testid': 'canned-picker', hidden: true }, this.cannedList,
      el('p', { class: 'note', text: 'Preview' }), this.preview);
    this.composer = el('form', { class: 'composer', 'data-testid': 'composer', onsubmit: (e) => { e.preventDefault(); this.sendTyped(); } },
      el('label', { for: this.ids.input, text: 'Reply' }), this.input,
      el('button', { type: 'submit', 'data-testid': 'send', text: 'Send' }),
      el('p', { class: 'note hint', id: this.ids.help, text: 'Type / for canned responses (↑ ↓ to choose, Enter to use, Esc to close).' }),
      this.picker);
    this.transferSelect = el('select', { id: this.ids.transfer, 'data-testid': 'transfer-to', onfocus: () => this.loadAgents() },
      el('option', { value: '', text: 'Back to the queue' }));
    this.controls = el('div', { class: 'row controls' },
      el('label', { for: this.ids.transfer, text: 'Transfer to' }), this.transferSelect,
      el('button', { type: 'button', class: 'secondary', 'data-testid': 'transfer', text: 'Transfer', onclick: () => this.transfer() }),
      el('button', { type: 'button', class: 'danger', 'data-testid': 'end-chat', text: 'End chat', onclick: () => this.end() }));
    this.closeButton = el('button', { type: 'button', class: 'secondary', 'data-testid': 'close-chat', text: 'Close', hidden: true, onclick: () => this.options.onGone('') });
    this.ticketButton = el('button', { type: 'button', class: 'secondary', 'data-testid': 'convert-ticket', text: 'Convert to ticket', onclick: () => this.convert() });
    this.ticketEl = el('p', { class: 'note', 'data-testid': 'ticket', role: 'status' });
    // The customer pane: who this is, what the shop knows of them, their
    // earlier chats; and the notes colleagues leave, which the customer
    // never sees.
    this.previous = el('ul', { class: 'list', 'data-testid': 'previous-chats' });
    this.context = el('div', { 'data-testid': 'customer-context', text: 'Loading…' });
    this.noteList = el('ul', { class: 'list notes', 'data-testid': 'notes' });
    this.noteInput = el('textarea', { id: this.ids.note, 'data-testid': 'note-input', rows: 2, maxlength: 4000 });
    this.customerPane = el('aside', { class: 'customer', 'aria-label': 'Customer', 'data-testid': 'customer-pane' },
      el('h3', { text: 'Customer' }),
      el('p', { 'data-testid': 'customer-id', text: s.customer.id }),
      el('h4', { text: 'What the shop knows' }), this.context,
      el('h4', { text: 'Earlier chats' }), this.previous,
      el('h4', { text: 'Internal notes' }), this.noteList,
      el('form', { class: 'note-form', onsubmit: (e) => { e.preventDefault(); this.addNote(); } },
        el('label', { for: this.ids.note, text: 'New note (agents only)' }), this.noteInput,
        el('button', { type: 'submit', class: 'secondary', 'data-testid': 'add-note', text: 'Add note' })));
    this.root = el('article', { class: 'pane', 'data-testid': 'chat-pane', 'data-session': s.id, 'aria-labelledby': this.ids.title, hidden: true },
      el('div', { class: 'pane-main' },
        el('header', {}, this.title, this.statusEl, this.closeButton, this.ticketButton, this.ticketEl),
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
    this.loadExtra();
    this.loadContext();
  }

  async loadExtra() {
    try {
      const { session } = await this.client.request(Q_EXTRA, { id: this.session.id });
      if (!session) return;
      for (const n of session.notes) this.notes.set(n.id, n);
      this.ticket = session.ticket;
      this.renderNotes();
      this.render();
    } catch (e) {
      this.noteList.replaceChildren(el('li', { class: 'note', text: `Notes not available: ${e.message}` }));
    }
  }

  async loadContext() {
    let c;
    try {
      c = (await this.client.request(Q_CONTEXT, { id: this.session.id })).session;
      c = c && c.customerContext;
    } catch (e) {
      c = { error: e.message };
    }
    if (!c) return this.context.replaceChildren(el('p', { class: 'note', text: 'Not available to you.' }));
    if (c.error || !c.data || typeof c.data !== 'object') {
      this.context.dataset.error = c.error || 'BAD_RESPONSE';
      return this.context.replaceChildren(el('p', { class: 'note', text: CONTEXT_ERRORS[c.error] || `Not available: ${c.error}` }));
    }
    this.context.replaceChildren(el('dl', { class: 'context' }, ...Object.entries(c.data).flatMap(([k, v]) => [
      el('dt', { text: k }), el('dd', { text: contextText(v) })])));
  }

  renderNotes() {
    const me = this.options.me && this.options.me.id;
    const notes = [...this.notes.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    this.noteList.replaceChildren(...(notes.length ? notes.map((n) => el('li', { class: 'note-item', 'data-testid': 'note' },
      el('span', { class: 'note', text: `${n.authorId === me ? 'You' : n.authorId} · ${new Date(n.createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}` }),
      el('span', { class: 'body', text: n.body })))
      : [el('li', { class: 'note', text: 'No notes.' })]));
  }

  async addNote() {
    const body = this.noteInput.value.trim();
    if (!body) return;
    try {
      const n = (await this.client.request(M_NOTE, { id: this.session.id, body })).addNote;
      this.noteInput.value = '';
      this.notes.set(n.id, n);
      this.renderNotes();
      this.options.announce('Note added.');
    } catch (e) {
      this.options.announce(`Could not add the note: ${e.message}`);
      this.statusEl.textContent = `Could not add the note: ${e.message}`;
    }
  }

  async convert() {
    this.ticketButton.disabled = true;
    this.ticketEl.textContent = 'Handing the chat to the ticket system…';
    try {
      this.ticket = (await this.client.request(M_TICKET, { id: this.session.id })).convertToTicket.ticket;
      this.options.announce(`Ticket ${this.ticket.externalId} created.`);
    } catch (e) {
      this.ticketEl.textContent = `No ticket: ${e.message}`;
    }
    this.ticketButton.disabled = false;
    this.render();
  }

  // ---- canned responses ----

  typed() {
    const v = this.input.value;
    // A search is not a reply being written: the customer is not told.
    if (v.startsWith('/') && !v.includes('\n')) {
      this.typing.stop();
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.searchCanned(v.slice(1).trim()), 120);
    } else {
      this.closePicker();
      this.typing.typed();
    }
  }

  async searchCanned(q) {
    let found;
    try {
      found = (await this.client.request(Q_CANNED, { q: q || null })).cannedResponses;
    } catch (e) {
      found = [];
    }
    // Typed on meanwhile, or chosen: this answer is stale.
    if (this.input.value.slice(1).trim() !== q || !this.input.value.startsWith('/')) return;
    this.canned = found;
    this.active = found.length ? 0 : -1;
    this.picker.hidden = false;
    this.input.setAttribute('aria-controls', this.ids.canned);
    this.renderPicker();
  }

  renderPicker() {
    this.cannedList.replaceChildren(...(this.canned.length ? this.canned.map((c, i) => el('li', {
      id: `${this.ids.canned}-${i}`, role: 'option', class: 'option', 'data-testid': 'canned-option', 'data-short-code': c.shortCode,
      'aria-selected': String(i === this.active),
      onmousedown: (e) => e.preventDefault(), // the reply box keeps the focus
      onclick: () => this.choose(i),
    }, el('strong', { text: `/${c.shortCode}` }), ` ${c.title}`))
      : [el('li', { class: 'note', text: 'No canned response matches.' })]));
    if (this.active >= 0) this.input.setAttribute('aria-activedescendant', `${this.ids.canned}-${this.active}`);
    else this.input.removeAttribute('aria-activedescendant');
    this.showPreview();
  }

  /** The active choice filled in for this session (asked once per response). */
  async filled(c) {
    if (!this.rendered.has(c.id)) {
      this.rendered.set(c.id, this.client.request(Q_RENDER, { id: c.id, session: this.session.id }).then((d) => d.renderCannedResponse));
    }
    try {
      return await this.rendered.get(c.id);
    } catch (e) {
      this.rendered.delete(c.id);
      throw e;
    }
  }

  async showPreview() {
    const c = this.canned[this.active];
    if (!c) return this.preview.replaceChildren();
    try {
      const r = await this.filled(c);
      if (this.canned[this.active] !== c) return;
      this.preview.replaceChildren(r.text);
      if (r.unresolved.length) this.preview.append(el('span', { class: 'note', 'data-testid': 'unresolved', text: ` (no value for ${r.unresolved.join(', ')})` }));
    } catch (e) {
      this.preview.textContent = `Cannot fill it in: ${e.message}`;
    }
  }

  async choose(i) {
    const c = this.canned[i];
    if (!c) return;
    try {
      const r = await this.filled(c);
      this.input.value = r.text;
      this.closePicker();
      this.input.focus();
      this.input.setSelectionRange(r.text.length, r.text.length);
      this.typing.typed();
    } catch (e) {
      this.preview.textContent = `Cannot fill it in: ${e.message}`;
    }
  }

  closePicker() {
    clearTimeout(this.searchTimer);
    if (this.picker.hidden) return;
    this.picker.hidden = true;
    this.canned = [];
    this.active = -1;
    this.input.removeAttribute('aria-activedescendant');
    this.input.removeAttribute('aria-controls');
  }

  /** Keys while the picker is open; whether it took the key. */
  pickerKey(e) {
    if (this.picker.hidden) return false;
    const n = this.canned.length;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      if (n) {
        this.active = (this.active + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
        this.renderPicker();
      }
    } else if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      if (this.active >= 0) this.choose(this.active);
    } else if (e.key === 'Escape') {
      this.closePicker();
    } else {
      return false;
    }
    e.preventDefault();
    e.stopPropagation();
    return true;
  }

  async refreshSession() {
    const seen = this.sessionChanges;
    try {
      const data = await this.client.request(Q_SESSION, { id: this.session.id });
      // A change the feed brought meanwhile is newer than this answer.
      if (data.session && seen === this.sessionChanges) this.onEvent({ __typename: 'SessionChanged', session: data.session });
    } catch (e) {
      // The live feed brings the next change.
    }
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
        this.sessionChanges = (this.sessionChanges || 0) + 1;
        this.session = { ...this.session, ...ev.session };
        this.render();
        this.options.onChange();
        break;
      case 'NoteAdded':
        if (this.notes.has(ev.note.id)) break;
        this.notes.set(ev.note.id, ev.note);
        this.renderNotes();
        if (this.caughtUp && ev.note.authorId !== (this.options.me && this.options.me.id)) this.options.announce('A colleague added a note.');
        break;
      case 'CaughtUp':
        this.caughtUp = true;
        // Live from here on (ephemeral events such as typing reach it now).
        this.root.dataset.live = 'true';
        this.markRead();
        // A replay brings messages, not the session's changes: one made
        // while the feed was down (ended, transferred) is read now.
        this.refreshSession();
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
    this.ticketButton.hidden = Boolean(this.ticket) || s.status === 'WAITING' || s.status === 'OFFERED';
    if (this.ticket) {
      const t = this.ticket;
      const url = t.url && /^https?:\/\//.test(t.url) ? t.url : null;
      this.ticketEl.replaceChildren(`Ticket ${t.externalId}`);
      if (url) this.ticketEl.append(' · ', el('a', { href: url, target: '_blank', rel: 'noopener noreferrer', 'data-testid': 'ticket-link', text: 'open it' }));
    }
    renderTranscript(this.list, this.scroller, this.t, 'AGENT', (m) => (m.sender === 'AGENT' ? 'Agent' : 'Customer'));
  }

  key(e) {
    if (this.pickerKey(e)) return;
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.sendTyped();
    }
  }

  sendTyped() {
    const body = this.input.value.trim();
    if (!body) return;
    this.input.value = '';
    this.closePicker();
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
    clearTimeout(this.searchTimer);
  }
}

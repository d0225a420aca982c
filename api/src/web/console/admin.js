// The admin's overview: agents with status, load, free slots, chats
// accepted today and online state; sessions with their history, routing
// decisions, rating and ticket; searching sessions; ratings over a period;
// assigning from the queue.

import { el } from './client.js';
import { SESSION } from './chat.js';

const Q_AGENTS = 'query { agents { id name status capacity activeSessionCount online lastSeenAt skills } workload { agent { id } freeSlots acceptedToday } }';
const Q_SEARCH = `query($filter: SessionFilter!, $after: String) { searchSessions(filter: $filter, first: 20, after: $after) {
  nodes { ${SESSION} } pageInfo { hasNextPage endCursor } } }`;
const Q_RATINGS = 'query($from: DateTime!, $to: DateTime!, $agent: ID) { ratingStats(from: $from, to: $to, agentId: $agent) { count average satisfied } }';
const Q_SESSIONS = `query { mySessions(first: 30) { nodes { ${SESSION} } } }`;
const Q_DETAIL = `query($id: ID!) { session(id: $id) { ${SESSION} assignedAt endedBy
  history { kind agentId actorId at }
  routingDecisions { kind agentId priority queuedAt agentIdleSince candidates requiredSkills skillsRelaxed at }
  rating { score comment } ticket { externalId } } }`;

const $ = (id) => document.getElementById(id);
/** yyyy-mm-dd of a local day, as a date input holds it. */
const day = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
/** Agents' online state and load change without a queue event now and then. */
const AGENTS_EVERY_MS = 10000;

let controls = 0;

export class Admin {
  constructor(client, openSession) {
    this.client = client;
    this.openSession = openSession;
    this.agents = [];
    this.refresh = null;
    this.search = { filter: null, after: null };
  }

  start() {
    $('admin').hidden = false;
    $('search-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.runSearch(false);
    });
    $('search-more').addEventListener('click', () => this.runSearch(true));
    // The last seven days, today included, until the admin picks others.
    const today = new Date();
    $('ratings-to').value = day(today);
    $('ratings-from').value = day(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 6));
    $('ratings-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.ratings();
    });
    this.load();
    setInterval(() => this.loadAgents(), AGENTS_EVERY_MS);
  }

  /** Something moved in the queue: agents' loads and the sessions list, once for a burst. */
  changed() {
    clearTimeout(this.refresh);
    this.refresh = setTimeout(() => this.load(), 300);
  }

  async load() {
    await Promise.all([this.loadAgents(), this.loadSessions()]);
  }

  async loadAgents() {
    let data;
    try {
      data = await this.client.request(Q_AGENTS);
    } catch (e) {
      return;
    }
    const work = new Map(data.workload.map((w) => [w.agent.id, w]));
    this.agents = data.agents;
    $('agents').replaceChildren(...this.agents.map((a) => {
      const w = work.get(a.id);
      return el('tr', { 'data-testid': 'agent-row', 'data-agent': a.id },
        el('th', { scope: 'row', text: a.name }),
        el('td', { 'data-testid': 'agent-status', text: a.status.toLowerCase().replace('_', ' ') }),
        el('td', { 'data-testid': 'agent-load', text: `${a.activeSessionCount}/${a.capacity}` }),
        el('td', { 'data-testid': 'agent-free', text: w ? String(w.freeSlots) : '—' }),
        el('td', { 'data-testid': 'agent-accepted', text: w ? String(w.acceptedToday) : '—' }),
        el('td', { 'data-testid': 'agent-online', text: a.online ? 'online' : 'offline' }));
    }));
    for (const id of ['search-agent', 'ratings-agent']) this.agentChoices($(id));
  }

  /** Keeps a select of agents up to date without losing the choice. */
  agentChoices(select) {
    const chosen = select.value;
    select.replaceChildren(select.options[0], ...this.agents.map((a) => el('option', { value: a.id, text: a.name })));
    select.value = chosen;
  }

  async runSearch(more) {
    if (!more) {
      const status = $('search-status').value;
      this.search = {
        filter: { text: $('search-text').value.trim() || null, status: status ? [status] : null, agentId: $('search-agent').value || null },
        after: null,
        found: [],
      };
    }
    let page;
    try {
      page = (await this.client.request(Q_SEARCH, { filter: this.search.filter, after: this.search.after })).searchSessions;
    } catch (e) {
      $('search-count').textContent = `Could not search: ${e.message}`;
      return;
    }
    this.search.found.push(...page.nodes);
    this.search.after = page.pageInfo.endCursor;
    const n = this.search.found.length;
    $('search-count').textContent = `${n}${page.pageInfo.hasNextPage ? '+' : ''} session${n === 1 ? '' : 's'} found`;
    $('search-more').hidden = !page.pageInfo.hasNextPage;
    $('search-results').replaceChildren(...this.search.found.map((s) => this.sessionItem(s, 'search-result')));
  }

  async ratings() {
    const from = new Date(`${$('ratings-from').value}T00:00`);
    const to = new Date(`${$('ratings-to').value}T00:00`);
    if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) return;
    to.setDate(to.getDate() + 1);
    const box = $('rating-stats');
    try {
      const r = (await this.client.request(Q_RATINGS, { from: from.toISOString(), to: to.toISOString(), agent: $('ratings-agent').value || null })).ratingStats;
      box.textContent = r.count === 0 ? 'No ratings in that period.'
        : `${r.count} rating${r.count === 1 ? '' : 's'} · average ${r.average.toFixed(1)} of 5 · ${Math.round(r.satisfied * 100)}% satisfied`;
    } catch (e) {
      box.textContent = `Could not load the ratings: ${e.message}`;
    }
  }

  /** A session as a line that opens its detail. */
  sessionItem(s, testid) {
    return el('li', { 'data-testid': testid, 'data-session': s.id },
      el('button', { type: 'button', class: 'link', text: `${s.subject || 'Chat'} · ${s.customer.id} · ${s.status.toLowerCase()}${s.agent ? ` · ${s.agent.name}` : ''} · ${new Date(s.createdAt).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' })}`, onclick: () => this.detail(s.id) }));
  }

  async loadSessions() {
    let sessions;
    try {
      sessions = (await this.client.request(Q_SESSIONS)).mySessions.nodes;
    } catch (e) {
      return;
    }
    $('sessions').replaceChildren(...sessions.map((s) => this.sessionItem(s, 'session-row')));
  }

  async detail(id) {
    const box = $('session-detail');
    let s;
    try {
      s = (await this.client.request(Q_DETAIL, { id })).session;
    } catch (e) {
      box.replaceChildren(el('p', { class: 'error', text: `Could not load: ${e.message}` }));
      return;
    }
    if (!s) return;
    const name = (agentId) => (this.agents.find((a) => a.id === agentId) || {}).name || agentId || '—';
    // replaceChildren would write a null as the text "null".
    box.replaceChildren(...[
      el('h4', { text: `${s.subject || 'Chat'} — ${s.customer.id} (${s.status.toLowerCase()})` }),
      el('button', { type: 'button', class: 'secondary', 'data-testid': 'open-transcript', text: 'Open the transcript', onclick: () => this.openSession(s) }),
      s.rating || s.status === 'ENDED' ? el('p', { 'data-testid': 'detail-rating', text: s.rating ? `Rated ${s.rating.score} of 5${s.rating.comment ? `: “${s.rating.comment}”` : ''}` : 'Not rated.' }) : null,
      s.ticket ? el('p', { 'data-testid': 'detail-ticket', text: `Ticket ${s.ticket.externalId}` }) : null,
      el('h5', { text: 'History' }),
      el('ol', { 'data-testid': 'history' }, ...s.history.map((h) => el('li', { text: `${new Date(h.at).toLocaleTimeString()} ${h.kind}${h.agentId ? ` · ${name(h.agentId)}` : ''}${h.actorId ? ` · by ${h.actorId}` : ''}` }))),
      el('h5', { text: 'Routing decisions' }),
      el('ol', { 'data-testid': 'routing-decisions' }, ...s.routingDecisions.map((d) => el('li', {
        text: `${new Date(d.at).toLocaleTimeString()} ${d.kind} → ${name(d.agentId)} · ${d.priority.toLowerCase()} · candidates: ${d.candidates.map(name).join(', ') || 'none'}${d.requiredSkills.length ? ` · skills ${d.requiredSkills.join(', ')}${d.skillsRelaxed ? ' (relaxed)' : ''}` : ''}`,
      })))].filter(Boolean));
    box.focus();
  }

  /** A select of agents and an Assign button, for one queued session. */
  assignControl(session, assign) {
    const id = `assign-${++controls}`;
    const select = el('select', { id, 'data-testid': 'assign-to' },
      ...this.agents.map((a) => el('option', { value: a.id, text: `${a.name} (${a.activeSessionCount}/${a.capacity})` })));
    return el('span', { class: 'assign' },
      el('label', { for: id, text: 'Assign to' }), select,
      el('button', { type: 'button', 'data-testid': 'assign', text: 'Assign', onclick: () => select.value && assign(select.value) }));
  }
}

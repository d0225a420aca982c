// The admin's overview: agents with status, load and online state; sessions
// with their history and routing decisions; assigning from the queue.
// Search over sessions and ratings over a period hook in here once the API
// has them.

import { el } from './client.js';
import { SESSION } from './chat.js';

const Q_AGENTS = 'query { agents { id name status capacity activeSessionCount online lastSeenAt skills } }';
const Q_SESSIONS = `query { mySessions(first: 30) { nodes { ${SESSION} } } }`;
const Q_DETAIL = `query($id: ID!) { session(id: $id) { ${SESSION} assignedAt endedBy
  history { kind agentId actorId at }
  routingDecisions { kind agentId priority queuedAt agentIdleSince candidates requiredSkills skillsRelaxed at } } }`;
/** Agents' online state and load change without a queue event now and then. */
const AGENTS_EVERY_MS = 10000;

let controls = 0;

export class Admin {
  constructor(client, openSession) {
    this.client = client;
    this.openSession = openSession;
    this.agents = [];
    this.refresh = null;
  }

  start() {
    document.getElementById('admin').hidden = false;
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
    try {
      this.agents = (await this.client.request(Q_AGENTS)).agents;
    } catch (e) {
      return;
    }
    document.getElementById('agents').replaceChildren(...this.agents.map((a) => el('tr', { 'data-testid': 'agent-row', 'data-agent': a.id },
      el('th', { scope: 'row', text: a.name }),
      el('td', { 'data-testid': 'agent-status', text: a.status.toLowerCase().replace('_', ' ') }),
      el('td', { 'data-testid': 'agent-load', text: `${a.activeSessionCount}/${a.capacity}` }),
      el('td', { text: a.online ? 'online' : 'offline' }))));
  }

  async loadSessions() {
    let sessions;
    try {
      sessions = (await this.client.request(Q_SESSIONS)).mySessions.nodes;
    } catch (e) {
      return;
    }
    document.getElementById('sessions').replaceChildren(...sessions.map((s) => el('li', { 'data-testid': 'session-row', 'data-session': s.id },
      el('button', { type: 'button', class: 'link', text: `${s.subject || 'Chat'} · ${s.customer.id} · ${s.status.toLowerCase()}${s.agent ? ` · ${s.agent.name}` : ''}`, onclick: () => this.detail(s.id) }))));
  }

  async detail(id) {
    const box = document.getElementById('session-detail');
    let s;
    try {
      s = (await this.client.request(Q_DETAIL, { id })).session;
    } catch (e) {
      box.replaceChildren(el('p', { class: 'error', text: `Could not load: ${e.message}` }));
      return;
    }
    if (!s) return;
    const name = (agentId) => (this.agents.find((a) => a.id === agentId) || {}).name || agentId || '—';
    box.replaceChildren(
      el('h4', { text: `${s.subject || 'Chat'} — ${s.customer.id} (${s.status.toLowerCase()})` }),
      el('button', { type: 'button', class: 'secondary', 'data-testid': 'open-transcript', text: 'Open the transcript', onclick: () => this.openSession(s) }),
      el('h5', { text: 'History' }),
      el('ol', { 'data-testid': 'history' }, ...s.history.map((h) => el('li', { text: `${new Date(h.at).toLocaleTimeString()} ${h.kind}${h.agentId ? ` · ${name(h.agentId)}` : ''}${h.actorId ? ` · by ${h.actorId}` : ''}` }))),
      el('h5', { text: 'Routing decisions' }),
      el('ol', { 'data-testid': 'routing-decisions' }, ...s.routingDecisions.map((d) => el('li', {
        text: `${new Date(d.at).toLocaleTimeString()} ${d.kind} → ${name(d.agentId)} · ${d.priority.toLowerCase()} · candidates: ${d.candidates.map(name).join(', ') || 'none'}${d.requiredSkills.length ? ` · skills ${d.requiredSkills.join(', ')}${d.skillsRelaxed ? ' (relaxed)' : ''}` : ''}`,
      }))));
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

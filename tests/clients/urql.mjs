// urql with its defaults, as its docs set it up: `createClient` with the
// document cache and the fetch exchange (queries go as GET while the URL is
// short enough, mutations as POST), plus `subscriptionExchange` over
// graphql-ws (graphql-transport-ws). A customer and an agent, each with
// their own client, do a whole chat.
// Run by api/tests/clients.rs; needs SWITCHBOARD_URL, CUSTOMER_TOKEN, AGENT_TOKEN.
import WebSocket from 'ws';
import { cacheExchange, createClient, fetchExchange, gql, subscriptionExchange } from '@urql/core';
import { createClient as createWsClient } from 'graphql-ws';

const NAME = 'urql';

// ---- the same harness in every client script ---------------------------

const TIMEOUT_MS = 20_000;
// How long one startShift waits for its AgentChanged before trying again:
// the agentEvents subscription may not be live yet when the first one runs.
const PROBE_MS = 1_500;
const PROBE_ATTEMPTS = 5;

let step = 'reading the environment';
const feeds = [];

function log(message) {
  console.log(`[${NAME}] ${message}`);
}

function fail(message) {
  console.log(`[${NAME}] FAILED while ${step}: ${message}`);
  for (const feed of feeds) console.log(`[${NAME}]   ${feed.name} saw: ${feed.seen.join(', ') || 'nothing'}`);
  process.exit(1);
}

function begin(what) {
  step = what;
  log(`-- ${what}`);
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

const overall = setTimeout(() => fail(`no result within ${TIMEOUT_MS} ms (overall timeout)`), TIMEOUT_MS);
process.on('unhandledRejection', (e) => fail(`unhandled rejection: ${describe(e)}`));
process.on('uncaughtException', (e) => fail(`uncaught exception: ${describe(e)}`));

const base = process.env.SWITCHBOARD_URL;
const customerToken = process.env.CUSTOMER_TOKEN;
const agentToken = process.env.AGENT_TOKEN;
if (!base || !customerToken || !agentToken) fail('SWITCHBOARD_URL, CUSTOMER_TOKEN and AGENT_TOKEN must be set');
const HTTP_URL = `${base.replace(/\/$/, '')}/graphql`;
const WS_URL = HTTP_URL.replace(/^http/, 'ws');

/** Events of one subscription, waited on in order. */
class Feed {
  constructor(name) {
    this.name = name;
    this.seen = [];
    this.pending = [];
    this.ended = null;
    this.wake = null;
    feeds.push(this);
  }

  push(event) {
    this.seen.push(summary(event));
    log(`${this.name} <- ${summary(event)}`);
    this.pending.push(event);
    this.notify();
  }

  end(reason) {
    if (this.ended === null) {
      this.ended = reason;
      log(`${this.name} ended: ${reason}`);
    }
    this.notify();
  }

  notify() {
    const wake = this.wake;
    this.wake = null;
    if (wake) wake();
  }

  /** The next event that `matches` (skipping others); null after `ms` if given. */
  async waitFor(what, matches, ms) {
    const deadline = ms === undefined ? null : Date.now() + ms;
    for (;;) {
      while (this.pending.length > 0) {
        const event = this.pending.shift();
        if (matches(event)) return event;
      }
      if (this.ended !== null) throw new Error(`${this.name} ended before ${what}: ${this.ended}`);
      const left = deadline === null ? null : deadline - Date.now();
      if (left !== null && left <= 0) return null;
      await new Promise((resolve) => {
        this.wake = resolve;
        if (left !== null) setTimeout(resolve, left);
      });
    }
  }
}

function summary(event) {
  if (!event || typeof event !== 'object') return String(event);
  switch (event.__typename) {
    case 'MessagePosted':
      return `MessagePosted(seq ${event.message.seq}, ${event.message.sender}: ${JSON.stringify(event.message.body)})`;
    case 'CaughtUp':
      return `CaughtUp(seq ${event.seq})`;
    case 'SessionChanged':
      return `SessionChanged(${event.session.status}${event.session.endReason ? ` ${event.session.endReason}` : ''})`;
    case 'SessionOffered':
      return `SessionOffered(${event.session.id})`;
    case 'SessionAssigned':
      return `SessionAssigned(${event.session.id})`;
    case 'AgentChanged':
      return `AgentChanged(${event.agent.status})`;
    default:
      return event.__typename ?? JSON.stringify(event);
  }
}

/** Records the close code of every socket a graphql-ws client opens. */
function watchSockets(who, wsClient) {
  const state = { opened: 0, closes: [], wake: null };
  wsClient.on('opened', () => {
    state.opened += 1;
    log(`${who} socket opened`);
  });
  wsClient.on('closed', (event) => {
    state.closes.push(event.code);
    log(`${who} socket closed: code ${event.code}${event.reason ? ` (${event.reason})` : ''}`);
    if (state.wake) state.wake();
  });
  return {
    who,
    closes: state.closes,
    /** Resolves once every socket opened has closed. */
    async allClosed() {
      while (state.closes.length < state.opened) {
        await new Promise((resolve) => {
          state.wake = resolve;
        });
      }
      return state.closes;
    },
  };
}

const ME = gql`
  query Me {
    me { id role agent { id status } }
  }
`;
const AGENT_EVENTS = gql`
  subscription AgentEvents {
    agentEvents {
      __typename
      ... on SessionOffered { session { id subject status } expiresAt }
      ... on SessionAssigned { session { id status } }
      ... on AgentChanged { agent { id status activeSessionCount } }
    }
  }
`;
const SESSION_EVENTS = gql`
  subscription SessionEvents($sessionId: ID!) {
    sessionEvents(sessionId: $sessionId) {
      __typename
      ... on MessagePosted { message { id seq sender body } }
      ... on CaughtUp { sessionId seq }
      ... on SessionChanged { session { id status endReason } }
    }
  }
`;
const START_SHIFT = gql`
  mutation StartShift {
    startShift { id status }
  }
`;
const REQUEST_BREAK = gql`
  mutation RequestBreak {
    requestBreak { id status }
  }
`;
const START_SESSION = gql`
  mutation StartSession($input: StartSessionInput!) {
    startSession(input: $input) { id status queuePosition }
  }
`;
const ACCEPT_SESSION = gql`
  mutation AcceptSession($sessionId: ID!) {
    acceptSession(sessionId: $sessionId) { id status }
  }
`;
const SEND_MESSAGE = gql`
  mutation SendMessage($input: SendMessageInput!) {
    sendMessage(input: $input) { id seq sender body }
  }
`;
const END_SESSION = gql`
  mutation EndSession($sessionId: ID!) {
    endSession(sessionId: $sessionId) { id status endReason }
  }
`;
const TRANSCRIPT = gql`
  query Transcript($id: ID!) {
    session(id: $id) {
      id status endReason lastSeq
      messages(first: 20) { nodes { id seq sender body } }
    }
  }
`;

/** The whole chat, through two users' clients (see `user` below). */
async function chat(agent, customer) {
  begin('the agent reads `me` (query)');
  const me = (await agent.query(ME)).me;
  expect(me.role === 'AGENT', `me.role is ${me.role}, not AGENT`);
  log(`agent ${me.id} is ${me.agent?.status}`);

  begin('the agent subscribes to agentEvents and starts a shift');
  const agentEvents = agent.subscribe('agent agentEvents', AGENT_EVENTS, {});
  let status = me.agent?.status ?? 'OFFLINE';
  for (let attempt = 1; ; attempt += 1) {
    if (status === 'AVAILABLE') {
      // Already on shift: a break and back makes the AgentChanged to wait for.
      await agent.mutate(REQUEST_BREAK);
    }
    const shift = (await agent.mutate(START_SHIFT)).startShift;
    expect(shift.status === 'AVAILABLE', `startShift returned status ${shift.status}`);
    const changed = await agentEvents.waitFor(
      'AgentChanged(AVAILABLE)',
      (e) => e.__typename === 'AgentChanged' && e.agent.status === 'AVAILABLE',
      PROBE_MS,
    );
    if (changed) break;
    expect(attempt < PROBE_ATTEMPTS, `agentEvents delivered no AgentChanged(AVAILABLE) after ${attempt} startShift calls`);
    log(`no AgentChanged yet (the subscription may not be live): trying again`);
    status = 'AVAILABLE';
  }

  begin('the customer starts a session (startSession)');
  const started = (await customer.mutate(START_SESSION, { input: { subject: `Where is my order? (${NAME})` } })).startSession;
  expect(['WAITING', 'OFFERED'].includes(started.status), `startSession returned status ${started.status}`);
  const sessionId = started.id;
  log(`session ${sessionId} is ${started.status}`);

  begin('the customer subscribes to sessionEvents and waits for CaughtUp');
  const customerEvents = customer.subscribe('customer sessionEvents', SESSION_EVENTS, { sessionId });
  await customerEvents.waitFor('CaughtUp', (e) => e.__typename === 'CaughtUp');

  begin('the agent waits for SessionOffered');
  await agentEvents.waitFor('SessionOffered', (e) => e.__typename === 'SessionOffered' && e.session.id === sessionId);

  begin('the agent accepts the session (acceptSession)');
  const accepted = (await agent.mutate(ACCEPT_SESSION, { sessionId })).acceptSession;
  expect(accepted.status === 'ACTIVE', `acceptSession returned status ${accepted.status}`);

  begin('the agent subscribes to sessionEvents and waits for CaughtUp');
  const agentSessionEvents = agent.subscribe('agent sessionEvents', SESSION_EVENTS, { sessionId });
  await agentSessionEvents.waitFor('CaughtUp', (e) => e.__typename === 'CaughtUp');

  const question = `Hi, my order #1042 has not arrived (${NAME})`;
  begin('the customer sends a message (sendMessage)');
  const sent = (await customer.mutate(SEND_MESSAGE, { input: { sessionId, body: question, clientMessageId: `${NAME}-c-1` } })).sendMessage;
  expect(sent.body === question && sent.sender === 'CUSTOMER', `sendMessage returned ${JSON.stringify(sent)}`);

  begin("the agent waits for the customer's message on its sessionEvents");
  await agentSessionEvents.waitFor(
    "the customer's message",
    (e) => e.__typename === 'MessagePosted' && e.message.sender === 'CUSTOMER' && e.message.body === question,
  );

  const answer = `Sorry about that! It ships today (${NAME})`;
  begin('the agent replies (sendMessage)');
  const replied = (await agent.mutate(SEND_MESSAGE, { input: { sessionId, body: answer, clientMessageId: `${NAME}-a-1` } })).sendMessage;
  expect(replied.body === answer && replied.sender === 'AGENT', `sendMessage returned ${JSON.stringify(replied)}`);

  begin("the customer waits for the agent's reply on its sessionEvents");
  await customerEvents.waitFor(
    "the agent's reply",
    (e) => e.__typename === 'MessagePosted' && e.message.sender === 'AGENT' && e.message.body === answer,
  );

  begin('the customer ends the session (endSession)');
  const ended = (await customer.mutate(END_SESSION, { sessionId })).endSession;
  expect(ended.status === 'ENDED', `endSession returned status ${ended.status}`);

  const isEnded = (e) => e.__typename === 'SessionChanged' && e.session.status === 'ENDED';
  begin('the customer waits for SessionChanged(ENDED)');
  await customerEvents.waitFor('SessionChanged(ENDED)', isEnded);
  begin('the agent waits for SessionChanged(ENDED)');
  await agentSessionEvents.waitFor('SessionChanged(ENDED)', isEnded);

  begin('the customer reads the transcript (query)');
  const session = (await customer.query(TRANSCRIPT, { id: sessionId })).session;
  expect(session && session.status === 'ENDED', `session(id) returned ${JSON.stringify(session)}`);
  // The server adds SYSTEM messages (joined, ended) of its own.
  const bodies = session.messages.nodes.filter((m) => m.sender !== 'SYSTEM').map((m) => `${m.sender}: ${m.body}`);
  expect(
    JSON.stringify(bodies) === JSON.stringify([`CUSTOMER: ${question}`, `AGENT: ${answer}`]),
    `the transcript is ${JSON.stringify(bodies)}`,
  );
}

async function main() {
  const agent = user('agent', agentToken);
  const customer = user('customer', customerToken);
  try {
    await chat(agent, customer);
  } catch (e) {
    fail(describe(e));
  }
  begin('closing both clients');
  const sockets = [await agent.close(), await customer.close()];
  for (const s of sockets) log(`${s.who}: close codes seen ${JSON.stringify(s.closes)}`);
  for (const s of sockets) {
    if (s.closes.includes(1006)) {
      fail(
        `the ${s.who}'s socket closed with 1006 (abnormal closure: the connection ended without a Close frame from the server); close codes seen: ${JSON.stringify(s.closes)}`,
      );
    }
  }
  clearTimeout(overall);
  log('PASSED: a whole chat');
  process.exit(0);
}

// ---- urql ---------------------------------------------------------------

function describe(e) {
  if (e && e.name === 'CombinedError') {
    const parts = [e.message];
    const response = e.response;
    if (response && typeof response.status === 'number') {
      // urql sends queries as GET (variables in the URL), everything else as POST.
      const method = response.url.includes('?') ? 'GET' : 'POST';
      parts.push(`HTTP ${response.status} ${response.statusText ?? ''} for ${method} ${response.url}`);
    }
    if (e.networkError && e.networkError.message !== e.message) parts.push(`network error: ${e.networkError.message}`);
    if (e.graphQLErrors?.length) {
      parts.push(`GraphQL errors ${JSON.stringify(e.graphQLErrors.map((g) => ({ message: g.message, extensions: g.extensions })))}`);
    }
    return parts.join('; ');
  }
  if (e && typeof e === 'object' && 'code' in e && 'reason' in e) return `socket closed: code ${e.code} ${e.reason}`;
  if (Array.isArray(e)) return `GraphQL errors ${JSON.stringify(e)}`;
  return e instanceof Error ? e.message : String(e);
}

function fieldOf(document) {
  return document.definitions[0].selectionSet.selections[0].name.value;
}

/** One person's urql client, with their token. */
function user(who, token) {
  const wsClient = createWsClient({
    url: WS_URL,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
  });
  const sockets = watchSockets(who, wsClient);
  const client = createClient({
    url: HTTP_URL,
    fetchOptions: { headers: { authorization: `Bearer ${token}` } },
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || '' };
          return {
            subscribe(sink) {
              const unsubscribe = wsClient.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
  const subscriptions = [];
  const mine = [];
  const unwrap = (result) => {
    if (result.error) throw result.error;
    return result.data;
  };
  return {
    async query(query, variables) {
      return unwrap(await client.query(query, variables).toPromise());
    },
    async mutate(mutation, variables) {
      return unwrap(await client.mutation(mutation, variables).toPromise());
    },
    subscribe(name, query, variables) {
      const feed = new Feed(name);
      mine.push(feed);
      const field = fieldOf(query);
      // urql ends a subscription by delivering a result with `error` (or
      // by the source completing, which it does not report here).
      subscriptions.push(
        client.subscription(query, variables).subscribe((result) => {
          if (result.error) feed.end(`error: ${describe(result.error)}`);
          else if (result.data) feed.push(result.data[field]);
        }),
      );
      return feed;
    },
    async close() {
      for (const feed of mine) feed.end('unsubscribed by the client');
      for (const s of subscriptions) s.unsubscribe();
      await wsClient.dispose();
      await sockets.allClosed();
      return sockets;
    },
  };
}

await main();

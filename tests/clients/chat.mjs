// The whole chat every JavaScript client script plays, once: a customer and
// an agent, each with their own client, do a chat (the agent subscribes to
// agentEvents and starts a shift, the customer starts a session and
// subscribes to sessionEvents, offer and accept, a message each way, end,
// transcript), then both clients close and no socket may have closed with
// 1006. Logging, the overall timeout and the failure report are here too;
// a script (apollo.mjs, urql.mjs, graphql_ws.mjs) only says how its library
// runs an operation and closes, and calls `runChat`.
// Run by api/tests/clients.rs; needs SWITCHBOARD_URL, CUSTOMER_TOKEN, AGENT_TOKEN.
import { parse } from 'graphql';

const TIMEOUT_MS = 20_000;
// How long one startShift waits for its AgentChanged before trying again:
// the agentEvents subscription may not be live yet when the first one runs.
const PROBE_MS = 1_500;
const PROBE_ATTEMPTS = 5;

/** The script's name, as in `[apollo] …`; set by `runChat`. */
let NAME = '?';
let step = 'reading the environment';
const feeds = [];
/** Turns an error into words: the library's own way, else `describeAny`. */
let describe = describeAny;

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

/** What no library's own `describe` took on. */
function describeAny(e) {
  if (e && typeof e === 'object' && 'code' in e && 'reason' in e) return `socket closed: code ${e.code} ${e.reason}`;
  if (Array.isArray(e)) return `GraphQL errors ${JSON.stringify(e)}`;
  return e instanceof Error ? e.message : String(e);
}

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

const ME = `
  query Me {
    me { id role agent { id status } }
  }
`;
const AGENT_EVENTS = `
  subscription AgentEvents {
    agentEvents {
      __typename
      ... on SessionOffered { session { id subject status } expiresAt }
      ... on SessionAssigned { session { id status } }
      ... on AgentChanged { agent { id status activeSessionCount } }
    }
  }
`;
const SESSION_EVENTS = `
  subscription SessionEvents($sessionId: ID!) {
    sessionEvents(sessionId: $sessionId) {
      __typename
      ... on MessagePosted { message { id seq sender body } }
      ... on CaughtUp { sessionId seq }
      ... on SessionChanged { session { id status endReason } }
    }
  }
`;
const START_SHIFT = `
  mutation StartShift {
    startShift { id status }
  }
`;
const REQUEST_BREAK = `
  mutation RequestBreak {
    requestBreak { id status }
  }
`;
const START_SESSION = `
  mutation StartSession($input: StartSessionInput!) {
    startSession(input: $input) { id status queuePosition }
  }
`;
const ACCEPT_SESSION = `
  mutation AcceptSession($sessionId: ID!) {
    acceptSession(sessionId: $sessionId) { id status }
  }
`;
const SEND_MESSAGE = `
  mutation SendMessage($input: SendMessageInput!) {
    sendMessage(input: $input) { id seq sender body }
  }
`;
const END_SESSION = `
  mutation EndSession($sessionId: ID!) {
    endSession(sessionId: $sessionId) { id status endReason }
  }
`;
const TRANSCRIPT = `
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

  const isCaughtUp = (e) => e.__typename === 'CaughtUp';
  begin('the customer subscribes to sessionEvents and waits for CaughtUp');
  const customerEvents = customer.subscribe('customer sessionEvents', SESSION_EVENTS, { sessionId });
  await customerEvents.waitFor('CaughtUp', isCaughtUp);

  begin('the agent waits for SessionOffered');
  await agentEvents.waitFor('SessionOffered', (e) => e.__typename === 'SessionOffered' && e.session.id === sessionId);

  begin('the agent accepts the session (acceptSession)');
  const accepted = (await agent.mutate(ACCEPT_SESSION, { sessionId })).acceptSession;
  expect(accepted.status === 'ACTIVE', `acceptSession returned status ${accepted.status}`);

  begin('the agent subscribes to sessionEvents and waits for CaughtUp');
  const agentSessionEvents = agent.subscribe('agent sessionEvents', SESSION_EVENTS, { sessionId });
  await agentSessionEvents.waitFor('CaughtUp', isCaughtUp);

  /** `user` sends `body` as `sender`; the message must come back as sent. */
  const send = async (user, sender, body, clientMessageId) => {
    const sent = (await user.mutate(SEND_MESSAGE, { input: { sessionId, body, clientMessageId } })).sendMessage;
    expect(sent.body === body && sent.sender === sender, `sendMessage returned ${JSON.stringify(sent)}`);
  };
  const isPosted = (sender, body) => (e) =>
    e.__typename === 'MessagePosted' && e.message.sender === sender && e.message.body === body;

  const question = `Hi, my order #1042 has not arrived (${NAME})`;
  begin('the customer sends a message (sendMessage)');
  await send(customer, 'CUSTOMER', question, `${NAME}-c-1`);

  begin("the agent waits for the customer's message on its sessionEvents");
  await agentSessionEvents.waitFor("the customer's message", isPosted('CUSTOMER', question));

  const answer = `Sorry about that! It ships today (${NAME})`;
  begin('the agent replies (sendMessage)');
  await send(agent, 'AGENT', answer, `${NAME}-a-1`);

  begin("the customer waits for the agent's reply on its sessionEvents");
  await customerEvents.waitFor("the agent's reply", isPosted('AGENT', answer));

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

/**
 * One person (`who`, with `token`) as the chat sees them: `query` and
 * `mutate` resolve to the result's data, `subscribe` returns a Feed, and
 * `close` ends everything and resolves to the sockets' close codes.
 */
function user(library, documentOf, who, token, urls) {
  const client = library.client(token, urls);
  const sockets = watchSockets(who, client.wsClient);
  const unsubscribers = [];
  const mine = [];
  return {
    query: (source, variables) => client.query(documentOf(source), variables),
    mutate: (source, variables) => client.mutate(documentOf(source), variables),
    subscribe(name, source, variables) {
      const feed = new Feed(name);
      mine.push(feed);
      const field = parse(source).definitions[0].selectionSet.selections[0].name.value;
      unsubscribers.push(
        client.subscribe(documentOf(source), variables, {
          next: (result) => {
            if (result.errors?.length) feed.end(`GraphQL errors ${JSON.stringify(result.errors)}`);
            else feed.push(result.data[field]);
          },
          error: (e) => feed.end(`error: ${describe(e)}`),
          complete: () => feed.end('completed by the server'),
        }),
      );
      return feed;
    },
    async close() {
      for (const feed of mine) feed.end('unsubscribed by the client');
      for (const unsubscribe of unsubscribers) unsubscribe();
      await client.close();
      await sockets.allClosed();
      return sockets;
    },
  };
}

/**
 * Plays the whole chat with one library, then exits: 0 after printing
 * `[name] PASSED: a whole chat`, 1 after `[name] FAILED while <step>: <reason>`
 * and what each subscription saw. `library` says how the library is used:
 *
 * - `name`: the script's name in every line it prints;
 * - `document(source)`: a GraphQL document (a string) as the library takes
 *   it; made once per document and shared by both users;
 * - `describe(e)`: the library's own errors in words, or undefined for
 *   anything else (then socket close events, lists of GraphQL errors and
 *   Errors are described the same way for every library);
 * - `client(token, { httpUrl, wsUrl })`: one person's client, as an object:
 *   - `wsClient`: the graphql-ws client under it, whose sockets' close
 *     codes are recorded (and must not be 1006);
 *   - `query(document, variables)`, `mutate(document, variables)`: resolve
 *     to the result's `data`, reject with the library's error;
 *   - `subscribe(document, variables, sink)`: starts a subscription that
 *     calls `sink.next({ data, errors })` for each result, `sink.error(e)`
 *     and `sink.complete()`; returns a function that unsubscribes;
 *   - `close()`: stops the client once its subscriptions are unsubscribed;
 *     resolves once it has let go of its sockets.
 */
export async function runChat(library) {
  NAME = library.name;
  describe = (e) => library.describe(e) ?? describeAny(e);
  const overall = setTimeout(() => fail(`no result within ${TIMEOUT_MS} ms (overall timeout)`), TIMEOUT_MS);
  process.on('unhandledRejection', (e) => fail(`unhandled rejection: ${describe(e)}`));
  process.on('uncaughtException', (e) => fail(`uncaught exception: ${describe(e)}`));

  const base = process.env.SWITCHBOARD_URL;
  const customerToken = process.env.CUSTOMER_TOKEN;
  const agentToken = process.env.AGENT_TOKEN;
  if (!base || !customerToken || !agentToken) fail('SWITCHBOARD_URL, CUSTOMER_TOKEN and AGENT_TOKEN must be set');
  const httpUrl = `${base.replace(/\/$/, '')}/graphql`;
  const urls = { httpUrl, wsUrl: httpUrl.replace(/^http/, 'ws') };

  const documents = new Map();
  const documentOf = (source) => {
    if (!documents.has(source)) documents.set(source, library.document(source));
    return documents.get(source);
  };

  const agent = user(library, documentOf, 'agent', agentToken, urls);
  const customer = user(library, documentOf, 'customer', customerToken, urls);
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

"""Python gql doing a whole chat against Switchboard, as a Python app would.

Queries and mutations go over gql's aiohttp transport (POST), subscriptions
over its websockets transport, once per WebSocket subprotocol:

    transport-ws  graphql-transport-ws (WebsocketsTransport, asking for it alone)
    legacy        the legacy Apollo subscriptions-transport-ws, "graphql-ws"

Usage: gql_client.py [transport-ws|legacy|both]   (default: both, one after
the other). Needs SWITCHBOARD_URL (http://127.0.0.1:PORT), CUSTOMER_TOKEN
and AGENT_TOKEN. Exits 1 with the reason on any failure (over
graphql-transport-ws, a socket that closed with 1006, without the server's
Close frame, included), or when one chat takes longer than 20 seconds. Run
by api/tests/clients.rs.
"""

import asyncio
import json
import os
import sys

from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import TransportQueryError, TransportServerError
from gql.transport.websockets import WebsocketsTransport

TIMEOUT_SECS = 20
# How long one startShift waits for its AgentChanged before trying again:
# the agentEvents subscription may not be live yet when the first one runs.
PROBE_SECS = 1.5
PROBE_ATTEMPTS = 5

PROTOCOLS = {
    "transport-ws": WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL,
    "legacy": WebsocketsTransport.APOLLO_SUBPROTOCOL,
}


class ChatError(Exception):
    pass


class Run:
    """Logging and the current step of one chat."""

    def __init__(self, name):
        self.name = name
        self.step = "starting"
        # The step a failure or the timeout interrupted (closing comes after).
        self.failed_at = None
        self.feeds = []

    def log(self, message):
        print(f"[{self.name}] {message}", flush=True)

    def begin(self, what):
        self.step = what
        self.log(f"-- {what}")


def expect(condition, message):
    if not condition:
        raise ChatError(message)


def describe(e):
    if isinstance(e, TransportQueryError):
        return f"GraphQL errors {json.dumps(e.errors)}"
    if isinstance(e, TransportServerError):
        return f"HTTP {e.code}: {e}"
    return f"{type(e).__name__}: {e}"


def summary(event):
    if not isinstance(event, dict):
        return repr(event)
    kind = event.get("__typename")
    if kind == "MessagePosted":
        m = event["message"]
        return f"MessagePosted(seq {m['seq']}, {m['sender']}: {json.dumps(m['body'])})"
    if kind == "CaughtUp":
        return f"CaughtUp(seq {event['seq']})"
    if kind == "SessionChanged":
        s = event["session"]
        reason = f" {s['endReason']}" if s.get("endReason") else ""
        return f"SessionChanged({s['status']}{reason})"
    if kind in ("SessionOffered", "SessionAssigned"):
        return f"{kind}({event['session']['id']})"
    if kind == "AgentChanged":
        return f"AgentChanged({event['agent']['status']})"
    return kind or json.dumps(event)


class Feed:
    """Events of one subscription, waited on in order."""

    def __init__(self, run, name):
        self.run = run
        self.name = name
        self.seen = []
        self.queue = asyncio.Queue()
        self.ended = None
        self.task = None
        run.feeds.append(self)

    def push(self, event):
        self.seen.append(summary(event))
        self.run.log(f"{self.name} <- {summary(event)}")
        self.queue.put_nowait(("event", event))

    def end(self, reason):
        if self.ended is None:
            self.ended = reason
            self.run.log(f"{self.name} ended: {reason}")
            self.queue.put_nowait(("end", reason))

    async def wait_for(self, what, matches, timeout=None):
        """The next event that `matches` (skipping others); None after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return None
            try:
                kind, value = await asyncio.wait_for(self.queue.get(), left)
            except asyncio.TimeoutError:
                return None
            if kind == "end":
                self.queue.put_nowait((kind, value))
                raise ChatError(f"{self.name} ended before {what}: {value}")
            if matches(value):
                return value


class User:
    """One person's gql clients: HTTP for queries and mutations, a WebSocket
    for subscriptions."""

    def __init__(self, run, who, base, token, subprotocol):
        self.run = run
        self.who = who
        self.subprotocol = subprotocol
        http = AIOHTTPTransport(
            url=f"{base}/graphql", headers={"Authorization": f"Bearer {token}"}
        )
        self.ws_transport = WebsocketsTransport(
            url=f"{base.replace('http', 'ws', 1)}/graphql",
            init_payload={"authorization": f"Bearer {token}"},
            subprotocols=[subprotocol],
        )
        self.http_client = Client(transport=http)
        self.ws_client = Client(transport=self.ws_transport)
        self.http = None
        self.ws = None
        self.socket = None
        self.feeds = []

    async def connect(self):
        self.http = await self.http_client.connect_async()
        self.ws = await self.ws_client.connect_async()
        self.socket = self.ws_transport.adapter.websocket
        negotiated = self.ws_transport.subprotocol
        self.run.log(f"{self.who} socket open, subprotocol {negotiated!r}")
        expect(
            negotiated == self.subprotocol,
            f"the server chose subprotocol {negotiated!r}, not {self.subprotocol!r}",
        )

    async def query(self, document, variables=None):
        return await self.http.execute(
            GraphQLRequest(document, variable_values=variables)
        )

    mutate = query

    def subscribe(self, name, document, variables=None):
        feed = Feed(self.run, f"{self.who} {name}")
        request = GraphQLRequest(document, variable_values=variables)
        field = request.document.definitions[0].selection_set.selections[0].name.value

        async def follow():
            try:
                async for result in self.ws.subscribe(request):
                    feed.push(result[field])
                feed.end("completed by the server")
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the reason goes to whoever waits
                feed.end(f"error: {describe(e)}")

        feed.task = asyncio.ensure_future(follow())
        self.feeds.append(feed)
        return feed

    async def close(self):
        """Ends the subscriptions and closes both clients; the WebSocket's
        close code (1006 when no Close frame came back)."""
        for feed in self.feeds:
            feed.task.cancel()
        for feed in self.feeds:
            try:
                await feed.task
            except asyncio.CancelledError:
                pass
        await self.ws_client.close_async()
        await self.http_client.close_async()
        if self.socket is None:
            return None
        # websockets says 1006 when the connection ended without a Close frame.
        code = self.socket.close_code
        return None if code is None else int(code)


ME = "query Me { me { id role agent { id status } } }"
AGENT_EVENTS = """
subscription AgentEvents {
  agentEvents {
    __typename
    ... on SessionOffered { session { id subject status } expiresAt }
    ... on SessionAssigned { session { id status } }
    ... on AgentChanged { agent { id status activeSessionCount } }
  }
}
"""
SESSION_EVENTS = """
subscription SessionEvents($sessionId: ID!) {
  sessionEvents(sessionId: $sessionId) {
    __typename
    ... on MessagePosted { message { id seq sender body } }
    ... on CaughtUp { sessionId seq }
    ... on SessionChanged { session { id status endReason } }
  }
}
"""
START_SHIFT = "mutation StartShift { startShift { id status } }"
REQUEST_BREAK = "mutation RequestBreak { requestBreak { id status } }"
START_SESSION = """
mutation StartSession($input: StartSessionInput!) {
  startSession(input: $input) { id status queuePosition }
}
"""
ACCEPT_SESSION = """
mutation AcceptSession($sessionId: ID!) {
  acceptSession(sessionId: $sessionId) { id status }
}
"""
SEND_MESSAGE = """
mutation SendMessage($input: SendMessageInput!) {
  sendMessage(input: $input) { id seq sender body }
}
"""
END_SESSION = """
mutation EndSession($sessionId: ID!) {
  endSession(sessionId: $sessionId) { id status endReason }
}
"""
TRANSCRIPT = """
query Transcript($id: ID!) {
  session(id: $id) {
    id status endReason lastSeq
    messages(first: 20) { nodes { id seq sender body } }
  }
}
"""


async def chat(run, agent, customer):
    name = run.name
    run.begin("the agent reads `me` (query)")
    me = (await agent.query(ME))["me"]
    expect(me["role"] == "AGENT", f"me.role is {me['role']}, not AGENT")
    status = (me.get("agent") or {}).get("status", "OFFLINE")
    run.log(f"agent {me['id']} is {status}")

    run.begin("the agent subscribes to agentEvents and starts a shift")
    agent_events = agent.subscribe("agentEvents", AGENT_EVENTS)
    attempt = 0
    while True:
        attempt += 1
        if status == "AVAILABLE":
            # Already on shift: a break and back makes the AgentChanged to wait for.
            await agent.mutate(REQUEST_BREAK)
        shift = (await agent.mutate(START_SHIFT))["startShift"]
        expect(
            shift["status"] == "AVAILABLE",
            f"startShift returned status {shift['status']}",
        )
        changed = await agent_events.wait_for(
            "AgentChanged(AVAILABLE)",
            lambda e: e["__typename"] == "AgentChanged"
            and e["agent"]["status"] == "AVAILABLE",
            PROBE_SECS,
        )
        if changed:
            break
        expect(
            attempt < PROBE_ATTEMPTS,
            f"agentEvents delivered no AgentChanged(AVAILABLE) after {attempt} startShift calls",
        )
        run.log("no AgentChanged yet (the subscription may not be live): trying again")
        status = "AVAILABLE"

    run.begin("the customer starts a session (startSession)")
    started = (
        await customer.mutate(
            START_SESSION, {"input": {"subject": f"Where is my order? ({name})"}}
        )
    )["startSession"]
    expect(
        started["status"] in ("WAITING", "OFFERED"),
        f"startSession returned status {started['status']}",
    )
    session_id = started["id"]
    run.log(f"session {session_id} is {started['status']}")

    def is_caught_up(e):
        return e["__typename"] == "CaughtUp"

    run.begin("the customer subscribes to sessionEvents and waits for CaughtUp")
    customer_events = customer.subscribe(
        "sessionEvents", SESSION_EVENTS, {"sessionId": session_id}
    )
    await customer_events.wait_for("CaughtUp", is_caught_up)

    run.begin("the agent waits for SessionOffered")
    await agent_events.wait_for(
        "SessionOffered",
        lambda e: e["__typename"] == "SessionOffered"
        and e["session"]["id"] == session_id,
    )

    run.begin("the agent accepts the session (acceptSession)")
    accepted = (await agent.mutate(ACCEPT_SESSION, {"sessionId": session_id}))[
        "acceptSession"
    ]
    expect(
        accepted["status"] == "ACTIVE",
        f"acceptSession returned status {accepted['status']}",
    )

    run.begin("the agent subscribes to sessionEvents and waits for CaughtUp")
    agent_session_events = agent.subscribe(
        "sessionEvents", SESSION_EVENTS, {"sessionId": session_id}
    )
    await agent_session_events.wait_for("CaughtUp", is_caught_up)

    async def send(user, sender, body, client_message_id):
        """`user` sends `body` as `sender`; it must come back as sent."""
        message = {
            "sessionId": session_id,
            "body": body,
            "clientMessageId": client_message_id,
        }
        sent = (await user.mutate(SEND_MESSAGE, {"input": message}))["sendMessage"]
        expect(
            sent["body"] == body and sent["sender"] == sender,
            f"sendMessage returned {json.dumps(sent)}",
        )

    def is_posted(sender, body):
        return (
            lambda e: e["__typename"] == "MessagePosted"
            and e["message"]["sender"] == sender
            and e["message"]["body"] == body
        )

    question = f"Hi, my order #1042 has not arrived ({name})"
    run.begin("the customer sends a message (sendMessage)")
    await send(customer, "CUSTOMER", question, f"{name}-c-1")

    run.begin("the agent waits for the customer's message on its sessionEvents")
    await agent_session_events.wait_for(
        "the customer's message", is_posted("CUSTOMER", question)
    )

    answer = f"Sorry about that! It ships today ({name})"
    run.begin("the agent replies (sendMessage)")
    await send(agent, "AGENT", answer, f"{name}-a-1")

    run.begin("the customer waits for the agent's reply on its sessionEvents")
    await customer_events.wait_for("the agent's reply", is_posted("AGENT", answer))

    run.begin("the customer ends the session (endSession)")
    ended = (await customer.mutate(END_SESSION, {"sessionId": session_id}))[
        "endSession"
    ]
    expect(ended["status"] == "ENDED", f"endSession returned status {ended['status']}")

    def is_ended(e):
        return e["__typename"] == "SessionChanged" and e["session"]["status"] == "ENDED"

    run.begin("the customer waits for SessionChanged(ENDED)")
    await customer_events.wait_for("SessionChanged(ENDED)", is_ended)
    run.begin("the agent waits for SessionChanged(ENDED)")
    await agent_session_events.wait_for("SessionChanged(ENDED)", is_ended)

    run.begin("the customer reads the transcript (query)")
    session = (await customer.query(TRANSCRIPT, {"id": session_id}))["session"]
    expect(
        session is not None and session["status"] == "ENDED",
        f"session(id) returned {json.dumps(session)}",
    )
    # The server adds SYSTEM messages (joined, ended) of its own.
    bodies = [
        f"{m['sender']}: {m['body']}"
        for m in session["messages"]["nodes"]
        if m["sender"] != "SYSTEM"
    ]
    expect(
        bodies == [f"CUSTOMER: {question}", f"AGENT: {answer}"],
        f"the transcript is {json.dumps(bodies)}",
    )


async def one_chat(run, base, customer_token, agent_token, subprotocol):
    agent = User(run, "agent", base, agent_token, subprotocol)
    customer = User(run, "customer", base, customer_token, subprotocol)
    codes = {}
    try:
        run.begin("connecting the agent's clients")
        await agent.connect()
        run.begin("connecting the customer's clients")
        await customer.connect()
        await chat(run, agent, customer)
    except BaseException:
        run.failed_at = run.step
        raise
    finally:
        run.begin("closing both clients")
        for user in (agent, customer):
            try:
                code = await asyncio.wait_for(user.close(), 3)
                codes[user.who] = code
                run.log(f"{user.who}: socket close code {code}")
            except Exception as e:
                run.log(f"{user.who}: closing failed: {describe(e)}")
    abnormal = [who for who, code in codes.items() if code == 1006]
    for who in abnormal:
        raise ChatError(
            f"the {who}'s socket closed with 1006 (abnormal closure: the connection "
            f"ended without a Close frame from the server); close codes: {codes}"
        )


async def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    if which not in ("transport-ws", "legacy", "both"):
        print(__doc__)
        return 2
    base = os.environ.get("SWITCHBOARD_URL", "").rstrip("/")
    customer_token = os.environ.get("CUSTOMER_TOKEN")
    agent_token = os.environ.get("AGENT_TOKEN")
    if not base or not customer_token or not agent_token:
        print("[gql] FAILED: SWITCHBOARD_URL, CUSTOMER_TOKEN and AGENT_TOKEN must be set")
        return 1
    names = ["transport-ws", "legacy"] if which == "both" else [which]
    for name in names:
        run = Run(f"gql {name}")
        try:
            await asyncio.wait_for(
                one_chat(run, base, customer_token, agent_token, PROTOCOLS[name]),
                TIMEOUT_SECS,
            )
        except Exception as e:
            if isinstance(e, asyncio.TimeoutError):
                reason = f"no result within {TIMEOUT_SECS} s (overall timeout)"
            elif isinstance(e, ChatError):
                reason = str(e)
            else:
                reason = describe(e)
            run.log(f"FAILED while {run.failed_at or run.step}: {reason}")
            for feed in run.feeds:
                run.log(f"  {feed.name} saw: {', '.join(feed.seen) or 'nothing'}")
            return 1
        run.log("PASSED: a whole chat")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

"""Property-based fuzzing of Switchboard's GraphQL API against a real server.

Starts the `switchboard` binary on a fresh Postgres database and a free port,
seeds a few real chats, then sends operations generated from schema.graphql
(hypothesis-graphql: valid ones and ones with one schema violation) as every
kind of caller, over HTTP and graphql-transport-ws. The properties:

- no HTTP 5xx, and the connection is never dropped;
- every error carries an `extensions.code` from the API contract, never
  INTERNAL, and no message shows SQL, a panic, a stack trace or a file path;
- at the end the process is alive, `/healthz` answers and its log holds no
  panic.

Then attacks, built rather than generated (a seeded list, cheapest first):
nested-fragment bombs (anonymous and with tokens, over HTTP and
graphql-transport-ws, queries, mutations and subscriptions, cycles, unused
fragments) must be answered within FRAGMENT_ANSWER_SECS; big aliased lists
(a customer's long chats read many times over) must be refused or answered
in at most MAX_ANSWER_BYTES. Meanwhile the server's RSS must stay under
RSS_HEADROOM_BYTES over its size when they began, and GET /healthz, sent
while each attack is in flight, must answer within HEALTHZ_SECS.

fuzz/run is the entry point (it builds the binary and prepares the venv).
FUZZ_DEBUG=1 prints every answer; FUZZ_ONLY=properties, fragments, lists or
attacks (both kinds of attack), comma-separated, runs only those parts.
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime
import hashlib
import hmac
import json
import math
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field

import warnings

import graphql
import pg8000.native
import requests
import websocket
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import HypothesisWarning
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries

CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "CONFLICT",
    "RATE_LIMITED",
    "INTERNAL",
}
SECRET = "fuzz-secret-0123456789abcdef"
# The server's default WS_MAX_MESSAGE_BYTES.
WS_MAX_MESSAGE_BYTES = 65536
# What a client must never read: database errors, panics, backtraces, paths.
LEAKS = re.compile(
    r"(\bselect\b.+\bfrom\b|\binsert into\b|\bupdate\b.+\bset\b|\bdelete from\b"
    r"|syntax error at|violates|\brelation\b|duplicate key|sqlx|sea_orm|DbErr"
    r"|postgres|database error|returned from database|connection refused|pool timed out|panicked|backtrace"
    r"|\bthread '|\.rs:\d+|/src/|/home/|/root/|/usr/|called `\w+::\w+\(\)`)",
    re.IGNORECASE,
)

QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


class Failure(AssertionError):
    pass


# How the server answered, for the summary: a run where every operation is
# refused at the door would test little.
OUTCOMES: collections.Counter[str] = collections.Counter()


# --------------------------------------------------------------------------
# The server under test


@dataclass
class Server:
    binary: str
    pg_base: str
    routing_mode: str
    db_name: str = ""
    url: str = ""
    proc: subprocess.Popen | None = None
    tmp: tempfile.TemporaryDirectory | None = None
    log_path: str = ""

    def _admin(self) -> pg8000.native.Connection:
        u = urllib.parse.urlsplit(self.pg_base)
        return pg8000.native.Connection(
            user=urllib.parse.unquote(u.username or "postgres"),
            password=urllib.parse.unquote(u.password) if u.password else None,
            host=u.hostname or "127.0.0.1",
            port=u.port or 5432,
            database="postgres",
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=f"{self.pg_base}/{self.db_name}",
            LISTEN_ADDR="127.0.0.1:0",
            JWT_SECRET=SECRET,
            DATA_DIR=self.tmp.name,
            ROUTING_MODE=self.routing_mode,
            # Let messages reach storage instead of stopping at the limiter,
            # so the fuzzer exercises what lies behind it.
            MESSAGE_RATE_PER_SEC="10000",
            MESSAGE_BURST="10000",
            NO_COLOR="1",
        )
        env.setdefault("RUST_LOG", "info,sqlx=warn,sea_orm=warn")
        return env

    def start(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="sbfuzz-")
        self.log_path = os.path.join(self.tmp.name, "server.log")
        admin = self._admin()
        try:
            # Databases left by runs that died more than an hour ago.
            now = int(time.time())
            for (name,) in admin.run("SELECT datname FROM pg_database WHERE datname LIKE 'sbfuzz_%'"):
                parts = name.split("_")
                if len(parts) > 1 and parts[1].isdigit() and now - int(parts[1]) > 3600:
                    admin.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.db_name = f"sbfuzz_{now}_{secrets.token_hex(6)}"
            admin.run(f'CREATE DATABASE "{self.db_name}"')
        finally:
            admin.close()
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "serve"], env=self.env(), stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            with open(self.log_path, errors="replace") as f:
                m = re.search(r"listening on (http://[0-9.]+:\d+)", f.read())
            if m:
                self.url = m.group(1)
                return
            time.sleep(0.1)
        raise RuntimeError(f"server did not start listening:\n{self.log_tail()}")

    def token(self, role: str, sub: str, secret: str = SECRET) -> str:
        env = self.env()
        env["JWT_SECRET"] = secret
        out = subprocess.run(
            [self.binary, "token", "--role", role, "--sub", sub, "--name", f"Fuzz {sub}"],
            env=env, check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self, keep_db: bool, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None and kill:
            self.proc.kill()
            self.proc.wait()
            print("fuzz: server killed (SIGKILL)")
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print("fuzz: the server did not stop within 15 s of SIGTERM; killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
            print(f"fuzz: server exited {time.monotonic() - t0:.1f}s after SIGTERM")
        if self.db_name and not keep_db:
            admin = self._admin()
            try:
                admin.run(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            finally:
                admin.close()
        if self.tmp:
            self.tmp.cleanup()


# --------------------------------------------------------------------------
# Callers and the data they start with


@dataclass(frozen=True)
class Caller:
    """Who sends an operation: a fixed identity, or one minted for the
    example with odd claims (signed with the server's secret, so they get
    past the signature check and into the service)."""

    label: str
    authorization: str | None = None
    claims: dict | None = field(default=None, compare=False, hash=False)

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization} if self.authorization is not None else {}

    def init_payload(self) -> dict:
        return {"authorization": self.authorization} if self.authorization is not None else {}

    def __str__(self) -> str:
        return self.label if self.claims is None else f"{self.label} with claims {short(json.dumps(self.claims))}"


def short(text: str, keep: int = 300) -> str:
    """Long generated values would bury a report; Hypothesis prints the
    whole minimal example anyway."""
    return text if len(text) <= keep else f"{text[:keep]}...({len(text)} chars)"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(claims: dict, secret: str = SECRET) -> str:
    """A JWT as the server's identity provider would sign it."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64url(mac)}"


@dataclass
class World:
    url: str
    callers: dict[str, Caller]
    ids: list[str] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)


def post(world: World, caller: Caller, query: str, variables: dict | None = None) -> requests.Response:
    body = {"query": query}
    if variables is not None:
        body["variables"] = variables
    return world.http.post(f"{world.url}/graphql", json=body, headers=caller.headers(), timeout=30)


def setup_world(server: Server) -> World:
    tokens = {
        "customer": server.token("customer", "fuzz-customer-1"),
        "customer2": server.token("customer", "fuzz-customer-2"),
        "agent": server.token("agent", "fuzz-agent-1"),
        "agent2": server.token("agent", "fuzz-agent-2"),
        "admin": server.token("admin", "fuzz-admin"),
        # Well-formed but signed with another secret.
        "forged": server.token("admin", "fuzz-admin", secret="another-secret-0123456789"),
    }
    callers = {name: Caller(name, f"Bearer {t}") for name, t in tokens.items()}
    callers["anonymous"] = Caller("anonymous")
    callers["garbage"] = Caller("garbage", "Bearer not.a.jwt\u00e9")
    world = World(url=server.url, callers=callers)

    def call(caller: str, q: str) -> dict:
        r = post(world, callers[caller], q)
        return r.json()

    ids: list[str] = []
    for agent in ("agent", "agent2"):
        me = call(agent, "mutation { startShift { id } }")
        ids.append(me["data"]["startShift"]["id"])
    for customer in ("customer", "customer2"):
        s = call(customer, 'mutation { startSession(input: {subject: "fuzz"}) { id } }')
        ids.append(s["data"]["startSession"]["id"])
    # Whoever was offered (or, in manual routing, may take) a session accepts it.
    for sid in ids[2:]:
        for agent in ("agent", "agent2"):
            call(agent, f'mutation {{ acceptSession(sessionId: "{sid}") {{ id }} }}')
    for i, customer in enumerate(("customer", "customer2")):
        sid = ids[2 + i]
        call(customer, f'mutation {{ sendMessage(input: {{sessionId: "{sid}", body: "hello", clientMessageId: "seed-{i}"}}) {{ seq }} }}')
    # An ended session, too: the first customer's chat ends, and a new one waits.
    call("customer", f'mutation {{ endSession(sessionId: "{ids[2]}") {{ id }} }}')
    s = call("customer", 'mutation { startSession(input: {subject: "again"}) { id } }')
    ids.append(s["data"]["startSession"]["id"])
    ids += ["fuzz-customer-1", "fuzz-customer-2", "fuzz-admin"]
    world.ids = ids
    return world


# --------------------------------------------------------------------------
# Inputs: schema-shaped documents with data-shaped values


ODD_STRINGS = [
    "", " ", "\u0000", "a\u0000b", "\t\n\r", "\u200b", "\u202e", "\ufeff", "\uffff", "\ud7ff",
    "🙂", "👩‍👩‍👧‍👦", "e\u0301", "Ω≈ç√", "'; DROP TABLE sessions; --", "%s%n%x",
    "../../etc/passwd", "null", "undefined", "-1", "0", "1e309", "NaN",
    "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "x" * 4000, "y" * 4001, "é" * 4001, "z" * 20000, " " * 5000,
]


EDGE_INTS = [0, 1, -1, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**53, 2**63, -(2**63) - 1, 10**30]

# Boundaries of common time types, in microseconds since 1970 (a cursor's
# unit), one micro either side: Postgres (4713 BC to 294276 AD), years 0,
# 1, 9999 and 10000, and what chrono can hold (about 262000 years out).
TIME_EDGES_MICROS = [
    edge + d
    for edge in (-210866803200000000, -62167219200000000, -62135596800000000,
                 253402300799999999, 253402300800000000, 9224318016000000000,
                 -8334632851200000000, 8210298412799999999)
    for d in (-1, 0, 1)
]


def cursor_like(parts: tuple[int, str]) -> str:
    """Shaped like the server's opaque list cursors (base64 of
    "<micros>|<uuid>"), with the fields out of range."""
    return base64.urlsafe_b64encode(f"{parts[0]}|{parts[1]}".encode()).rstrip(b"=").decode()


ODD_TEXT = st.one_of(
    st.text(max_size=40),
    # Control characters among letters: what no person types.
    st.text(st.sampled_from("ab \u0000\u0001\u0007\u001b\u007f\u0085\u2028"), min_size=1, max_size=20),
    st.sampled_from(ODD_STRINGS),
    st.builds(lambda c, n: c * n, st.characters(codec="utf-8", exclude_categories=["Cs"]), st.integers(1, 6000)),
    st.tuples(
        st.integers(-(2**63), 2**63 - 1) | st.sampled_from(EDGE_INTS + TIME_EDGES_MICROS),
        st.uuids().map(str) | st.text(max_size=40),
    ).map(cursor_like),
    st.integers().map(str),
)


def value_strategies(ids: list[str]) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    text = ODD_TEXT
    return {
        "ID": st.one_of(st.sampled_from(ids), st.sampled_from(ids), text, st.uuids().map(str)).map(nodes.String),
        "String": text.map(nodes.String),
        "Int": st.one_of(
            st.integers(-5, 50),
            st.sampled_from(EDGE_INTS),
            st.integers(-(2**31), 2**31 - 1),
        ).map(nodes.Int),
        # Periods (routingDecisions): real instants across chrono's and
        # Postgres's ranges, the edges, and text that is no time at all.
        "DateTime": st.one_of(
            st.datetimes(
                min_value=datetime.datetime(1, 1, 1),
                max_value=datetime.datetime(9999, 12, 31, 23, 59, 59),
                timezones=st.just(datetime.timezone.utc),
            ).map(lambda d: d.isoformat()),
            st.sampled_from([
                "2026-11-30T00:00:00Z", "1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59.999999Z", "2026-13-01T00:00:00Z", "-infinity", "",
            ]),
            text,
        ).map(nodes.String),
        # sendFile's file: only a multipart request can carry one, so an
        # inline value in a JSON request must be refused cleanly.
        "Upload": text.map(nodes.String),
    }


def fixed_callers(world: World) -> st.SearchStrategy[Caller]:
    return st.sampled_from([c for _, c in sorted(world.callers.items())])


def minted_callers(world: World, text: st.SearchStrategy[str]) -> st.SearchStrategy[Caller]:
    """Tokens signed with the server's secret whose claims are odd: they get
    past the signature check and carry the odd sub and name into the service."""
    now = int(time.time())
    claims = st.fixed_dictionaries(
        {
            "sub": st.one_of(text, st.sampled_from(world.ids)),
            # Mostly claims that pass, so that the odd sub and name go deeper.
            "role": st.sampled_from(["customer", "agent", "admin"] * 3 + ["Admin", "", "root\u0000"]),
            "exp": st.sampled_from([now + 3600] * 4 + [now - 3600, 2**53, 0]),
        },
        optional={"name": text, "iat": st.integers(-(2**63), 2**63 - 1)},
    )
    return claims.map(lambda c: Caller("minted", f"Bearer {hs256(c)}", c))


def subscription_schema(schema_sdl: str) -> graphql.GraphQLSchema:
    """The schema with Subscription as its query root, so that
    hypothesis-graphql, which makes queries and mutations only, makes
    selections on subscription fields too."""
    schema = graphql.build_schema(schema_sdl)
    return graphql.GraphQLSchema(
        query=schema.subscription_type, types=list(schema.type_map.values()), directives=schema.directives
    )


# --------------------------------------------------------------------------
# Properties


def check_errors(errors: list, context: str, document: str) -> None:
    if not isinstance(errors, list):
        raise Failure(f"{context}: `errors` is not a list: {errors!r}")
    for err in errors:
        code = ((err or {}).get("extensions") or {}).get("code")
        message = str((err or {}).get("message", ""))
        OUTCOMES[str(code)] += 1
        if code not in CODES:
            raise Failure(f"{context}: error without a contract code: {short(repr(err))}")
        if code == "INTERNAL":
            raise Failure(f"{context}: INTERNAL error: {short(repr(err))}")
        # Refusals quote the offending input ("{input:?} is not a cursor");
        # what a client sent is not a leak, so quoted spans are skipped.
        for m in LEAKS.finditer(QUOTED.sub('""', message)):
            # A validation message may quote the request itself; that is no leak.
            if m.group(0).lower() not in document.lower():
                raise Failure(f"{context}: message leaks internals ({m.group(0)!r}): {short(message)!r}")


def check_http(world: World, caller: Caller, document: str) -> None:
    context = f"POST as {caller}"
    try:
        r = post(world, caller, document)
    except requests.RequestException as e:
        raise Failure(f"{context}: no response ({e.__class__.__name__}: {e})") from None
    if r.status_code >= 500:
        raise Failure(f"{context}: HTTP {r.status_code}: {short(r.text)}")
    try:
        body = r.json()
    except ValueError:
        raise Failure(f"{context}: HTTP {r.status_code}, not JSON: {r.text[:500]!r}") from None
    if not isinstance(body, dict) or not ("data" in body or "errors" in body):
        raise Failure(f"{context}: HTTP {r.status_code}, neither data nor errors: {body!r}")
    if body.get("data"):
        OUTCOMES["data"] += 1
    if os.environ.get("FUZZ_DEBUG"):
        print(short(str(caller), 150), r.status_code, json.dumps(body)[:150], short(document, 100).replace("\n", " "))
    if "errors" in body:
        check_errors(body["errors"], f"{context} (HTTP {r.status_code})", document)
    elif r.status_code != 200:
        raise Failure(f"{context}: HTTP {r.status_code} without errors: {body!r}")


class WsClients:
    """One graphql-transport-ws connection per caller, reopened when the
    server closes it; each example subscribes, reads briefly, completes."""

    def __init__(self, world: World):
        self.world = world
        self.sockets: dict[Caller, websocket.WebSocket] = {}
        self.next_id = 0

    def _open(self, caller: Caller, context: str) -> websocket.WebSocket | None:
        """A connection past connection_ack, or None when the server
        refused it with a graphql-transport-ws close code."""
        ws = websocket.create_connection(
            self.world.url.replace("http://", "ws://") + "/graphql",
            subprotocols=["graphql-transport-ws"],
            timeout=10,
            suppress_origin=True,
        )
        ws.send(json.dumps({"type": "connection_init", "payload": caller.init_payload()}))
        while True:
            opcode, raw = ws.recv_data(control_frame=False)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                ws.close(timeout=1)
                self._closed(context, raw)
                return None
            kind = json.loads(raw).get("type")
            if kind == "connection_ack":
                return ws
            if kind != "ping":
                raise Failure(f"{context}: {short(raw.decode(errors='replace'))} before connection_ack")

    def close_all(self) -> None:
        for caller in list(self.sockets):
            self._drop(caller)

    def _drop(self, caller: Caller) -> None:
        ws = self.sockets.pop(caller, None)
        if ws is not None:
            try:
                ws.close(timeout=1)
            except Exception:
                pass

    def check(self, caller: Caller, document: str) -> None:
        context = f"WebSocket subscribe as {caller}"
        if caller.claims is not None:
            # Minted callers are one-offs: keep only the fixed ones' sockets.
            for other in [c for c in self.sockets if c.claims is not None]:
                self._drop(other)
        init = json.dumps({"type": "connection_init", "payload": caller.init_payload()})
        if len(init.encode()) > WS_MAX_MESSAGE_BYTES:
            # A token too large for one WebSocket message: the server drops
            # the connection by design, and the property is that it lives on.
            OUTCOMES["ws oversize"] += 1
            return
        ws = self.sockets.get(caller)
        if ws is None or not ws.connected:
            try:
                ws = self._open(caller, context)
            except Failure:
                raise
            except Exception as e:
                raise Failure(f"{context}: handshake failed ({e.__class__.__name__}: {e})") from None
            if ws is None:
                return
            self.sockets[caller] = ws
        self.next_id += 1
        sid = str(self.next_id)
        frame = json.dumps({"id": sid, "type": "subscribe", "payload": {"query": document}})
        if len(frame.encode()) > WS_MAX_MESSAGE_BYTES:
            # Over WS_MAX_MESSAGE_BYTES the server drops the connection by
            # design; the next example opens a new one, which must work.
            OUTCOMES["ws oversize"] += 1
            try:
                ws.send(frame)
                ws.settimeout(5)
                ws.recv_data(control_frame=False)
            except Exception:
                pass
            self._drop(caller)
            return
        try:
            ws.send(frame)
            ws.settimeout(0.3)
            # Read what the subscription answers at once (a replay, an error);
            # live feeds that stay quiet are fine.
            for _ in range(20):
                try:
                    opcode, raw = ws.recv_data(control_frame=False)
                except websocket.WebSocketTimeoutException:
                    break
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self._drop(caller)
                    self._closed(context, raw)
                    return
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "next" and msg.get("id") == sid:
                    OUTCOMES["ws next"] += 1
                    if "errors" in msg.get("payload", {}):
                        check_errors(msg["payload"]["errors"], context, document)
                elif kind == "error" and msg.get("id") == sid:
                    check_errors(msg.get("payload"), context, document)
                    break
                elif kind == "complete" and msg.get("id") == sid:
                    break
                elif kind == "ping":
                    ws.send(json.dumps({"type": "pong"}))
            ws.send(json.dumps({"id": sid, "type": "complete"}))
        except (OSError, websocket.WebSocketException) as e:
            self._drop(caller)
            raise Failure(f"{context}: connection dropped ({e.__class__.__name__}: {e})") from None

    def _closed(self, context: str, raw: bytes) -> None:
        code = int.from_bytes(raw[:2], "big") if len(raw) >= 2 else None
        reason = raw[2:].decode(errors="replace")
        # 4403 (forbidden) and 4400 (bad message) are answers; an abnormal
        # or internal-error close is a crash of the connection.
        if code is None or code in (1006, 1011) or code < 4000:
            raise Failure(f"{context}: socket closed with {code} {short(reason)!r}")
        if LEAKS.search(reason):
            raise Failure(f"{context}: close reason leaks internals: {reason!r}")


# --------------------------------------------------------------------------
# Attacks: small documents that would cost the server far more than they
# cost to send. Unlike the properties above they are built, not generated:
# a seeded list, cheapest first, so the first failure is near the smallest.

# How much the server's resident memory (VmRSS of the process fuzz.py
# started) may grow over what it was when the attacks began. Every attack
# below is refused or answered in a few MB by a bounded server; an
# unbounded one spent GBs on a 1 KB fragment bomb.
RSS_HEADROOM_BYTES = 300 * 1024 * 1024
# Past this much growth (at most half the memory available when the attacks
# began) the watcher kills the server at once (SIGKILL), so that a runaway
# does not take the machine down with it; the run has failed by then anyway.
RSS_KILL_HEADROOM_BYTES = 3 * 1024**3
# A fragment attack must be answered within this: refused with
# BAD_USER_INPUT, or answered as usual when it is small.
FRAGMENT_ANSWER_SECS = 2.0
# GET /healthz, sent while an attack is in flight, must answer within this.
HEALTHZ_SECS = 2.0
# The client waits this long for any attack's answer (and for /healthz)
# before it counts as unanswered.
ATTACK_TIMEOUT_SECS = 10.0
# The largest answer an attack may get ("a few MB"): bigger lists must be
# refused (BAD_USER_INPUT), not sent.
MAX_ANSWER_BYTES = 5 * 1024 * 1024
# What the big-list attacks read: one customer's chats, full of long
# messages, so that one `messages(first: 500)` page of a chat is about
# 1.2 MB and every alias of `mySessions` about 2.4 MB.
BULK_SESSIONS = 2
BULK_MESSAGES = 300
BULK_BODY = "b" * 4000  # the default MAX_MESSAGE_CHARS
# Attacks drawn per family, besides one of every shape and transport.
FRAGMENT_DRAWS = 24
LIST_DRAWS = 12


@dataclass
class Attack:
    family: str  # "fragments" or "lists"
    shape: str
    cost: float  # for the order: cheapest first
    transport: str  # "http" or "ws"
    caller: Caller
    document: str
    variables: dict | None = None

    def describe(self) -> str:
        sent = f"{self.shape}, {self.transport.upper()} as {self.caller}, {len(self.document)} bytes"
        if self.variables is not None:
            sent += f", variables {json.dumps(self.variables)}"
        return f"{sent}:\n{short(self.document, 4000)}"


def fragment_chain(n: int, on: str, spreads: int, leaf: str, cycle: bool = False) -> str:
    """F0 spreads F1 `spreads` times, F1 spreads F2, ... and Fn selects
    `leaf` (or, with `cycle`, spreads F0 again): spreads**n leaves once
    expanded."""
    defs = [f"fragment F{i} on {on}{{{' '.join([f'...F{i + 1}'] * spreads)}}}" for i in range(n)]
    last = " ".join(["...F0"] * spreads) if cycle else leaf
    defs.append(f"fragment F{n} on {on}{{{last}}}")
    return " ".join(defs)


@dataclass(frozen=True)
class FragmentShape:
    name: str
    make: object  # (n, session id) -> document
    spreads: int
    transports: tuple[str, ...] = ("http", "ws")


FRAGMENT_SHAPES = [
    FragmentShape("query, two spreads a level", lambda n, s: "query{...F0} " + fragment_chain(n, "Query", 2, "__typename"), 2),
    FragmentShape("query, three spreads a level", lambda n, s: "query{...F0} " + fragment_chain(n, "Query", 3, "__typename"), 3),
    FragmentShape("spreads inside me{}", lambda n, s: "query{me{...F0}} " + fragment_chain(n, "Viewer", 2, "id role"), 2),
    FragmentShape(
        "spreads inside mySessions{nodes{}}",
        lambda n, s: "query{mySessions(first:5){nodes{...F0}}} " + fragment_chain(n, "ChatSession", 2, "id status"), 2,
    ),
    FragmentShape("mutation, two spreads a level", lambda n, s: "mutation{...F0} " + fragment_chain(n, "Mutation", 2, "__typename"), 2),
    FragmentShape("cycle F0→F1→…→Fn→F0", lambda n, s: "query{...F0} " + fragment_chain(n, "Query", 2, "", cycle=True), 2),
    FragmentShape("cycle F0→F1→F0 (N not used)", lambda n, s: "query{...F0} fragment F0 on Query{...F1} fragment F1 on Query{...F0}", 1),
    FragmentShape("unused chain", lambda n, s: "query{__typename} " + fragment_chain(n, "Query", 2, "__typename"), 2),
    FragmentShape(
        "many unused fragments (25 N)",
        lambda n, s: "query{__typename} " + " ".join(f"fragment U{i} on Query{{__typename}}" for i in range(n * 25)), 1,
    ),
    FragmentShape(
        "subscription queueEvents",
        lambda n, s: "subscription{queueEvents{...F0}} " + fragment_chain(n, "QueueChanged", 2, "stats{waiting}"), 2,
    ),
    FragmentShape(
        "subscription sessionEvents",
        lambda n, s: f'subscription{{sessionEvents(sessionId:"{s}"){{...F0}}}} ' + fragment_chain(n, "SessionEvent", 2, "__typename"), 2,
    ),
    FragmentShape(
        "subscription agentEvents, three spreads",
        lambda n, s: "subscription{agentEvents{...F0}} " + fragment_chain(n, "AgentEvent", 3, "__typename"), 3,
    ),
    FragmentShape(
        "subscription root spreads",
        lambda n, s: "subscription{...F0} " + fragment_chain(n, "Subscription", 2, "queueEvents{stats{waiting}}"), 2,
    ),
]


def fragment_attacks(rng: random.Random, world: World) -> list[Attack]:
    callers = [world.callers[c] for c in ("anonymous", "customer", "agent", "admin")]
    session = world.ids[3]  # the second customer's accepted chat

    def attack(shape: FragmentShape, transport: str, n: int, caller: Caller) -> Attack:
        cost = n * math.log2(shape.spreads) if shape.spreads > 1 else n / 25
        return Attack("fragments", f"{shape.name}, N={n}", cost, transport, caller, shape.make(n, session))

    out = []
    for shape in FRAGMENT_SHAPES:
        for transport in shape.transports:
            out.append(attack(shape, transport, rng.randint(5, 40), rng.choice(callers)))
    for _ in range(FRAGMENT_DRAWS):
        shape = rng.choice(FRAGMENT_SHAPES)
        out.append(attack(shape, rng.choice(shape.transports), rng.randint(5, 40), rng.choice(callers)))
    # The worst of the two commonest shapes, anonymous, over both transports:
    # 31 levels is the deepest that gets past async-graphql's recursion limit
    # of 32 (deeper ones are refused at once), 2**31 or 3**31 spreads.
    for transport in ("http", "ws"):
        for shape in FRAGMENT_SHAPES[:2]:
            out.append(attack(shape, transport, 31, world.callers["anonymous"]))
    return sorted(out, key=lambda a: a.cost)


MESSAGES = "nodes{body}"


def list_attacks(rng: random.Random, bulk: Caller, admin: Caller, sessions: list[str]) -> list[Attack]:
    def aliased(k: int, field: str) -> str:
        return " ".join(f"a{i}:{field}" for i in range(k))

    shapes = [
        # (name, lists fetched per alias, document for k aliases, variables)
        ("aliases of mySessions(first:100){nodes{messages(first:500)}}", 1,
         lambda k: "query{" + aliased(k, f"mySessions(first:100){{nodes{{messages(first:500){{{MESSAGES}}}}}}}") + "}", None),
        ("aliases, first from variables", 1,
         lambda k: "query($s:Int,$m:Int){" + aliased(k, f"mySessions(first:$s){{nodes{{messages(first:$m){{{MESSAGES}}}}}}}") + "}",
         {"s": 100, "m": 500}),
        ("aliases, messages(last:500)", 1,
         lambda k: "query{" + aliased(k, f"mySessions(first:100){{nodes{{messages(last:500){{{MESSAGES}}}}}}}") + "}", None),
        ("aliases, edges and nodes both", 3,
         lambda k: "query{" + aliased(
             k, "mySessions(first:100){edges{node{messages(first:500){edges{node{body}} nodes{body}}}}"
                f" nodes{{messages(last:500){{{MESSAGES}}}}}}}") + "}", None),
        ("aliases of session(id){messages(first:500)}", 0.5,
         lambda k: "query{" + " ".join(
             f'a{i}:session(id:"{sessions[i % len(sessions)]}"){{messages(first:500){{{MESSAGES}}}}}' for i in range(k)) + "}", None),
    ]

    def nested(k: int) -> tuple[str, int]:
        # Aliases counted as written (k + k) fetch k * k lists.
        inner = " ".join(f"m{j}:messages(first:500){{{MESSAGES}}}" for j in range(k))
        return "query{" + aliased(k, "mySessions(first:100){nodes{...M}}") + "} fragment M on ChatSession{" + inner + "}", k * k

    out = []

    def add(name: str, per_alias: float, k: int, document: str, variables: dict | None, transport: str = "http", caller: Caller = bulk) -> None:
        out.append(Attack("lists", f"{name}, {k} aliases", per_alias * k, transport, caller, document, variables))

    for name, per_alias, make, variables in shapes:
        k = rng.randint(1, 30)
        add(name, per_alias, k, make(k), variables)
    for _ in range(LIST_DRAWS):
        name, per_alias, make, variables = rng.choice(shapes)
        k = rng.randint(1, 30)
        add(name, per_alias, k, make(k), variables, rng.choice(["http", "http", "ws"]), rng.choice([bulk, bulk, admin]))
    for k in (rng.randint(2, 8), 15):
        document, lists = nested(k)
        out.append(Attack("lists", f"{k} aliases × {k} aliased messages in a fragment", lists, "http", bulk, document))
    # One plain read (about 2.4 MB: answered as usual, or refused), and the most aliases allowed.
    name, per_alias, make, variables = shapes[0]
    add(name, per_alias, 1, make(1), variables)
    add(name, per_alias, 30, make(30), variables)
    return sorted(out, key=lambda a: a.cost)


def seed_bulk(server: Server, world: World) -> tuple[Caller, list[str]]:
    """A customer with BULK_SESSIONS chats of BULK_MESSAGES long messages,
    for the big-list attacks; added only now, so that the properties above
    never read them."""
    bulk = Caller("customer fuzz-bulk", f"Bearer {server.token('customer', 'fuzz-bulk')}")
    sessions = []

    def call(query: str, variables: dict | None = None) -> dict:
        # The properties may have spent this address's new-chat budget
        # (IP_SESSION_RATE_PER_MIN); it refills by one a second.
        for _ in range(20):
            body = post(world, bulk, query, variables).json()
            codes = {(e.get("extensions") or {}).get("code") for e in body.get("errors") or []}
            if codes != {"RATE_LIMITED"}:
                break
            time.sleep(1)
        if body.get("errors"):
            raise RuntimeError(f"seeding the big-list data: {query[:100]}: {body['errors']}")
        return body["data"]

    for s in range(BULK_SESSIONS):
        sid = call('mutation { startSession(input: {subject: "bulk"}) { id } }')["startSession"]["id"]
        sessions.append(sid)
        for start in range(0, BULK_MESSAGES, 30):
            sends = " ".join(
                f'm{i}: sendMessage(input: {{sessionId: "{sid}", body: $b, clientMessageId: "bulk-{s}-{i}"}}) {{ seq }}'
                for i in range(start, min(start + 30, BULK_MESSAGES))
            )
            call(f"mutation($b: String!) {{ {sends} }}", {"b": BULK_BODY})
        if s + 1 < BULK_SESSIONS:
            call(f'mutation {{ endSession(sessionId: "{sid}") {{ id }} }}')
    return bulk, sessions


def vm_rss(pid: int) -> int | None:
    """Resident memory of a process in bytes; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 8 * 1024**3


def mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1024 / 1024:.0f} MB"


class RssWatch:
    """Samples the server's VmRSS every 10 ms in a thread: the peak over the
    whole attack phase and over the current attack; kills the server past
    the safety limit."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.start = vm_rss(proc.pid) or 0
        self.bound = self.start + RSS_HEADROOM_BYTES
        self.kill_at = self.start + min(RSS_KILL_HEADROOM_BYTES, mem_available() // 2)
        self.peak = self.window_peak = self.start
        self.killed_at: int | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            rss = vm_rss(self.proc.pid)
            if rss is None or self.proc.poll() is not None:
                return
            self.peak = max(self.peak, rss)
            self.window_peak = max(self.window_peak, rss)
            if rss > self.kill_at and self.killed_at is None:
                self.killed_at = rss
                print(f"fuzz: server RSS {mb(rss)} is past the safety limit {mb(self.kill_at)}; killing it", file=sys.stderr)
                self.proc.kill()
                return
            time.sleep(0.01)

    def new_window(self) -> None:
        self.window_peak = vm_rss(self.proc.pid) or self.window_peak

    def stop(self) -> None:
        self._stop = True
        self._thread.join(timeout=1)


@dataclass
class Answer:
    seconds: float = 0.0
    size: int = 0
    summary: str = "no answer"
    problem: str | None = None  # what was wrong with it, if anything
    answered: bool = True  # False when the server never finished answering


def send_http(world: World, attack: Attack) -> Answer:
    """POSTs the attack and reads at most MAX_ANSWER_BYTES + 1 of the answer."""
    body = {"query": attack.document}
    if attack.variables is not None:
        body["variables"] = attack.variables
    t0 = time.monotonic()
    answer = Answer()
    try:
        with requests.post(f"{world.url}/graphql", json=body, headers=attack.caller.headers(),
                           timeout=ATTACK_TIMEOUT_SECS, stream=True) as r:
            chunks = []
            for chunk in r.iter_content(65536):
                chunks.append(chunk)
                answer.size += len(chunk)
                if answer.size > MAX_ANSWER_BYTES or time.monotonic() - t0 > ATTACK_TIMEOUT_SECS:
                    break
            answer.seconds = time.monotonic() - t0
            if answer.size > MAX_ANSWER_BYTES:
                answer.summary = f"HTTP {r.status_code}, more than {mb(MAX_ANSWER_BYTES)} (stopped reading)"
                answer.problem = f"answer larger than {mb(MAX_ANSWER_BYTES)}"
                return answer
            if answer.seconds > ATTACK_TIMEOUT_SECS:
                answer.summary = f"HTTP {r.status_code}, {answer.size} bytes, still arriving"
                answer.problem = f"answer not complete within {ATTACK_TIMEOUT_SECS:.0f} s"
                answer.answered = False
                return answer
            text = b"".join(chunks).decode(errors="replace")
    except requests.RequestException as e:
        answer.seconds = time.monotonic() - t0
        answer.summary = f"no answer ({e.__class__.__name__})"
        answer.problem = f"no answer within {ATTACK_TIMEOUT_SECS:.0f} s ({e.__class__.__name__}: {short(str(e), 200)})"
        answer.answered = False
        return answer
    answer.summary = f"HTTP {r.status_code}, {answer.size} bytes: {short(text, 300)}"
    if r.status_code >= 500:
        answer.problem = f"HTTP {r.status_code}"
        return answer
    try:
        payload = json.loads(text)
    except ValueError:
        answer.problem = "not JSON"
        return answer
    if not isinstance(payload, dict) or not ("data" in payload or "errors" in payload):
        answer.problem = "neither data nor errors"
    elif "errors" in payload:
        try:
            check_errors(payload["errors"], "answer", attack.document)
        except Failure as e:
            answer.problem = str(e)
    return answer


def send_ws(world: World, attack: Attack) -> Answer:
    """Subscribes with the attack on a new graphql-transport-ws connection and
    pings right after: the answer is the operation's first message, or the
    pong when it is a live subscription with nothing to say yet."""
    t0 = time.monotonic()
    answer = Answer()
    ws = None

    def elapsed() -> float:
        return time.monotonic() - t0

    try:
        ws = websocket.create_connection(
            world.url.replace("http://", "ws://") + "/graphql",
            subprotocols=["graphql-transport-ws"], timeout=ATTACK_TIMEOUT_SECS, suppress_origin=True,
            # websocket-client checks UTF-8 in pure Python, 3 s a MB; json.loads checks it too.
            skip_utf8_validation=True,
        )
        ws.send(json.dumps({"type": "connection_init", "payload": attack.caller.init_payload()}))
        payload = {"query": attack.document}
        if attack.variables is not None:
            payload["variables"] = attack.variables
        acked = False
        # When the operation first answered: a message for it, or the pong
        # (a live subscription with nothing to say yet).
        first: float | None = None
        messages: list[dict] = []
        while True:
            now = elapsed()
            if first is None and now >= ATTACK_TIMEOUT_SECS:
                break
            # After the first answer, a short look at what else comes; a live
            # feed may go on talking (replays), which is not the attack's cost.
            if first is not None and now - first >= 2:
                break
            ws.settimeout(0.3 if first is not None else max(0.1, ATTACK_TIMEOUT_SECS - now))
            try:
                opcode, raw = ws.recv_data(control_frame=False)
            except websocket.WebSocketTimeoutException:
                if first is not None:
                    break
                continue
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                answer.seconds = elapsed()
                code = int.from_bytes(raw[:2], "big") if len(raw) >= 2 else None
                answer.summary = f"socket closed with {code} {raw[2:].decode(errors='replace')!r}"
                if code is None or code < 4000 or code in (1006, 1011):
                    answer.problem = answer.summary
                return answer
            answer.size += len(raw)
            if answer.size > MAX_ANSWER_BYTES:
                answer.seconds = elapsed()
                answer.summary = f"more than {mb(MAX_ANSWER_BYTES)} of messages"
                answer.problem = f"answer larger than {mb(MAX_ANSWER_BYTES)}"
                return answer
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "connection_ack" and not acked:
                acked = True
                ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
                ws.send(json.dumps({"type": "ping"}))
            elif kind == "ping":
                ws.send(json.dumps({"type": "pong"}))
            elif kind == "pong":
                first = elapsed() if first is None else first
            elif msg.get("id") == "1":
                first = elapsed() if first is None else first
                messages.append(msg)
                if kind in ("error", "complete") or (kind == "next" and "errors" in msg.get("payload", {})):
                    break
        if first is None:
            answer.seconds = elapsed()
            answer.summary = f"{'connection_ack, then ' if acked else ''}nothing for {answer.seconds:.1f} s"
            answer.problem = f"no answer within {ATTACK_TIMEOUT_SECS:.0f} s"
            answer.answered = False
            return answer
        answer.seconds = first
        answer.summary = (f"{len(messages)} messages, {answer.size} bytes in {elapsed():.2f} s: "
                          + (short(json.dumps(messages), 300) if messages else "a pong (live, quiet)"))
        for msg in messages:
            errors = msg.get("payload") if msg.get("type") == "error" else (msg.get("payload") or {}).get("errors")
            if errors is not None:
                try:
                    check_errors(errors, "answer", attack.document)
                except Failure as e:
                    answer.problem = str(e)
        return answer
    except (OSError, websocket.WebSocketException, ValueError) as e:
        answer.seconds = elapsed()
        answer.summary = f"connection failed ({e.__class__.__name__}: {short(str(e), 200)})"
        answer.problem = answer.summary
        return answer
    finally:
        if ws is not None:
            try:
                ws.close(timeout=1)
            except Exception:
                pass


def healthz_latency(world: World) -> tuple[float | None, str]:
    """Seconds GET /healthz took, or None when it did not answer 200."""
    t0 = time.monotonic()
    try:
        r = requests.get(f"{world.url}/healthz", timeout=ATTACK_TIMEOUT_SECS)
    except requests.RequestException as e:
        return None, f"no answer within {ATTACK_TIMEOUT_SECS:.0f} s ({e.__class__.__name__})"
    took = time.monotonic() - t0
    return (took, f"{took * 1000:.0f} ms") if r.status_code == 200 else (None, f"HTTP {r.status_code} after {took * 1000:.0f} ms")


def run_attack(world: World, server: Server, watch: RssWatch, attack: Attack) -> tuple[Answer, float | None, str | None]:
    """Sends one attack in a thread, probes /healthz while it is in flight,
    and says what went wrong, if anything."""
    watch.new_window()
    rss_before = watch.window_peak
    box: list[Answer] = []
    send = send_http if attack.transport == "http" else send_ws
    worker = threading.Thread(target=lambda: box.append(send(world, attack)), daemon=True)
    worker.start()
    # Let the request reach the server, then ask how it is, and again every
    # half second while the attack is in flight; the slowest answer counts.
    worker.join(0.05)
    probes: list[tuple[float | None, str, bool]] = []
    while True:
        in_flight = worker.is_alive()
        probes.append((*healthz_latency(world), in_flight))
        if probes[-1][0] is None or not in_flight:
            break
        worker.join(0.5)
        if not worker.is_alive():
            break
    worker.join(ATTACK_TIMEOUT_SECS + 5)
    answer = box[0] if box else Answer(seconds=ATTACK_TIMEOUT_SECS, summary="the client hung", answered=False)
    hz, hz_text, in_flight = max(probes, key=lambda p: float("inf") if p[0] is None else p[0])
    problems = []
    if answer.problem:
        problems.append(answer.problem)
    if attack.family == "fragments" and answer.seconds > FRAGMENT_ANSWER_SECS and not answer.problem:
        problems.append(f"answered in {answer.seconds:.2f} s, more than {FRAGMENT_ANSWER_SECS:.0f} s")
    if hz is None or hz > HEALTHZ_SECS:
        problems.append(f"GET /healthz: {hz_text} (limit {HEALTHZ_SECS:.0f} s)")
    if watch.window_peak > watch.bound:
        problems.append(f"server RSS reached {mb(watch.window_peak)}, over the bound {mb(watch.bound)}")
    if watch.killed_at is not None:
        problems.append(f"killed by the fuzzer at RSS {mb(watch.killed_at)} (safety limit {mb(watch.kill_at)})")
    elif server.proc.poll() is not None:
        problems.append(f"server exited with {server.proc.returncode}")
    if not problems:
        return answer, hz, None
    report = (
        f"{'; '.join(problems)}\n"
        f"  sent: {attack.describe()}\n"
        f"  answer: {answer.summary} after {answer.seconds:.2f} s\n"
        f"  server RSS: {mb(watch.start)} when the attacks began, {mb(rss_before)} before this one, "
        f"peak {mb(watch.window_peak)} during it, bound {mb(watch.bound)} (start + {mb(RSS_HEADROOM_BYTES)})\n"
        f"  GET /healthz: slowest {hz_text} ({'sent while the attack was in flight' if in_flight else 'sent after the answer'}), "
        f"probes: " + ", ".join(t for _, t, _ in probes[:8])
    )
    return answer, hz, report


def run_attacks(world: World, server: Server, families: list[str], fuzz_seed: int) -> tuple[list[str], bool]:
    """Each family runs cheapest first and stops at its first failure; the
    next family runs only when the server is healthy again. Returns the
    failures and whether the server is left wedged (dead, or /healthz slow)."""
    failures: list[str] = []
    wedged = False
    if not families:
        return failures, wedged
    watch = RssWatch(server.proc)
    t_all = time.monotonic()
    try:
        for family in families:
            t0 = time.monotonic()
            # One stream per family: FUZZ_ONLY=lists draws what a whole run draws.
            rng = random.Random(f"{fuzz_seed}-{family}")
            if family == "fragments":
                attacks = fragment_attacks(rng, world)
            else:
                bulk, sessions = seed_bulk(server, world)
                print(f"fuzz: attacks: {BULK_SESSIONS} chats of {BULK_MESSAGES} messages of "
                      f"{len(BULK_BODY)} characters seeded ({time.monotonic() - t0:.1f}s)")
                attacks = list_attacks(rng, bulk, world.callers["admin"], sessions)
            watch.new_window()
            slowest = (0.0, "")
            worst_hz = 0.0
            biggest = 0
            for i, attack in enumerate(attacks):
                answer, hz, failure = run_attack(world, server, watch, attack)
                if os.environ.get("FUZZ_DEBUG"):
                    print(f"  {attack.shape} {attack.transport} {attack.caller}: {answer.seconds:.2f}s "
                          f"{short(answer.summary, 150)} healthz {hz} rss {mb(watch.window_peak)}")
                if failure:
                    failures.append(f"attacks_{family}: {failure}")
                    print(f"fuzz: attacks_{family}: FAILED at attack {i + 1} of {len(attacks)}: {failure}", file=sys.stderr)
                    break
                if answer.seconds > slowest[0]:
                    slowest = (answer.seconds, f"{attack.shape}, {attack.transport}")
                worst_hz = max(worst_hz, hz or 0.0)
                biggest = max(biggest, answer.size)
            else:
                print(f"fuzz: attacks_{family}: {len(attacks)} attacks passed ({time.monotonic() - t0:.1f}s); "
                      f"slowest answer {slowest[0]:.2f}s ({slowest[1]}), largest {biggest} bytes, "
                      f"slowest /healthz {worst_hz * 1000:.0f} ms, server RSS {mb(watch.start)} at the start, "
                      f"peak {mb(watch.peak)} (bound {mb(watch.bound)})")
            sys.stdout.flush()
            if failures:
                # The next family needs a server that has recovered; one that
                # never answered an attack is most likely still at it.
                if not answer.answered:
                    hz, hz_text = None, "not asked: the server never answered the attack"
                elif server.proc.poll() is not None:
                    hz, hz_text = None, "server gone"
                else:
                    hz, hz_text = healthz_latency(world)
                if hz is None or hz > HEALTHZ_SECS or watch.killed_at is not None:
                    wedged = True
                    print(f"fuzz: attacks: the server has not recovered (GET /healthz: {hz_text}); "
                          "no more attacks, and it is killed at the end", file=sys.stderr)
                    break
    finally:
        watch.stop()
    print(f"fuzz: attacks done ({time.monotonic() - t_all:.1f}s); server RSS {mb(watch.start)} at the start, "
          f"peak {mb(watch.peak)}, bound {mb(watch.bound)}")
    return failures, wedged


# --------------------------------------------------------------------------

# What a run does, in order; FUZZ_ONLY picks some.
PARTS = ("properties", "fragments", "lists")


def run(args: argparse.Namespace) -> int:
    # Long generated documents make long reprs; they are wanted here.
    warnings.simplefilter("ignore", HypothesisWarning)
    schema_sdl = open(args.schema).read()
    fuzz_seed = args.seed if args.seed is not None else random.randrange(2**32)
    parts = [p.strip() for p in args.only.split(",") if p.strip()] if args.only else list(PARTS)
    parts = [q for p in parts for q in (("fragments", "lists") if p == "attacks" else (p,))]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print(f"fuzz: FUZZ_ONLY: unknown part {', '.join(unknown)} (known: {', '.join(PARTS)}, attacks)", file=sys.stderr)
        return 2
    print(f"fuzz: seed {fuzz_seed} (FUZZ_SEED={fuzz_seed} repeats it), {args.examples} examples per property"
          + ("" if args.only is None else f"; only {', '.join(parts)}"))

    server = Server(binary=args.binary, pg_base=args.pg_base.rstrip("/"), routing_mode=args.routing_mode)
    failures: list[str] = []
    wedged = False
    started = time.monotonic()
    try:
        server.start()
        print(f"fuzz: server on {server.url}, database {server.db_name} ({time.monotonic() - started:.1f}s)")
        world = setup_world(server)
        print(f"fuzz: callers and seed data ready ({time.monotonic() - started:.1f}s)")
        callers = fixed_callers(world)
        minted = minted_callers(world, ODD_TEXT)
        scalars = value_strategies(world.ids)
        sub_schema = subscription_schema(schema_sdl)
        ws = WsClients(world)

        def configured(fn, examples):
            fn = settings(
                max_examples=examples,
                # Hypothesis's own CI profile (CI=true) would derandomize and
                # make the printed seed a lie; the seed decides here.
                derandomize=False,
                deadline=None,
                database=None,
                print_blob=False,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
            )(fn)
            return seed(fuzz_seed)(fn)

        schema = graphql.build_schema(schema_sdl)
        valid_ops = st.one_of(
            queries(schema, custom_scalars=scalars),
            mutations(schema, custom_scalars=scalars),
        )
        # One root field each: the first refused field of a mutation ends
        # it, so single fields bring each identity to every resolver.
        single_field_ops = st.one_of(
            *(queries(schema, fields=[f], custom_scalars=scalars) for f in schema.query_type.fields),
            *(mutations(schema, fields=[f], custom_scalars=scalars) for f in schema.mutation_type.fields),
        )
        invalid_ops = st.one_of(
            queries(schema, custom_scalars=scalars, mode=Mode.NEGATIVE),
            mutations(schema, custom_scalars=scalars, mode=Mode.NEGATIVE),
        )
        # A subscription selects exactly one root field.
        sub_ops = st.one_of(
            *(
                queries(sub_schema, fields=[name], custom_scalars=scalars)
                for name in sub_schema.query_type.fields
            )
        ).map(lambda d: "subscription " + d)

        def showing_operation(check, caller, document):
            # Hypothesis prints the generated document as an AST call; the
            # report needs the operation itself.
            try:
                check(caller, document)
            except Failure as e:
                raise Failure(f"{e}\n  operation:\n{short(document, 4000)}") from None

        @given(caller=callers, document=valid_ops)
        def valid_operations_over_http(caller, document):
            showing_operation(lambda c, d: check_http(world, c, d), caller, document)

        @given(caller=minted, document=single_field_ops)
        def odd_identities_over_http(caller, document):
            showing_operation(lambda c, d: check_http(world, c, d), caller, document)

        @given(caller=callers, document=invalid_ops)
        def invalid_operations_over_http(caller, document):
            showing_operation(lambda c, d: check_http(world, c, d), caller, document)

        @given(caller=st.one_of(callers, minted), document=sub_ops)
        def subscriptions_over_websocket(caller, document):
            showing_operation(ws.check, caller, document)

        properties = [
            (valid_operations_over_http, args.examples),
            # Cheap (most are refused or answered at once) and where the
            # identity reaches storage: twice as many.
            (odd_identities_over_http, 2 * args.examples),
            (invalid_operations_over_http, max(1, args.examples // 4)),
            (subscriptions_over_websocket, max(1, args.examples // 4)),
        ]
        for fn, examples in (properties if "properties" in parts else []):
            name = fn.__name__
            t0 = time.monotonic()
            try:
                configured(fn, examples)()
                print(f"fuzz: {name}: {examples} examples passed ({time.monotonic() - t0:.1f}s)")
            except Failure as e:
                failures.append(f"{name}: {e}")
                print(f"fuzz: {name}: FAILED\n{e}", file=sys.stderr)
            except Exception as e:  # hypothesis reports the minimal example through the exception
                failures.append(f"{name}: {e.__class__.__name__}: {e}")
                traceback.print_exc()
            sys.stdout.flush()
        ws.close_all()
        if "properties" in parts:
            print("fuzz: answers seen: " + ", ".join(f"{k} {v}" for k, v in OUTCOMES.most_common()))

        attack_failures, wedged = run_attacks(world, server, [p for p in parts if p != "properties"], fuzz_seed)
        failures += attack_failures

        # The process survived everything above.
        if wedged:
            pass  # the attacks' report says how the server was doing
        elif server.proc.poll() is not None:
            failures.append(f"server exited with {server.proc.returncode}")
        else:
            try:
                h = requests.get(f"{server.url}/healthz", timeout=10)
                if h.status_code != 200:
                    failures.append(f"/healthz answered {h.status_code}")
            except requests.RequestException as e:
                failures.append(f"/healthz did not answer: {e}")
        panics = [l for l in server.log_text().splitlines() if "panicked" in l]
        if panics:
            failures.append("server log has panics:\n" + "\n".join(panics[:5]))
    except Exception as e:
        failures.append(f"fuzz harness: {e.__class__.__name__}: {e}")
        traceback.print_exc()
    finally:
        if failures:
            print(f"fuzz: server log (last lines):\n{server.log_tail()}", file=sys.stderr)
        t_stop = time.monotonic()
        # A server still busy with an attack would not stop in time anyway.
        server.stop(keep_db=args.keep_db, kill=wedged)
        print(f"fuzz: server stopped, database dropped ({time.monotonic() - t_stop:.1f}s)")

    elapsed = time.monotonic() - started
    if failures:
        print(f"fuzz: {len(failures)} failed ({elapsed:.0f}s, seed {fuzz_seed}):", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print(f"fuzz: no failure ({elapsed:.0f}s, seed {fuzz_seed})")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--binary", required=True, help="the switchboard binary")
    p.add_argument("--schema", required=True, help="schema.graphql")
    p.add_argument("--examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", "500")),
                   help="examples for the main property; the others get fewer (env FUZZ_EXAMPLES)")
    p.add_argument("--seed", type=int, default=int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else None,
                   help="seed for a repeatable run (env FUZZ_SEED); random by default")
    p.add_argument("--routing-mode", default=os.environ.get("FUZZ_ROUTING_MODE", "fair"))
    p.add_argument("--pg-base", default=os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432"))
    p.add_argument("--keep-db", action="store_true", help="leave the database for inspection")
    p.add_argument("--only", default=os.environ.get("FUZZ_ONLY") or None,
                   help="comma-separated parts to run: properties, fragments, lists, or attacks "
                        "(fragments and lists); all by default (env FUZZ_ONLY)")
    return run(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())

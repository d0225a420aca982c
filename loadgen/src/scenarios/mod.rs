//! The scenarios. Each drives real clients against the server and returns
//! one [`Report`]; none asserts a timing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use switchboard::auth::Role;
use tokio::sync::{mpsc, watch, Notify, Semaphore};

use crate::client::{self, classify, Frame, Http, Socket};
use crate::stats::{self, round1, Delivery, ProcWatch};
use crate::{Report, ScenarioError, Target};

const AGENT_EVENTS: &str = "subscription { agentEvents { __typename \
    ... on SessionOffered { session { id } } ... on SessionAssigned { session { id } } } }";
const SESSION_EVENTS: &str =
    "subscription($s: ID!, $after: Int) { sessionEvents(sessionId: $s, afterSeq: $after) { \
    __typename ... on MessagePosted { message { seq sender body } } ... on CaughtUp { seq } } }";
const START_SESSION: &str = "mutation { startSession(input: {subject: \"loadgen\"}) { id } }";
const SEND_MESSAGE: &str = "mutation($s: ID!, $b: String!, $c: String!) { \
    sendMessage(input: {sessionId: $s, body: $b, clientMessageId: $c}) { seq } }";
const ACCEPT: &str = "mutation($s: ID!) { acceptSession(sessionId: $s) { id } }";
const END_SESSION: &str = "mutation($s: ID!) { endSession(sessionId: $s) { id } }";
const START_SHIFT: &str = "mutation { startShift { status } }";
const END_SHIFT: &str = "mutation { endShift { status } }";

/// How many connections are opened or set up at once: a crowd of clients
/// arriving, without a SYN flood that tests the kernel instead of the server.
const SETUP_CONCURRENCY: usize = 64;

/// Every error of a run is counted; the first few are kept to show.
#[derive(Default)]
pub struct Errors {
    count: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Errors {
    pub fn add(&self, what: impl std::fmt::Display) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.samples.lock() {
            if s.len() < 5 {
                s.push(what.to_string());
            }
        }
    }
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    fn json(&self) -> Value {
        json!(self.samples.lock().map(|s| s.clone()).unwrap_or_default())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking task is a bug this tool reports anyway; keep measuring.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn typename(data: &Value, field: &str) -> String {
    data[field]["__typename"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn session_id(data: &Value, field: &str) -> Option<String> {
    data[field]["id"].as_str().map(str::to_owned)
}

/// A message body: its number, its scheduled send time in µs since the
/// run's epoch, and padding to a realistic size.
fn stamp(idx: usize, sched_us: u128, size: usize) -> String {
    let mut body = format!("lg {idx} {sched_us} ");
    while body.len() < size {
        body.push('x');
    }
    body
}

fn parse_stamp(body: &str) -> Option<(usize, u128)> {
    let mut parts = body.split_whitespace();
    (parts.next()? == "lg").then_some(())?;
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

// ---------------------------------------------------------------- chat

#[derive(Clone, Debug)]
pub struct ChatParams {
    /// Concurrent chats: C customers and ceil(C/2) agents of capacity 2.
    pub chats: usize,
    /// Messages each side sends.
    pub messages: usize,
    /// Time between one sender's messages; zero sends back to back.
    pub think: Duration,
    pub body_bytes: usize,
    /// How long to wait for late messages after the last send.
    pub drain: Duration,
    /// How long assignment and subscription may take before sending starts.
    pub setup_timeout: Duration,
}

struct SessionCtx {
    started: OnceLock<Instant>,
    assigned: OnceLock<Instant>,
    agent: OnceLock<usize>,
    agent_ready: Notify,
    to_customer: Mutex<Delivery>,
    to_agent: Mutex<Delivery>,
}

struct Chat {
    target: Target,
    http: Http,
    p: ChatParams,
    epoch: Instant,
    sessions: Mutex<HashMap<String, Arc<SessionCtx>>>,
    agent_tokens: Vec<String>,
    errors: Errors,
    latency: Mutex<Histogram<u64>>,
    received: AtomicU64,
    sent: AtomicU64,
    senders_done: AtomicU64,
    last_rx: Mutex<Option<Instant>>,
}

impl Chat {
    fn session(&self, id: &str) -> Arc<SessionCtx> {
        lock(&self.sessions)
            .entry(id.to_owned())
            .or_insert_with(|| {
                Arc::new(SessionCtx {
                    started: OnceLock::new(),
                    assigned: OnceLock::new(),
                    agent: OnceLock::new(),
                    agent_ready: Notify::new(),
                    to_customer: Mutex::new(Delivery::new(self.p.messages)),
                    to_agent: Mutex::new(Delivery::new(self.p.messages)),
                })
            })
            .clone()
    }

    /// A MessagePosted seen by one side; only the other side's count.
    fn arrived(&self, ctx: &SessionCtx, message: &Value, from: &str) {
        if message["sender"] != from {
            return;
        }
        let now = Instant::now();
        let Some((idx, sched_us)) = message["body"].as_str().and_then(parse_stamp) else {
            self.errors.add(format!("unexpected message {message}"));
            return;
        };
        let delivery = if from == "AGENT" {
            &ctx.to_customer
        } else {
            &ctx.to_agent
        };
        lock(delivery).arrived(idx);
        let now_us = now.duration_since(self.epoch).as_micros();
        let latency = Duration::from_micros(now_us.saturating_sub(sched_us) as u64);
        stats::record(&mut lock(&self.latency), latency);
        self.received.fetch_add(1, Ordering::Relaxed);
        let mut last = lock(&self.last_rx);
        if last.is_none_or(|l| l < now) {
            *last = Some(now);
        }
    }
}

pub async fn chat(target: &Target, p: ChatParams) -> Result<Report, ScenarioError> {
    let agents = p.chats.div_ceil(2);
    let agent_tokens = (0..agents)
        .map(|i| target.token(Role::Agent, "agent", i))
        .collect::<Result<Vec<_>, _>>()?;
    let shared = Arc::new(Chat {
        target: target.clone(),
        http: Http::new(&target.base_url)?,
        p: p.clone(),
        epoch: Instant::now(),
        sessions: Mutex::new(HashMap::new()),
        agent_tokens,
        errors: Errors::default(),
        latency: Mutex::new(stats::histogram()),
        received: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        senders_done: AtomicU64::new(0),
        last_rx: Mutex::new(None),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (go_tx, go_rx) = watch::channel::<Option<Instant>>(None);
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));

    // Agents first: on shift and listening before any customer arrives.
    let (ready_tx, mut ready_rx) = mpsc::channel::<bool>(agents.max(p.chats) + 1);
    let mut tasks = Vec::new();
    for i in 0..agents {
        tasks.push(tokio::spawn(chat_agent(
            shared.clone(),
            i,
            gate.clone(),
            ready_tx.clone(),
            stop_rx.clone(),
        )));
    }
    let setup_deadline = tokio::time::Instant::now() + p.setup_timeout;
    let mut agents_ok = 0;
    for _ in 0..agents {
        match tokio::time::timeout_at(setup_deadline, ready_rx.recv()).await {
            Ok(Some(true)) => agents_ok += 1,
            Ok(Some(false)) => {}
            _ => break,
        }
    }
    for i in 0..p.chats {
        tasks.push(tokio::spawn(chat_customer(
            shared.clone(),
            i,
            gate.clone(),
            ready_tx.clone(),
            go_rx.clone(),
            stop_rx.clone(),
        )));
    }
    let mut chats_ready = 0;
    for _ in 0..p.chats {
        match tokio::time::timeout_at(setup_deadline, ready_rx.recv()).await {
            Ok(Some(true)) => chats_ready += 1,
            Ok(Some(false)) => {}
            _ => break,
        }
    }
    if chats_ready < p.chats {
        shared.errors.add(format!(
            "only {chats_ready} of {} chats were assigned and subscribed within {:?}",
            p.chats, p.setup_timeout
        ));
    }

    // Every ready chat starts sending at once; the measured window opens.
    let watch_proc = ProcWatch::start(target.server_pid.as_deref());
    let go = Instant::now();
    let _ = go_tx.send(Some(go));
    let senders = (chats_ready * 2) as u64;
    let expected = senders * p.messages as u64;
    let mut senders_done_at: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if shared.received.load(Ordering::Relaxed) >= expected {
            break;
        }
        if shared.senders_done.load(Ordering::Relaxed) >= senders {
            let at = *senders_done_at.get_or_insert_with(Instant::now);
            if at.elapsed() >= p.drain {
                break;
            }
        }
    }
    let proc = watch_proc.finish();
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }

    let received = shared.received.load(Ordering::Relaxed);
    let window = lock(&shared.last_rx)
        .map(|l| l.duration_since(go))
        .unwrap_or_default();
    let (mut lost, mut duplicated, mut reordered, mut foreign) = (0, 0, 0, 0);
    let mut assignment = stats::histogram();
    for ctx in lock(&shared.sessions).values() {
        for d in [&ctx.to_customer, &ctx.to_agent] {
            let d = lock(d);
            lost += d.lost();
            duplicated += d.duplicated;
            reordered += d.reordered;
            foreign += d.foreign;
        }
        if let (Some(s), Some(a)) = (ctx.started.get(), ctx.assigned.get()) {
            stats::record(&mut assignment, a.saturating_duration_since(*s));
        }
    }
    let errors = shared.errors.count() + foreign;
    let mut out = json!({
        "scenario": "chat",
        "chats": p.chats,
        "agents": agents,
        "agents_on_shift": agents_ok,
        "chats_ready": chats_ready,
        "messages_per_side": p.messages,
        "think_ms": p.think.as_millis() as u64,
        "sent": shared.sent.load(Ordering::Relaxed),
        "delivered": received,
        "expected": expected,
        "window_secs": (window.as_secs_f64() * 1000.0).round() / 1000.0,
        "delivered_per_sec": if window.is_zero() { 0.0 } else { round1(received as f64 / window.as_secs_f64()) },
        "latency": stats::summary(&lock(&shared.latency)),
        "assignment": stats::summary(&assignment),
        "lost": lost,
        "duplicated": duplicated,
        "reordered": reordered,
        "errors": errors,
        "error_samples": shared.errors.json(),
    });
    merge(&mut out, proc);
    Ok(Report {
        scenario: "chat",
        flaws: errors + lost + duplicated + reordered,
        json: out,
    })
}

async fn chat_agent(
    shared: Arc<Chat>,
    idx: usize,
    gate: Arc<Semaphore>,
    ready: mpsc::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let token = shared.agent_tokens[idx].clone();
    let setup = async {
        let _permit = gate.acquire().await;
        let mut socket = client::ws_connect(&shared.target.ws_url(), &token).await?;
        client::subscribe(&mut socket, "agent", AGENT_EVENTS, json!({})).await?;
        shared.http.run(&token, START_SHIFT, json!({})).await?;
        Ok::<Socket, client::ClientError>(socket)
    };
    let mut socket = match setup.await {
        Ok(s) => s,
        Err(e) => {
            shared.errors.add(format!("agent {idx} setup: {e}"));
            let _ = ready.send(false).await;
            return;
        }
    };
    let _ = ready.send(true).await;
    // Offers accepted over HTTP come back here to be subscribed to.
    let (accepted_tx, mut accepted_rx) = mpsc::unbounded_channel::<String>();
    let mut subscribed = HashSet::new();
    loop {
        let assigned = tokio::select! {
            _ = stop.changed() => break,
            Some(sid) = accepted_rx.recv() => Some(sid),
            frame = client::next_frame(&mut socket) => {
                let frame = match frame {
                    Ok(Some(f)) => f,
                    Ok(None) => { shared.errors.add(format!("agent {idx}: socket closed")); break }
                    Err(e) => { shared.errors.add(format!("agent {idx}: {e}")); break }
                };
                match classify(&frame) {
                    Frame::Next { id, data } if id == "agent" => {
                        match typename(&data, "agentEvents").as_str() {
                            "SessionAssigned" => session_id(&data["agentEvents"], "session"),
                            "SessionOffered" => {
                                if let Some(sid) = session_id(&data["agentEvents"], "session") {
                                    let (shared, token, tx) = (shared.clone(), token.clone(), accepted_tx.clone());
                                    tokio::spawn(async move {
                                        match shared.http.run(&token, ACCEPT, json!({ "s": sid })).await {
                                            Ok(_) => { let _ = tx.send(sid); }
                                            Err(e) => shared.errors.add(format!("accept: {e}")),
                                        }
                                    });
                                }
                                None
                            }
                            _ => None,
                        }
                    }
                    Frame::Next { id, data } => {
                        let ctx = shared.session(&id);
                        match typename(&data, "sessionEvents").as_str() {
                            "CaughtUp" => ctx.agent_ready.notify_one(),
                            "MessagePosted" => shared.arrived(&ctx, &data["sessionEvents"]["message"], "CUSTOMER"),
                            _ => {}
                        }
                        None
                    }
                    Frame::Error(e) => { shared.errors.add(format!("agent {idx}: {e}")); None }
                    Frame::Complete { id } => {
                        if !*stop.borrow() { shared.errors.add(format!("agent {idx}: {id} completed early")); }
                        None
                    }
                    Frame::Other => None,
                }
            }
        };
        if let Some(sid) = assigned {
            if subscribed.insert(sid.clone()) {
                let ctx = shared.session(&sid);
                let _ = ctx.assigned.set(Instant::now());
                let _ = ctx.agent.set(idx);
                if let Err(e) = client::subscribe(
                    &mut socket,
                    &sid,
                    SESSION_EVENTS,
                    json!({ "s": sid, "after": 0 }),
                )
                .await
                {
                    shared.errors.add(format!("agent {idx} subscribe: {e}"));
                }
            }
        }
    }
    if let Err(e) = shared.http.run(&token, END_SHIFT, json!({})).await {
        shared.errors.add(format!("agent {idx} endShift: {e}"));
    }
}

async fn chat_customer(
    shared: Arc<Chat>,
    idx: usize,
    gate: Arc<Semaphore>,
    ready: mpsc::Sender<bool>,
    mut go: watch::Receiver<Option<Instant>>,
    mut stop: watch::Receiver<bool>,
) {
    let token = match shared.target.token(Role::Customer, "customer", idx) {
        Ok(t) => t,
        Err(e) => {
            shared.errors.add(e);
            let _ = ready.send(false).await;
            return;
        }
    };
    let setup = async {
        let permit = gate.acquire().await;
        let mut socket = client::ws_connect(&shared.target.ws_url(), &token).await?;
        let started = Instant::now();
        let data = shared.http.run(&token, START_SESSION, json!({})).await?;
        let sid = session_id(&data, "startSession")
            .ok_or_else(|| client::ClientError::Protocol(format!("no session id in {data}")))?;
        let ctx = shared.session(&sid);
        let _ = ctx.started.set(started);
        client::subscribe(
            &mut socket,
            "s",
            SESSION_EVENTS,
            json!({ "s": sid, "after": 0 }),
        )
        .await?;
        drop(permit);
        loop {
            let frame = client::next_frame(&mut socket)
                .await?
                .ok_or_else(|| client::ClientError::Protocol("socket closed".into()))?;
            match classify(&frame) {
                Frame::Next { data, .. } if typename(&data, "sessionEvents") == "CaughtUp" => break,
                Frame::Error(e) => return Err(client::ClientError::Graphql(e)),
                _ => {}
            }
        }
        ctx.agent_ready.notified().await;
        Ok::<_, client::ClientError>((socket, sid, ctx))
    };
    let (mut socket, sid, ctx) = match tokio::time::timeout(shared.p.setup_timeout, setup).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            shared.errors.add(format!("customer {idx} setup: {e}"));
            let _ = ready.send(false).await;
            return;
        }
        Err(_) => {
            let _ = ready.send(false).await;
            return;
        }
    };
    let _ = ready.send(true).await;
    let go_at = loop {
        if let Some(at) = *go.borrow_and_update() {
            break at;
        }
        if go.changed().await.is_err() {
            return;
        }
    };
    let agent_token = ctx
        .agent
        .get()
        .and_then(|a| shared.agent_tokens.get(*a))
        .cloned()
        .unwrap_or_default();
    // Spread the senders' phases evenly over one think time: an open-loop
    // arrival process, not a thundering herd on every tick.
    let senders = (shared.p.chats * 2).max(1) as u32;
    let phase = |n: usize| shared.p.think * (n as u32) / senders;
    let mut send_tasks = Vec::new();
    for (side, t, n) in [
        ("c", token.clone(), idx * 2),
        ("a", agent_token, idx * 2 + 1),
    ] {
        send_tasks.push(tokio::spawn(sender(
            shared.clone(),
            t,
            sid.clone(),
            side,
            go_at + phase(n),
        )));
    }
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            frame = client::next_frame(&mut socket) => {
                let frame = match frame {
                    Ok(Some(f)) => f,
                    Ok(None) => { shared.errors.add(format!("customer {idx}: socket closed")); break }
                    Err(e) => { shared.errors.add(format!("customer {idx}: {e}")); break }
                };
                match classify(&frame) {
                    Frame::Next { data, .. } if typename(&data, "sessionEvents") == "MessagePosted" => {
                        shared.arrived(&ctx, &data["sessionEvents"]["message"], "AGENT");
                    }
                    Frame::Error(e) => shared.errors.add(format!("customer {idx}: {e}")),
                    _ => {}
                }
            }
        }
    }
    for t in send_tasks {
        let _ = t.await;
    }
    if let Err(e) = shared
        .http
        .run(&token, END_SESSION, json!({ "s": sid }))
        .await
    {
        shared.errors.add(format!("customer {idx} endSession: {e}"));
    }
}

/// One side's sends: message i is due at `start + i * think`, whatever the
/// replies do; latency counts from when it was due, so a stalled server
/// cannot hide its stall by slowing the sender (coordinated omission).
async fn sender(shared: Arc<Chat>, token: String, sid: String, side: &'static str, start: Instant) {
    for i in 0..shared.p.messages {
        let due = if shared.p.think.is_zero() {
            Instant::now()
        } else {
            let due = start + shared.p.think * i as u32;
            tokio::time::sleep_until(due.into()).await;
            due
        };
        let body = stamp(
            i,
            due.duration_since(shared.epoch).as_micros(),
            shared.p.body_bytes,
        );
        let vars = json!({ "s": sid, "b": body, "c": format!("{side}-{i}") });
        match shared.http.run(&token, SEND_MESSAGE, vars).await {
            Ok(_) => {
                shared.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => shared.errors.add(format!("sendMessage: {e}")),
        }
    }
    shared.senders_done.fetch_add(1, Ordering::Relaxed);
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

// ---------------------------------------------------------------- idle

#[derive(Clone, Debug)]
pub struct IdleParams {
    pub connections: usize,
    /// How long the open connections are held while CPU is measured.
    pub hold: Duration,
}

pub async fn idle(target: &Target, p: IdleParams) -> Result<Report, ScenarioError> {
    let errors = Arc::new(Errors::default());
    let server_before = ProcWatch::start(target.server_pid.as_deref()).server_now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let (ready_tx, mut ready_rx) = mpsc::channel::<bool>(p.connections + 1);
    let opening = Instant::now();
    let mut tasks = Vec::with_capacity(p.connections);
    for i in 0..p.connections {
        let token = target.token(Role::Agent, "idle", i)?;
        let (url, errors, gate, ready, mut stop) = (
            target.ws_url(),
            errors.clone(),
            gate.clone(),
            ready_tx.clone(),
            stop_rx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let setup = async {
                let _permit = gate.acquire().await;
                let mut socket = client::ws_connect(&url, &token).await?;
                client::subscribe(&mut socket, "agent", AGENT_EVENTS, json!({})).await?;
                // A pong answers after the subscribe was read: the
                // subscription is in place when this returns.
                client::send_json(&mut socket, &json!({ "type": "ping" })).await?;
                loop {
                    let frame = client::next_frame(&mut socket)
                        .await?
                        .ok_or_else(|| client::ClientError::Protocol("socket closed".into()))?;
                    match frame["type"].as_str() {
                        Some("pong") => break,
                        Some("error") => {
                            return Err(client::ClientError::Graphql(frame.to_string()))
                        }
                        _ => {}
                    }
                }
                Ok::<_, client::ClientError>(socket)
            };
            let mut socket = match setup.await {
                Ok(s) => s,
                Err(e) => {
                    errors.add(format!("idle connection {i}: {e}"));
                    let _ = ready.send(false).await;
                    return;
                }
            };
            let _ = ready.send(true).await;
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    frame = client::next_frame(&mut socket) => match frame {
                        Ok(Some(f)) => if let Frame::Error(e) = classify(&f) { errors.add(e) },
                        Ok(None) => { errors.add(format!("idle connection {i} closed by the server")); break }
                        Err(e) => { errors.add(format!("idle connection {i}: {e}")); break }
                    }
                }
            }
            let _ = socket.close(None).await;
        }));
    }
    drop(ready_tx);
    let mut open = 0usize;
    for _ in 0..p.connections {
        match ready_rx.recv().await {
            Some(ok) => open += usize::from(ok),
            None => break,
        }
    }
    let open_secs = opening.elapsed().as_secs_f64();
    // Let allocations from the opening burst settle before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hold = ProcWatch::start(target.server_pid.as_deref());
    let server_open = hold.server_now();
    tokio::time::sleep(p.hold).await;
    let proc = hold.finish();
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let per_conn_kib = match (server_before, server_open) {
        (Some(b), Some(a)) if open > 0 => Some(round1(
            (a.rss_bytes as f64 - b.rss_bytes as f64) / open as f64 / 1024.0,
        )),
        _ => None,
    };
    let mut out = json!({
        "scenario": "idle",
        "connections": p.connections,
        "open": open,
        "open_secs": round1(open_secs),
        "hold_secs": p.hold.as_secs(),
        "server_rss_before_mib": server_before.map(|s| round1(s.rss_bytes as f64 / 1048576.0)),
        "server_rss_open_mib": server_open.map(|s| round1(s.rss_bytes as f64 / 1048576.0)),
        "server_rss_per_conn_kib": per_conn_kib,
        "errors": errors.count(),
        "error_samples": errors.json(),
    });
    merge(&mut out, proc);
    Ok(Report {
        scenario: "idle",
        flaws: errors.count() + (p.connections - open) as u64,
        json: out,
    })
}

// ---------------------------------------------------------------- burst

#[derive(Clone, Debug)]
pub struct BurstParams {
    pub customers: usize,
    pub agents: usize,
    pub timeout: Duration,
}

/// Agents on shift who report every session they are given (accepting
/// offers at once), for `burst` and `resume`.
struct AgentPool {
    assigned: Arc<Mutex<HashMap<String, Instant>>>,
    notify: Arc<Notify>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    tokens: Vec<String>,
}

impl AgentPool {
    async fn start(
        target: &Target,
        http: &Http,
        kind: &str,
        n: usize,
        errors: &Arc<Errors>,
    ) -> Result<AgentPool, ScenarioError> {
        let assigned = Arc::new(Mutex::new(HashMap::new()));
        let notify = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(false);
        let tokens = (0..n)
            .map(|i| target.token(Role::Agent, kind, i))
            .collect::<Result<Vec<_>, _>>()?;
        let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
        let (ready_tx, mut ready_rx) = mpsc::channel::<()>(n + 1);
        let mut tasks = Vec::new();
        for (i, token) in tokens.iter().enumerate() {
            let (url, http, token, errors, gate, ready, mut stop, assigned, notify) = (
                target.ws_url(),
                http.clone(),
                token.clone(),
                errors.clone(),
                gate.clone(),
                ready_tx.clone(),
                stop_rx.clone(),
                assigned.clone(),
                notify.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let setup = async {
                    let _permit = gate.acquire().await;
                    let mut socket = client::ws_connect(&url, &token).await?;
                    client::subscribe(&mut socket, "agent", AGENT_EVENTS, json!({})).await?;
                    http.run(&token, START_SHIFT, json!({})).await?;
                    Ok::<_, client::ClientError>(socket)
                };
                let result = setup.await;
                let _ = ready.send(()).await;
                let mut socket = match result {
                    Ok(s) => s,
                    Err(e) => return errors.add(format!("agent {i} setup: {e}")),
                };
                let mark = |sid: String| {
                    lock(&assigned).entry(sid).or_insert_with(Instant::now);
                    notify.notify_waiters();
                };
                loop {
                    tokio::select! {
                        _ = stop.changed() => break,
                        frame = client::next_frame(&mut socket) => {
                            let frame = match frame {
                                Ok(Some(f)) => f,
                                Ok(None) => { errors.add(format!("agent {i}: socket closed")); break }
                                Err(e) => { errors.add(format!("agent {i}: {e}")); break }
                            };
                            match classify(&frame) {
                                Frame::Next { data, .. } => {
                                    let sid = session_id(&data["agentEvents"], "session");
                                    match (typename(&data, "agentEvents").as_str(), sid) {
                                        ("SessionAssigned", Some(sid)) => mark(sid),
                                        ("SessionOffered", Some(sid)) => {
                                            match http.run(&token, ACCEPT, json!({ "s": sid })).await {
                                                Ok(_) => mark(sid),
                                                Err(e) => errors.add(format!("accept: {e}")),
                                            }
                                        }
                                        _ => {}
                                    }
                                }
                                Frame::Error(e) => errors.add(format!("agent {i}: {e}")),
                                _ => {}
                            }
                        }
                    }
                }
                if let Err(e) = http.run(&token, END_SHIFT, json!({})).await {
                    errors.add(format!("agent {i} endShift: {e}"));
                }
            }));
        }
        drop(ready_tx);
        for _ in 0..n {
            if ready_rx.recv().await.is_none() {
                break;
            }
        }
        Ok(AgentPool {
            assigned,
            notify,
            stop,
            tasks,
            tokens,
        })
    }

    fn assigned_at(&self, sid: &str) -> Option<Instant> {
        lock(&self.assigned).get(sid).copied()
    }

    /// Waits until `sid` is assigned, or `timeout` passes.
    async fn wait_for(&self, sid: &str, timeout: Duration) -> Option<Instant> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if let Some(at) = self.assigned_at(sid) {
                return Some(at);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.assigned_at(sid);
            }
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Ends sessions as their customers, a few at a time.
async fn end_sessions(http: &Http, sessions: Vec<(String, String)>, errors: &Errors) {
    let mut ends = futures_util::stream::iter(sessions.into_iter().map(|(token, sid)| {
        let http = http.clone();
        async move { http.run(&token, END_SESSION, json!({ "s": sid })).await }
    }))
    .buffer_unordered(SETUP_CONCURRENCY);
    while let Some(r) = ends.next().await {
        if let Err(e) = r {
            errors.add(format!("endSession: {e}"));
        }
    }
}

pub async fn burst(target: &Target, p: BurstParams) -> Result<Report, ScenarioError> {
    let http = Http::new(&target.base_url)?;
    let errors = Arc::new(Errors::default());
    let pool = AgentPool::start(target, &http, "burst-agent", p.agents, &errors).await?;
    let tokens = (0..p.customers)
        .map(|i| target.token(Role::Customer, "burst", i))
        .collect::<Result<Vec<_>, _>>()?;
    let watch_proc = ProcWatch::start(target.server_pid.as_deref());
    let t0 = Instant::now();
    let starts: Vec<_> = tokens
        .iter()
        .map(|token| {
            let (http, token) = (http.clone(), token.clone());
            tokio::spawn(async move {
                let sent = Instant::now();
                let r = http.run(&token, START_SESSION, json!({})).await;
                (token, r, sent.elapsed())
            })
        })
        .collect();
    let mut start_latency = stats::histogram();
    let mut sessions = Vec::new();
    for s in starts {
        match s.await {
            Ok((token, Ok(data), took)) => {
                stats::record(&mut start_latency, took);
                match session_id(&data, "startSession") {
                    Some(sid) => sessions.push((token, sid)),
                    None => errors.add(format!("no session id in {data}")),
                }
            }
            Ok((_, Err(e), _)) => errors.add(format!("startSession: {e}")),
            Err(e) => errors.add(format!("task: {e}")),
        }
    }
    let deadline = t0 + p.timeout;
    let mut waits = stats::histogram();
    let mut last = None::<Instant>;
    let mut unassigned = 0u64;
    for (_, sid) in &sessions {
        let left = deadline.saturating_duration_since(Instant::now());
        match pool.wait_for(sid, left).await {
            Some(at) => {
                stats::record(&mut waits, at.saturating_duration_since(t0));
                last = Some(last.map_or(at, |l| l.max(at)));
            }
            None => unassigned += 1,
        }
    }
    let proc = watch_proc.finish();
    let all_secs = last.map(|l| l.duration_since(t0).as_secs_f64());
    let assigned = sessions.len() as u64 - unassigned;
    end_sessions(&http, sessions, &errors).await;
    pool.stop().await;
    let mut out = json!({
        "scenario": "burst",
        "customers": p.customers,
        "agents": p.agents,
        "assigned": assigned,
        "unassigned": unassigned,
        "all_assigned_secs": all_secs.map(|s| (s * 1000.0).round() / 1000.0),
        "assignments_per_sec": all_secs.map(|s| round1(assigned as f64 / s)),
        "time_to_assignment": stats::summary(&waits),
        "start_session": stats::summary(&start_latency),
        "errors": errors.count(),
        "error_samples": errors.json(),
    });
    merge(&mut out, proc);
    Ok(Report {
        scenario: "burst",
        flaws: errors.count() + unassigned,
        json: out,
    })
}

// ---------------------------------------------------------------- resume

#[derive(Clone, Debug)]
pub struct ResumeParams {
    /// Messages the customer misses while away, one trial set per value.
    pub missed: Vec<usize>,
    pub repeats: usize,
    pub body_bytes: usize,
}

pub async fn resume(target: &Target, p: ResumeParams) -> Result<Report, ScenarioError> {
    let http = Http::new(&target.base_url)?;
    let errors = Arc::new(Errors::default());
    let pool = AgentPool::start(target, &http, "resume-agent", 1, &errors).await?;
    let agent_token = pool.tokens.first().cloned().unwrap_or_default();
    let mut results = serde_json::Map::new();
    let mut flaws = 0u64;
    for &k in &p.missed {
        let (mut first, mut caught, mut connect) =
            (stats::histogram(), stats::histogram(), stats::histogram());
        let mut bad = 0u64;
        for r in 0..p.repeats {
            let token = target.token(Role::Customer, &format!("resume-{k}"), r)?;
            match resume_trial(target, &http, &pool, &token, &agent_token, k, p.body_bytes).await {
                Ok(t) => {
                    stats::record(&mut connect, t.connect);
                    stats::record(&mut first, t.first);
                    stats::record(&mut caught, t.caught_up);
                    if t.replayed != k || !t.in_order {
                        bad += 1;
                        errors.add(format!(
                            "missed {k}: replayed {} (in order: {})",
                            t.replayed, t.in_order
                        ));
                    }
                }
                Err(e) => {
                    bad += 1;
                    errors.add(format!("missed {k}: {e}"));
                }
            }
        }
        flaws += bad;
        results.insert(
            format!("missed_{k}"),
            json!({
                "trials": p.repeats,
                "failed": bad,
                "connect": stats::summary(&connect),
                "first_replayed": stats::summary(&first),
                "caught_up": stats::summary(&caught),
            }),
        );
    }
    pool.stop().await;
    let mut out = json!({ "scenario": "resume" });
    merge(&mut out, Value::Object(results));
    merge(
        &mut out,
        json!({ "errors": errors.count(), "error_samples": errors.json() }),
    );
    Ok(Report {
        scenario: "resume",
        flaws: flaws + errors.count(),
        json: out,
    })
}

struct Trial {
    connect: Duration,
    first: Duration,
    caught_up: Duration,
    replayed: usize,
    in_order: bool,
}

async fn resume_trial(
    target: &Target,
    http: &Http,
    pool: &AgentPool,
    token: &str,
    agent_token: &str,
    missed: usize,
    body_bytes: usize,
) -> Result<Trial, ScenarioError> {
    let data = http.run(token, START_SESSION, json!({})).await?;
    let sid = session_id(&data, "startSession")
        .ok_or_else(|| ScenarioError::Setup(format!("no session id in {data}")))?;
    pool.wait_for(&sid, Duration::from_secs(30))
        .await
        .ok_or_else(|| ScenarioError::Setup("the session was not assigned".into()))?;
    let result = async {
        // Connected once and caught up; then away while the agent writes.
        let mut socket = client::ws_connect(&target.ws_url(), token).await?;
        client::subscribe(
            &mut socket,
            "s",
            SESSION_EVENTS,
            json!({ "s": sid, "after": 0 }),
        )
        .await?;
        let mut last_seq = 0;
        while let Some(frame) = client::next_frame(&mut socket).await? {
            match classify(&frame) {
                Frame::Next { data, .. } if typename(&data, "sessionEvents") == "CaughtUp" => {
                    last_seq = data["sessionEvents"]["seq"].as_i64().unwrap_or_default();
                    break;
                }
                Frame::Error(e) => return Err(client::ClientError::Graphql(e).into()),
                _ => {}
            }
        }
        let _ = socket.close(None).await;
        drop(socket);

        let mut sends = futures_util::stream::iter((0..missed).map(|i| {
            let vars = json!({ "s": sid, "b": stamp(i, 0, body_bytes), "c": format!("r-{i}") });
            async move { http.run(agent_token, SEND_MESSAGE, vars).await }
        }))
        .buffer_unordered(16);
        while let Some(r) = sends.next().await {
            r?;
        }

        let connecting = Instant::now();
        let mut socket = client::ws_connect(&target.ws_url(), token).await?;
        let connect = connecting.elapsed();
        let subscribed = Instant::now();
        client::subscribe(
            &mut socket,
            "s",
            SESSION_EVENTS,
            json!({ "s": sid, "after": last_seq }),
        )
        .await?;
        let (mut first, mut replayed, mut in_order, mut expect) = (None, 0, true, last_seq + 1);
        let caught_up = loop {
            let frame = client::next_frame(&mut socket)
                .await?
                .ok_or_else(|| client::ClientError::Protocol("socket closed".into()))?;
            match classify(&frame) {
                Frame::Next { data, .. } => match typename(&data, "sessionEvents").as_str() {
                    "MessagePosted" => {
                        first.get_or_insert_with(|| subscribed.elapsed());
                        replayed += 1;
                        let seq = data["sessionEvents"]["message"]["seq"].as_i64();
                        in_order &= seq == Some(expect);
                        expect += 1;
                    }
                    "CaughtUp" => break subscribed.elapsed(),
                    _ => {}
                },
                Frame::Error(e) => return Err(client::ClientError::Graphql(e).into()),
                _ => {}
            }
        };
        let _ = socket.close(None).await;
        Ok::<_, ScenarioError>(Trial {
            connect,
            first: first.unwrap_or(caught_up),
            caught_up,
            replayed,
            in_order,
        })
    }
    .await;
    if let Err(e) = http.run(token, END_SESSION, json!({ "s": sid })).await {
        return Err(e.into());
    }
    result
}

// ---------------------------------------------------------------- baseline

#[derive(Clone, Debug)]
pub struct BaselineParams {
    pub database_url: String,
    /// Connections, as the server's DB_POOL_SIZE.
    pub connections: u32,
    /// Rows to insert in all, as messages in the chat run.
    pub rows: usize,
    pub body_bytes: usize,
}

/// The database's own ceiling for the work behind a message: one
/// single-row INSERT per message, autocommit, over as many connections as
/// the server uses, into a table shaped and indexed like `messages`.
pub async fn baseline(p: BaselineParams) -> Result<Report, ScenarioError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(p.connections)
        .connect(&p.database_url)
        .await?;
    let table = format!(
        "loadgen_baseline_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    sqlx::query(&format!(
        "CREATE TABLE {table} (id uuid PRIMARY KEY, session_id uuid NOT NULL, seq int NOT NULL, \
         sender varchar(16) NOT NULL, sender_id varchar, body text NOT NULL, client_message_id varchar, \
         created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (session_id, seq), \
         UNIQUE (session_id, sender_id, client_message_id))"
    ))
    .execute(&pool)
    .await?;
    let insert = format!(
        "INSERT INTO {table} (id, session_id, seq, sender, sender_id, body, client_message_id) \
         VALUES ($1, $2, $3, 'CUSTOMER', 'lg', $4, $5)"
    );
    let workers = p.connections.max(1) as usize;
    let body = stamp(0, 0, p.body_bytes);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (pool, insert, body) = (pool.clone(), insert.clone(), body.clone());
            let rows = p.rows / workers + usize::from(w < p.rows % workers);
            tokio::spawn(async move {
                let session = uuid::Uuid::new_v4();
                let mut h = stats::histogram();
                for seq in 0..rows {
                    let began = Instant::now();
                    sqlx::query(&insert)
                        .bind(uuid::Uuid::new_v4())
                        .bind(session)
                        .bind(seq as i32)
                        .bind(&body)
                        .bind(format!("b-{seq}"))
                        .execute(&pool)
                        .await?;
                    stats::record(&mut h, began.elapsed());
                }
                Ok::<_, sqlx::Error>(h)
            })
        })
        .collect();
    let mut latency = stats::histogram();
    let errors = Errors::default();
    for t in tasks {
        match t.await {
            Ok(Ok(h)) => {
                let _ = latency.add(&h);
            }
            Ok(Err(e)) => errors.add(format!("insert: {e}")),
            Err(e) => errors.add(format!("task: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&pool)
        .await?;
    pool.close().await;
    let inserted = latency.len();
    let errors_n = errors.count();
    Ok(Report {
        scenario: "baseline",
        flaws: errors_n,
        json: json!({
            "scenario": "baseline",
            "connections": p.connections,
            "rows": inserted,
            "secs": (secs * 1000.0).round() / 1000.0,
            "rows_per_sec": round1(inserted as f64 / secs),
            "insert": stats::summary(&latency),
            "errors": errors_n,
            "error_samples": errors.json(),
        }),
    })
}

//! `chat`: customers and agents in conversation, every message's latency
//! measured from when it was due, and each delivery checked for loss,
//! duplication and order.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use switchboard::auth::Role;
use tokio::sync::{mpsc, watch, Notify, Semaphore};

use super::{
    lock, merge, parse_stamp, session_id, stamp, typename, Errors, ACCEPT, AGENT_EVENTS,
    END_SESSION, END_SHIFT, SEND_MESSAGE, SESSION_EVENTS, SETUP_CONCURRENCY, START_SESSION,
    START_SHIFT,
};
use crate::client::{self, classify, Frame, Http, Socket};
use crate::stats::{self, round1, Delivery, ProcWatch};
use crate::{Report, ScenarioError, Target};

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

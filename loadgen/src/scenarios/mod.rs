//! The scenarios. Each drives real clients against the server and returns
//! one [`Report`](crate::Report); none asserts a timing.
//!
//! One file per scenario; what they share (the GraphQL documents, error
//! counting, message stamps) is here, and the agents `burst` and `resume`
//! keep on shift are in `agent_pool`.

mod agent_pool;
mod baseline;
mod burst;
mod chat;
mod idle;
mod resume;

pub use baseline::{baseline, BaselineParams};
pub use burst::{burst, BurstParams};
pub use chat::{chat, ChatParams};
pub use idle::{idle, IdleParams};
pub use resume::{resume, ResumeParams};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

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

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

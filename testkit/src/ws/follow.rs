//! A subscriber that lives through servers going away, as a resilient
//! client does, and records what it saw for the test to judge.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{session_events_message, Client, Frame};

/// What a subscriber saw of one session, across every reconnect.
#[derive(Debug, Default)]
pub struct FollowLog {
    /// The seq of every MessagePosted received, in arrival order.
    pub seqs: Vec<i64>,
    /// Every subscription made: the server and the afterSeq it resumed from.
    pub subscriptions: Vec<(SocketAddr, i64)>,
    /// Close codes the server sent (None: the connection ended without one).
    pub closes: Vec<Option<u16>>,
    /// GraphQL errors that ended a subscription.
    pub errors: Vec<serde_json::Value>,
}

/// A running [`follow`]: its log so far, and the task.
pub struct Follower {
    log: Arc<Mutex<FollowLog>>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// How many GraphQL errors have ended a subscription so far.
    pub fn errors_so_far(&self) -> usize {
        self.log.lock().map(|l| l.errors.len()).unwrap_or(0)
    }

    /// Waits (at most `bound`) until the follower has seen its last seq.
    pub async fn finish(self, bound: Duration) -> FollowLog {
        tokio::time::timeout(bound, self.task)
            .await
            .expect("the subscriber caught up")
            .expect("follower task");
        let mut log = self.log.lock().expect("follow log");
        std::mem::take(&mut *log)
    }
}

/// Follows a session's `sessionEvents` as a resilient client does: on any
/// error, completion or lost connection it reconnects — to the next server
/// in `servers` when the current one cannot be reached or closed the socket,
/// as a load balancer would route it — and resumes with `afterSeq` = the
/// last seq it saw. Ends once it has seen seq `until` (0: not known yet).
pub fn follow(
    servers: Vec<SocketAddr>,
    token: String,
    session: String,
    until: Arc<AtomicI64>,
) -> Follower {
    let shared = Arc::new(Mutex::new(FollowLog::default()));
    let log = shared.clone();
    let note = move |f: &mut dyn FnMut(&mut FollowLog)| {
        if let Ok(mut l) = log.lock() {
            f(&mut l);
        }
    };
    let task = tokio::spawn(async move {
        let mut last = 0;
        let mut server = 0;
        let done = |last: i64| {
            let target = until.load(Ordering::SeqCst);
            target > 0 && last >= target
        };
        while !done(last) {
            let addr = servers[server % servers.len()];
            let mut ws = match Client::try_connect(addr, Some(&token)).await {
                Ok(ws) => ws,
                Err(_) => {
                    server += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // A failed send shows up as a closed connection on the next read.
            let _ = ws
                .try_send(session_events_message("s", &session, last))
                .await;
            note(&mut |l| l.subscriptions.push((addr, last)));
            loop {
                match ws.frame(Duration::from_millis(200)).await {
                    Frame::Quiet if done(last) => break,
                    Frame::Quiet => continue,
                    Frame::Next(payload) if payload.get("errors").is_some() => {
                        note(&mut |l| l.errors.push(payload.clone()));
                        break;
                    }
                    Frame::Next(payload) => {
                        let event = &payload["data"]["sessionEvents"];
                        if event["__typename"] == "MessagePosted" {
                            last = event["message"]["seq"].as_i64().expect("seq");
                            note(&mut |l| l.seqs.push(last));
                        }
                    }
                    Frame::Error(frame) => {
                        note(&mut |l| l.errors.push(frame.clone()));
                        break;
                    }
                    Frame::Complete => break,
                    Frame::Closed(code) => {
                        note(&mut |l| l.closes.push(code));
                        server += 1;
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    Follower { log: shared, task }
}

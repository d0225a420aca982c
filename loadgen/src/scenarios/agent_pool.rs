//! Agents on shift for `burst` and `resume`, accepting every offer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::auth::Role;
use tokio::sync::{mpsc, watch, Notify, Semaphore};

use super::{
    lock, session_id, typename, Errors, ACCEPT, AGENT_EVENTS, END_SHIFT, SETUP_CONCURRENCY,
    START_SHIFT,
};
use crate::client::{self, classify, Frame, Http};
use crate::{ScenarioError, Target};

/// Agents on shift who report every session they are given (accepting
/// offers at once), for `burst` and `resume`.
pub(super) struct AgentPool {
    assigned: Arc<Mutex<HashMap<String, Instant>>>,
    notify: Arc<Notify>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub(super) tokens: Vec<String>,
}

impl AgentPool {
    pub(super) async fn start(
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
    pub(super) async fn wait_for(&self, sid: &str, timeout: Duration) -> Option<Instant> {
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

    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

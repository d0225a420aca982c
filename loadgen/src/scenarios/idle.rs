//! `idle`: many open, subscribed connections doing nothing; what they
//! cost the server in memory and CPU.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard::auth::Role;
use tokio::sync::{mpsc, watch, Semaphore};

use super::{merge, Errors, AGENT_EVENTS, SETUP_CONCURRENCY};
use crate::client::{self, classify, Frame};
use crate::stats::{round1, ProcWatch};
use crate::{Report, ScenarioError, Target};

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

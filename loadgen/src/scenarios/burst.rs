//! `burst`: many customers start sessions at once; how long until each
//! is assigned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use switchboard::auth::Role;

use super::agent_pool::AgentPool;
use super::{merge, session_id, Errors, END_SESSION, SETUP_CONCURRENCY, START_SESSION};
use crate::client::Http;
use crate::stats::{self, round1, ProcWatch};
use crate::{Report, ScenarioError, Target};

#[derive(Clone, Debug)]
pub struct BurstParams {
    pub customers: usize,
    pub agents: usize,
    pub timeout: Duration,
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

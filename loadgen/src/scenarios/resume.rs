//! `resume`: a customer away while messages arrive comes back; how long
//! the replay takes, and that it is complete and in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use switchboard::auth::Role;

use super::agent_pool::AgentPool;
use super::{
    merge, session_id, stamp, typename, Errors, END_SESSION, SEND_MESSAGE, SESSION_EVENTS,
    START_SESSION,
};
use crate::client::{self, classify, Frame, Http};
use crate::stats;
use crate::{Report, ScenarioError, Target};

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

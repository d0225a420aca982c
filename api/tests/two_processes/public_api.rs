//! The race checked from the public API alone, as an admin reads it: each
//! session's priority, required skills, queuedAt, assignedAt, endedAt and
//! agent, and its history entries (kind, agent, at). None of it comes
//! from the audit's code or tables.
//!
//! What can be checked from there:
//! - capacity: no agent's [assignedAt, endedAt) intervals overlap more
//!   than their capacity at any instant (sessions are never transferred
//!   here, so assignedAt is when their last holder took them; offers are
//!   held slots these timestamps do not show, so this is the ACTIVE part
//!   of the capacity rule);
//! - queue order: whenever a session was given to an agent (an OFFERED or
//!   ASSIGNED entry at t), no session ahead of it in queue order
//!   (priority, then queuedAt) was waiting at t that this agent could take
//!   (it needs no skills, or only skills the agent has, or it had waited
//!   the skill wait). A session waits from queuedAt, and from each return
//!   to the queue, until it is given or ended. Nobody declines here, so
//!   every agent may take every session;
//! - with auto routing, from the three timestamps alone: a session that
//!   needs no skills and is ahead of another in queue order, queued before
//!   that other was assigned, was assigned no later than it (assignedAt is
//!   the give; nothing returns to the queue).

use std::cmp::Reverse;
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use testkit::graphql::Client;

/// A session as the admin API shows it.
pub struct Seen {
    pub id: String,
    pub priority: u8,
    pub skills: Vec<String>,
    pub queued_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub agent: Option<String>,
    /// (kind, agent, at), as listed.
    pub history: Vec<(String, Option<String>, DateTime<Utc>)>,
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().map(|s| {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .with_timezone(&Utc)
    })
}

fn rank(priority: &str) -> u8 {
    match priority {
        "LOW" => 0,
        "NORMAL" => 1,
        "HIGH" => 2,
        "URGENT" => 3,
        other => panic!("priority {other}"),
    }
}

/// Every session, page by page, as an admin.
pub async fn sessions(client: &Client, admin: &str) -> Vec<Seen> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let data = client
            .ok(
                admin,
                "query($after: String) { mySessions(first: 40, after: $after) { \
                   nodes { id priority requiredSkills queuedAt assignedAt endedAt agent { id } \
                           history { kind agentId at } } \
                   pageInfo { hasNextPage endCursor } } }",
                json!({ "after": after }),
            )
            .await;
        let page = &data["mySessions"];
        for s in page["nodes"].as_array().expect("nodes") {
            all.push(Seen {
                id: s["id"].as_str().expect("id").to_owned(),
                priority: rank(s["priority"].as_str().expect("priority")),
                skills: s["requiredSkills"]
                    .as_array()
                    .expect("skills")
                    .iter()
                    .map(|k| k.as_str().expect("skill").to_owned())
                    .collect(),
                queued_at: time(&s["queuedAt"]).expect("queuedAt"),
                assigned_at: time(&s["assignedAt"]),
                ended_at: time(&s["endedAt"]),
                agent: s["agent"]["id"].as_str().map(str::to_owned),
                history: s["history"]
                    .as_array()
                    .expect("history")
                    .iter()
                    .map(|h| {
                        (
                            h["kind"].as_str().expect("kind").to_owned(),
                            h["agentId"].as_str().map(str::to_owned),
                            time(&h["at"]).expect("at"),
                        )
                    })
                    .collect(),
            });
        }
        if page["pageInfo"]["hasNextPage"] != true {
            return all;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
}

/// Whether `x` is ahead of `y` in queue order: priority, then queuedAt
/// (then id, as the server breaks ties).
fn ahead(x: &Seen, y: &Seen) -> bool {
    let key = |s: &Seen| (Reverse(s.priority), s.queued_at, s.id.clone());
    key(x) < key(y)
}

/// The open intervals (from, until) a session waited; `until` None while
/// it still waits.
fn waits(s: &Seen) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut history = s.history.clone();
    history.sort_by_key(|(_, _, at)| *at);
    let mut out = Vec::new();
    let mut open = Some(s.queued_at);
    for (kind, _, at) in history {
        match kind.as_str() {
            "OFFERED" | "ASSIGNED" | "ACCEPTED" | "ENDED" => {
                if let Some(from) = open.take() {
                    out.push((from, Some(at)));
                }
            }
            "DECLINED" | "LAPSED" | "WITHDRAWN" | "REQUEUED" => open = Some(at),
            _ => {}
        }
    }
    if let Some(from) = open {
        out.push((from, None));
    }
    out
}

fn waiting_at(intervals: &[(DateTime<Utc>, Option<DateTime<Utc>>)], t: DateTime<Utc>) -> bool {
    intervals
        .iter()
        .any(|(from, until)| *from < t && until.is_none_or(|u| t < u))
}

/// Every way the sessions disagree with the rules, as sentences.
pub fn problems(
    sessions: &[Seen],
    agent_skills: &HashMap<String, Vec<String>>,
    capacity: i64,
    skill_wait: Duration,
    auto: bool,
) -> Vec<String> {
    let mut found = Vec::new();

    // Capacity: ACTIVE intervals per agent; an end and a start at the same
    // instant do not overlap.
    let mut spans: HashMap<&str, Vec<(DateTime<Utc>, i64)>> = HashMap::new();
    for s in sessions {
        if let (Some(agent), Some(from), Some(until)) = (&s.agent, s.assigned_at, s.ended_at) {
            let list = spans.entry(agent).or_default();
            list.push((from, 1));
            list.push((until, -1));
        }
    }
    for (agent, mut list) in spans {
        list.sort();
        let mut held = 0;
        for (at, delta) in list {
            held += delta;
            if held > capacity {
                found.push(format!("{agent} held {held} sessions at {at}"));
            }
        }
    }

    // Queue order at every give.
    let waited: Vec<_> = sessions.iter().map(waits).collect();
    let takes = |agent: &str, x: &Seen, t: DateTime<Utc>| {
        let has = agent_skills.get(agent).cloned().unwrap_or_default();
        x.skills.iter().all(|k| has.contains(k)) || t >= x.queued_at + skill_wait
    };
    for y in sessions {
        for (kind, agent, t) in &y.history {
            if kind != "OFFERED" && kind != "ASSIGNED" {
                continue;
            }
            let agent = agent.as_deref().expect("a give names its agent");
            for (x, intervals) in sessions.iter().zip(&waited) {
                if x.id != y.id && ahead(x, y) && waiting_at(intervals, *t) && takes(agent, x, *t) {
                    found.push(format!(
                        "at {t} {} went to {agent} while {} (ahead of it, which {agent} could \
                         take) waited",
                        y.id, x.id
                    ));
                }
            }
        }
    }

    // Auto routing, from queuedAt and assignedAt alone.
    if auto {
        for y in sessions {
            let Some(y_assigned) = y.assigned_at else {
                continue;
            };
            for x in sessions {
                // A chat sent back to the queue shows only its last
                // assignedAt; its earlier stays are checked above.
                let requeued = x.history.iter().any(|(kind, _, _)| kind == "REQUEUED");
                if x.id == y.id || !x.skills.is_empty() || !ahead(x, y) || requeued {
                    continue;
                }
                let x_assigned = x.assigned_at.expect("every session was assigned");
                if x.queued_at < y_assigned && x_assigned > y_assigned {
                    found.push(format!(
                        "{} was assigned at {y_assigned}, before {} (ahead of it, needing no \
                         skills, queued at {}) at {x_assigned}",
                        y.id, x.id, x.queued_at
                    ));
                }
            }
        }
    }
    found
}

/// How many sessions entered a queue in which another was already waiting.
pub fn joined_a_queue(sessions: &[Seen]) -> usize {
    let waited: Vec<_> = sessions.iter().map(waits).collect();
    sessions
        .iter()
        .filter(|y| {
            sessions
                .iter()
                .zip(&waited)
                .any(|(x, w)| x.id != y.id && waiting_at(w, y.queued_at))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0).unwrap() + Duration::milliseconds(ms)
    }

    /// A session served by `agent`: offered at `offered`, ACTIVE from
    /// `assigned` until `ended`.
    fn seen(
        id: &str,
        priority: u8,
        queued: i64,
        agent: &str,
        offered: i64,
        assigned: i64,
        ended: i64,
    ) -> Seen {
        Seen {
            id: id.into(),
            priority,
            skills: Vec::new(),
            queued_at: t(queued),
            assigned_at: Some(t(assigned)),
            ended_at: Some(t(ended)),
            agent: Some(agent.into()),
            history: vec![
                ("QUEUED".into(), None, t(queued)),
                ("OFFERED".into(), Some(agent.into()), t(offered)),
                ("ACCEPTED".into(), Some(agent.into()), t(assigned)),
                ("ENDED".into(), Some(agent.into()), t(ended)),
            ],
        }
    }

    fn check(sessions: &[Seen], auto: bool) -> Vec<String> {
        problems(sessions, &HashMap::new(), 2, Duration::seconds(60), auto)
    }

    #[test]
    fn the_checks_catch_what_they_claim() {
        // Clean: served in queue order, two at a time, one ends as the next starts.
        let clean = [
            seen("a", 2, 0, "ann", 5, 6, 20),
            seen("b", 1, 1, "ann", 5, 7, 30),
            seen("c", 1, 2, "ann", 20, 20, 40),
        ];
        assert_eq!(check(&clean, false), Vec::<String>::new());
        assert_eq!(check(&clean, true), Vec::<String>::new());

        // Three at once for a capacity of two.
        let mut over = clean;
        over[2] = seen("c", 1, 2, "ann", 8, 9, 40);
        assert!(check(&over, false)[0].contains("ann held 3 sessions"));

        // The HIGH session offered after the NORMAL one, both waiting.
        let jumped = [
            seen("a", 2, 0, "ann", 9, 10, 20),
            seen("b", 1, 1, "bob", 5, 6, 30),
        ];
        let found = check(&jumped, false);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("b went to bob while a"), "{found:?}");
        // From queuedAt and assignedAt alone, with auto routing.
        assert_eq!(check(&jumped, true).len(), 2);
    }
}

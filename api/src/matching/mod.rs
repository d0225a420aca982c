//! Routing: who is served next. This module is the policy only — plain data
//! in, decisions out, no I/O. The service layer loads the queue and the
//! agents inside a transaction that excludes every other matcher, asks
//! [`plan`], and persists the answer.
//!
//! The rules:
//! - customers are served first come, first served by the time their
//!   session entered the queue (a session sent back keeps its place);
//! - among AVAILABLE agents below capacity, the one idle the longest
//!   (earliest `idle_since`) gets the next session, and being given a session
//!   sends an agent to the back of that line;
//! - an agent who declined a session is not offered it again;
//! - as many pairs as possible are made at once.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// How WAITING sessions reach agents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RoutingMode {
    /// The engine offers the head of the queue to the next agent, who
    /// accepts or declines; unanswered offers lapse.
    #[default]
    Fair,
    /// The engine assigns straight away, in the same order.
    Auto,
    /// Agents pick any WAITING session with `acceptSession`; the first taker wins.
    Manual,
}

impl fmt::Display for RoutingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoutingMode::Fair => "fair",
            RoutingMode::Auto => "auto",
            RoutingMode::Manual => "manual",
        })
    }
}

impl FromStr for RoutingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fair" => Ok(RoutingMode::Fair),
            "auto" => Ok(RoutingMode::Auto),
            "manual" => Ok(RoutingMode::Manual),
            other => Err(format!(
                "unknown routing mode {other:?}; use fair, auto or manual"
            )),
        }
    }
}

/// A WAITING session as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedSession {
    pub id: Uuid,
    pub queued_at: DateTime<Utc>,
}

/// An AVAILABLE agent as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSlots {
    pub id: String,
    pub idle_since: Option<DateTime<Utc>>,
    /// Capacity minus sessions held (OFFERED + ACTIVE); may be ≤ 0.
    pub free: i32,
}

/// One decision: give `session` to `agent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pairing {
    pub session: Uuid,
    pub agent: String,
}

/// Pairs the queue with free agents. `queue` may come in any order;
/// `declined` holds (session, agent) pairs that must not be made again.
pub fn plan(
    queue: &[QueuedSession],
    agents: &[AgentSlots],
    declined: &HashSet<(Uuid, String)>,
) -> Vec<Pairing> {
    let mut sessions: Vec<&QueuedSession> = queue.iter().collect();
    sessions.sort_by_key(|s| (s.queued_at, s.id));

    // The idle line: (when idle, tie-break, agent index). An agent with no
    // idle_since has never been given work and goes first; ties go by id.
    // Agents given a session in this round rejoin at the back, in the order
    // they were given one.
    let mut line: BTreeSet<(Option<DateTime<Utc>>, u64, String, usize)> = agents
        .iter()
        .enumerate()
        .filter(|(_, a)| a.free > 0)
        .map(|(i, a)| (a.idle_since, 0, a.id.clone(), i))
        .collect();
    let mut free: Vec<i32> = agents.iter().map(|a| a.free).collect();
    let mut given = 0u64;
    let mut pairings = Vec::new();

    for s in sessions {
        if line.is_empty() {
            break;
        }
        let Some(entry) = line
            .iter()
            .find(|(_, _, id, _)| !declined.contains(&(s.id, id.clone())))
            .cloned()
        else {
            continue; // every free agent declined this one; it keeps its place
        };
        line.remove(&entry);
        let (_, _, agent_id, i) = entry;
        free[i] -= 1;
        given += 1;
        if free[i] > 0 {
            // "Given a session" resets idle_since to now, which is later than
            // every idle_since in the line: the back, after earlier givens.
            line.insert((Some(DateTime::<Utc>::MAX_UTC), given, agent_id.clone(), i));
        }
        pairings.push(Pairing {
            session: s.id,
            agent: agent_id,
        });
    }
    pairings
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn session(n: u128, queued: i64) -> QueuedSession {
        QueuedSession {
            id: Uuid::from_u128(n),
            queued_at: at(queued),
        }
    }

    fn agent(id: &str, idle: Option<i64>, free: i32) -> AgentSlots {
        AgentSlots {
            id: id.into(),
            idle_since: idle.map(at),
            free,
        }
    }

    fn pairs(p: &[Pairing]) -> Vec<(u128, &str)> {
        p.iter()
            .map(|x| (x.session.as_u128(), x.agent.as_str()))
            .collect()
    }

    #[test]
    fn modes_parse_case_insensitively() {
        assert_eq!("Manual".parse::<RoutingMode>(), Ok(RoutingMode::Manual));
        assert_eq!(" fair ".parse::<RoutingMode>(), Ok(RoutingMode::Fair));
        assert_eq!("AUTO".parse::<RoutingMode>(), Ok(RoutingMode::Auto));
        assert!("lottery".parse::<RoutingMode>().is_err());
        assert_eq!(RoutingMode::default(), RoutingMode::Fair);
    }

    #[test]
    fn first_come_first_served_whatever_the_input_order() {
        let queue = [session(3, 30), session(1, 10), session(2, 20)];
        let agents = [agent("a", Some(0), 1), agent("b", Some(1), 1)];
        assert_eq!(
            pairs(&plan(&queue, &agents, &HashSet::new())),
            vec![(1, "a"), (2, "b")]
        );
    }

    #[test]
    fn the_agent_idle_longest_goes_first() {
        let queue = [session(1, 0), session(2, 1), session(3, 2)];
        let agents = [
            agent("late", Some(50), 1),
            agent("early", Some(5), 1),
            agent("mid", Some(20), 1),
        ];
        assert_eq!(
            pairs(&plan(&queue, &agents, &HashSet::new())),
            vec![(1, "early"), (2, "mid"), (3, "late")]
        );
    }

    #[test]
    fn ties_break_by_queue_id_and_agent_id() {
        let queue = [session(2, 0), session(1, 0)];
        let agents = [agent("b", Some(0), 1), agent("a", Some(0), 1)];
        assert_eq!(
            pairs(&plan(&queue, &agents, &HashSet::new())),
            vec![(1, "a"), (2, "b")]
        );
    }

    #[test]
    fn an_agent_given_a_session_goes_to_the_back_of_the_line() {
        // a has 2 free slots and is idle longest; b is next. After a gets one,
        // b must get the next before a gets a second.
        let queue = [session(1, 0), session(2, 1), session(3, 2), session(4, 3)];
        let agents = [agent("a", Some(0), 2), agent("b", Some(10), 2)];
        assert_eq!(
            pairs(&plan(&queue, &agents, &HashSet::new())),
            vec![(1, "a"), (2, "b"), (3, "a"), (4, "b")]
        );
    }

    #[test]
    fn full_agents_get_nothing_and_the_rest_of_the_queue_waits() {
        let queue = [session(1, 0), session(2, 1), session(3, 2)];
        let agents = [
            agent("full", Some(0), 0),
            agent("over", Some(0), -1),
            agent("one", Some(9), 1),
        ];
        assert_eq!(
            pairs(&plan(&queue, &agents, &HashSet::new())),
            vec![(1, "one")]
        );
        assert!(plan(&queue, &[], &HashSet::new()).is_empty());
        assert!(plan(&[], &agents, &HashSet::new()).is_empty());
    }

    #[test]
    fn never_idle_agents_come_first() {
        let queue = [session(1, 0)];
        let agents = [agent("worked", Some(0), 1), agent("fresh", None, 1)];
        assert_eq!(
            pairs(&plan(&queue, &agents, &HashSet::new())),
            vec![(1, "fresh")]
        );
    }

    #[test]
    fn a_decliner_is_skipped_for_that_session_only() {
        let queue = [session(1, 0), session(2, 1)];
        let agents = [agent("a", Some(0), 1), agent("b", Some(5), 1)];
        let declined = HashSet::from([(Uuid::from_u128(1), "a".to_owned())]);
        assert_eq!(
            pairs(&plan(&queue, &agents, &declined)),
            vec![(1, "b"), (2, "a")]
        );
    }

    #[test]
    fn a_session_everyone_declined_keeps_its_place_but_does_not_block_the_queue() {
        let queue = [session(1, 0), session(2, 1)];
        let agents = [agent("a", Some(0), 1)];
        let declined = HashSet::from([(Uuid::from_u128(1), "a".to_owned())]);
        assert_eq!(pairs(&plan(&queue, &agents, &declined)), vec![(2, "a")]);
    }

    #[test]
    fn pairs_as_many_as_capacity_allows() {
        let queue: Vec<_> = (0..10).map(|i| session(i as u128, i)).collect();
        let agents = [
            agent("a", Some(0), 2),
            agent("b", Some(1), 2),
            agent("c", Some(2), 2),
        ];
        let p = plan(&queue, &agents, &HashSet::new());
        assert_eq!(p.len(), 6);
        let sessions: Vec<u128> = p.iter().map(|x| x.session.as_u128()).collect();
        assert_eq!(
            sessions,
            (0..6).collect::<Vec<_>>(),
            "the head of the queue is served first"
        );
        for id in ["a", "b", "c"] {
            assert_eq!(p.iter().filter(|x| x.agent == id).count(), 2);
        }
    }
}

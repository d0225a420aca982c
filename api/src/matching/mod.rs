//! Routing: who is served next. This module is the policy only — plain data
//! in, decisions out, no I/O. The service layer loads the queue and the
//! agents inside a transaction that excludes every other matcher, asks
//! [`plan`], and persists the answer with a record of each decision.
//!
//! The rules:
//! - the queue is served by priority (URGENT first), then first come, first
//!   served by the time the session entered the queue (a session sent back,
//!   or moved by priority, keeps that time);
//! - a session goes only to an agent having every skill it requires, until
//!   it has waited the skill wait: then to any agent (the decision records
//!   the relaxation);
//! - among the eligible AVAILABLE agents below capacity, the one idle the
//!   longest (earliest `idle_since`; never given work first) gets it, and
//!   being given a session sends an agent to the back of that line;
//! - an agent who declined a session is not offered it again;
//! - a session no free agent can take does not hold up the ones behind it
//!   that one can (no head-of-line blocking); it keeps its place, so it is
//!   the first served once an agent who can take it is free;
//! - as many pairs as possible are made at once.
//!
//! Ties go by session id and by agent id, so a plan never depends on the
//! order rows were read in.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

pub use crate::domain::RoutingMode;
use crate::domain::{Priority, Skills};

/// A WAITING session as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedSession {
    pub id: Uuid,
    pub queued_at: DateTime<Utc>,
    pub priority: Priority,
    pub required_skills: Skills,
}

/// An AVAILABLE agent as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSlots {
    pub id: String,
    pub idle_since: Option<DateTime<Utc>>,
    /// Capacity minus sessions held (OFFERED + ACTIVE); may be ≤ 0.
    pub free: i32,
    pub skills: Skills,
}

/// One decision: give `session` to `agent`, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pairing {
    pub session: Uuid,
    pub agent: String,
    /// The session had waited past the skill wait, so its skills were not
    /// required.
    pub skills_relaxed: bool,
    /// The agent's place in the idle line when chosen: their `idle_since`,
    /// or when they were given a session earlier in this plan, `now`.
    pub agent_idle_since: Option<DateTime<Utc>>,
    /// Sessions given to the agent earlier in this plan.
    pub given_earlier: i32,
}

/// What the rules need besides the queue and the agents.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// The time of the pass (the clock every process shares).
    pub now: DateTime<Utc>,
    /// How long a session's skills are required before any agent may
    /// take it.
    pub skill_wait: Duration,
}

/// The order the queue is served in: priority, then `queued_at`, then id.
pub fn queue_key(s: &QueuedSession) -> (Reverse<Priority>, DateTime<Utc>, Uuid) {
    (Reverse(s.priority), s.queued_at, s.id)
}

/// Whether a session that entered the queue at `queued_at` may go to an
/// agent without its skills at `now`.
pub fn skills_relaxed(queued_at: DateTime<Utc>, now: DateTime<Utc>, skill_wait: Duration) -> bool {
    now >= queued_at + skill_wait
}

/// Pairs the queue with free agents. `queue` may come in any order;
/// `declined` holds (session, agent) pairs that must not be made again.
pub fn plan(
    queue: &[QueuedSession],
    agents: &[AgentSlots],
    declined: &HashSet<(Uuid, String)>,
    rules: Rules,
) -> Vec<Pairing> {
    let mut sessions: Vec<&QueuedSession> = queue.iter().collect();
    sessions.sort_by_key(|s| queue_key(s));

    // The idle line: (when idle, tie-break, agent id, agent index). An agent
    // with no idle_since has never been given work and goes first; ties go
    // by id. Agents given a session in this round rejoin at the back, in
    // the order they were given one.
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
        let relaxed = !s.required_skills.is_empty()
            && skills_relaxed(s.queued_at, rules.now, rules.skill_wait);
        let Some(chosen) = line
            .iter()
            .find(|(_, _, id, i)| {
                !declined.contains(&(s.id, id.clone()))
                    && (relaxed || agents[*i].skills.covers(&s.required_skills))
            })
            .cloned()
        else {
            // No free agent may take it: it keeps its place, and the ones
            // behind it go on.
            continue;
        };
        line.remove(&chosen);
        let (idle, earlier, agent_id, i) = chosen;
        let agent_idle_since = if earlier > 0 { Some(rules.now) } else { idle };
        let given_earlier = agents[i].free - free[i];
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
            skills_relaxed: relaxed,
            agent_idle_since,
            given_earlier,
        });
    }
    pairings
}

/// The agents who could have had a session at its turn in a pass, in the
/// order the rule ranks them (the chosen one first): the pass's line as it
/// stood after the sessions given before it (`given_before`, agent ids in
/// the order they were given), less those declined or lacking the skills
/// (unless `relaxed`). This replays [`plan`] exactly, so the list need not
/// be stored with every decision: a pass over hundreds of agents would
/// write hundreds of names per decision.
pub fn candidates_at_turn(
    agents: &[AgentSlots],
    given_before: &[&str],
    required_skills: &Skills,
    relaxed: bool,
    declined_by: &HashSet<String>,
) -> Vec<String> {
    let mut line: BTreeSet<(Option<DateTime<Utc>>, u64, String, usize)> = agents
        .iter()
        .enumerate()
        .filter(|(_, a)| a.free > 0)
        .map(|(i, a)| (a.idle_since, 0, a.id.clone(), i))
        .collect();
    let mut free: Vec<i32> = agents.iter().map(|a| a.free).collect();
    for (given, agent) in given_before.iter().enumerate() {
        let Some(entry) = line.iter().find(|(_, _, id, _)| id == agent).cloned() else {
            continue;
        };
        line.remove(&entry);
        let i = entry.3;
        free[i] -= 1;
        if free[i] > 0 {
            let back = (Some(DateTime::<Utc>::MAX_UTC), given as u64 + 1, entry.2, i);
            line.insert(back);
        }
    }
    line.into_iter()
        .filter(|(_, _, id, i)| {
            !declined_by.contains(id) && (relaxed || agents[*i].skills.covers(required_skills))
        })
        .map(|(_, _, id, _)| id)
        .collect()
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
            priority: Priority::Normal,
            required_skills: Skills::default(),
        }
    }

    fn agent(id: &str, idle: Option<i64>, free: i32) -> AgentSlots {
        AgentSlots {
            id: id.into(),
            idle_since: idle.map(at),
            free,
            skills: Skills::default(),
        }
    }

    fn skills(names: &[&str]) -> Skills {
        Skills::parse(names).unwrap()
    }

    /// A pass at `now` seconds, skills required for 60 s.
    fn rules(now: i64) -> Rules {
        Rules {
            now: at(now),
            skill_wait: Duration::seconds(60),
        }
    }

    fn plan(
        queue: &[QueuedSession],
        agents: &[AgentSlots],
        declined: &HashSet<(Uuid, String)>,
    ) -> Vec<Pairing> {
        super::plan(queue, agents, declined, rules(10))
    }

    fn pairs(p: &[Pairing]) -> Vec<(u128, &str)> {
        p.iter()
            .map(|x| (x.session.as_u128(), x.agent.as_str()))
            .collect()
    }

    /// One queue entry of a table: (id, queued at, priority, skills).
    type Entry<'a> = (u128, i64, Priority, &'a [&'a str]);
    /// One agent of a table: (id, idle since, free slots, skills).
    type Desk<'a> = (&'a str, Option<i64>, i32, &'a [&'a str]);

    #[test]
    fn priorities_skills_relaxation_and_ties_table() {
        use Priority::*;
        #[allow(clippy::type_complexity)]
        let table: &[(&str, i64, &[Entry], &[Desk], &[(u128, &str)])] = &[
            (
                "urgent before high before normal before low, FIFO within each",
                10,
                &[
                    (1, 0, Low, &[]),
                    (2, 1, Normal, &[]),
                    (3, 2, Urgent, &[]),
                    (4, 3, High, &[]),
                    (5, 4, Urgent, &[]),
                ],
                &[("a", Some(0), 5, &[])],
                &[(3, "a"), (5, "a"), (4, "a"), (2, "a"), (1, "a")],
            ),
            (
                "a moved-up session keeps its queued_at among its new peers",
                10,
                &[(1, 5, High, &[]), (2, 0, High, &[]), (3, 1, Normal, &[])],
                &[("a", Some(0), 2, &[])],
                &[(2, "a"), (1, "a")],
            ),
            (
                "skills: the session waits for an agent who has them all",
                10,
                &[(1, 0, Normal, &["billing", "de"]), (2, 1, Normal, &[])],
                &[
                    ("plain", Some(0), 1, &[]),
                    ("billing", Some(1), 1, &["billing"]),
                    ("both", Some(2), 1, &["billing", "de", "fr"]),
                ],
                &[(1, "both"), (2, "plain")],
            ),
            (
                "no head-of-line blocking: a head nobody free can take lets later ones through",
                10,
                &[
                    (1, 0, Urgent, &["fr"]),
                    (2, 1, Normal, &[]),
                    (3, 2, Low, &["de"]),
                ],
                &[("a", Some(0), 2, &["de"]), ("b", Some(1), 1, &[])],
                &[(2, "a"), (3, "a")],
            ),
            (
                "after the skill wait any agent will do, the earliest idle first",
                70,
                &[(1, 0, Normal, &["fr"]), (2, 30, Normal, &["fr"])],
                &[("late", Some(5), 1, &[]), ("early", Some(1), 1, &[])],
                &[(1, "early")],
            ),
            (
                "exactly at the skill wait the requirement is relaxed",
                60,
                &[(1, 0, Normal, &["fr"])],
                &[("a", Some(0), 1, &[])],
                &[(1, "a")],
            ),
            (
                "ties: same priority and time go by session id; same idle time by agent id",
                10,
                &[(9, 0, High, &[]), (8, 0, High, &[])],
                &[("y", Some(3), 1, &[]), ("x", Some(3), 1, &[])],
                &[(8, "x"), (9, "y")],
            ),
        ];
        for (what, now, entries, desks, expected) in table {
            let queue: Vec<QueuedSession> = entries
                .iter()
                .map(|(n, queued, priority, needs)| QueuedSession {
                    id: Uuid::from_u128(*n),
                    queued_at: at(*queued),
                    priority: *priority,
                    required_skills: skills(needs),
                })
                .collect();
            let agents: Vec<AgentSlots> = desks
                .iter()
                .map(|(id, idle, free, has)| AgentSlots {
                    id: (*id).into(),
                    idle_since: idle.map(at),
                    free: *free,
                    skills: skills(has),
                })
                .collect();
            let got = super::plan(&queue, &agents, &HashSet::new(), rules(*now));
            assert_eq!(pairs(&got), expected.to_vec(), "{what}");
        }
    }

    #[test]
    fn a_decision_names_its_candidates_in_rule_order_and_its_relaxation() {
        let mut fr = session(1, 0);
        fr.required_skills = skills(&["fr"]);
        let agents = [
            agent("c", Some(3), 1),
            AgentSlots {
                skills: skills(&["fr"]),
                ..agent("b", Some(2), 1)
            },
            agent("a", Some(1), 2),
        ];
        let none = HashSet::new();
        let before = super::plan(&[fr.clone()], &agents, &HashSet::new(), rules(59));
        assert_eq!(before[0].agent, "b");
        assert_eq!(
            candidates_at_turn(&agents, &[], &fr.required_skills, false, &none),
            ["b"]
        );
        assert!(!before[0].skills_relaxed);
        let after = super::plan(&[fr.clone()], &agents, &HashSet::new(), rules(60));
        assert_eq!(after[0].agent, "a");
        assert_eq!(
            candidates_at_turn(&agents, &[], &fr.required_skills, true, &none),
            ["a", "b", "c"]
        );
        assert!(after[0].skills_relaxed);
        // A second session for the same agent records where they stood then.
        let two = super::plan(
            &[session(1, 0), session(2, 1), session(3, 2), session(4, 3)],
            &agents,
            &HashSet::new(),
            rules(10),
        );
        let a_second = two.iter().filter(|p| p.agent == "a").nth(1).unwrap();
        assert_eq!(a_second.given_earlier, 1);
        assert_eq!(a_second.agent_idle_since, Some(at(10)));
    }

    #[test]
    fn replayed_candidates_start_with_whom_the_plan_chose_at_every_turn() {
        // A pass over agents of mixed skills and loads, with a decline.
        let agents: Vec<AgentSlots> = (0..6)
            .map(|i| AgentSlots {
                skills: if i % 2 == 0 {
                    skills(&["fr"])
                } else {
                    Skills::default()
                },
                ..agent(&format!("a{i}"), Some(10 - i), 1 + (i as i32 % 3))
            })
            .collect();
        let queue: Vec<QueuedSession> = (0..12)
            .map(|n| QueuedSession {
                required_skills: if n % 3 == 0 {
                    skills(&["fr"])
                } else {
                    Skills::default()
                },
                priority: if n % 4 == 0 {
                    Priority::High
                } else {
                    Priority::Normal
                },
                ..session(n as u128, n as i64)
            })
            .collect();
        let declined = HashSet::from([(Uuid::from_u128(1), "a5".to_owned())]);
        let pass = super::plan(&queue, &agents, &declined, rules(10));
        assert!(pass.len() >= 8, "{pass:?}");
        for (k, p) in pass.iter().enumerate() {
            let s = queue.iter().find(|s| s.id == p.session).unwrap();
            let before: Vec<&str> = pass[..k].iter().map(|x| x.agent.as_str()).collect();
            let declined_by: HashSet<String> = declined
                .iter()
                .filter(|(sid, _)| *sid == s.id)
                .map(|(_, a)| a.clone())
                .collect();
            let c = candidates_at_turn(
                &agents,
                &before,
                &s.required_skills,
                p.skills_relaxed,
                &declined_by,
            );
            assert_eq!(c.first(), Some(&p.agent), "turn {k}");
            for other in &c {
                assert!(!declined_by.contains(other));
            }
        }
    }

    #[test]
    fn the_session_passed_over_is_first_once_its_agent_is_free() {
        // Pass one: the French speaker is busy, so the later session goes first.
        let mut head = session(1, 0);
        head.required_skills = skills(&["fr"]);
        let queue = [head.clone(), session(2, 1)];
        let french = |free| AgentSlots {
            skills: skills(&["fr"]),
            ..agent("fr", Some(0), free)
        };
        let first = super::plan(
            &queue,
            &[french(0), agent("en", Some(1), 1)],
            &HashSet::new(),
            rules(10),
        );
        assert_eq!(pairs(&first), vec![(2, "en")]);
        // Pass two: the French speaker frees a slot; a newer session that
        // anyone could take waits behind the one passed over.
        let queue = [head, session(3, 2)];
        let second = super::plan(&queue, &[french(1)], &HashSet::new(), rules(11));
        assert_eq!(pairs(&second), vec![(1, "fr")]);
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

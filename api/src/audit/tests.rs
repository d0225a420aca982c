//! Histories built by hand: a clean one passes, and each kind of
//! violation is caught, alone.

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::domain::{DecisionKind, PassAgent};

use DecisionKind::{Accepted, AdminAssigned, Transferred};
use HistoryKind as H;
use Priority::{High, Low, Normal};

fn ms(n: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).unwrap() + Duration::milliseconds(n)
}

fn skills(names: &[&str]) -> Skills {
    Skills::parse(names).unwrap()
}

/// An agent as a pass saw them: (id, idle since, held, capacity, skills).
fn desk(id: &str, idle: Option<i64>, held: i32, capacity: i32, has: &[&str]) -> PassAgent {
    PassAgent {
        id: id.into(),
        idle_since: idle.map(ms),
        held,
        capacity,
        skills: skills(has),
    }
}

/// A period under construction: sessions are numbered, times in ms.
struct World {
    p: Period,
    priority: HashMap<u128, Priority>,
    next: i64,
}

impl World {
    fn new() -> World {
        World {
            p: Period {
                from: ms(0),
                to: ms(10_000_000),
                skill_wait: Duration::seconds(60),
                sessions: Vec::new(),
                events: Vec::new(),
                decisions: Vec::new(),
                idle_floors: HashMap::new(),
            },
            priority: HashMap::new(),
            next: 0,
        }
    }

    fn row(&mut self) -> i64 {
        self.next += 1;
        self.next
    }

    fn facts(&self, n: u128) -> &SessionFacts {
        self.p
            .sessions
            .iter()
            .find(|s| s.id.as_u128() == n)
            .unwrap()
    }

    fn session(&mut self, n: u128, queued: i64, priority: Priority, needs: &[&str]) -> &mut Self {
        self.p.sessions.push(SessionFacts {
            id: Uuid::from_u128(n),
            queued_at: ms(queued),
            priority,
            required_skills: skills(needs),
        });
        self.priority.insert(n, priority);
        let id = self.row();
        self.p.events.push(Event {
            id,
            session_id: Uuid::from_u128(n),
            kind: H::Queued,
            agent_id: None,
            priority: Some(priority),
            // As recorded: the arrival, a little before the queue entry.
            at: ms(queued) - Duration::microseconds(300),
        });
        self
    }

    fn event(&mut self, n: u128, kind: HistoryKind, agent: &str, at: i64) -> &mut Self {
        let id = self.row();
        self.p.events.push(Event {
            id,
            session_id: Uuid::from_u128(n),
            kind,
            agent_id: Some(agent.into()),
            priority: None,
            at: ms(at),
        });
        self
    }

    fn reprioritize(&mut self, n: u128, to: Priority, at: i64) -> &mut Self {
        let id = self.row();
        self.p.events.push(Event {
            id,
            session_id: Uuid::from_u128(n),
            kind: H::Reprioritized,
            agent_id: None,
            priority: Some(to),
            at: ms(at),
        });
        self.priority.insert(n, to);
        self.p
            .sessions
            .iter_mut()
            .find(|s| s.id.as_u128() == n)
            .unwrap()
            .priority = to;
        self
    }

    fn decision(
        &self,
        n: u128,
        agent: &str,
        kind: DecisionKind,
        at: i64,
        held: i32,
        capacity: i32,
    ) -> RoutingDecision {
        let s = self.facts(n);
        RoutingDecision {
            session_id: s.id,
            agent_id: agent.into(),
            kind,
            priority: self.priority[&n],
            queued_at: s.queued_at,
            agent_idle_since: None,
            agent_held: held,
            agent_capacity: capacity,
            candidates: vec![agent.into()],
            required_skills: s.required_skills.clone(),
            skills_relaxed: !s.required_skills.is_empty()
                && ms(at) >= s.queued_at + self.p.skill_wait,
            at: ms(at),
            pass_agents: Vec::new(),
        }
    }

    /// A fair-routing matcher pass: offers (session, agent, candidates),
    /// each decision with what the pass saw.
    fn pass(&mut self, at: i64, seen: &[PassAgent], offers: &[(u128, &str, &[&str])]) -> &mut Self {
        let mut earlier: HashMap<&str, i32> = HashMap::new();
        for (n, agent, candidates) in offers {
            let a = seen.iter().find(|a| a.id == *agent).unwrap();
            let held = a.held + earlier.get(agent).copied().unwrap_or(0);
            *earlier.entry(agent).or_default() += 1;
            let mut d = self.decision(*n, agent, DecisionKind::Offered, at, held, a.capacity);
            d.candidates = candidates.iter().map(|c| (*c).to_owned()).collect();
            d.pass_agents = seen.to_vec();
            let id = self.row();
            self.p.decisions.push((id, d));
            self.event(*n, H::Offered, agent, at);
        }
        self
    }

    /// A decision a person made, with its history entry.
    #[allow(clippy::too_many_arguments)]
    fn by_hand(
        &mut self,
        at: i64,
        n: u128,
        agent: &str,
        kind: DecisionKind,
        held: i32,
        capacity: i32,
    ) -> &mut Self {
        let d = self.decision(n, agent, kind, at, held, capacity);
        let id = self.row();
        self.p.decisions.push((id, d));
        let entry = match kind {
            Accepted => H::Accepted,
            Transferred => H::Transferred,
            _ => H::Assigned,
        };
        self.event(n, entry, agent, at)
    }

    fn decision_of(&mut self, n: u128, kind: DecisionKind) -> &mut RoutingDecision {
        &mut self
            .p
            .decisions
            .iter_mut()
            .find(|(_, d)| d.session_id.as_u128() == n && d.kind == kind)
            .unwrap()
            .1
    }

    /// Moves a session's decision (and what its history says the agent
    /// did with it) to another agent.
    fn give_instead(&mut self, n: u128, kind: DecisionKind, to: &str, held: i32) -> &mut Self {
        let d = self.decision_of(n, kind);
        let (from, at) = (d.agent_id.clone(), d.at);
        d.agent_id = to.into();
        d.agent_held = held;
        for e in &mut self.p.events {
            if e.session_id.as_u128() == n && e.at >= at && e.agent_id.as_deref() == Some(&from) {
                e.agent_id = Some(to.into());
            }
        }
        self
    }

    fn found(&self) -> Vec<Invariant> {
        let mut kinds: Vec<Invariant> = check(&self.p)
            .violations
            .iter()
            .map(|v| v.invariant)
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

/// Five sessions and three agents through a pass in queue order (a HIGH
/// one first; a billing one to the only billing agent, behind whom that
/// agent was put after their first; a LOW one nobody free can take),
/// accepts, a decline, a pass that skips the decliner, a relaxed
/// requirement after the skill wait, a transfer and an admin assignment.
fn clean() -> World {
    let mut w = World::new();
    w.session(1, 0, Normal, &[])
        .session(2, 1, High, &[])
        .session(3, 2, Normal, &["billing"])
        .session(4, 3, Normal, &[])
        .session(5, 4, Low, &["billing"]);
    w.pass(
        10,
        &[
            desk("bob", Some(-30), 0, 1, &[]),
            desk("ann", Some(-20), 0, 2, &["billing"]),
            desk("cy", Some(-10), 0, 1, &[]),
        ],
        &[
            (2, "bob", &["bob", "ann", "cy"]),
            (1, "ann", &["ann", "cy"]),
            (3, "ann", &["ann"]),
            (4, "cy", &["cy"]),
        ],
    );
    w.event(1, H::Accepted, "ann", 20)
        .event(3, H::Accepted, "ann", 20)
        .event(2, H::Declined, "bob", 20)
        .event(4, H::Accepted, "cy", 20)
        .event(4, H::Ended, "cy", 30);
    w.pass(
        40,
        &[
            desk("bob", Some(10), 0, 1, &[]),
            desk("cy", Some(30), 0, 1, &[]),
        ],
        &[(2, "cy", &["cy"])],
    );
    w.event(2, H::Accepted, "cy", 50);
    // Session 5 has waited the skill wait: anyone may take it.
    w.pass(
        61_000,
        &[desk("bob", Some(10), 0, 1, &[])],
        &[(5, "bob", &["bob"])],
    );
    w.event(5, H::Accepted, "bob", 61_010)
        .event(2, H::Ended, "cy", 61_020)
        .by_hand(61_030, 1, "cy", Transferred, 0, 1)
        .session(6, 61_040, Normal, &[])
        .by_hand(61_050, 6, "ann", AdminAssigned, 1, 2)
        .event(1, H::Ended, "cy", 62_000)
        .event(3, H::Ended, "ann", 62_000)
        .event(5, H::Ended, "bob", 62_000)
        .event(6, H::Ended, "ann", 62_000);
    w
}

#[test]
fn a_clean_history_passes() {
    let w = clean();
    let report = check(&w.p);
    assert!(report.violations.is_empty(), "{:#?}", report.violations);
    assert_eq!(report.checked, 8);
}

#[test]
fn each_kind_of_violation_is_caught() {
    use Invariant::*;
    #[allow(clippy::type_complexity)]
    let table: Vec<(&str, Box<dyn Fn() -> World>, &[Invariant])> = vec![
        (
            "a transfer to an agent at capacity",
            Box::new(|| {
                let mut w = clean();
                w.give_instead(1, Transferred, "bob", 1);
                w.decision_of(1, Transferred).agent_capacity = 1;
                w
            }),
            &[Capacity],
        ),
        (
            "an agent given more sessions in one pass than they had free",
            Box::new(|| {
                let mut w = clean();
                w.give_instead(4, DecisionKind::Offered, "ann", 2);
                w.decision_of(4, DecisionKind::Offered).agent_capacity = 2;
                w
            }),
            &[Capacity],
        ),
        (
            "the state at `from` counts what was held before the period",
            Box::new(|| {
                let mut w = World::new();
                w.p.from = ms(100);
                w.session(1, 0, Normal, &[])
                    .pass(
                        10,
                        &[desk("bob", Some(0), 0, 1, &[])],
                        &[(1, "bob", &["bob"])],
                    )
                    .event(1, H::Accepted, "bob", 20)
                    .session(2, 150, Normal, &[])
                    .by_hand(200, 2, "bob", AdminAssigned, 1, 1);
                assert_eq!(check(&w.p).checked, 1);
                assert_eq!(check(&w.p).at_from.held, 1);
                w
            }),
            &[Capacity],
        ),
        (
            "offered while another agent holds it",
            Box::new(|| {
                let mut w = clean();
                let mut d = w.decision(1, "bob", DecisionKind::Offered, 40, 0, 1);
                d.pass_agents =
                    w.p.decisions
                        .iter()
                        .find(|(_, d)| d.at == ms(40))
                        .unwrap()
                        .1
                        .pass_agents
                        .clone();
                let id = w.row();
                w.p.decisions.push((id, d));
                w.event(1, H::Offered, "bob", 40);
                w
            }),
            &[OneHolder],
        ),
        (
            "picked from the queue while offered to someone else",
            Box::new(|| {
                let mut w = World::new();
                w.session(1, 0, Normal, &[])
                    .pass(
                        10,
                        &[desk("bob", Some(0), 0, 1, &[])],
                        &[(1, "bob", &["bob"])],
                    )
                    .by_hand(15, 1, "cy", Accepted, 0, 1);
                w
            }),
            &[OneHolder],
        ),
        (
            "a session given with no routing decision",
            Box::new(|| {
                let mut w = clean();
                w.p.decisions.retain(|(_, d)| d.kind != AdminAssigned);
                w
            }),
            &[Record],
        ),
        (
            "a decision without its history entry",
            Box::new(|| {
                let mut w = clean();
                w.p.events
                    .retain(|e| !(e.session_id.as_u128() == 6 && e.kind == H::Assigned));
                w
            }),
            &[Record],
        ),
        (
            "a decision whose held count disagrees with the history",
            Box::new(|| {
                let mut w = clean();
                w.decision_of(6, AdminAssigned).agent_held = 0;
                w
            }),
            &[Record],
        ),
        (
            "a NORMAL session served while a HIGH one the agent could take waited",
            Box::new(|| {
                let mut w = World::new();
                w.session(1, 0, Normal, &[]).session(2, 1, High, &[]).pass(
                    10,
                    &[desk("bob", Some(0), 0, 1, &[])],
                    &[(1, "bob", &["bob"])],
                );
                w
            }),
            &[QueueOrder],
        ),
        (
            "a later session served first",
            Box::new(|| {
                let mut w = World::new();
                w.session(1, 0, Normal, &[])
                    .session(2, 1, Normal, &[])
                    .pass(
                        10,
                        &[desk("bob", Some(0), 0, 1, &[])],
                        &[(2, "bob", &["bob"])],
                    );
                w
            }),
            &[QueueOrder],
        ),
        (
            "the priority as it was at the pass, after a change",
            Box::new(|| {
                let mut w = World::new();
                w.session(1, 0, Normal, &[])
                    .session(2, 1, Normal, &[])
                    .reprioritize(2, High, 5)
                    .pass(
                        10,
                        &[desk("bob", Some(0), 0, 1, &[])],
                        &[(1, "bob", &["bob"])],
                    );
                w
            }),
            &[QueueOrder],
        ),
        (
            "a free agent left idle beside a session they could take",
            Box::new(|| {
                let mut w = World::new();
                w.session(1, 0, Normal, &[])
                    .session(2, 1, Normal, &[])
                    .pass(
                        10,
                        &[
                            desk("bob", Some(0), 0, 1, &[]),
                            desk("cy", Some(5), 0, 1, &[]),
                        ],
                        &[(1, "bob", &["bob", "cy"])],
                    );
                w
            }),
            &[QueueOrder],
        ),
        (
            "the agent idle longest passed over",
            Box::new(|| {
                let mut w = World::new();
                w.session(1, 0, Normal, &[]).pass(
                    10,
                    &[
                        desk("bob", Some(0), 0, 1, &[]),
                        desk("cy", Some(5), 0, 1, &[]),
                    ],
                    &[(1, "cy", &["bob", "cy"])],
                );
                w
            }),
            &[EarliestIdle],
        ),
        (
            "an agent given one earlier in the pass kept their place",
            Box::new(|| {
                let mut w = World::new();
                w.session(1, 0, Normal, &[])
                    .session(2, 1, Normal, &[])
                    .pass(
                        10,
                        &[
                            desk("ann", Some(0), 0, 2, &[]),
                            desk("bob", Some(5), 0, 1, &[]),
                        ],
                        &[(1, "ann", &["ann", "bob"]), (2, "ann", &["bob", "ann"])],
                    );
                w
            }),
            &[EarliestIdle],
        ),
        (
            "an agent who had a session end kept their old place in the line",
            Box::new(|| {
                let mut w = World::new();
                w.session(1, 0, Normal, &[])
                    .pass(
                        10,
                        &[desk("bob", Some(0), 0, 1, &[])],
                        &[(1, "bob", &["bob"])],
                    )
                    .event(1, H::Ended, "bob", 15)
                    .session(2, 16, Normal, &[])
                    .pass(
                        20,
                        &[
                            desk("bob", Some(0), 0, 1, &[]),
                            desk("cy", Some(5), 0, 1, &[]),
                        ],
                        &[(2, "bob", &["bob", "cy"])],
                    );
                w
            }),
            &[EarliestIdle],
        ),
        (
            "an idle time earlier than one from before the period",
            Box::new(|| {
                let mut w = World::new();
                w.p.from = ms(100);
                w.p.idle_floors.insert("bob".into(), ms(50));
                w.session(1, 150, Normal, &[]).pass(
                    200,
                    &[desk("bob", Some(10), 0, 1, &[])],
                    &[(1, "bob", &["bob"])],
                );
                w
            }),
            &[EarliestIdle],
        ),
        (
            "skills ignored before the skill wait",
            Box::new(|| {
                let mut w = World::new();
                w.session(1, 0, Normal, &["billing"]).pass(
                    10,
                    &[desk("bob", Some(0), 0, 1, &[])],
                    &[(1, "bob", &["bob"])],
                );
                w.decision_of(1, DecisionKind::Offered).skills_relaxed = true;
                w
            }),
            &[Skills, Record],
        ),
        (
            "offered again to the agent who declined it",
            Box::new(|| {
                let mut w = World::new();
                w.session(1, 0, Normal, &[])
                    .pass(
                        10,
                        &[desk("bob", Some(0), 0, 1, &[])],
                        &[(1, "bob", &["bob"])],
                    )
                    .event(1, H::Declined, "bob", 15)
                    .pass(
                        20,
                        &[desk("bob", Some(10), 0, 1, &[])],
                        &[(1, "bob", &["bob"])],
                    );
                w
            }),
            &[Declined, Record],
        ),
    ];
    for (what, build, expected) in table {
        let w = build();
        let found = w.found();
        if std::env::var("AUDIT_SHOW").is_ok() {
            for v in check(&w.p).violations {
                println!("{what}: {v}");
            }
        }
        assert_eq!(
            found,
            expected.to_vec(),
            "{what}: {:#?}",
            check(&w.p).violations
        );
    }
}

#[test]
fn violations_read_as_sentences() {
    let mut w = World::new();
    w.session(1, 0, Normal, &[])
        .session(2, 1, Normal, &[])
        .pass(
            10,
            &[desk("bob", Some(0), 0, 1, &[])],
            &[(2, "bob", &["bob"])],
        );
    let report = check(&w.p);
    let text = report.violations[0].to_string();
    assert!(
        text.contains("queue order session 00000000-0000-0000-0000-000000000001 agent bob")
            && text.contains("left WAITING (NORMAL")
            && text.contains("went to bob"),
        "{text}"
    );
}

#[test]
fn a_pass_recorded_before_its_agents_were_cannot_be_checked_and_says_so() {
    let mut w = World::new();
    w.session(1, 0, Normal, &[]).pass(
        10,
        &[desk("bob", Some(0), 0, 1, &[])],
        &[(1, "bob", &["bob"])],
    );
    w.decision_of(1, DecisionKind::Offered).pass_agents.clear();
    assert_eq!(w.found(), vec![Invariant::Record]);
}

#[test]
fn low_priority_and_unmet_skills_wait_without_fault() {
    // Session 1 needs French nobody free has; session 2 behind it goes.
    let mut w = World::new();
    w.session(1, 0, High, &["fr"]).session(2, 1, Low, &[]).pass(
        10,
        &[desk("bob", Some(0), 0, 1, &["de"])],
        &[(2, "bob", &["bob"])],
    );
    assert_eq!(w.found(), vec![]);
}

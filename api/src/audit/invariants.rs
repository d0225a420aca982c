//! The checks of the decisions taken at one instant against the state
//! just before it; the definitions are in the module documentation.

use std::cmp::Reverse;
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::replay::{Place, State, Tracked};
use super::{stamp, Event, Invariant, Violation};
use crate::domain::{DecisionKind, HistoryKind, PassAgent, RoutingDecision};

/// Collects violations at one instant.
struct Out<'a> {
    at: DateTime<Utc>,
    list: &'a mut Vec<Violation>,
}

impl Out<'_> {
    fn push(&mut self, invariant: Invariant, session: Uuid, agent: Option<&str>, detail: String) {
        self.list.push(Violation {
            at: self.at,
            invariant,
            session: Some(session),
            agent: agent.map(str::to_owned),
            detail,
        });
    }
}

/// Checks the decisions stamped `at`: those of a matcher pass together,
/// those people made one by one. `events` are the history entries stamped
/// `at`, each decision's own among them.
pub(super) fn check_instant(
    state: &State,
    at: DateTime<Utc>,
    decisions: &[&(i64, RoutingDecision)],
    events: &[&Event],
    skill_wait: Duration,
    list: &mut Vec<Violation>,
) {
    let mut out = Out { at, list };
    for (_, d) in decisions {
        check_recorded(state, d, events, &mut out);
    }
    let pass: Vec<&RoutingDecision> = decisions
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d.kind.by_the_rules())
        .collect();
    if !pass.is_empty() {
        check_pass(state, at, &pass, skill_wait, &mut out);
    }
    for (_, d) in decisions.iter().filter(|(_, d)| !d.kind.by_the_rules()) {
        check_by_hand(state, d, &mut out);
    }
}

/// The decision agrees with its history entry and with the session.
fn check_recorded(state: &State, d: &RoutingDecision, events: &[&Event], out: &mut Out) {
    let entry = match d.kind {
        DecisionKind::Offered => HistoryKind::Offered,
        DecisionKind::Assigned | DecisionKind::AdminAssigned => HistoryKind::Assigned,
        DecisionKind::Accepted => HistoryKind::Accepted,
        DecisionKind::Transferred => HistoryKind::Transferred,
    };
    let who = Some(d.agent_id.as_str());
    if !events
        .iter()
        .any(|e| e.session_id == d.session_id && e.kind == entry && e.agent_id.as_deref() == who)
    {
        out.push(
            Invariant::Record,
            d.session_id,
            who,
            format!(
                "{} decision without its {} history entry",
                d.kind.as_str(),
                entry.as_str()
            ),
        );
    }
    let Some(s) = state.sessions.get(&d.session_id) else {
        out.push(
            Invariant::Record,
            d.session_id,
            who,
            "decision for a session the period does not know".into(),
        );
        return;
    };
    let mut differs = Vec::new();
    if d.priority != s.priority {
        differs.push(format!(
            "priority {} (history: {})",
            d.priority.as_str(),
            s.priority.as_str()
        ));
    }
    if d.queued_at != s.queued_at {
        differs.push(format!(
            "queued at {} (session: {})",
            d.queued_at, s.queued_at
        ));
    }
    if d.required_skills != s.skills {
        differs.push(format!(
            "skills {:?} (session: {:?})",
            d.required_skills.names(),
            s.skills.names()
        ));
    }
    if !differs.is_empty() {
        out.push(
            Invariant::Record,
            d.session_id,
            who,
            format!("decision records {}", differs.join(", ")),
        );
    }
}

/// The capacity check every decision shares: `held` is what the agent
/// holds just before (the history's, plus earlier turns of its pass).
fn check_capacity(d: &RoutingDecision, held: i32, already_theirs: bool, out: &mut Out) {
    let who = Some(d.agent_id.as_str());
    if d.agent_held != held {
        out.push(
            Invariant::Record,
            d.session_id,
            who,
            format!(
                "decision records the agent holding {}, the history {held}",
                d.agent_held
            ),
        );
    }
    let after = if already_theirs { held } else { held + 1 };
    if after > d.agent_capacity {
        out.push(
            Invariant::Capacity,
            d.session_id,
            who,
            format!(
                "{} made {} hold {after} sessions, capacity {}",
                d.kind.as_str(),
                d.agent_id,
                d.agent_capacity
            ),
        );
    }
}

/// A decision a person made: a pick from the queue (manual routing), an
/// admin's assignment, a transfer. Only capacity and the holder apply.
fn check_by_hand(state: &State, d: &RoutingDecision, out: &mut Out) {
    let Some(s) = state.sessions.get(&d.session_id) else {
        return;
    };
    let already_theirs = match (d.kind, &s.place) {
        (DecisionKind::Accepted, Place::Waiting) => false,
        (DecisionKind::AdminAssigned, Place::Waiting) => false,
        (DecisionKind::AdminAssigned, Place::Offered(a)) => *a == d.agent_id,
        (DecisionKind::Transferred, Place::Active(a)) if *a != d.agent_id => false,
        (kind, place) => {
            out.push(
                Invariant::OneHolder,
                d.session_id,
                Some(&d.agent_id),
                format!("{} to {} while {place}", kind.as_str(), d.agent_id),
            );
            return;
        }
    };
    check_capacity(d, state.held(&d.agent_id), already_theirs, out);
}

/// An agent of the pass, with what earlier turns gave them.
struct Desk<'a> {
    agent: &'a PassAgent,
    free: i32,
    /// The turn that last gave them a session, counted in gives.
    given: Option<usize>,
}

impl Desk<'_> {
    /// Place in the line: never given work, then longest idle, then id;
    /// those given a session at an earlier turn behind, in that order.
    fn place(&self) -> (bool, usize, bool, Option<DateTime<Utc>>, &str) {
        (
            self.given.is_some(),
            self.given.unwrap_or(0),
            self.agent.idle_since.is_some(),
            self.agent.idle_since,
            &self.agent.id,
        )
    }

    fn describe(&self) -> String {
        match (self.given, self.agent.idle_since) {
            (Some(_), _) => format!("{} (given one earlier in the pass)", self.agent.id),
            (None, Some(t)) => format!("{} (idle since {})", self.agent.id, stamp(t)),
            (None, None) => format!("{} (never given work)", self.agent.id),
        }
    }
}

/// The decisions of one matcher pass, turn by turn.
fn check_pass(
    state: &State,
    at: DateTime<Utc>,
    pass: &[&RoutingDecision],
    skill_wait: Duration,
    out: &mut Out,
) {
    let seen = &pass[0].pass_agents;
    if seen.is_empty() {
        for d in pass {
            out.push(
                Invariant::Record,
                d.session_id,
                Some(&d.agent_id),
                "the decision does not record the agents its pass chose from \
                 (written before they were recorded): its line cannot be checked"
                    .into(),
            );
            if let Some(s) = state.sessions.get(&d.session_id) {
                if s.place == Place::Waiting {
                    check_capacity(d, state.held(&d.agent_id), false, out);
                }
            }
        }
        return;
    }
    for d in &pass[1..] {
        if d.pass_agents != *seen {
            out.push(
                Invariant::Record,
                d.session_id,
                Some(&d.agent_id),
                "decisions of one pass record different agents".into(),
            );
        }
    }
    let first = pass[0];
    // The agents as the pass saw them, against what the history establishes.
    for a in seen {
        let held = state.held(&a.id);
        if a.held != held {
            out.push(
                Invariant::Record,
                first.session_id,
                Some(&a.id),
                format!(
                    "the pass saw {} holding {}, the history {held}",
                    a.id, a.held
                ),
            );
        }
        if a.held >= a.capacity {
            out.push(
                Invariant::Capacity,
                first.session_id,
                Some(&a.id),
                format!(
                    "{} stood in the line holding {} of {}",
                    a.id, a.held, a.capacity
                ),
            );
        }
        if let Some(floor) = state.idle_floor(&a.id) {
            if a.idle_since.is_none_or(|idle| idle < floor) {
                out.push(
                    Invariant::EarliestIdle,
                    first.session_id,
                    Some(&a.id),
                    format!(
                        "{} stood in the line as idle since {} though a session was given \
                         to or left them at {}",
                        a.id,
                        a.idle_since.map_or_else(|| "never".to_owned(), stamp),
                        stamp(floor),
                    ),
                );
            }
        }
    }

    let mut given: HashMap<Uuid, &RoutingDecision> = HashMap::new();
    for d in pass {
        let place = state.sessions.get(&d.session_id).map(|s| &s.place);
        if given.insert(d.session_id, d).is_some() {
            out.push(
                Invariant::OneHolder,
                d.session_id,
                Some(&d.agent_id),
                "given twice in one pass".into(),
            );
        } else if let Some(place) = place.filter(|p| **p != Place::Waiting) {
            out.push(
                Invariant::OneHolder,
                d.session_id,
                Some(&d.agent_id),
                format!("{} to {} while {place}", d.kind.as_str(), d.agent_id),
            );
        }
    }

    // The turns: every session WAITING just before the pass, in queue order.
    let mut turns: Vec<(Uuid, &Tracked)> = state
        .sessions
        .iter()
        .filter(|(_, s)| s.place == Place::Waiting)
        .map(|(id, s)| (*id, s))
        .collect();
    turns.sort_by_key(|(id, s)| (Reverse(s.priority), s.queued_at, *id));

    let mut desks: Vec<Desk> = seen
        .iter()
        .map(|agent| Desk {
            agent,
            free: agent.capacity - agent.held,
            given: None,
        })
        .collect();
    let mut gives = 0;
    let mut earlier: HashMap<&str, i32> = HashMap::new();
    for (turn, (id, s)) in turns.iter().enumerate() {
        let relaxed = !s.skills.is_empty() && at >= s.queued_at + skill_wait;
        let can_take = |desk: &Desk| {
            desk.free > 0
                && !state.declined(*id, &desk.agent.id)
                && (relaxed || desk.agent.skills.covers(&s.skills))
        };
        let mut line: Vec<usize> = (0..desks.len()).filter(|&k| can_take(&desks[k])).collect();
        line.sort_by(|&a, &b| desks[a].place().cmp(&desks[b].place()));

        let Some(d) = given.get(id) else {
            if let Some(&k) = line.first() {
                let behind = turns[turn + 1..]
                    .iter()
                    .find_map(|(later, _)| given.get(later).map(|d| (later, &d.agent_id)));
                let instead = match behind {
                    Some((later, agent)) => {
                        format!("; session {later}, behind it, went to {agent}")
                    }
                    None => String::new(),
                };
                out.push(
                    Invariant::QueueOrder,
                    *id,
                    Some(&desks[k].agent.id),
                    format!(
                        "left WAITING ({}, queued at {}) though {} could take it{instead}",
                        s.priority.as_str(),
                        stamp(s.queued_at),
                        desks[k].describe()
                    ),
                );
            }
            continue;
        };
        let agent = d.agent_id.as_str();
        let held = state.held(agent) + earlier.get(agent).copied().unwrap_or(0);
        check_capacity(d, held, false, out);
        *earlier.entry(&d.agent_id).or_default() += 1;
        if d.skills_relaxed != relaxed {
            out.push(
                Invariant::Record,
                *id,
                Some(agent),
                format!(
                    "decision records skills relaxed = {}, the rule gives {relaxed}",
                    d.skills_relaxed
                ),
            );
        }
        let Some(k) = desks.iter().position(|x| x.agent.id == agent) else {
            out.push(
                Invariant::Capacity,
                *id,
                Some(agent),
                format!("given to {agent}, who was not among the free agents the pass saw"),
            );
            continue;
        };
        if desks[k].free <= 0 {
            out.push(
                Invariant::Capacity,
                *id,
                Some(agent),
                format!("given to {agent}, whose free slots earlier turns had taken"),
            );
        }
        if state.declined(*id, agent) {
            out.push(
                Invariant::Declined,
                *id,
                Some(agent),
                format!("{} to {agent}, who had declined it", d.kind.as_str()),
            );
        }
        if !relaxed && !desks[k].agent.skills.covers(&s.skills) {
            out.push(
                Invariant::Skills,
                *id,
                Some(agent),
                format!(
                    "given to {agent} (skills {:?}) though it requires {:?} and had waited \
                     less than the skill wait",
                    desks[k].agent.skills.names(),
                    s.skills.names()
                ),
            );
        }
        if let Some(&best) = line.first() {
            if line.contains(&k) && best != k {
                out.push(
                    Invariant::EarliestIdle,
                    *id,
                    Some(agent),
                    format!(
                        "given to {} though {} was ahead in the line",
                        desks[k].describe(),
                        desks[best].describe()
                    ),
                );
            }
        }
        let expected: Vec<&str> = line.iter().map(|&x| desks[x].agent.id.as_str()).collect();
        if d.candidates
            .iter()
            .map(String::as_str)
            .ne(expected.iter().copied())
        {
            out.push(
                Invariant::Record,
                *id,
                Some(agent),
                format!(
                    "decision records candidates {:?}, the rule's are {expected:?}",
                    d.candidates
                ),
            );
        }
        gives += 1;
        desks[k].free -= 1;
        desks[k].given = Some(gives);
    }
}

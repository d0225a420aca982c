//! The fairness audit: replays the routing decisions and the assignment
//! history of a period and checks every routing invariant against them.
//! Pure: plain data in ([`Period`], loaded by `repo::audit`), violations
//! out ([`Report`]); `switchboard audit --from … --to …` prints it.
//!
//! # Time and order
//!
//! Every change is stamped on the database clock once its transaction
//! holds its locks, so stamps sort changes in the order they took effect.
//! The replay goes by stamp, then by row id. A session enters the queue at
//! its `queued_at` (taken under the routing lock; the QUEUED entry's own
//! `at` is the arrival as the serving process saw it). At one instant `t`,
//! the decisions stamped `t` are checked against the state just before `t`
//! (every change stamped earlier), then the history entries stamped `t`
//! are applied.
//!
//! A **pass** is one run of the matcher: its decisions (OFFERED in fair
//! routing, ASSIGNED in auto) share one stamp `t` and record the same
//! `pass_agents`, the AVAILABLE agents with a free slot it read under its
//! locks. The queue a pass served is every session the replay shows
//! WAITING just before `t`; its **turns** go through that queue in queue
//! order: priority at `t` (URGENT first), then `queued_at`, then id. At a
//! session's turn the **line** is `pass_agents` less the slots given at
//! earlier turns, ordered by `idle_since` (none first), then id, with the
//! agents given a session at an earlier turn behind everyone, in the order
//! they were given one. An agent **can take** a session at a turn when
//! they are in the line with a free slot, have not declined it before `t`,
//! and have every skill it requires, or it is **relaxed**: it requires
//! skills and `t ≥ queued_at + skill wait`.
//!
//! # The invariants
//!
//! - [`Invariant::Capacity`] — never over capacity: at every decision the
//!   agent holds (OFFERED + ACTIVE, from the history, plus what their pass
//!   gave them at earlier turns) fewer sessions than the capacity recorded
//!   with it, or, re-assigned a session offered to them, no more; and an
//!   agent in a pass's line has a free slot.
//! - [`Invariant::OneHolder`] — never two holders: a session is offered,
//!   assigned or picked only while WAITING, assigned by an admin only while
//!   WAITING or OFFERED, transferred only from its ACTIVE holder to
//!   another agent, and given at most once per pass; history entries only
//!   move a session from the state they leave.
//! - [`Invariant::QueueOrder`] — priority, then first come first served,
//!   among sessions a free agent could take: no pass leaves a session
//!   WAITING whose turn found an agent who could take it. (This forbids a
//!   later or lower-priority session being served ahead of it by an agent
//!   who could have taken it, and a free agent being left idle beside a
//!   session they could take: no head-of-line blocking, as many pairs as
//!   possible.)
//! - [`Invariant::EarliestIdle`] — the earliest-idle agent is chosen: at
//!   its turn, a session goes to the first agent in the line who can take
//!   it; and the line is honest: no agent stands in it as idle since
//!   before the last time a session was given to them or left them (both
//!   reset `idle_since`).
//! - [`Invariant::Skills`] — skills are respected until relaxed: an agent
//!   given a session by the rules has all its skills, unless relaxed.
//! - [`Invariant::Declined`] — an agent who declined a session is not
//!   offered it again.
//! - [`Invariant::Record`] — the record agrees with itself: each decision
//!   with its history entry and the session (priority, `queued_at`,
//!   skills), its held count, capacity, candidates and relaxation with
//!   what the replay computes, a pass's agents with the history's held
//!   counts; every give in the history (offer, assignment, pick from the
//!   queue, transfer) has its decision. A decision that cannot be checked
//!   (written before the pass's agents were recorded) is reported here.
//!
//! # What it cannot see
//!
//! Status changes (shifts, breaks) are not in the history, so whether an
//! AVAILABLE agent was missing from a pass's agents cannot be checked, nor
//! can passes that decided nothing; passes are judged by the agents they
//! recorded, checked against everything the history does establish. The
//! skill wait is the audit's setting: run it with the server's.

mod invariants;
mod replay;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::domain::{HistoryKind, Priority, RoutingDecision, Skills};
use replay::State;

/// What never changes about a session, and its priority now (used when
/// its QUEUED entry predates recorded priorities).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionFacts {
    pub id: Uuid,
    pub queued_at: DateTime<Utc>,
    pub priority: Priority,
    pub required_skills: Skills,
}

/// One row of the assignment history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub session_id: Uuid,
    pub kind: HistoryKind,
    pub agent_id: Option<String>,
    /// On QUEUED and REPRIORITIZED: the priority from then on.
    pub priority: Option<Priority>,
    pub at: DateTime<Utc>,
}

/// Everything the audit of [`from`, `to`) reads.
#[derive(Clone, Debug)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub skill_wait: Duration,
    /// Every session open at some moment of the period.
    pub sessions: Vec<SessionFacts>,
    /// Their whole history before `to`: what came before `from` rebuilds
    /// the state as it stood then.
    pub events: Vec<Event>,
    /// The decisions taken in the period, with their row ids.
    pub decisions: Vec<(i64, RoutingDecision)>,
    /// Per agent, the last time before `from` a session was given to them
    /// or left them (offers, assignments, transfers, ends): their
    /// `idle_since` can be no earlier.
    pub idle_floors: HashMap<String, DateTime<Utc>>,
}

/// The invariants; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    Capacity,
    OneHolder,
    QueueOrder,
    EarliestIdle,
    Skills,
    Declined,
    Record,
}

impl Invariant {
    pub fn as_str(self) -> &'static str {
        match self {
            Invariant::Capacity => "capacity",
            Invariant::OneHolder => "one holder",
            Invariant::QueueOrder => "queue order",
            Invariant::EarliestIdle => "earliest idle",
            Invariant::Skills => "skills",
            Invariant::Declined => "declined",
            Invariant::Record => "record",
        }
    }
}

/// One broken invariant, where and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub at: DateTime<Utc>,
    pub invariant: Invariant,
    pub session: Option<Uuid>,
    pub agent: Option<String>,
    pub detail: String,
}

/// A time as the report writes it: RFC 3339, to the microsecond.
pub(crate) fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", stamp(self.at), self.invariant.as_str())?;
        if let Some(s) = self.session {
            write!(f, " session {s}")?;
        }
        if let Some(a) = &self.agent {
            write!(f, " agent {a}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// The state as it stood at `from`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateAtFrom {
    pub waiting: usize,
    pub held: usize,
    pub agents_holding: usize,
}

/// What the audit found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub checked: usize,
    pub at_from: StateAtFrom,
    pub violations: Vec<Violation>,
}

impl Report {
    /// The report as `switchboard audit` prints it: the state at `from`,
    /// each violation, then the count.
    pub fn lines(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
        let s = self.at_from;
        let mut lines = vec![format!(
            "audit of [{}, {}): at the start {} sessions waiting, {} held by {} agents",
            stamp(from),
            stamp(to),
            s.waiting,
            s.held,
            s.agents_holding
        )];
        lines.extend(self.violations.iter().map(Violation::to_string));
        lines.push(format!(
            "checked {} decisions, {} violations",
            self.checked,
            self.violations.len()
        ));
        lines
    }
}

/// Replays the period and checks every decision in it.
pub fn check(period: &Period) -> Report {
    let mut state = State::new(&period.sessions, &period.idle_floors);
    let mut report = Report::default();

    // Entries in the order they took effect; QUEUED at `queued_at`.
    let mut events: Vec<(DateTime<Utc>, &Event)> = period
        .events
        .iter()
        .map(|e| (state.effective_at(e), e))
        .filter(|(at, _)| *at < period.to)
        .collect();
    events.sort_by_key(|(at, e)| (*at, e.id));
    let mut decisions: Vec<&(i64, RoutingDecision)> = period
        .decisions
        .iter()
        .filter(|(_, d)| d.at >= period.from && d.at < period.to)
        .collect();
    decisions.sort_by_key(|(id, d)| (d.at, *id));
    report.checked = decisions.len();

    let mut times: Vec<DateTime<Utc>> = events
        .iter()
        .map(|(at, _)| *at)
        .chain(decisions.iter().map(|(_, d)| d.at))
        .collect();
    times.sort_unstable();
    times.dedup();

    let (mut e, mut d) = (0, 0);
    let mut summarised = false;
    for t in times {
        if t >= period.from && !summarised {
            report.at_from = state.summary();
            summarised = true;
        }
        let start = d;
        while d < decisions.len() && decisions[d].1.at == t {
            d += 1;
        }
        let here = &decisions[start..d];
        let first = e;
        while e < events.len() && events[e].0 == t {
            e += 1;
        }
        let happened: Vec<&Event> = events[first..e].iter().map(|(_, ev)| *ev).collect();
        let audited = t >= period.from;
        if audited {
            let out = &mut report.violations;
            invariants::check_instant(&state, t, here, &happened, period.skill_wait, out);
        }
        // Then what happened at t, each give matched with its decision.
        for event in happened {
            match state.apply(event, t) {
                Ok(Some(give)) if audited => {
                    if !here
                        .iter()
                        .any(|(_, d)| d.session_id == event.session_id && d.agent_id == give.agent)
                    {
                        report.violations.push(Violation {
                            at: t,
                            invariant: Invariant::Record,
                            session: Some(event.session_id),
                            agent: Some(give.agent),
                            detail: format!(
                                "{} in the history without a routing decision",
                                event.kind.as_str()
                            ),
                        });
                    }
                }
                Ok(_) => {}
                Err(fault) if audited => report.violations.push(Violation {
                    at: t,
                    invariant: fault.invariant,
                    session: Some(event.session_id),
                    agent: event.agent_id.clone(),
                    detail: fault.detail,
                }),
                Err(_) => {}
            }
        }
    }
    if !summarised {
        report.at_from = state.summary();
    }
    report
}

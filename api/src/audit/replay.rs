//! The state the history builds: where each session is, what each agent
//! holds, who declined what, and how early each agent's idle time can be.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Event, Invariant, SessionFacts, StateAtFrom};
use crate::domain::{HistoryKind, Priority, Skills};

/// Where a session is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// Not in the queue yet.
    Unqueued,
    Waiting,
    Offered(String),
    Active(String),
    Ended,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Unqueued => f.write_str("not queued yet"),
            Place::Waiting => f.write_str("WAITING"),
            Place::Offered(a) => write!(f, "OFFERED to {a}"),
            Place::Active(a) => write!(f, "ACTIVE with {a}"),
            Place::Ended => f.write_str("ENDED"),
        }
    }
}

/// A session as the replay knows it.
#[derive(Clone, Debug)]
pub(super) struct Tracked {
    pub queued_at: DateTime<Utc>,
    pub priority: Priority,
    pub skills: Skills,
    pub place: Place,
}

/// A history entry that does not fit the state it meets.
#[derive(Debug)]
pub(super) struct Fault {
    pub invariant: Invariant,
    pub detail: String,
}

/// A session given to an agent: its routing decision must exist.
#[derive(Debug)]
pub(super) struct Give {
    pub agent: String,
}

#[derive(Default)]
pub(super) struct State {
    pub sessions: HashMap<Uuid, Tracked>,
    held: HashMap<String, i32>,
    floors: HashMap<String, DateTime<Utc>>,
    declined: HashSet<(Uuid, String)>,
}

impl State {
    pub fn new(sessions: &[SessionFacts], floors: &HashMap<String, DateTime<Utc>>) -> State {
        State {
            sessions: sessions
                .iter()
                .map(|s| {
                    (
                        s.id,
                        Tracked {
                            queued_at: s.queued_at,
                            priority: s.priority,
                            skills: s.required_skills.clone(),
                            place: Place::Unqueued,
                        },
                    )
                })
                .collect(),
            floors: floors.clone(),
            ..State::default()
        }
    }

    /// When an entry took effect: a session enters the queue at its
    /// `queued_at`, stamped under the routing lock.
    pub fn effective_at(&self, e: &Event) -> DateTime<Utc> {
        match (e.kind, self.sessions.get(&e.session_id)) {
            (HistoryKind::Queued, Some(s)) => s.queued_at,
            _ => e.at,
        }
    }

    /// OFFERED + ACTIVE sessions the agent holds.
    pub fn held(&self, agent: &str) -> i32 {
        self.held.get(agent).copied().unwrap_or(0)
    }

    /// The last time a session was given to the agent or left them.
    pub fn idle_floor(&self, agent: &str) -> Option<DateTime<Utc>> {
        self.floors.get(agent).copied()
    }

    pub fn declined(&self, session: Uuid, agent: &str) -> bool {
        self.declined.contains(&(session, agent.to_owned()))
    }

    pub fn summary(&self) -> StateAtFrom {
        let waiting = self
            .sessions
            .values()
            .filter(|s| s.place == Place::Waiting)
            .count();
        let held: i32 = self.held.values().sum();
        StateAtFrom {
            waiting,
            held: usize::try_from(held).unwrap_or(0),
            agents_holding: self.held.values().filter(|n| **n > 0).count(),
        }
    }

    fn take(&mut self, agent: &str, at: DateTime<Utc>) {
        *self.held.entry(agent.to_owned()).or_default() += 1;
        self.floor(agent, at);
    }

    fn release(&mut self, agent: &str, at: DateTime<Utc>, resets_idle: bool) -> Result<(), Fault> {
        let n = self.held.entry(agent.to_owned()).or_default();
        *n -= 1;
        if *n < 0 {
            return Err(Fault {
                invariant: Invariant::Record,
                detail: format!("{agent} would hold fewer than no sessions"),
            });
        }
        if resets_idle {
            self.floor(agent, at);
        }
        Ok(())
    }

    fn floor(&mut self, agent: &str, at: DateTime<Utc>) {
        let f = self.floors.entry(agent.to_owned()).or_insert(at);
        *f = (*f).max(at);
    }

    /// Applies one history entry stamped `at`. A give (offer, assignment,
    /// pick from the queue, transfer) is returned, to be matched with its
    /// decision; an entry that does not fit is a fault, and changes nothing.
    pub fn apply(&mut self, e: &Event, at: DateTime<Utc>) -> Result<Option<Give>, Fault> {
        use HistoryKind::*;
        let Some(s) = self.sessions.get(&e.session_id) else {
            return Err(Fault {
                invariant: Invariant::Record,
                detail: format!("{} for a session the period does not know", e.kind.as_str()),
            });
        };
        let place = s.place.clone();
        let agent = e.agent_id.clone();
        let misfit = |invariant| {
            Err(Fault {
                invariant,
                detail: format!(
                    "history entry {}{} while {place}",
                    e.kind.as_str(),
                    agent
                        .as_deref()
                        .map(|a| format!(" {a}"))
                        .unwrap_or_default()
                ),
            })
        };
        let named = |kind: HistoryKind| {
            agent.clone().ok_or_else(|| Fault {
                invariant: Invariant::Record,
                detail: format!("{} names no agent", kind.as_str()),
            })
        };
        let (next, give) = match e.kind {
            Queued => {
                if place != Place::Unqueued {
                    return misfit(Invariant::Record);
                }
                if let Some(p) = e.priority {
                    self.set_priority(e.session_id, p);
                }
                (Place::Waiting, None)
            }
            Reprioritized => {
                if let Some(p) = e.priority {
                    self.set_priority(e.session_id, p);
                }
                return Ok(None);
            }
            Offered => {
                let a = named(Offered)?;
                if place != Place::Waiting {
                    return misfit(Invariant::OneHolder);
                }
                self.take(&a, at);
                (Place::Offered(a.clone()), Some(Give { agent: a }))
            }
            Accepted => {
                let a = named(Accepted)?;
                match &place {
                    // Taking an offer: decided when it was made.
                    Place::Offered(o) if *o == a => (Place::Active(a), None),
                    // Picked from the queue (manual routing).
                    Place::Waiting => {
                        self.take(&a, at);
                        (Place::Active(a.clone()), Some(Give { agent: a }))
                    }
                    _ => return misfit(Invariant::OneHolder),
                }
            }
            Assigned => {
                let a = named(Assigned)?;
                match &place {
                    Place::Waiting => self.take(&a, at),
                    Place::Offered(o) if *o == a => self.floor(&a, at),
                    Place::Offered(o) => {
                        let o = o.clone();
                        self.release(&o, at, false)?;
                        self.take(&a, at);
                    }
                    _ => return misfit(Invariant::OneHolder),
                }
                (Place::Active(a.clone()), Some(Give { agent: a }))
            }
            Transferred => {
                let a = named(Transferred)?;
                match &place {
                    Place::Active(from) if *from != a => {
                        let from = from.clone();
                        self.release(&from, at, true)?;
                        self.take(&a, at);
                    }
                    _ => return misfit(Invariant::OneHolder),
                }
                (Place::Active(a.clone()), Some(Give { agent: a }))
            }
            Declined | Lapsed | Withdrawn => {
                let a = named(e.kind)?;
                if place != Place::Offered(a.clone()) {
                    return misfit(Invariant::Record);
                }
                self.release(&a, at, false)?;
                if e.kind == Declined {
                    self.declined.insert((e.session_id, a));
                }
                (Place::Waiting, None)
            }
            Requeued => {
                let a = named(Requeued)?;
                if place != Place::Active(a.clone()) {
                    return misfit(Invariant::Record);
                }
                self.release(&a, at, true)?;
                (Place::Waiting, None)
            }
            Ended => {
                match &place {
                    Place::Waiting => {}
                    Place::Offered(h) | Place::Active(h) => {
                        let h = h.clone();
                        self.release(&h, at, true)?;
                    }
                    _ => return misfit(Invariant::Record),
                }
                (Place::Ended, None)
            }
        };
        if let Some(s) = self.sessions.get_mut(&e.session_id) {
            s.place = next;
        }
        Ok(give)
    }

    fn set_priority(&mut self, session: Uuid, priority: Priority) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.priority = priority;
        }
    }
}

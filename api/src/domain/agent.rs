use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{named_enum, Refusal, Skills};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AgentStatus {
    Offline,
    Available,
    BreakRequested,
    OnBreak,
    ShiftEnding,
}
named_enum!(AgentStatus, "agent status", {
    Offline => "OFFLINE", Available => "AVAILABLE", BreakRequested => "BREAK_REQUESTED",
    OnBreak => "ON_BREAK", ShiftEnding => "SHIFT_ENDING",
});

/// A transition an agent cannot make from where they are.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} while {from:?}")]
pub struct InvalidTransition {
    pub action: &'static str,
    pub from: AgentStatus,
}

impl AgentStatus {
    /// Whether new sessions may be given to the agent.
    pub fn takes_new_sessions(self) -> bool {
        self == AgentStatus::Available
    }

    pub fn start_shift(self) -> Result<AgentStatus, InvalidTransition> {
        match self {
            AgentStatus::Offline | AgentStatus::OnBreak => Ok(AgentStatus::Available),
            // Starting a shift again while on it changes nothing; a client retry must not fail.
            AgentStatus::Available => Ok(AgentStatus::Available),
            from => Err(InvalidTransition {
                action: "start a shift",
                from,
            }),
        }
    }

    pub fn request_break(self, holding: u32) -> Result<AgentStatus, InvalidTransition> {
        match self {
            AgentStatus::Available | AgentStatus::BreakRequested if holding > 0 => {
                Ok(AgentStatus::BreakRequested)
            }
            AgentStatus::Available | AgentStatus::BreakRequested | AgentStatus::OnBreak => {
                Ok(AgentStatus::OnBreak)
            }
            from => Err(InvalidTransition {
                action: "take a break",
                from,
            }),
        }
    }

    pub fn end_break(self) -> Result<AgentStatus, InvalidTransition> {
        match self {
            AgentStatus::BreakRequested | AgentStatus::OnBreak | AgentStatus::Available => {
                Ok(AgentStatus::Available)
            }
            from => Err(InvalidTransition {
                action: "end a break",
                from,
            }),
        }
    }

    pub fn end_shift(self, holding: u32) -> Result<AgentStatus, InvalidTransition> {
        match self {
            AgentStatus::Offline => Ok(AgentStatus::Offline),
            _ if holding > 0 => Ok(AgentStatus::ShiftEnding),
            _ => Ok(AgentStatus::Offline),
        }
    }

    /// Where a draining agent goes once they hold nothing any more.
    pub fn after_last_session(self) -> AgentStatus {
        match self {
            AgentStatus::BreakRequested => AgentStatus::OnBreak,
            AgentStatus::ShiftEnding => AgentStatus::Offline,
            other => other,
        }
    }
}

/// Most sessions one agent may hold at once, whoever sets it: the
/// AGENT_CAPACITY default and an admin's setAgentCapacity alike.
pub const MAX_CAPACITY: i32 = 100;

/// A capacity an agent may be given, or why not.
pub fn validate_capacity(capacity: i32) -> Result<i32, String> {
    if (1..=MAX_CAPACITY).contains(&capacity) {
        Ok(capacity)
    } else {
        Err(format!("capacity must be 1 to {MAX_CAPACITY}"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub status: AgentStatus,
    pub capacity: i32,
    /// OFFERED + ACTIVE sessions held now.
    pub active_session_count: i32,
    pub idle_since: Option<DateTime<Utc>>,
    /// Topics the agent handles; sessions that require skills go only to
    /// agents having all of them (until the requirement is relaxed).
    pub skills: Skills,
}

impl Agent {
    /// Sessions the agent could still be given.
    pub fn free_slots(&self) -> i32 {
        (self.capacity - self.active_session_count).max(0)
    }

    /// Whether the agent may be given one more session now: AVAILABLE and
    /// below capacity. `who` starts the refusal ("you are", or their id).
    pub fn ensure_room(&self, who: &str) -> Result<(), Refusal> {
        if !self.status.takes_new_sessions() {
            return Err(Refusal::Conflict(format!(
                "{who} {}; only AVAILABLE agents take sessions",
                self.status.as_str()
            )));
        }
        self.ensure_below_capacity(who)
    }

    /// Whether the agent holds fewer sessions than their capacity, whatever
    /// their status (an admin may assign by hand to an agent on a break).
    pub fn ensure_below_capacity(&self, who: &str) -> Result<(), Refusal> {
        if self.free_slots() == 0 {
            return Err(Refusal::Conflict(format!(
                "{who} holding {} of {} sessions",
                self.active_session_count, self.capacity
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::AgentStatus::*;

    #[test]
    fn shift_and_break_transitions() {
        assert_eq!(Offline.start_shift(), Ok(Available));
        assert_eq!(OnBreak.start_shift(), Ok(Available));
        assert!(ShiftEnding.start_shift().is_err());
        assert_eq!(Available.request_break(0), Ok(OnBreak));
        assert_eq!(Available.request_break(2), Ok(BreakRequested));
        assert!(Offline.request_break(0).is_err());
        assert_eq!(BreakRequested.end_break(), Ok(Available));
        assert!(Offline.end_break().is_err());
        assert_eq!(Available.end_shift(1), Ok(ShiftEnding));
        assert_eq!(OnBreak.end_shift(0), Ok(Offline));
    }

    #[test]
    fn draining_agents_move_on_after_their_last_session() {
        assert_eq!(BreakRequested.after_last_session(), OnBreak);
        assert_eq!(ShiftEnding.after_last_session(), Offline);
        assert_eq!(Available.after_last_session(), Available);
    }

    #[test]
    fn capacities_are_bounded() {
        assert_eq!(super::validate_capacity(1), Ok(1));
        assert_eq!(
            super::validate_capacity(super::MAX_CAPACITY),
            Ok(super::MAX_CAPACITY)
        );
        assert!(super::validate_capacity(0).is_err());
        assert!(super::validate_capacity(super::MAX_CAPACITY + 1).is_err());
    }

    #[test]
    fn room_means_available_and_below_capacity() {
        let agent = |status, held| super::Agent {
            id: "a".into(),
            name: "A".into(),
            status,
            capacity: 2,
            active_session_count: held,
            idle_since: None,
            skills: super::Skills::default(),
        };
        assert!(agent(Available, 1).ensure_room("a is").is_ok());
        assert!(agent(Available, 2).ensure_room("a is").is_err());
        assert!(agent(OnBreak, 0).ensure_room("a is").is_err());
        assert!(agent(OnBreak, 1).ensure_below_capacity("a is").is_ok());
        assert!(agent(OnBreak, 2).ensure_below_capacity("a is").is_err());
        assert_eq!(agent(Available, 3).free_slots(), 0);
        assert_eq!(agent(Available, 0).free_slots(), 2);
    }

    #[test]
    fn only_available_agents_take_new_sessions() {
        for s in [Offline, BreakRequested, OnBreak, ShiftEnding] {
            assert!(!s.takes_new_sessions());
        }
        assert!(Available.takes_new_sessions());
    }
}

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{named_enum, Refusal, Skills};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AgentStatus {
    Offline,
    Available,
    BreakRequested,
    OnBreak,
    ShiftEnding,
    /// Was AVAILABLE and lost every connection for AGENT_AWAY_SECS: takes
    /// nothing new, keeps what they hold, and is AVAILABLE again when they
    /// reconnect. Only the system puts an agent here and takes them back.
    Away,
}
named_enum!(AgentStatus, "agent status", {
    Offline => "OFFLINE", Available => "AVAILABLE", BreakRequested => "BREAK_REQUESTED",
    OnBreak => "ON_BREAK", ShiftEnding => "SHIFT_ENDING", Away => "AWAY",
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
            // An AWAY agent who asks is evidently back (if still without a
            // connection, the presence sweep says AWAY again).
            AgentStatus::Offline | AgentStatus::OnBreak | AgentStatus::Away => {
                Ok(AgentStatus::Available)
            }
            // Starting a shift again while on it changes nothing; a client retry must not fail.
            AgentStatus::Available => Ok(AgentStatus::Available),
            from => Err(InvalidTransition {
                action: "start a shift",
                from,
            }),
        }
    }

    pub fn request_break(self, holding: u32) -> Result<AgentStatus, InvalidTransition> {
        use AgentStatus::*;
        match self {
            Available | Away | BreakRequested if holding > 0 => Ok(BreakRequested),
            Available | Away | BreakRequested | OnBreak => Ok(OnBreak),
            from => Err(InvalidTransition {
                action: "take a break",
                from,
            }),
        }
    }

    pub fn end_break(self) -> Result<AgentStatus, InvalidTransition> {
        use AgentStatus::*;
        match self {
            BreakRequested | OnBreak | Available | Away => Ok(Available),
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

    /// Where the system moves an agent who has been without a connection
    /// for AGENT_AWAY_SECS: out of AVAILABLE, so nothing new reaches them.
    /// Every other status was chosen by the agent and stays.
    pub fn when_gone(self) -> AgentStatus {
        match self {
            AgentStatus::Available => AgentStatus::Away,
            other => other,
        }
    }

    /// Where an agent goes when they have a connection again: only what
    /// the system did is undone (AWAY to AVAILABLE); a break or a shift's
    /// end chosen by the agent stays.
    pub fn when_back(self) -> AgentStatus {
        match self {
            AgentStatus::Away => AgentStatus::Available,
            other => other,
        }
    }
}

/// One process's live connections of an agent, as stored: how many, and
/// when that process last said they were still open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionRow {
    pub connections: i32,
    pub refreshed_at: DateTime<Utc>,
}

/// Whether an agent is connected anywhere, and when they last were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentPresence {
    /// At least one live connection on some process.
    pub online: bool,
    /// While online, the latest time a process vouched for a connection;
    /// after, when the last one closed (or its process last vouched for it,
    /// when the process died). None for an agent never connected.
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl AgentPresence {
    /// Reads presence from every process's row for the agent and the
    /// stored time their last connection closed. A row not refreshed since
    /// `live_since` belongs to a process presumed gone (crashed, hung, cut
    /// off from the database): its connections no longer count, and its
    /// last refresh is the last sign of the agent.
    pub fn from_rows(
        rows: &[ConnectionRow],
        closed_at: Option<DateTime<Utc>>,
        live_since: DateTime<Utc>,
    ) -> AgentPresence {
        let online = rows
            .iter()
            .any(|r| r.connections > 0 && r.refreshed_at >= live_since);
        let last_refresh = rows.iter().map(|r| r.refreshed_at).max();
        AgentPresence {
            online,
            last_seen_at: last_refresh.max(closed_at),
        }
    }

    /// Since when the agent has had no connection, or None while online.
    /// An agent never connected has had none since they were first known.
    pub fn offline_since(&self, first_known: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (!self.online).then(|| self.last_seen_at.unwrap_or(first_known))
    }
}

/// What happens to an agent without a connection: AGENT_AWAY_SECS and
/// AGENT_ABANDON_SECS, and the heartbeat that tells the living from the gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbsenceRule {
    /// Offline this long, an AVAILABLE agent becomes AWAY.
    pub away_after: Duration,
    /// Offline this long, the agent's ACTIVE sessions return to the queue.
    pub abandon_after: Duration,
}

/// What the rule says about one agent now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The status the agent should have.
    pub status: AgentStatus,
    /// Whether the sessions they hold go back to the queue.
    pub release_sessions: bool,
}

/// Shortest and longest heartbeat: often enough for short test settings,
/// seldom enough that the heartbeat stays a trickle of writes.
const MIN_HEARTBEAT: std::time::Duration = std::time::Duration::from_millis(250);
const MAX_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);
/// Heartbeats a process may miss before its connections stop counting.
const MISSED_HEARTBEATS: u32 = 3;

impl AbsenceRule {
    /// How often each process vouches for its connections and looks for
    /// absent agents: a quarter of AGENT_AWAY_SECS, from 250 ms to 15 s.
    pub fn heartbeat(&self) -> std::time::Duration {
        (self.away_after / 4)
            .to_std()
            .unwrap_or_default()
            .clamp(MIN_HEARTBEAT, MAX_HEARTBEAT)
    }

    /// How long a process's rows count without a refresh: three heartbeats,
    /// at most three quarters of AGENT_AWAY_SECS, so that a crashed
    /// process's agents turn AWAY when a disconnected one's would. The two
    /// heartbeats of slack also absorb clock skew between processes.
    pub fn stale_after(&self) -> Duration {
        Duration::from_std(self.heartbeat() * MISSED_HEARTBEATS).unwrap_or(Duration::MAX)
    }

    /// What an agent in `status`, offline since `offline_since` (None while
    /// online), should become at `now`.
    pub fn judge(
        &self,
        status: AgentStatus,
        offline_since: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Verdict {
        let Some(since) = offline_since else {
            return Verdict {
                status: status.when_back(),
                release_sessions: false,
            };
        };
        let gone_for = now - since;
        Verdict {
            status: if gone_for >= self.away_after {
                status.when_gone()
            } else {
                status
            },
            release_sessions: gone_for >= self.abandon_after,
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

    /// Sessions routing could give the agent now: their free slots while
    /// AVAILABLE, none otherwise (what workload shows; the matcher only
    /// takes AVAILABLE agents and counts their [`Agent::free_slots`]).
    pub fn open_slots(&self) -> i32 {
        if self.status.takes_new_sessions() {
            self.free_slots()
        } else {
            0
        }
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
        assert_eq!(agent(Available, 1).open_slots(), 1);
        assert_eq!(agent(Available, 3).open_slots(), 0);
        assert_eq!(agent(OnBreak, 0).open_slots(), 0);
        assert_eq!(agent(Offline, 0).open_slots(), 0);
    }

    #[test]
    fn only_available_agents_take_new_sessions() {
        for s in [Offline, BreakRequested, OnBreak, ShiftEnding, Away] {
            assert!(!s.takes_new_sessions());
        }
        assert!(Available.takes_new_sessions());
    }

    #[test]
    fn an_away_agent_acts_like_an_available_one_when_they_choose() {
        assert_eq!(Away.start_shift(), Ok(Available));
        assert_eq!(Away.end_break(), Ok(Available));
        assert_eq!(Away.request_break(0), Ok(OnBreak));
        assert_eq!(Away.request_break(1), Ok(BreakRequested));
        assert_eq!(Away.end_shift(0), Ok(Offline));
        assert_eq!(Away.end_shift(1), Ok(ShiftEnding));
        assert_eq!(Away.after_last_session(), Away, "stays away when freed");
    }

    fn at(secs: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    const RULE: super::AbsenceRule = super::AbsenceRule {
        away_after: chrono::Duration::seconds(60),
        abandon_after: chrono::Duration::seconds(300),
    };

    /// Every status, online and offline for each span that matters: only
    /// AVAILABLE turns AWAY, only AWAY comes back by itself, and sessions
    /// are released after the abandon span whatever the status.
    #[test]
    fn what_absence_does_to_every_status() {
        let all = [
            Offline,
            Available,
            BreakRequested,
            OnBreak,
            ShiftEnding,
            Away,
        ];
        // (offline for, in seconds; None = online) -> released?
        let spans = [
            (None, false),
            (Some(0), false),
            (Some(59), false),
            (Some(60), false),
            (Some(299), false),
            (Some(300), true),
        ];
        for status in all {
            for (offline_for, released) in spans {
                let now = at(1000);
                let since = offline_for.map(|s| at(1000 - s));
                let verdict = RULE.judge(status, since, now);
                let expected = match (status, offline_for) {
                    (Away, None) => Available,
                    (Available, Some(s)) if s >= 60 => Away,
                    (other, _) => other,
                };
                assert_eq!(
                    verdict.status, expected,
                    "{status:?} offline for {offline_for:?}"
                );
                assert_eq!(
                    verdict.release_sessions, released,
                    "{status:?} offline for {offline_for:?}"
                );
            }
        }
    }

    #[test]
    fn presence_from_the_rows_of_every_process() {
        use super::{AgentPresence, ConnectionRow};
        let row = |connections, secs| ConnectionRow {
            connections,
            refreshed_at: at(secs),
        };
        let live_since = at(100);
        let read =
            |rows: &[ConnectionRow], closed| AgentPresence::from_rows(rows, closed, live_since);
        // Never connected: offline since first known.
        let never = read(&[], None);
        assert_eq!(
            never,
            AgentPresence {
                online: false,
                last_seen_at: None
            }
        );
        assert_eq!(never.offline_since(at(5)), Some(at(5)));
        // Connected on a live process: online, seen at its last refresh.
        let live = read(&[row(1, 120), row(2, 90)], Some(at(50)));
        assert_eq!(
            live,
            AgentPresence {
                online: true,
                last_seen_at: Some(at(120))
            }
        );
        assert_eq!(live.offline_since(at(5)), None);
        // Only on a process that stopped refreshing: offline since its last refresh.
        let stale = read(&[row(1, 99)], Some(at(50)));
        assert_eq!(
            stale,
            AgentPresence {
                online: false,
                last_seen_at: Some(at(99))
            }
        );
        assert_eq!(stale.offline_since(at(5)), Some(at(99)));
        // Disconnected: offline since the last connection closed.
        let closed = read(&[], Some(at(150)));
        assert_eq!(closed.offline_since(at(5)), Some(at(150)));
    }

    #[test]
    fn the_heartbeat_lets_a_dead_process_be_noticed_before_its_agents_would_turn_away() {
        use std::time::Duration;
        for away in [1, 4, 60, 3600, 86_400] {
            let rule = super::AbsenceRule {
                away_after: chrono::Duration::seconds(away),
                abandon_after: chrono::Duration::seconds(away),
            };
            let beat = rule.heartbeat();
            assert!(beat >= Duration::from_millis(250) && beat <= Duration::from_secs(15));
            assert!(rule.stale_after() <= rule.away_after, "away {away}");
            assert!(rule.stale_after() >= chrono::Duration::from_std(beat * 2).unwrap());
        }
        assert_eq!(RULE.heartbeat(), Duration::from_secs(15));
        assert_eq!(RULE.stale_after(), chrono::Duration::seconds(45));
    }
}

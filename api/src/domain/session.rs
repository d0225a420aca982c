use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{named_enum, Agent, Priority, Refusal, RoutingMode, Skills};
use crate::auth::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessionStatus {
    Waiting,
    Offered,
    Active,
    Ended,
}
named_enum!(SessionStatus, "session status", {
    Waiting => "WAITING", Offered => "OFFERED", Active => "ACTIVE", Ended => "ENDED",
});

impl SessionStatus {
    pub fn is_open(self) -> bool {
        self != SessionStatus::Ended
    }
    /// In the queue, i.e. not yet accepted by an agent.
    pub fn is_queued(self) -> bool {
        matches!(self, SessionStatus::Waiting | SessionStatus::Offered)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    Resolved,
    Cancelled,
    Abandoned,
}
named_enum!(EndReason, "end reason", {
    Resolved => "RESOLVED", Cancelled => "CANCELLED", Abandoned => "ABANDONED",
});

impl EndReason {
    /// Why a session ends when `by` ends it on purpose while it is `status`:
    /// a customer leaving before any agent accepted cancels; anything else
    /// ended on purpose is resolved.
    pub fn on_purpose(by: Role, status: SessionStatus) -> EndReason {
        match (by, status.is_queued()) {
            (Role::Customer, true) => EndReason::Cancelled,
            _ => EndReason::Resolved,
        }
    }
}

/// The two sides of a chat; used for receipts and typing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
pub enum Party {
    Customer,
    Agent,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSession {
    pub id: Uuid,
    pub customer_id: String,
    pub subject: Option<String>,
    pub status: SessionStatus,
    pub agent_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub offer_expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<Role>,
    pub end_reason: Option<EndReason>,
    pub last_seq: i32,
    pub customer_delivered_seq: i32,
    pub customer_read_seq: i32,
    pub agent_delivered_seq: i32,
    pub agent_read_seq: i32,
    /// When the customer was last connected or active.
    pub customer_seen_at: Option<DateTime<Utc>>,
    pub priority: Priority,
    /// Skills an agent needs to be given it (until they are relaxed).
    pub required_skills: Skills,
}

impl ChatSession {
    /// Which side of this session the caller is on, if any.
    pub fn party_of(&self, role: Role, id: &str) -> Option<Party> {
        match role {
            Role::Customer if self.customer_id == id => Some(Party::Customer),
            Role::Agent if self.agent_id.as_deref() == Some(id) => Some(Party::Agent),
            _ => None,
        }
    }

    /// Which side's read cursor the caller moves, if any: the customer, or
    /// the agent once they accepted. An agent only offered the session has
    /// not joined it, and may pass it on.
    pub fn reader_of(&self, role: Role, id: &str) -> Option<Party> {
        match self.party_of(role, id) {
            Some(Party::Agent) if self.status == SessionStatus::Offered => None,
            party => party,
        }
    }

    /// (delivered, read) cursors of one side.
    pub fn cursors(&self, party: Party) -> (i32, i32) {
        match party {
            Party::Customer => (self.customer_delivered_seq, self.customer_read_seq),
            Party::Agent => (self.agent_delivered_seq, self.agent_read_seq),
        }
    }
}

/// How an allowed accept goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acceptance {
    /// A retried accept of what the agent already holds: nothing changes.
    AlreadyHeld,
    /// The agent takes the offer made to them ([`ChatSession::take_offer`]
    /// says whether it still stands).
    TakeOffer,
    /// Manual routing: the agent picks a waiting session from the queue.
    PickFromQueue,
}

/// The session's transitions: each answers the change it makes, or why it
/// cannot be made from the state the session is in. The services lock the
/// rows, ask here, and write what the answer says.
impl ChatSession {
    /// `agent` accepts: an offer made to them (fair routing), or any
    /// WAITING session (manual routing) while they have room for it.
    pub fn accept_by(&self, agent: &Agent, mode: RoutingMode) -> Result<Acceptance, Refusal> {
        let mine = self.agent_id.as_deref() == Some(agent.id.as_str());
        match (self.status, mode) {
            (SessionStatus::Active, _) if mine => Ok(Acceptance::AlreadyHeld),
            (SessionStatus::Offered, _) if mine => Ok(Acceptance::TakeOffer),
            (SessionStatus::Waiting, RoutingMode::Manual) => {
                agent.ensure_room("you are")?;
                Ok(Acceptance::PickFromQueue)
            }
            (SessionStatus::Waiting, mode) => Err(Refusal::Conflict(format!(
                "routing is {mode}: sessions reach agents by the queue, not by picking"
            ))),
            (SessionStatus::Offered, _) => Err(Refusal::Conflict(
                "session is offered to another agent".into(),
            )),
            (SessionStatus::Active, _) => Err(Refusal::Conflict(
                "session was already taken by another agent".into(),
            )),
            (SessionStatus::Ended, _) => Err(Refusal::Conflict("session has ended".into())),
        }
    }

    /// Whether an offer can still be taken at `now` (the clock that set
    /// its deadline).
    pub fn take_offer(&self, now: DateTime<Utc>) -> Result<(), Refusal> {
        match self.offer_expires_at {
            Some(at) if at <= now => Err(Refusal::Conflict("the offer has lapsed".into())),
            _ => Ok(()),
        }
    }

    /// Whether the session is offered to `agent_id` now.
    pub fn is_offered_to(&self, agent_id: &str) -> bool {
        self.status == SessionStatus::Offered && self.agent_id.as_deref() == Some(agent_id)
    }

    /// `agent_id` refuses the offer made to them: back to the queue.
    pub fn decline_by(&self, agent_id: &str) -> Result<(), Refusal> {
        if self.is_offered_to(agent_id) {
            Ok(())
        } else {
            Err(Refusal::Conflict(
                "this session is not offered to you".into(),
            ))
        }
    }

    /// Whether the offer to `agent_id` is still open and past its deadline
    /// at `now`, so that it lapses.
    pub fn offer_lapses(&self, agent_id: &str, now: DateTime<Utc>) -> bool {
        self.is_offered_to(agent_id) && self.offer_expires_at.is_some_and(|at| at <= now)
    }

    /// Handing an ACTIVE session on to `to` (or to the queue, `None`):
    /// answers the agent it leaves.
    pub fn transfer_to(&self, to: Option<&str>) -> Result<&str, Refusal> {
        if self.status != SessionStatus::Active {
            return Err(Refusal::Conflict(
                "only an ACTIVE session can be transferred".into(),
            ));
        }
        let Some(from) = self.agent_id.as_deref() else {
            return Err(Refusal::Conflict("the session has no agent".into()));
        };
        if to == Some(from) {
            return Err(Refusal::Conflict(
                "the session is already with that agent".into(),
            ));
        }
        Ok(from)
    }

    /// An admin gives the session to an agent by hand: only while it is
    /// still in the queue.
    pub fn assignable(&self) -> Result<(), Refusal> {
        if self.status.is_queued() {
            Ok(())
        } else {
            Err(Refusal::Conflict(
                "only a WAITING or OFFERED session can be assigned".into(),
            ))
        }
    }

    /// Its priority may change only while it is in the queue.
    pub fn reprioritizable(&self) -> Result<(), Refusal> {
        if self.status.is_queued() {
            Ok(())
        } else {
            Err(Refusal::Conflict(
                "only a WAITING or OFFERED session can change priority".into(),
            ))
        }
    }

    /// Someone (`by`) ends the session on purpose: why it ends, or `None`
    /// when it already has (a retry changes nothing).
    pub fn end_on_purpose(&self, by: Role) -> Option<EndReason> {
        self.status
            .is_open()
            .then(|| EndReason::on_purpose(by, self.status))
    }

    /// The system ends the session because its customer has not been seen
    /// since `seen_before`: why, or `None` when it is already over or the
    /// customer came back meanwhile.
    pub fn end_for_absence(&self, seen_before: DateTime<Utc>) -> Option<EndReason> {
        if !self.status.is_open() || self.customer_seen_at.is_some_and(|at| at >= seen_before) {
            return None;
        }
        Some(if self.status.is_queued() {
            EndReason::Cancelled
        } else {
            EndReason::Abandoned
        })
    }
}

#[cfg(test)]
impl ChatSession {
    /// A session of customer "c" for the domain's tests: created and queued
    /// at noon, 2026-11-30, `agent_id` its agent, nothing else set.
    pub(crate) fn sample(status: SessionStatus, agent_id: Option<&str>) -> ChatSession {
        use chrono::TimeZone;
        let noon = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        ChatSession {
            id: Uuid::nil(),
            customer_id: "c".into(),
            subject: None,
            status,
            agent_id: agent_id.map(Into::into),
            created_at: noon,
            queued_at: noon,
            assigned_at: None,
            offer_expires_at: None,
            ended_at: None,
            ended_by: None,
            end_reason: None,
            last_seq: 0,
            customer_delivered_seq: 0,
            customer_read_seq: 0,
            agent_delivered_seq: 0,
            agent_read_seq: 0,
            customer_seen_at: None,
            priority: Priority::Normal,
            required_skills: Skills::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AgentStatus;
    use chrono::TimeZone;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, second).unwrap()
    }

    fn agent(id: &str, status: AgentStatus, held: i32) -> Agent {
        Agent {
            id: id.into(),
            name: id.into(),
            status,
            capacity: 2,
            active_session_count: held,
            idle_since: None,
            skills: crate::domain::Skills::default(),
        }
    }

    fn session(status: SessionStatus, agent_id: Option<&str>) -> ChatSession {
        let mut s = ChatSession::sample(status, agent_id);
        s.offer_expires_at = (status == SessionStatus::Offered).then(|| at(30));
        s.customer_seen_at = Some(at(10));
        s
    }

    #[test]
    fn accepting_in_every_state_and_mode() {
        use Acceptance::*;
        use RoutingMode::*;
        use SessionStatus::*;
        let a = agent("a", AgentStatus::Available, 0);
        let ok = |s: ChatSession, mode| s.accept_by(&a, mode).ok();
        assert_eq!(ok(session(Active, Some("a")), Fair), Some(AlreadyHeld));
        assert_eq!(ok(session(Offered, Some("a")), Fair), Some(TakeOffer));
        assert_eq!(ok(session(Waiting, None), Manual), Some(PickFromQueue));
        assert_eq!(ok(session(Waiting, None), Fair), None);
        assert_eq!(ok(session(Waiting, None), Auto), None);
        assert_eq!(ok(session(Offered, Some("b")), Fair), None);
        assert_eq!(ok(session(Active, Some("b")), Manual), None);
        assert_eq!(ok(session(Ended, Some("a")), Manual), None);
        let full = agent("a", AgentStatus::Available, 2);
        let away = agent("a", AgentStatus::OnBreak, 0);
        for who in [full, away] {
            assert!(session(Waiting, None).accept_by(&who, Manual).is_err());
        }
    }

    #[test]
    fn offers_lapse_at_their_deadline() {
        let s = session(SessionStatus::Offered, Some("a"));
        assert!(s.take_offer(at(29)).is_ok());
        assert!(s.take_offer(at(30)).is_err());
        assert!(!s.offer_lapses("a", at(29)));
        assert!(s.offer_lapses("a", at(30)));
        assert!(!s.offer_lapses("b", at(31)));
        assert!(s.decline_by("a").is_ok());
        assert!(s.decline_by("b").is_err());
        assert!(session(SessionStatus::Active, Some("a"))
            .decline_by("a")
            .is_err());
    }

    #[test]
    fn only_active_sessions_move_and_never_to_their_own_agent() {
        let active = session(SessionStatus::Active, Some("a"));
        assert_eq!(active.transfer_to(Some("b")), Ok("a"));
        assert_eq!(active.transfer_to(None), Ok("a"));
        assert!(active.transfer_to(Some("a")).is_err());
        assert!(session(SessionStatus::Offered, Some("a"))
            .transfer_to(Some("b"))
            .is_err());
        assert!(session(SessionStatus::Waiting, None).assignable().is_ok());
        assert!(session(SessionStatus::Offered, Some("a"))
            .assignable()
            .is_ok());
        assert!(active.assignable().is_err());
    }

    #[test]
    fn ending_twice_changes_nothing_and_absence_spares_who_came_back() {
        let active = session(SessionStatus::Active, Some("a"));
        assert_eq!(
            active.end_on_purpose(Role::Agent),
            Some(EndReason::Resolved)
        );
        assert_eq!(
            session(SessionStatus::Ended, None).end_on_purpose(Role::Admin),
            None
        );
        assert_eq!(active.end_for_absence(at(11)), Some(EndReason::Abandoned));
        assert_eq!(active.end_for_absence(at(10)), None);
        assert_eq!(
            session(SessionStatus::Waiting, None).end_for_absence(at(11)),
            Some(EndReason::Cancelled)
        );
    }

    #[test]
    fn names_round_trip() {
        for s in [
            SessionStatus::Waiting,
            SessionStatus::Offered,
            SessionStatus::Active,
            SessionStatus::Ended,
        ] {
            assert_eq!(s.as_str().parse::<SessionStatus>().unwrap(), s);
        }
        assert!("waiting".parse::<SessionStatus>().is_err());
    }

    #[test]
    fn customers_leaving_the_queue_cancel_everything_else_resolves() {
        assert_eq!(
            EndReason::on_purpose(Role::Customer, SessionStatus::Waiting),
            EndReason::Cancelled
        );
        assert_eq!(
            EndReason::on_purpose(Role::Customer, SessionStatus::Offered),
            EndReason::Cancelled
        );
        assert_eq!(
            EndReason::on_purpose(Role::Customer, SessionStatus::Active),
            EndReason::Resolved
        );
        assert_eq!(
            EndReason::on_purpose(Role::Agent, SessionStatus::Active),
            EndReason::Resolved
        );
        assert_eq!(
            EndReason::on_purpose(Role::Admin, SessionStatus::Waiting),
            EndReason::Resolved
        );
    }
}

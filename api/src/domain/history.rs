//! A session's assignment history: what happened to it, to whom, by whom,
//! when. Recorded in the transaction that made the change; admins read it.

use chrono::{DateTime, Utc};

use super::named_enum;

/// What happened to a session's assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryKind {
    Queued,
    Offered,
    Accepted,
    Declined,
    Lapsed,
    /// An offer taken back because the agent left AVAILABLE.
    Withdrawn,
    /// Given to an agent without an offer: auto routing or an admin.
    Assigned,
    Transferred,
    Requeued,
    Ended,
    /// Moved within the queue by priority (the entry records the new one).
    Reprioritized,
}
named_enum!(HistoryKind, "history kind", {
    Queued => "QUEUED", Offered => "OFFERED", Accepted => "ACCEPTED",
    Declined => "DECLINED", Lapsed => "LAPSED", Withdrawn => "WITHDRAWN",
    Assigned => "ASSIGNED", Transferred => "TRANSFERRED", Requeued => "REQUEUED",
    Ended => "ENDED", Reprioritized => "REPRIORITIZED",
});

impl HistoryKind {
    /// The kinds that give the session to their entry's agent: an agent
    /// with one of these on a session holds or held it.
    pub const GIVING: [HistoryKind; 3] = [
        HistoryKind::Accepted,
        HistoryKind::Assigned,
        HistoryKind::Transferred,
    ];
}

/// One step of the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub kind: HistoryKind,
    pub agent_id: Option<String>,
    /// Who caused it; `None` when the system did.
    pub actor_id: Option<String>,
    pub at: DateTime<Utc>,
}

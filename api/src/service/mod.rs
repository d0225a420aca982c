//! Use cases, one service per aggregate over a shared [`Core`]:
//!
//! - [`Sessions`]: start (the queue entry), accept, end, reading sessions;
//! - [`Queue`]: the queue's order, places, estimated waits and figures, and
//!   moving a session in it by priority;
//! - [`Messages`]: sends, receipts, typing, transcripts;
//! - [`Routing`]: the matcher, offers and their lapse, decline, transfer,
//!   assignment by hand, and the record of every routing decision;
//! - [`Agents`]: first sight, shifts and breaks, capacity, listings;
//! - [`Live`]: the subscription feeds (a session's, an agent's, the queue);
//! - [`Presence`]: customers who left (their chats close) and agents'
//!   connections across processes (online, AWAY, their chats requeued);
//! - [`Files`]: files (sniffed, stored, sent as FILE messages), download
//!   links and downloads, articles;
//! - [`Retention`]: the purge (files too);
//! - [`Audit`]: the routing decisions, per session and by period, for admins;
//! - [`Webhooks`]: endpoints and deliveries for admins; `webhooks::outbox`
//!   writes events in the business transaction, `webhooks::dispatcher`
//!   delivers them.
//! - [`Ratings`], [`Tickets`], [`Guests`]: satisfaction ratings, chats
//!   handed to the ticket system, tokens for visitors not signed in.
//! - [`Workspace`]: the agent's tools: notes, canned responses, customer
//!   context, search and workload.
//!
//! The transitions that several of them need (end a session, release an
//! agent's slot, give a session, return sessions to the queue, write a
//! system line with the next seq) live once, in `transitions`. Each public
//! method checks who may do it by asking [`crate::domain`], runs its writes
//! in one transaction, and publishes events only after the commit. The
//! machinery under them (write batching, shared matcher passes, rate
//! limits, the after-commit buffer) is in `infra`. Nothing here knows
//! about GraphQL; errors are [`AppError`](crate::error::AppError)s.

mod agent_presence;
mod agents;
mod audit;
mod core;
mod files;
mod guests;
mod infra;
mod live;
mod messages;
mod pagination;
mod presence;
mod queue;
mod ratings;
mod retention;
mod routing;
mod sessions;
mod tickets;
mod transitions;
pub mod webhooks;
mod workspace;

pub use self::core::{Core, Services};
pub use agent_presence::AgentConnection;
pub use agents::{Agents, ShiftAction};
pub use audit::{Audit, ListedDecision};
pub use files::{
    Download, DownloadFailure, DownloadLink, DownloadRefusal, FilePolicy, Files, Upload,
};
pub use guests::{Answer, GuestChallenge, GuestPolicy, GuestToken, Guests};
pub use live::{Live, LiveItem};
pub use messages::Messages;
pub use pagination::{Page, PageArgs};
pub use presence::Presence;
pub use queue::Queue;
pub use ratings::Ratings;
pub use retention::Retention;
pub use routing::Routing;
pub use sessions::Sessions;
pub use tickets::Tickets;
pub use webhooks::{EndpointInput, Webhooks};
pub use workspace::{
    verify_call, AgentWorkload, CannedInput, ContextCallClaims, ContextError, ContextPolicy,
    CustomerContext, SessionPage, SessionSearch, Workspace, MAX_CONTEXT_BYTES,
};

use crate::domain::AbsenceRule;
use crate::matching::RoutingMode;

/// Send transactions in flight at once per process, and most sends in one.
const SEND_WRITERS: usize = 4;
const SEND_BATCH: usize = 128;
/// Delivery-mark statements in flight at once, and most marks in one.
const DELIVERY_WRITERS: usize = 2;
const DELIVERY_BATCH: usize = 256;
/// Most new sessions entering the queue in one transaction. One writer:
/// entries take the routing lock, so a second would only wait for it.
const ARRIVAL_BATCH: usize = 500;

/// The knobs of the business rules, taken from the settings at start.
#[derive(Clone, Debug)]
pub struct Policy {
    pub routing_mode: RoutingMode,
    pub agent_capacity: i32,
    pub history_days: i64,
    pub retention_days: i64,
    pub max_message_chars: usize,
    /// Messages per second one sender may post, and the burst above it.
    pub message_rate_per_sec: f64,
    pub message_burst: u32,
    /// New sessions one client address may start per minute, and the burst.
    pub ip_session_rate_per_min: f64,
    pub ip_session_burst: u32,
    /// How long an agent has to accept an offer (fair routing).
    pub offer_timeout: chrono::Duration,
    /// How long a session's skills are required before any agent may take it.
    pub skill_wait: chrono::Duration,
    /// How long a customer may stay away before their chat is closed.
    pub resume_grace: chrono::Duration,
    /// What happens to agents without a connection (AGENT_AWAY_SECS,
    /// AGENT_ABANDON_SECS).
    pub agent_absence: AbsenceRule,
    pub webhooks: crate::config::WebhookSettings,
    /// How long after its end a chat may be rated.
    pub rating_window: chrono::Duration,
    /// Where chats become tickets; None: `convertToTicket` is off.
    pub tickets: Option<crate::config::TicketSettings>,
    pub guests: GuestPolicy,
    /// Where files are kept, what may be uploaded, download links, articles.
    pub files: FilePolicy,
    /// The customer context provider (CONTEXT_*).
    pub context: ContextPolicy,
}

//! What every service shares: the database, the bus, the policy, the clock,
//! the metrics and the machinery of `infra`. The services are views on it,
//! handed out by [`Core::sessions`] and its siblings.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use uuid::Uuid;

use super::agents::Agents;
use super::audit::Audit;
use super::files::Files;
use super::guests::Guests;
use super::infra::batch_queue::{self, BatchQueue};
use super::infra::limiter::TokenBuckets;
use super::infra::live_connections::LiveConnections;
use super::infra::shared_passes::SharedPasses;
use super::live::Live;
use super::messages::Messages;
use super::presence::Presence;
use super::queue::Queue;
use super::ratings::Ratings;
use super::retention::Retention;
use super::routing::Routing;
use super::sessions::Sessions;
use super::tickets::Tickets;
use super::transitions::Transitions;
use super::webhooks::{WebhookState, Webhooks};
use super::workspace::{ContextProvider, Workspace};
use super::{Policy, ARRIVAL_BATCH, DELIVERY_BATCH, DELIVERY_WRITERS, SEND_BATCH, SEND_WRITERS};
use crate::clock::Clock;
use crate::domain::ChatSession;
use crate::error::{AppError, AppResult};
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::repo::sessions;

/// Longest a readiness probe waits for the database.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The services of one process, cheap to clone: `services.sessions()`,
/// `services.messages()`, and so on.
pub type Services = Arc<Core>;

pub struct Core {
    pub(super) db: DatabaseConnection,
    pub(super) bus: EventBus,
    pub(super) policy: Policy,
    pub(super) clock: Clock,
    /// Agents known to exist in the database, so that first-sight creation
    /// costs one insert per agent and process, not one per request.
    pub(super) known_agents: Mutex<HashSet<String>>,
    /// One matcher pass at a time per process, and the passes that
    /// triggers are waiting for (see [`Routing::rematch`]).
    pub(super) matcher: SharedPasses,
    /// Sends waiting to share a transaction (see `infra::batch_queue`).
    pub(super) sends: BatchQueue<batch_queue::PendingSend>,
    /// Delivery marks waiting to be recorded together.
    pub(super) deliveries: BatchQueue<batch_queue::PendingDelivery>,
    /// New sessions waiting to enter the queue together.
    pub(super) arrivals: BatchQueue<batch_queue::PendingArrival>,
    pub(super) message_limiter: TokenBuckets,
    pub(super) session_limiter: TokenBuckets,
    /// Guest tokens per client address.
    pub(super) guest_limiter: TokenBuckets,
    /// Agents' live WebSockets on this process (see `Presence`).
    pub(super) connections: LiveConnections,
    pub(super) metrics: Arc<Metrics>,
    /// How many sessions left the queue lately, and when that was counted:
    /// every waiting customer's estimate reads it, so it is counted at most
    /// once a second per process (see `Queue::estimated_wait_seconds`).
    pub(super) recently_served: Mutex<Option<(DateTime<Utc>, u64)>>,
    /// Subscribed webhook types and the dispatcher's wake-up.
    pub(crate) webhooks: WebhookState,
    /// The shop's customer context provider, with its cache.
    pub(super) context: ContextProvider,
}

impl Core {
    pub fn start(db: DatabaseConnection, bus: EventBus, policy: Policy, clock: Clock) -> Services {
        Arc::new(Core {
            db,
            bus,
            message_limiter: TokenBuckets::new(policy.message_rate_per_sec, policy.message_burst),
            session_limiter: TokenBuckets::new(
                policy.ip_session_rate_per_min / 60.0,
                policy.ip_session_burst,
            ),
            guest_limiter: TokenBuckets::new(
                policy.guests.settings.ip_rate_per_min / 60.0,
                policy.guests.settings.ip_burst,
            ),
            context: ContextProvider::new(policy.context.clone()),
            policy,
            clock,
            known_agents: Mutex::new(HashSet::new()),
            matcher: SharedPasses::default(),
            sends: BatchQueue::new(SEND_WRITERS, SEND_BATCH),
            deliveries: BatchQueue::new(DELIVERY_WRITERS, DELIVERY_BATCH),
            arrivals: BatchQueue::new(1, ARRIVAL_BATCH),
            connections: LiveConnections::new(),
            metrics: Arc::new(Metrics::default()),
            recently_served: Mutex::new(None),
            webhooks: WebhookState::default(),
        })
    }

    pub fn sessions(self: &Arc<Self>) -> Sessions<'_> {
        Sessions { core: self }
    }

    pub fn messages(self: &Arc<Self>) -> Messages<'_> {
        Messages { core: self }
    }

    pub fn routing(self: &Arc<Self>) -> Routing<'_> {
        Routing { core: self }
    }

    pub fn agents(self: &Arc<Self>) -> Agents<'_> {
        Agents { core: self }
    }

    pub fn live(self: &Arc<Self>) -> Live<'_> {
        Live { core: self }
    }

    pub fn audit(self: &Arc<Self>) -> Audit<'_> {
        Audit { core: self }
    }

    pub fn queue(self: &Arc<Self>) -> Queue<'_> {
        Queue { core: self }
    }

    pub fn presence(self: &Arc<Self>) -> Presence<'_> {
        Presence { core: self }
    }

    pub fn files(self: &Arc<Self>) -> Files<'_> {
        Files { core: self }
    }

    pub fn retention(self: &Arc<Self>) -> Retention<'_> {
        Retention { core: self }
    }

    pub fn webhooks(self: &Arc<Self>) -> Webhooks<'_> {
        Webhooks { core: self }
    }

    pub fn ratings(self: &Arc<Self>) -> Ratings<'_> {
        Ratings { core: self }
    }

    pub fn tickets(self: &Arc<Self>) -> Tickets<'_> {
        Tickets { core: self }
    }

    pub fn guests(self: &Arc<Self>) -> Guests<'_> {
        Guests { core: self }
    }

    pub fn workspace(self: &Arc<Self>) -> Workspace<'_> {
        Workspace { core: self }
    }

    pub(super) fn transitions(self: &Arc<Self>) -> Transitions<'_> {
        Transitions { core: self }
    }

    /// Takes one of `ip`'s tokens from a per-address `limiter`; false when
    /// it has none left, counted as a refusal by address.
    pub(super) fn admit_address(&self, limiter: &TokenBuckets, ip: std::net::IpAddr) -> bool {
        let admitted = limiter.try_take(&ip.to_string(), self.clock.instant());
        if !admitted {
            self.metrics
                .refused_by_ip_limit
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        admitted
    }

    /// Cut to the microsecond, as the database stores it: a time handed
    /// out before it is stored must read the same as after.
    pub(super) fn now(&self) -> DateTime<Utc> {
        use chrono::SubsecRound;
        self.clock.now().trunc_subsecs(6)
    }

    /// "Now" for ordering and deadlines that several processes compare: the
    /// database's clock where there is a shared one, else this process's.
    /// Taken once a transaction holds its locks, it orders the changes as
    /// they took effect. (A test's manual clock stands for every clock,
    /// the database's too; see [`Clock::is_shared`].)
    pub(super) async fn shared_now<C: ConnectionTrait>(
        &self,
        db: &C,
    ) -> Result<DateTime<Utc>, DbErr> {
        if self.clock.is_shared() {
            return Ok(self.now());
        }
        Ok(crate::repo::shared_now(db)
            .await?
            .unwrap_or_else(|| self.now()))
    }

    /// The session as it is in `db` (a transaction, usually).
    pub(super) async fn reload<C: ConnectionTrait>(
        &self,
        db: &C,
        id: Uuid,
    ) -> AppResult<ChatSession> {
        sessions::find(db, id)
            .await?
            .ok_or_else(AppError::session_not_found)
    }

    /// The session as it is now (after matching may have moved it), or as
    /// it was if it cannot be read.
    pub(super) async fn reload_or(&self, fallback: ChatSession) -> ChatSession {
        match sessions::find(&self.db, fallback.id).await {
            Ok(Some(s)) => s,
            _ => fallback,
        }
    }

    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Where every part of the server reads the time.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The `/metrics` page: this process's counters and the shared queue.
    pub async fn metrics_text(self: &Arc<Self>) -> AppResult<String> {
        let stats = self.queue().compute_queue_stats().await?;
        Ok(self.metrics.render(&stats))
    }

    /// Whether the database answers; for readiness probes. Bounded: a probe
    /// that hangs (a connection to an unreachable host) would leave the
    /// balancer guessing, and it needs a quick no.
    pub async fn ping(&self) -> bool {
        matches!(
            tokio::time::timeout(PING_TIMEOUT, self.db.ping()).await,
            Ok(Ok(()))
        )
    }
}

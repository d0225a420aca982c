//! Use cases. Each public method checks who may do it, runs its writes in
//! one transaction, and publishes events only after the commit. Nothing here
//! knows about GraphQL; errors are [`AppError`]s.

mod agents;
mod batch_queue;
pub use agents::ShiftAction;
mod feeds;
mod limiter;
mod live;
mod messages;
mod outbox;
mod pagination;
mod presence;
mod retention;
mod routing;
mod sessions;
mod shared_passes;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use crate::clock::Clock;
use crate::events::EventBus;
use crate::matching::RoutingMode;
use crate::metrics::Metrics;

/// Longest a readiness probe waits for the database.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub use live::LiveItem;
pub use pagination::{Page, PageArgs};

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
    /// How long a customer may stay away before their chat is closed.
    pub resume_grace: chrono::Duration,
}

/// The chat use cases over one database and one event bus. Cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    db: DatabaseConnection,
    bus: EventBus,
    policy: Arc<Policy>,
    clock: Clock,
    /// Agents known to exist in the database, so that first-sight creation
    /// costs one insert per agent and process, not one per request.
    known_agents: Arc<Mutex<HashSet<String>>>,
    /// One matcher pass at a time per process, and the passes that
    /// triggers are waiting for (see [`ChatService::rematch`]).
    matcher: Arc<shared_passes::SharedPasses>,
    /// Sends waiting to share a transaction (see [`batch_queue`]).
    sends: Arc<batch_queue::BatchQueue<batch_queue::PendingSend>>,
    /// Delivery marks waiting to be recorded together.
    deliveries: Arc<batch_queue::BatchQueue<batch_queue::PendingDelivery>>,
    /// New sessions waiting to enter the queue together.
    arrivals: Arc<batch_queue::BatchQueue<batch_queue::PendingArrival>>,
    message_limiter: Arc<limiter::TokenBuckets>,
    session_limiter: Arc<limiter::TokenBuckets>,
    metrics: Arc<Metrics>,
}

impl ChatService {
    pub fn new(db: DatabaseConnection, bus: EventBus, policy: Policy, clock: Clock) -> Self {
        ChatService {
            db,
            bus,
            message_limiter: Arc::new(limiter::TokenBuckets::new(
                policy.message_rate_per_sec,
                policy.message_burst,
            )),
            session_limiter: Arc::new(limiter::TokenBuckets::new(
                policy.ip_session_rate_per_min / 60.0,
                policy.ip_session_burst,
            )),
            policy: Arc::new(policy),
            clock,
            known_agents: Arc::new(Mutex::new(HashSet::new())),
            matcher: Arc::default(),
            sends: Arc::new(batch_queue::BatchQueue::new(SEND_WRITERS, SEND_BATCH)),
            deliveries: Arc::new(batch_queue::BatchQueue::new(
                DELIVERY_WRITERS,
                DELIVERY_BATCH,
            )),
            arrivals: Arc::new(batch_queue::BatchQueue::new(1, ARRIVAL_BATCH)),
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Cut to the microsecond, as the database stores it: a time handed
    /// out before it is stored must read the same as after.
    fn now(&self) -> DateTime<Utc> {
        use chrono::SubsecRound;
        self.clock.now().trunc_subsecs(6)
    }

    /// "Now" for ordering and deadlines that several processes compare: the
    /// database's clock where there is a shared one, else this process's.
    async fn shared_now<C: sea_orm::ConnectionTrait>(
        &self,
        db: &C,
    ) -> Result<DateTime<Utc>, sea_orm::DbErr> {
        Ok(crate::repo::shared_now(db)
            .await?
            .unwrap_or_else(|| self.now()))
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
    pub async fn metrics_text(&self) -> crate::error::AppResult<String> {
        let stats = self.compute_queue_stats().await?;
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

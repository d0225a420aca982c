//! Outbound webhooks: endpoints admins register, the outbox the business
//! transactions write ([`outbox`]), and the dispatcher that delivers it
//! ([`dispatcher`]): at least once, signed, retried on a schedule, each
//! session's events in order per endpoint, with several processes sharing
//! one outbox through leases.

pub(crate) mod dispatcher;
pub(crate) mod outbox;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use uuid::Uuid;

use super::core::Core;
use super::pagination::page_size;
use crate::auth::Viewer;
use crate::domain::access;
use crate::domain::webhooks::{
    check_url, is_internal_address, DeliveryStatus, EventTypes, WebhookDelivery, WebhookEndpoint,
    WebhookEventType,
};
use crate::error::{AppError, AppResult};
use crate::repo::{self, webhooks};
use crate::signing::WebhookSecret;

/// Longest URL and description an endpoint may have.
const MAX_URL_CHARS: usize = 2000;
const MAX_DESCRIPTION_CHARS: usize = 500;
/// Largest page of `webhookDeliveries`.
const MAX_DELIVERY_PAGE: u64 = 500;

/// What one process keeps for webhooks: which event types some enabled
/// endpoint wants (so a transaction writes no outbox row, and no
/// statement, for an event nobody wants), and the dispatcher's wake-up.
#[derive(Default)]
pub(crate) struct WebhookState {
    subscribed: Mutex<Option<Subscribed>>,
    /// An outbox row was written since the dispatcher was last woken.
    recorded: AtomicBool,
    wake: Notify,
}

/// The cached subscriptions, as of a count of endpoint changes.
#[derive(Clone, Copy)]
struct Subscribed {
    types: EventTypes,
    generation: u64,
    loaded: std::time::Instant,
}

/// How long cached subscriptions are trusted without hearing of a change:
/// a bound on what a lost relay message costs. The dispatcher reloads them
/// this often, off the hot paths.
const SUBSCRIBED_TTL: std::time::Duration = std::time::Duration::from_secs(30);

impl WebhookState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Subscribed>> {
        // A plain value: a panic elsewhere cannot leave it half written.
        self.subscribed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached types, unless an endpoint changed since they were read.
    fn cached(&self, generation: u64) -> Option<EventTypes> {
        self.lock()
            .filter(|c| c.generation == generation)
            .map(|c| c.types)
    }

    /// Whether the cache is older than [`SUBSCRIBED_TTL`] (or empty).
    fn is_old(&self, now: std::time::Instant) -> bool {
        self.lock()
            .is_none_or(|c| now.duration_since(c.loaded) >= SUBSCRIBED_TTL)
    }

    fn store(&self, types: EventTypes, generation: u64, loaded: std::time::Instant) {
        *self.lock() = Some(Subscribed {
            types,
            generation,
            loaded,
        });
    }

    /// Called after a commit that may have written outbox rows: the
    /// dispatcher looks at once instead of at its next poll.
    pub(crate) fn wake_if_recorded(&self) {
        if self.recorded.swap(false, Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }
}

/// Endpoint management and the record of deliveries, for admins.
pub struct Webhooks<'a> {
    pub(super) core: &'a Arc<Core>,
}

/// An endpoint as an admin gives it.
pub struct EndpointInput<'a> {
    pub url: &'a str,
    pub events: Vec<WebhookEventType>,
    pub description: Option<&'a str>,
}

impl Webhooks<'_> {
    pub async fn endpoints(&self, viewer: &Viewer) -> AppResult<Vec<WebhookEndpoint>> {
        access::may_manage_webhooks(viewer)?;
        Ok(webhooks::list_endpoints(&self.core.db).await?)
    }

    /// Registers an endpoint; returns it with its secret, which is shown
    /// this once.
    pub async fn create_endpoint(
        &self,
        viewer: &Viewer,
        input: EndpointInput<'_>,
    ) -> AppResult<(WebhookEndpoint, String)> {
        access::may_manage_webhooks(viewer)?;
        let (url, description) = self.check_input(&input).await?;
        let secret = WebhookSecret::generate()
            .map_err(|e| AppError::Internal(format!("no randomness for a secret: {e}")))?
            .expose();
        let created = webhooks::insert_endpoint(
            &self.core.db,
            webhooks::NewEndpoint {
                url: &url,
                events: &input.events,
                description: description.as_deref(),
                secret: &secret,
                now: self.core.now(),
            },
        )
        .await?;
        self.core.bus.publish_webhooks_changed();
        Ok((created, secret))
    }

    pub async fn update_endpoint(
        &self,
        viewer: &Viewer,
        id: &str,
        input: EndpointInput<'_>,
        enabled: Option<bool>,
    ) -> AppResult<WebhookEndpoint> {
        access::may_manage_webhooks(viewer)?;
        let id = parse_id(id, "webhook endpoint")?;
        let (url, description) = self.check_input(&input).await?;
        let updated = webhooks::update_endpoint(
            &self.core.db,
            id,
            &url,
            &input.events,
            description.as_deref(),
            enabled,
        )
        .await?
        .ok_or_else(|| AppError::NotFound("no such webhook endpoint".into()))?;
        self.core.bus.publish_webhooks_changed();
        self.core.webhooks.wake.notify_one();
        Ok(updated)
    }

    pub async fn delete_endpoint(&self, viewer: &Viewer, id: &str) -> AppResult<bool> {
        access::may_manage_webhooks(viewer)?;
        let id = parse_id(id, "webhook endpoint")?;
        let txn = repo::begin_write(&self.core.db).await?;
        let deleted = webhooks::delete_endpoint(&txn, id).await?;
        txn.commit().await?;
        if !deleted {
            return Err(AppError::NotFound("no such webhook endpoint".into()));
        }
        self.core.bus.publish_webhooks_changed();
        Ok(true)
    }

    /// An endpoint's deliveries, newest first.
    pub async fn deliveries(
        &self,
        viewer: &Viewer,
        endpoint_id: &str,
        status: Option<DeliveryStatus>,
        first: Option<i32>,
    ) -> AppResult<Vec<WebhookDelivery>> {
        access::may_manage_webhooks(viewer)?;
        let id = parse_id(endpoint_id, "webhook endpoint")?;
        let limit = page_size("first", first, 50, MAX_DELIVERY_PAGE)?;
        if webhooks::find_endpoint(&self.core.db, id).await?.is_none() {
            return Err(AppError::NotFound("no such webhook endpoint".into()));
        }
        Ok(webhooks::deliveries(&self.core.db, id, status, limit).await?)
    }

    /// Queues a delivery again with the same id (so receivers that saw it
    /// can drop it), for a fresh run of attempts.
    pub async fn redeliver(
        &self,
        viewer: &Viewer,
        delivery_id: &str,
    ) -> AppResult<WebhookDelivery> {
        access::may_manage_webhooks(viewer)?;
        let id = parse_id(delivery_id, "webhook delivery")?;
        let found = webhooks::find_delivery(&self.core.db, id)
            .await?
            .ok_or_else(|| AppError::NotFound("no such webhook delivery".into()))?;
        if found.status == DeliveryStatus::Pending {
            return Err(AppError::Conflict(
                "the delivery is still pending; it will be attempted again".into(),
            ));
        }
        webhooks::requeue_delivery(&self.core.db, id, self.core.now()).await?;
        self.core.webhooks.wake.notify_one();
        webhooks::find_delivery(&self.core.db, id)
            .await?
            .ok_or_else(|| AppError::NotFound("no such webhook delivery".into()))
    }

    /// Deletes finished deliveries (and events no delivery needs) older
    /// than `cutoff`, batch by batch; how many rows went.
    pub async fn purge_before(&self, cutoff: chrono::DateTime<chrono::Utc>) -> AppResult<u64> {
        const BATCH: u64 = 500;
        let mut purged = 0;
        loop {
            let n = webhooks::purge_before(&self.core.db, cutoff, BATCH).await?;
            purged += n;
            if n < BATCH {
                return Ok(purged);
            }
            tokio::task::yield_now().await;
        }
    }

    /// The URL and description, checked: http(s) only, and (unless the
    /// operator allows it) no address of this server's own networks.
    async fn check_input(&self, input: &EndpointInput<'_>) -> AppResult<(String, Option<String>)> {
        let url = input.url.trim();
        if url.chars().count() > MAX_URL_CHARS {
            return Err(AppError::BadUserInput(format!(
                "the URL is longer than {MAX_URL_CHARS} characters"
            )));
        }
        if input.events.is_empty() {
            return Err(AppError::BadUserInput(
                "subscribe to at least one event type".into(),
            ));
        }
        let description = input
            .description
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        if description
            .as_ref()
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS)
        {
            return Err(AppError::BadUserInput(format!(
                "the description is longer than {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        let (host, port) = check_url(url).map_err(AppError::BadUserInput)?;
        if !self.core.policy.webhooks.allow_private {
            let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|_| AppError::BadUserInput(format!("{host:?} cannot be resolved")))?
                    .map(|a| a.ip())
                    .collect(),
            };
            if addrs.is_empty() || addrs.into_iter().any(is_internal_address) {
                return Err(AppError::BadUserInput(format!(
                    "{host:?} is an address of a private, loopback or link-local network; \
                     webhooks may not reach those"
                )));
            }
        }
        Ok((url.to_owned(), description))
    }
}

fn parse_id(raw: &str, what: &str) -> AppResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::BadUserInput(format!("{raw:?} is not a {what} id")))
}

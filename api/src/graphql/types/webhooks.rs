//! Webhook endpoints and deliveries, and the input that registers one.

use async_graphql::{Enum, InputObject, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::domain::webhooks as domain;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "WebhookEventType")]
pub enum WebhookEventTypeGql {
    SessionStarted,
    SessionAssigned,
    SessionTransferred,
    SessionEnded,
    MessageCreated,
    SessionRated,
    TicketRequested,
}

impl From<domain::WebhookEventType> for WebhookEventTypeGql {
    fn from(t: domain::WebhookEventType) -> Self {
        use domain::WebhookEventType as T;
        match t {
            T::SessionStarted => Self::SessionStarted,
            T::SessionAssigned => Self::SessionAssigned,
            T::SessionTransferred => Self::SessionTransferred,
            T::SessionEnded => Self::SessionEnded,
            T::MessageCreated => Self::MessageCreated,
            T::SessionRated => Self::SessionRated,
            T::TicketRequested => Self::TicketRequested,
        }
    }
}

impl From<WebhookEventTypeGql> for domain::WebhookEventType {
    fn from(t: WebhookEventTypeGql) -> Self {
        use WebhookEventTypeGql as T;
        match t {
            T::SessionStarted => Self::SessionStarted,
            T::SessionAssigned => Self::SessionAssigned,
            T::SessionTransferred => Self::SessionTransferred,
            T::SessionEnded => Self::SessionEnded,
            T::MessageCreated => Self::MessageCreated,
            T::SessionRated => Self::SessionRated,
            T::TicketRequested => Self::TicketRequested,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "DeliveryStatus")]
pub enum DeliveryStatusGql {
    Pending,
    Delivered,
    /// Retries are exhausted; redeliverWebhook tries again.
    Failed,
}

impl From<domain::DeliveryStatus> for DeliveryStatusGql {
    fn from(s: domain::DeliveryStatus) -> Self {
        match s {
            domain::DeliveryStatus::Pending => Self::Pending,
            domain::DeliveryStatus::Delivered => Self::Delivered,
            domain::DeliveryStatus::Failed => Self::Failed,
        }
    }
}

impl From<DeliveryStatusGql> for domain::DeliveryStatus {
    fn from(s: DeliveryStatusGql) -> Self {
        match s {
            DeliveryStatusGql::Pending => Self::Pending,
            DeliveryStatusGql::Delivered => Self::Delivered,
            DeliveryStatusGql::Failed => Self::Failed,
        }
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "WebhookEndpoint")]
pub struct WebhookEndpointGql {
    pub id: ID,
    pub url: String,
    pub events: Vec<WebhookEventTypeGql>,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<domain::WebhookEndpoint> for WebhookEndpointGql {
    fn from(e: domain::WebhookEndpoint) -> Self {
        WebhookEndpointGql {
            id: ID(e.id.to_string()),
            url: e.url,
            events: e.events.into_iter().map(Into::into).collect(),
            description: e.description,
            enabled: e.enabled,
            created_at: e.created_at,
        }
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "WebhookEndpointCreated")]
pub struct WebhookEndpointCreatedGql {
    pub endpoint: WebhookEndpointGql,
    /// Shown once: 'whsec_' + base64 of the key.
    pub secret: String,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "WebhookDelivery")]
pub struct WebhookDeliveryGql {
    /// The webhook-id header: the same on every retry of one event, so receivers can drop duplicates.
    pub id: ID,
    pub endpoint_id: ID,
    pub event: WebhookEventTypeGql,
    pub status: DeliveryStatusGql,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<domain::WebhookDelivery> for WebhookDeliveryGql {
    fn from(d: domain::WebhookDelivery) -> Self {
        WebhookDeliveryGql {
            id: ID(d.id.to_string()),
            endpoint_id: ID(d.endpoint_id.to_string()),
            event: d.event.into(),
            status: d.status.into(),
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

#[derive(InputObject)]
#[graphql(name = "WebhookEndpointInput")]
pub struct WebhookEndpointInput {
    pub url: String,
    pub events: Vec<WebhookEventTypeGql>,
    pub description: Option<String>,
}

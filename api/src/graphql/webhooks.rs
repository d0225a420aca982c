//! Webhook endpoints and deliveries, for admins: the query and mutation
//! parts merged into the roots.

use async_graphql::{Context, Object, ID};

use super::context::caller_and_service;
use super::error::GqlResultExt;
use super::types::{
    DeliveryStatusGql, WebhookDeliveryGql, WebhookEndpointCreatedGql, WebhookEndpointGql,
    WebhookEndpointInput,
};
use crate::service::EndpointInput;

#[derive(Default)]
pub struct WebhooksQuery;

#[Object]
impl WebhooksQuery {
    /// Admin.
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<WebhookEndpointGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let endpoints = svc.webhooks().endpoints(viewer).await.gql()?;
        Ok(endpoints.into_iter().map(Into::into).collect())
    }

    /// Admin: newest first.
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
        status: Option<DeliveryStatusGql>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<WebhookDeliveryGql>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let deliveries = svc
            .webhooks()
            .deliveries(viewer, &endpoint_id, status.map(Into::into), first)
            .await
            .gql()?;
        Ok(deliveries.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct WebhooksMutation;

/// The input as the service takes it.
fn given(input: &WebhookEndpointInput) -> EndpointInput<'_> {
    EndpointInput {
        url: &input.url,
        events: input.events.iter().map(|&t| t.into()).collect(),
        description: input.description.as_deref(),
    }
}

#[Object]
impl WebhooksMutation {
    /// Admin. Only http(s) URLs; addresses of this server's own network are refused unless allowed by configuration.
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: WebhookEndpointInput,
    ) -> async_graphql::Result<WebhookEndpointCreatedGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let (endpoint, secret) = svc
            .webhooks()
            .create_endpoint(viewer, given(&input))
            .await
            .gql()?;
        Ok(WebhookEndpointCreatedGql {
            endpoint: endpoint.into(),
            secret,
        })
    }

    /// Admin.
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: WebhookEndpointInput,
        enabled: Option<bool>,
    ) -> async_graphql::Result<WebhookEndpointGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .webhooks()
            .update_endpoint(viewer, &id, given(&input), enabled)
            .await
            .gql()?
            .into())
    }

    /// Admin.
    async fn delete_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<bool> {
        let (viewer, svc) = caller_and_service(ctx)?;
        svc.webhooks().delete_endpoint(viewer, &id).await.gql()
    }

    /// Admin: a FAILED (or DELIVERED) delivery is queued again with the same id.
    async fn redeliver_webhook(
        &self,
        ctx: &Context<'_>,
        delivery_id: ID,
    ) -> async_graphql::Result<WebhookDeliveryGql> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .webhooks()
            .redeliver(viewer, &delivery_id)
            .await
            .gql()?
            .into())
    }
}

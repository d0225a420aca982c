use async_graphql::Context;

use super::error::{to_gql, GqlResultExt};
use crate::auth::{Caller, Viewer};
use crate::error::AppError;
use crate::service::Services;

/// The verified caller, or UNAUTHENTICATED.
pub fn viewer<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Viewer> {
    match ctx.data_opt::<Caller>() {
        Some(caller) => caller.viewer(service(ctx)?.clock()).gql(),
        None => Err(to_gql(AppError::Unauthenticated("missing token".into()))),
    }
}

pub fn service<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Services> {
    ctx.data_opt::<Services>()
        .ok_or_else(|| to_gql(AppError::Internal("schema built without a service".into())))
}

/// Both at once, the common case.
pub fn caller_and_service<'a>(
    ctx: &Context<'a>,
) -> async_graphql::Result<(&'a Viewer, &'a Services)> {
    Ok((viewer(ctx)?, service(ctx)?))
}

/// The subscriptions one WebSocket connection holds, and how many it may.
/// Put in the connection's data at connection_init.
pub struct SubscriptionBudget {
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    max: usize,
}

impl SubscriptionBudget {
    pub fn new(max: usize) -> Self {
        SubscriptionBudget {
            open: Default::default(),
            max,
        }
    }
}

/// Holds one place in a connection's budget until the subscription ends.
pub struct BudgetSlot(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for BudgetSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Takes a place for a new subscription, or refuses with RATE_LIMITED.
pub fn take_subscription_slot(ctx: &Context<'_>) -> async_graphql::Result<Option<BudgetSlot>> {
    use std::sync::atomic::Ordering;
    let Some(budget) = ctx.data_opt::<SubscriptionBudget>() else {
        return Ok(None);
    };
    let taken = budget
        .open
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < budget.max).then_some(n + 1)
        });
    match taken {
        Ok(_) => Ok(Some(BudgetSlot(budget.open.clone()))),
        Err(_) => Err(to_gql(AppError::RateLimited(format!(
            "at most {} subscriptions per connection",
            budget.max
        )))),
    }
}

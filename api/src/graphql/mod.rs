//! The GraphQL transport. Resolvers are thin: read the caller and input,
//! call one service method, map the error once ([`error::GqlResultExt`]).
//! The schema builds with no I/O, so `switchboard schema` needs nothing.

mod compact;
mod context;
mod cost;
mod documents;
mod gateway;
pub use context::SubscriptionBudget;
pub use gateway::Gateway;
mod error;
mod feedback;
mod files;
mod guests;
mod limits;
mod mutation;
mod query;
mod subscription;
mod types;
mod webhooks;
mod workspace;

use async_graphql::Schema;

pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

use crate::config::Limits;
use crate::service::Services;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema that answers requests. It has no extensions (see
/// [`Gateway`]): requests reach it through the gateway, which checks
/// aliases and codes every error.
fn build_schema(service: Services, limits: &Limits) -> AppSchema {
    // Depth and complexity are the gateway's (cost.rs): async-graphql's own
    // limits walk every fragment again at each spread.
    let mut builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .limit_directives(8);
    if !limits.introspection {
        // Suggestions ("did you mean …") would leak the schema anyway.
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder.data(service).finish()
}

/// The executor the transports serve: the schema behind the request checks.
pub fn gateway(service: Services, limits: &Limits) -> Gateway {
    Gateway::new(build_schema(service, limits), limits)
}

/// The SDL clients see; `schema.graphql` holds a copy kept equal by a test.
pub fn sdl() -> String {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    .finish()
    .sdl()
}

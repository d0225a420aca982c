//! The GraphQL transport. Resolvers are thin: read the caller and input,
//! call one service method, map the error once ([`error::GqlResultExt`]).
//! The schema builds with no I/O, so `switchboard schema` needs nothing.

mod compact;
mod context;
mod documents;
pub use context::SubscriptionBudget;
pub use documents::ParsedDocuments;
mod error;
mod limits;
mod mutation;
mod query;
mod subscription;
mod types;

use async_graphql::Schema;

pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

use crate::config::Limits;
use crate::service::ChatService;

pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema; with a service to answer requests, or without one just to
/// print the SDL.
pub fn build_schema(service: Option<ChatService>, limits: &Limits) -> AppSchema {
    let mut builder = Schema::build(QueryRoot, MutationRoot::default(), SubscriptionRoot)
        .limit_depth(limits.max_query_depth)
        .limit_complexity(limits.max_query_complexity)
        .limit_directives(8)
        .extension(limits::AliasLimit {
            max: limits.max_aliases,
        })
        .extension(error::CodeEveryError)
        .extension(compact::CompactSubscriptions);
    if !limits.introspection {
        // Suggestions ("did you mean …") would leak the schema anyway.
        builder = builder.disable_introspection().disable_suggestions();
    }
    match service {
        Some(s) => builder.data(s).finish(),
        None => builder.finish(),
    }
}

/// The SDL clients see; `schema.graphql` holds a copy kept equal by a test.
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot::default(), SubscriptionRoot)
        .finish()
        .sdl()
}

//! The executor both transports use: the schema, behind the request checks
//! and the error codes that would otherwise be async-graphql extensions.
//!
//! A schema with any extension at all resolves every field the slow way:
//! it looks the field up in the registry and runs it through a chain of
//! boxed futures, one per extension. Here the checks run once per request
//! and the schema has no extensions. Measured: chat CPU per message did
//! not move beyond noise; a subscription keeps no extension state, and an
//! idle connection took 13.3 KiB instead of 14.2 (BENCHMARKS.md, item 20).

use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Executor, Request, Response, ServerError};
use futures_util::stream::{self, BoxStream};
use futures_util::StreamExt;

use super::documents::{Parsed, ParsedDocuments};
use super::{compact, error, AppSchema};

#[derive(Clone)]
pub struct Gateway {
    schema: AppSchema,
    documents: Arc<ParsedDocuments>,
    max_aliases: usize,
}

impl Gateway {
    pub fn new(schema: AppSchema, max_aliases: usize) -> Self {
        Gateway {
            schema,
            documents: Default::default(),
            max_aliases,
        }
    }

    /// Gives the request its parsed document, or says why it is refused.
    /// A document that does not parse is left to the executor, which
    /// reports the syntax error as usual.
    fn prepare(&self, request: &mut Request) -> Result<(), ServerError> {
        let Some(parsed) = self.documents.get(&request.query) else {
            return Ok(());
        };
        refuse_aliases(&parsed, self.max_aliases)?;
        let mut document = parsed.document.clone();
        let subscribes = document
            .operations
            .iter()
            .any(|(_, op)| op.node.ty == OperationType::Subscription);
        if subscribes {
            // Kept for as long as the subscription runs.
            compact::compact(&mut document);
        }
        request.set_parsed_query(document);
        Ok(())
    }
}

/// Aliases let one request ask for the same expensive field many times
/// over; complexity bounds the total work, this bounds the trick itself,
/// before anything runs.
fn refuse_aliases(parsed: &Parsed, max: usize) -> Result<(), ServerError> {
    if parsed.aliases <= max {
        return Ok(());
    }
    Err(ServerError::new(
        format!(
            "the query uses {} aliases; at most {max} are allowed",
            parsed.aliases
        ),
        None,
    ))
}

fn refusal(error: ServerError) -> Response {
    error::stamp(Response::from_errors(vec![error]))
}

impl Executor for Gateway {
    async fn execute(&self, mut request: Request) -> Response {
        if let Err(refused) = self.prepare(&mut request) {
            return refusal(refused);
        }
        error::stamp(self.schema.execute(request).await)
    }

    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        if let Err(refused) = self.prepare(&mut request) {
            return stream::once(async move { refusal(refused) }).boxed();
        }
        self.schema
            .execute_stream_with_session_data(request, session_data.unwrap_or_default())
            .map(error::stamp)
            .boxed()
    }
}

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

use super::cost::{self, Budget};
use super::documents::{Parsed, ParsedDocuments};
use super::{compact, error, AppSchema};
use crate::config::Limits;
use crate::error::ErrorCode;

#[derive(Clone)]
pub struct Gateway {
    schema: AppSchema,
    documents: Arc<ParsedDocuments>,
    max_aliases: usize,
    budget: Budget,
    max_response_bytes: usize,
}

impl Gateway {
    pub fn new(schema: AppSchema, limits: &Limits) -> Self {
        Gateway {
            schema,
            documents: Default::default(),
            max_aliases: limits.max_aliases,
            budget: Budget {
                max_depth: limits.max_query_depth,
                max_cost: limits.max_query_complexity as u64,
            },
            max_response_bytes: limits.max_response_bytes,
        }
    }

    /// The type of the operation `request` would run, if its document
    /// parses and names it unambiguously (parsed once: the cache keeps it).
    pub fn operation_type(&self, request: &Request) -> Option<OperationType> {
        let parsed = self.documents.get(&request.query)?;
        let operations = &parsed.document.operations;
        let selected = match request.operation_name.as_deref() {
            Some(name) => operations
                .iter()
                .find(|(n, _)| n.map(|n| n.as_str()) == Some(name)),
            None => {
                let mut all = operations.iter();
                let first = all.next();
                if all.next().is_some() {
                    return None;
                }
                first
            }
        };
        selected.map(|(_, op)| op.node.ty)
    }

    /// Gives the request its parsed document, or says why it is refused.
    /// A document that does not parse is left to the executor, which
    /// reports the syntax error as usual.
    fn prepare(&self, request: &mut Request) -> Result<(), ServerError> {
        let Some(parsed) = self.documents.get(&request.query) else {
            return Ok(());
        };
        refuse_aliases(&parsed, self.max_aliases)?;
        cost::check(&parsed.document, &request.variables, self.budget)?;
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

/// The answer, or a refusal in its place when its JSON would be larger
/// than `max` bytes. The cost check keeps answers small; this is the
/// bound that holds whatever the data (long bodies on full pages).
fn within_size(response: Response, max: usize) -> Response {
    let size = json_size(&response.data, max);
    if size <= max {
        return response;
    }
    let mut error = ServerError::new(
        format!(
            "the answer would be larger than {max} bytes (MAX_RESPONSE_BYTES); \
             ask for smaller pages (first/last) or fewer fields"
        ),
        None,
    );
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", ErrorCode::BadUserInput.as_str());
    Response::from_errors(vec![error])
}

/// About how many bytes `value` takes as JSON (escapes aside), counting no
/// further than just past `limit`.
fn json_size(value: &async_graphql::Value, limit: usize) -> usize {
    use async_graphql::Value;
    match value {
        Value::Null => 4,
        Value::Boolean(_) => 5,
        Value::Number(_) => 20,
        Value::String(s) => s.len() + 2,
        Value::Enum(e) => e.len() + 2,
        Value::Binary(b) => b.len() * 4 / 3 + 4,
        Value::List(items) => {
            let mut size = 2;
            for item in items {
                size += json_size(item, limit) + 1;
                if size > limit {
                    break;
                }
            }
            size
        }
        Value::Object(fields) => {
            let mut size = 2;
            for (name, item) in fields {
                size += name.len() + 4 + json_size(item, limit);
                if size > limit {
                    break;
                }
            }
            size
        }
    }
}

impl Executor for Gateway {
    async fn execute(&self, mut request: Request) -> Response {
        if let Err(refused) = self.prepare(&mut request) {
            return refusal(refused);
        }
        within_size(
            error::stamp(self.schema.execute(request).await),
            self.max_response_bytes,
        )
    }

    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        if let Err(refused) = self.prepare(&mut request) {
            return stream::once(async move { refusal(refused) }).boxed();
        }
        let max = self.max_response_bytes;
        self.schema
            .execute_stream_with_session_data(request, session_data.unwrap_or_default())
            .map(move |response| within_size(error::stamp(response), max))
            .boxed()
    }
}

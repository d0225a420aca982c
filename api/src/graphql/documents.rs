//! Parsed documents of recent HTTP operations, keyed by their text.
//!
//! Clients send the same few documents over and over with different
//! variables; parsing one took about a tenth of the server's CPU under chat
//! load, more than validating and executing it. A cached document is cloned
//! (names are shared, so that is mostly vector copies) and handed to the
//! executor, which still validates it against this request's variables.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::parser::parse_query;
use async_graphql::parser::types::ExecutableDocument;

/// Longer documents are parsed every time: the cache is for the short
/// operations clients repeat, and must not hold large texts.
const MAX_CACHED_QUERY_BYTES: usize = 4 * 1024;

pub struct ParsedDocuments {
    documents: Mutex<HashMap<Box<str>, Arc<ExecutableDocument>>>,
    capacity: usize,
}

impl Default for ParsedDocuments {
    fn default() -> Self {
        ParsedDocuments::with_capacity(256)
    }
}

impl ParsedDocuments {
    /// At most `capacity` documents, so at most `capacity` × 4 KiB of text.
    pub fn with_capacity(capacity: usize) -> Self {
        ParsedDocuments {
            documents: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Gives the request its parsed document when its text was seen before
    /// (or parses it now and keeps it). A document that does not parse is
    /// left for the executor, which reports the error as usual.
    pub fn attach(&self, request: &mut async_graphql::Request) {
        let query = request.query.as_str();
        if query.len() > MAX_CACHED_QUERY_BYTES {
            return;
        }
        let cached = self.table().get(query).cloned();
        let document = match cached {
            Some(document) => document,
            None => {
                let Ok(parsed) = parse_query(query) else {
                    return;
                };
                let parsed = Arc::new(parsed);
                let mut table = self.table();
                // Full: start over rather than track recency. Clients repeat
                // a handful of documents, which come back at once; a flood of
                // distinct ones costs only the parsing it would cost anyway.
                if table.len() >= self.capacity {
                    table.clear();
                }
                table.insert(query.into(), parsed.clone());
                parsed
            }
        };
        request.set_parsed_query(ExecutableDocument::clone(&document));
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<ExecutableDocument>>> {
        // A map of immutable entries is consistent after any panic.
        self.documents
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> async_graphql::Request {
        async_graphql::Request::new(query)
    }

    #[test]
    fn a_repeated_document_is_parsed_once_and_given_to_each_request() {
        let documents = ParsedDocuments::default();
        let text = "mutation($s: ID!) { endSession(sessionId: $s) { id } }";
        for _ in 0..3 {
            let mut r = request(text);
            documents.attach(&mut r);
            // `parsed_query` parses the text only when nothing is attached;
            // with the text spoiled, only an attached document comes back.
            r.query = "mutation { spoiled(".to_owned();
            let attached = r.parsed_query().expect("attached").clone();
            assert_eq!(
                format!("{attached:?}"),
                format!("{:?}", parse_query(text).unwrap())
            );
        }
        assert_eq!(documents.len(), 1);
    }

    #[test]
    fn documents_that_do_not_parse_are_left_to_the_executor() {
        let documents = ParsedDocuments::default();
        let mut r = request("mutation { endSession(");
        documents.attach(&mut r);
        assert_eq!(documents.len(), 0);
        // Parsing again, as the executor will, gives the usual error.
        assert!(r.parsed_query().is_err());
    }

    #[test]
    fn long_documents_are_not_kept() {
        let documents = ParsedDocuments::default();
        let long = format!("{{ me {{ __typename }} }} # {}", "x".repeat(5000));
        documents.attach(&mut request(&long));
        assert_eq!(documents.len(), 0);
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let documents = ParsedDocuments::with_capacity(4);
        for i in 0..10 {
            documents.attach(&mut request(&format!("{{ a{i}: me {{ __typename }} }}")));
            assert!(documents.len() <= 4);
        }
    }
}

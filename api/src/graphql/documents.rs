//! Parsed documents of recent operations, keyed by their text.
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

use super::limits::count_aliases;

/// Longer documents are parsed every time: the cache is for the short
/// operations clients repeat, and must not hold large texts.
const MAX_CACHED_QUERY_BYTES: usize = 4 * 1024;

/// A parsed document and what the gateway checks of it.
pub struct Parsed {
    pub document: ExecutableDocument,
    pub aliases: usize,
}

impl Parsed {
    fn new(document: ExecutableDocument) -> Self {
        Parsed {
            aliases: count_aliases(&document),
            document,
        }
    }
}

type Table = HashMap<Box<str>, Arc<Parsed>>;

pub struct ParsedDocuments {
    documents: Mutex<Table>,
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

    /// `query` parsed: taken from the cache when its text was seen before,
    /// else parsed now (and kept, if short). `None` if it does not parse:
    /// the executor reports that error as usual.
    pub fn get(&self, query: &str) -> Option<Arc<Parsed>> {
        if query.len() > MAX_CACHED_QUERY_BYTES {
            return parse_query(query).ok().map(Parsed::new).map(Arc::new);
        }
        if let Some(parsed) = self.table().get(query) {
            return Some(parsed.clone());
        }
        let parsed = Arc::new(Parsed::new(parse_query(query).ok()?));
        let mut table = self.table();
        // Full: start over rather than track recency. Clients repeat a
        // handful of documents, which come back at once; a flood of
        // distinct ones costs only the parsing it would cost anyway.
        if table.len() >= self.capacity {
            table.clear();
        }
        table.insert(query.into(), parsed.clone());
        Some(parsed)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
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

    #[test]
    fn a_repeated_document_is_parsed_once_and_shared() {
        let documents = ParsedDocuments::default();
        let text = "mutation($s: ID!) { endSession(sessionId: $s) { id } }";
        let first = documents.get(text).expect("parses");
        for _ in 0..3 {
            let again = documents.get(text).expect("parses");
            assert!(Arc::ptr_eq(&first, &again), "parsed again");
        }
        assert_eq!(
            format!("{:?}", first.document),
            format!("{:?}", parse_query(text).unwrap())
        );
        assert_eq!(documents.len(), 1);
    }

    #[test]
    fn aliases_are_counted_once_parsed() {
        let documents = ParsedDocuments::default();
        let parsed = documents.get("{ a: me { id } b: me { id } }").unwrap();
        assert_eq!(parsed.aliases, 2);
    }

    #[test]
    fn documents_that_do_not_parse_are_left_to_the_executor() {
        let documents = ParsedDocuments::default();
        assert!(documents.get("mutation { endSession(").is_none());
        assert_eq!(documents.len(), 0);
    }

    #[test]
    fn long_documents_are_parsed_but_not_kept() {
        let documents = ParsedDocuments::default();
        let long = format!("{{ me {{ __typename }} }} # {}", "x".repeat(5000));
        assert!(documents.get(&long).is_some());
        assert_eq!(documents.len(), 0);
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let documents = ParsedDocuments::with_capacity(4);
        for i in 0..10 {
            documents.get(&format!("{{ a{i}: me {{ __typename }} }}"));
            assert!(documents.len() <= 4);
        }
    }
}

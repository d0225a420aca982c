//! The agent's workspace: notes, canned responses, customer context,
//! workload and search, with their statement count.

mod canned;
mod context;
mod notes;
pub(crate) mod search;

use serde_json::{json, Value};
use testkit::ws;

/// sessionEvents with the note as well as messages, as a console asks.
pub const FEED: &str =
    "subscription($s: ID!, $a: Int) { sessionEvents(sessionId: $s, afterSeq: $a) {
    __typename
    ... on MessagePosted { message { seq body } }
    ... on NoteAdded { note { id sessionId authorId body } }
    ... on CaughtUp { seq }
} }";

pub async fn follow(client: &mut ws::Client, id: &str, session: &str, after_seq: i64) {
    client
        .subscribe(id, FEED, json!({ "s": session, "a": after_seq }))
        .await;
}

/// The events up to and including the first of `typename`.
pub async fn events_until(client: &mut ws::Client, typename: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let ev = client.next().await;
        assert!(ev.get("errors").is_none(), "unexpected frame {ev}");
        let event = ev["data"]["sessionEvents"].clone();
        let done = event["__typename"] == typename;
        seen.push(event);
        if done {
            return seen;
        }
    }
}

pub fn typenames(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["__typename"].as_str().unwrap_or_default())
        .collect()
}

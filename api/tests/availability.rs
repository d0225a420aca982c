//! A document that would cost the server far more than it costs to send is
//! refused at once. Against the real binary: a server that starts
//! expanding such a document never yields again, so a test sharing its
//! runtime could not even time out; a child process is killed instead.

use std::time::Duration;

use serde_json::{json, Value};
use testkit::server::{spawn_process, Options};
use testkit::tokens;
use testkit::ws::{self, Frame};

/// How long a refusal may take before the server counts as stuck. It bounds
/// a hang; it is not a performance figure.
const ANSWER_BOUND: Duration = Duration::from_secs(15);

/// `query{...F0} fragment F0 on Query{...F1 ...F1} … fragment Fn on Query{__typename}`:
/// 2^levels fields once expanded, in about 30 bytes a level.
fn fragment_bomb(operation: &str, root: &str, levels: usize) -> String {
    let mut text = format!("{operation}{{...F0}}");
    for i in 0..levels {
        text.push_str(&format!(
            " fragment F{i} on {root}{{...F{} ...F{}}}",
            i + 1,
            i + 1
        ));
    }
    text.push_str(&format!(" fragment F{levels} on {root}{{__typename}}"));
    text
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_at_once_over_http_and_websocket() {
    let server = spawn_process(env!("CARGO_BIN_EXE_switchboard"), Options::default()).await;
    let http = reqwest::Client::builder()
        .timeout(ANSWER_BOUND)
        .build()
        .unwrap();
    // 30 levels: async-graphql itself refuses spreads nested past 32, but
    // below that it expanded all 2^30 (about a kilobyte, no token).
    let bomb = fragment_bomb("query", "Query", 30);
    assert!(bomb.len() < 2048, "about 1 KB");
    let answer: Value = http
        .post(format!("{}/graphql", server.url))
        .json(&json!({ "query": bomb }))
        .send()
        .await
        .expect("the server answers a fragment bomb instead of expanding it")
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{answer}"
    );
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("too complex"),
        "{answer}"
    );
    let health = http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("still healthy");
    assert_eq!(health.status(), 200);

    let mut ws = ws::Client::connect(server.addr, Some(&tokens::customer("bomber"))).await;
    ws.subscribe(
        "b",
        &fragment_bomb("subscription", "Subscription", 30),
        json!({}),
    )
    .await;
    let refused = match ws.frame(ANSWER_BOUND).await {
        Frame::Next(payload) => payload["errors"][0]["extensions"]["code"].clone(),
        Frame::Error(frame) => frame["payload"][0]["extensions"]["code"].clone(),
        other => panic!("a subscribed fragment bomb was not refused at once: {other:?}"),
    };
    assert_eq!(refused, "BAD_USER_INPUT");
    assert!(server.panics().is_empty(), "{:?}", server.panics());
}

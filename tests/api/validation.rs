use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::json;
use switchboard::auth::{JwtKeys, Role};
use switchboard::config::JwtSecret;

use testkit::{
    graphql::code_of,
    server::{spawn, Options},
    tokens,
};

#[tokio::test]
async fn bad_input_is_refused_with_bad_user_input_and_stores_nothing() {
    let app = spawn(Options::default()).await;
    let cust = tokens::customer("ivy");
    let sid = app.start_session(&cust).await;

    for (what, body) in [
        ("empty", String::new()),
        ("blank", " \n\t ".to_owned()),
        ("oversize", "x".repeat(4001)),
    ] {
        let r = app.send(&cust, &sid, &body, &format!("k-{what}")).await;
        assert_eq!(code_of(&r), "BAD_USER_INPUT", "{what}");
    }
    let ok = app.send(&cust, &sid, &"y".repeat(4000), "k-max").await;
    assert_eq!(
        ok["data"]["sendMessage"]["seq"], 1,
        "4,000 characters is within the limit"
    );
    assert_eq!(
        code_of(&app.send(&cust, &sid, "hi", "").await),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        code_of(&app.send(&cust, "not-a-uuid", "hi", "k").await),
        "BAD_USER_INPUT"
    );

    let mark = "mutation($s: ID!, $n: Int!) { markRead(sessionId: $s, seq: $n) { id } }";
    assert_eq!(
        app.error_code(Some(&cust), mark, json!({"s": sid, "n": -1}))
            .await,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        app.error_code(Some(&cust), mark, json!({"s": sid, "n": 99}))
            .await,
        "BAD_USER_INPUT"
    );
    let page = "query($s: ID!, $f: Int, $a: String) { session(id: $s) { messages(first: $f, after: $a) { nodes { seq } } } }";
    assert_eq!(
        app.error_code(Some(&cust), page, json!({"s": sid, "f": 100000}))
            .await,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        app.error_code(Some(&cust), page, json!({"s": sid, "a": "nonsense"}))
            .await,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        app.error_code(
            Some(&cust),
            "{ mySessions(after: \"zzz\") { nodes { id } } }",
            json!({})
        )
        .await,
        "BAD_USER_INPUT"
    );
    let long_subject = format!(
        "mutation {{ startSession(input: {{subject: \"{}\"}}) {{ id }} }}",
        "s".repeat(300)
    );
    let other = tokens::customer("ivy-2");
    assert_eq!(
        app.error_code(Some(&other), &long_subject, json!({})).await,
        "BAD_USER_INPUT"
    );

    // Resuming after a seq that does not exist is refused, not silently
    // waited for (it would skip messages and corrupt delivery receipts).
    let mut ws = app.ws(Some(&cust)).await;
    ws.session_events("s", &sid, 1_000_000).await;
    assert_eq!(ws.error_code_for("s").await, "BAD_USER_INPUT");
    // Control characters cannot be stored.
    assert_eq!(
        code_of(&app.send(&cust, &sid, "nul \u{0} byte", "k-nul").await),
        "BAD_USER_INPUT"
    );
    let admin = tokens::admin();
    assert_eq!(
        app.error_code(
            Some(&admin),
            "mutation($a: ID!) { setAgentCapacity(agentId: $a, capacity: 2) { id } }",
            json!({"a": "x\u{0}"})
        )
        .await,
        "BAD_USER_INPUT"
    );

    // Only the one valid message was stored.
    assert_eq!(app.all_seqs(&cust, &sid).await, vec![1]);
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let app = spawn(&[("MAX_MESSAGE_CHARS", "10")]).await;
    let cust = tokens::customer("jo");
    let sid = app.start_session(&cust).await;
    assert_eq!(
        code_of(&app.send(&cust, &sid, "eleven char", "a").await),
        "BAD_USER_INPUT"
    );
    assert!(app
        .send(&cust, &sid, "ten chars!", "b")
        .await
        .get("errors")
        .is_none());
}

#[tokio::test]
async fn transcript_pages_walk_both_ways() {
    let app = spawn(Options::default()).await;
    let cust = tokens::customer("kim");
    let sid = app.start_session(&cust).await;
    for i in 1..=7 {
        app.send(&cust, &sid, &format!("m{i}"), &format!("k{i}"))
            .await;
    }
    let q = "query($s: ID!, $f: Int, $a: String, $l: Int, $b: String) { session(id: $s) {
        messages(first: $f, after: $a, last: $l, before: $b) { edges { cursor node { seq } } pageInfo { hasPreviousPage hasNextPage startCursor endCursor } } } }";
    let seqs = |v: &serde_json::Value| -> Vec<i64> {
        v["session"]["messages"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["seq"].as_i64().unwrap())
            .collect()
    };
    let p = app.ok(&cust, q, json!({"s": sid, "f": 3})).await;
    assert_eq!(seqs(&p), vec![1, 2, 3]);
    assert_eq!(p["session"]["messages"]["pageInfo"]["hasNextPage"], true);
    assert_eq!(p["session"]["messages"]["pageInfo"]["endCursor"], "3");
    let p = app.ok(&cust, q, json!({"s": sid, "f": 3, "a": "6"})).await;
    assert_eq!(seqs(&p), vec![7]);
    assert_eq!(p["session"]["messages"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(
        p["session"]["messages"]["pageInfo"]["hasPreviousPage"],
        true
    );
    let p = app.ok(&cust, q, json!({"s": sid, "l": 2})).await;
    assert_eq!(seqs(&p), vec![6, 7]);
    assert_eq!(
        p["session"]["messages"]["pageInfo"]["hasPreviousPage"],
        true
    );
    let p = app.ok(&cust, q, json!({"s": sid, "l": 2, "b": "3"})).await;
    assert_eq!(seqs(&p), vec![1, 2]);
    assert_eq!(
        p["session"]["messages"]["pageInfo"]["hasPreviousPage"],
        false
    );
    assert_eq!(p["session"]["messages"]["pageInfo"]["hasNextPage"], true);
}

// The two tests below pin bugs that fuzz/run found: each input reached
// Postgres unchecked and came back as INTERNAL.

#[tokio::test]
async fn control_characters_in_a_token_name_are_dropped_not_an_internal_error() {
    let app = spawn(Options::default()).await;
    let keys = JwtKeys::new(&JwtSecret::new(tokens::SECRET.as_bytes().to_vec()));
    let agent = keys
        .issue(Role::Agent, "nul-name", Some("Ann\u{0}\u{7} Smith"), 600)
        .expect("token");
    let data = app
        .ok(&agent, "mutation { startShift { id name } }", json!({}))
        .await;
    assert_eq!(data["startShift"]["name"], "Ann Smith");
}

#[tokio::test]
async fn a_forged_list_cursor_outside_the_calendar_is_bad_user_input() {
    let app = spawn(Options::default()).await;
    let cust = tokens::customer("cursor-forger");
    app.start_session(&cust).await;
    let nil = "00000000-0000-0000-0000-000000000000";
    // Before 4713 BC, where Postgres's timestamps end, and before year 1.
    for micros in ["-210866803200000001", "-62167219200000001"] {
        let forged = URL_SAFE_NO_PAD.encode(format!("{micros}|{nil}"));
        let code = app
            .error_code(
                Some(&cust),
                "query($a: String) { mySessions(after: $a) { nodes { id } } }",
                json!({ "a": forged }),
            )
            .await;
        assert_eq!(code, "BAD_USER_INPUT", "{micros}");
    }
}

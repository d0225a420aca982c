use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::json;
use switchboard::auth::{JwtKeys, Role};
use switchboard::config::JwtSecret;

use testkit::{
    graphql::code_of,
    server::{spawn, Options},
    tokens,
};

const ME: &str = "{ me { id role } }";

fn unsigned_token(alg: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
    let exp = chrono::Utc::now().timestamp() + 600;
    let body = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"mallory","role":"admin","exp":{exp}}}"#));
    format!("{header}.{body}.")
}

#[tokio::test]
async fn every_kind_of_bad_token_is_unauthenticated() {
    let app = spawn(Options::default()).await;
    let other_keys = JwtKeys::new(&JwtSecret::new(b"some-other-secret-entirely".to_vec()));
    let keys = JwtKeys::new(&JwtSecret::new(tokens::SECRET.as_bytes().to_vec()));
    let cases = [
        ("no token", None),
        (
            "bad signature",
            Some(other_keys.issue(Role::Admin, "mallory", None, 600).unwrap()),
        ),
        (
            "expired",
            Some(keys.issue(Role::Admin, "root", None, -120).unwrap()),
        ),
        ("alg none", Some(unsigned_token("none"))),
        ("alg HS512 unsigned", Some(unsigned_token("HS512"))),
        ("garbage", Some("not.a.token".to_owned())),
    ];
    for (what, token) in cases {
        let body = app.gql(token.as_deref(), ME, json!({})).await;
        assert_eq!(code_of(&body), "UNAUTHENTICATED", "{what}: {body}");
        assert!(
            body["data"].is_null() || body["data"]["me"].is_null(),
            "{what}: {body}"
        );
    }
    // A header that is not a bearer token is refused too.
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("Authorization", "Basic cm9vdDpyb290")
        .json(&json!({ "query": ME }))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(code_of(&body), "UNAUTHENTICATED");
    // A valid token works.
    let ok = app.ok(&tokens::customer("zoe"), ME, json!({})).await;
    assert_eq!(ok["me"], json!({"id": "zoe", "role": "CUSTOMER"}));
}

#[tokio::test]
async fn websocket_subscriptions_need_a_valid_token_from_connection_init() {
    let app = spawn(Options::default()).await;
    let cust = tokens::customer("yan");
    let sid = app.start_session(&cust).await;
    let expired = JwtKeys::new(&JwtSecret::new(tokens::SECRET.as_bytes().to_vec()))
        .issue(Role::Customer, "yan", None, -120)
        .unwrap();
    for token in [None, Some(expired.as_str()), Some("garbage")] {
        let mut ws = app.ws(token).await;
        ws.session_events("s", &sid, 0).await;
        assert_eq!(ws.error_code_for("s").await, "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn roles_and_ownership_are_enforced() {
    let app = spawn(Options::default()).await;
    let alice = tokens::customer("alice");
    let mallory = tokens::customer("mallory");
    let ann = tokens::agent("ann");
    let other_agent = tokens::agent("otto");
    let admin = tokens::admin();
    let sid = app.start_session(&alice).await;
    let vars = json!({ "s": sid });

    // Someone else's session is invisible to a customer...
    let seen = app
        .ok(
            &mallory,
            "query($s: ID!) { session(id: $s) { id } }",
            vars.clone(),
        )
        .await;
    assert!(seen["session"].is_null());
    let mine = app
        .ok(&mallory, "{ mySessions { nodes { id } } }", json!({}))
        .await;
    assert_eq!(mine["mySessions"]["nodes"], json!([]));
    // ...and closed to their writes, reads and subscriptions.
    assert_eq!(
        code_of(&app.send(&mallory, &sid, "hi", "m1").await),
        "FORBIDDEN"
    );
    for op in [
        "mutation($s: ID!) { endSession(sessionId: $s) { id } }",
        "mutation($s: ID!) { markRead(sessionId: $s, seq: 0) { id } }",
        "mutation($s: ID!) { setTyping(sessionId: $s, typing: true) }",
    ] {
        assert_eq!(
            app.error_code(Some(&mallory), op, vars.clone()).await,
            "FORBIDDEN",
            "{op}"
        );
    }
    let mut ws = app.ws(Some(&mallory)).await;
    ws.session_events("s", &sid, 0).await;
    assert_eq!(ws.error_code_for("s").await, "FORBIDDEN");

    // Wrong roles.
    let start = "mutation { startSession(input: {}) { id } }";
    assert_eq!(
        app.error_code(Some(&ann), start, json!({})).await,
        "FORBIDDEN"
    );
    assert_eq!(
        app.error_code(Some(&admin), start, json!({})).await,
        "FORBIDDEN"
    );
    for q in [
        "{ queue { id } }",
        "{ queueStats { waiting } }",
        "{ agents { id } }",
    ] {
        assert_eq!(
            app.error_code(Some(&alice), q, json!({})).await,
            "FORBIDDEN",
            "{q}"
        );
    }
    assert_eq!(
        app.error_code(
            Some(&alice),
            "mutation { startShift { status } }",
            json!({})
        )
        .await,
        "FORBIDDEN"
    );
    assert_eq!(code_of(&app.accept(&alice, &sid).await), "FORBIDDEN");
    let mut ws = app.ws(Some(&alice)).await;
    ws.subscribe(
        "q",
        "subscription { queueEvents { session { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(ws.error_code_for("q").await, "FORBIDDEN");
    ws.subscribe(
        "a",
        "subscription { agentEvents { __typename } }",
        json!({}),
    )
    .await;
    assert_eq!(ws.error_code_for("a").await, "FORBIDDEN");

    // An agent writes only in sessions they hold; admins do not write.
    app.start_shift(&ann).await;
    assert_eq!(
        code_of(&app.send(&ann, &sid, "hi", "a1").await),
        "FORBIDDEN"
    );
    app.accept(&ann, &sid).await;
    assert_eq!(
        code_of(&app.send(&other_agent, &sid, "hi", "o1").await),
        "FORBIDDEN"
    );
    assert_eq!(
        code_of(&app.send(&admin, &sid, "hi", "x1").await),
        "FORBIDDEN"
    );
    // Once taken, another agent no longer sees it; an admin sees everything.
    let seen = app
        .ok(
            &other_agent,
            "query($s: ID!) { session(id: $s) { id } }",
            vars.clone(),
        )
        .await;
    assert!(seen["session"].is_null());
    let seen = app
        .ok(
            &admin,
            "query($s: ID!) { session(id: $s) { id customer { id } } }",
            vars.clone(),
        )
        .await;
    assert_eq!(seen["session"]["customer"]["id"], "alice");
    assert_eq!(
        app.error_code(
            Some(&other_agent),
            "mutation($s: ID!) { endSession(sessionId: $s) { id } }",
            vars.clone()
        )
        .await,
        "FORBIDDEN"
    );
    // The assignment history is for admins only.
    let hist = app
        .gql(
            Some(&ann),
            "query($s: ID!) { session(id: $s) { history { kind } } }",
            vars.clone(),
        )
        .await;
    assert_eq!(code_of(&hist), "FORBIDDEN");

    // Unknown sessions.
    let unknown = json!({ "s": uuid::Uuid::new_v4().to_string() });
    assert!(app
        .ok(
            &alice,
            "query($s: ID!) { session(id: $s) { id } }",
            unknown.clone()
        )
        .await["session"]
        .is_null());
    assert_eq!(
        app.error_code(
            Some(&alice),
            "mutation($s: ID!) { endSession(sessionId: $s) { id } }",
            unknown.clone()
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(
        code_of(&app.accept(&ann, unknown["s"].as_str().unwrap()).await),
        "NOT_FOUND"
    );
}

/// Handing a session on ends the old agent's access to it: live feed and
/// transcript alike. Other agents never follow sessions that are not theirs.
#[tokio::test]
async fn an_agent_loses_a_session_they_handed_on() {
    let app = spawn(Options::default()).await;
    let (a, b, c) = (tokens::agent("a"), tokens::agent("b"), tokens::agent("c"));
    for t in [&a, &b, &c] {
        app.start_shift(t).await;
    }
    let cust = tokens::customer("pat");
    let sid = app.start_session(&cust).await;
    // Agents see the queue, but only the customer, the session's agent and
    // admins follow its feed.
    let mut peek = app.ws(Some(&c)).await;
    peek.session_events("s", &sid, 0).await;
    assert_eq!(peek.error_code_for("s").await, "FORBIDDEN");

    app.accept(&a, &sid).await;
    let mut feed = app.ws(Some(&a)).await;
    feed.session_events("s", &sid, 0).await;
    feed.next_of("sessionEvents", "CaughtUp").await;
    app.ok(
        &a,
        "mutation($s: ID!) { transferSession(sessionId: $s, toAgentId: \"b\") { id } }",
        json!({ "s": sid }),
    )
    .await;
    assert_eq!(feed.error_code_for("s").await, "FORBIDDEN");
    let read = app
        .gql(
            Some(&a),
            "query($s: ID!) { session(id: $s) { messages { nodes { body } } } }",
            json!({ "s": sid }),
        )
        .await;
    assert!(read["data"]["session"].is_null(), "{read}");
    app.send(&b, &sid, "secret", "b1").await;
    // A stale session object (here from the queue feed) no longer opens the transcript.
    let mut queue = app.ws(Some(&c)).await;
    queue
        .subscribe(
            "q",
            "subscription { queueEvents { session { id messages { nodes { body } } } } }",
            json!({}),
        )
        .await;
    let s2 = app.start_session(&tokens::customer("quin")).await;
    app.accept(&b, &s2).await;
    loop {
        let ev = queue.next().await;
        if ev["data"]["queueEvents"]["session"]["id"] == s2.as_str() && ev.get("errors").is_some() {
            assert_eq!(ev["errors"][0]["extensions"]["code"], "FORBIDDEN", "{ev}");
            break;
        }
    }
}

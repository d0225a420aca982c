//! What one client may ask of the server, and the codes refusals carry.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use testkit::{
    graphql::code_of,
    server::{spawn, Options, Server},
    tokens, ws,
};

async fn post_raw(app: &Server, body: String) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn oversized_bodies_batches_and_garbage_are_refused_with_a_code() {
    let app = spawn(&[("MAX_BODY_BYTES", "2048")]).await;
    let big = json!({ "query": format!("{{ me {{ id }} }} # {}", "x".repeat(4096)) }).to_string();
    let (status, body) = post_raw(&app, big).await;
    assert_eq!(status, 413);
    assert_eq!(code_of(&body), "BAD_USER_INPUT");

    let batch = json!([{ "query": "{ me { id } }" }, { "query": "{ me { id } }" }]).to_string();
    let (status, body) = post_raw(&app, batch).await;
    assert_eq!(status, 400);
    assert_eq!(code_of(&body), "BAD_USER_INPUT");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("batched"));

    let (status, body) = post_raw(&app, "not json".into()).await;
    assert_eq!(status, 400);
    assert_eq!(code_of(&body), "BAD_USER_INPUT");

    // GET never runs an operation.
    let get = app
        .http
        .get(app.url("/graphql?query=mutation{startSession(input:{}){id}}"))
        .send()
        .await
        .unwrap();
    assert!(
        get.status().is_client_error(),
        "GET must not execute: {}",
        get.status()
    );
}

#[tokio::test]
async fn syntax_validation_depth_and_complexity_errors_carry_a_code() {
    let app = spawn(&[("MAX_QUERY_DEPTH", "4"), ("MAX_QUERY_COMPLEXITY", "20")]).await;
    let cust = tokens::customer("lee");
    for query in [
        "{ me { id ",                            // syntax
        "{ me { nonsense } }",                   // validation
        "{ mySessions { edges { node { messages { nodes { id } } } } } }", // depth
        "{ a: me { id } b: me { id } c: me { id } d: me { id } e: me { id } f: me { id } g: me { id } h: me { id } i: me { id } j: me { id } k: me { id } }", // complexity
    ] {
        let body = app.gql(Some(&cust), query, json!({})).await;
        assert_eq!(code_of(&body), "BAD_USER_INPUT", "{query}: {body}");
    }
}

#[tokio::test]
async fn introspection_can_be_switched_off_and_takes_suggestions_with_it() {
    let app = spawn(&[("INTROSPECTION", "off")]).await;
    let cust = tokens::customer("max");
    let body = app
        .gql(
            Some(&cust),
            "{ __schema { queryType { name } } }",
            json!({}),
        )
        .await;
    // Nothing of the schema is revealed.
    assert!(body["data"]["__schema"].is_null(), "{body}");
    let types = app
        .gql(
            Some(&cust),
            "{ __type(name: \"ChatSession\") { fields { name } } }",
            json!({}),
        )
        .await;
    assert!(types["data"]["__type"].is_null(), "{types}");
    let typo = app
        .gql(Some(&cust), "{ mySesions { nodes { id } } }", json!({}))
        .await;
    assert!(!typo.to_string().contains("Did you mean"), "{typo}");
    // On by default, with suggestions.
    let open = spawn(Options::default()).await;
    let typo = open
        .gql(Some(&cust), "{ mySesions { nodes { id } } }", json!({}))
        .await;
    assert!(typo.to_string().contains("Did you mean"), "{typo}");
}

#[tokio::test]
async fn oversized_websocket_messages_close_the_connection() {
    let app = spawn(&[("WS_MAX_MESSAGE_BYTES", "4096")]).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(ws::request(app.addr))
        .await
        .unwrap();
    let huge = json!({ "type": "connection_init", "payload": { "pad": "x".repeat(64 * 1024) } })
        .to_string();
    let _ = socket.send(WsMessage::Text(huge.into())).await;
    let close = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(WsMessage::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(WsMessage::Text(t))) if t.contains("connection_ack") => {
                    panic!("a 64 KiB message was accepted past a 4 KiB limit")
                }
                None | Some(Err(_)) => panic!("the connection ended without a close frame"),
                _ => continue,
            }
        }
    })
    .await
    .expect("the server neither closed nor answered");
    assert_eq!(close, Some(1009), "closed as 'message too big'");
}

#[tokio::test]
async fn a_sender_over_the_message_rate_is_rate_limited() {
    let app = spawn(&[("MESSAGE_RATE_PER_SEC", "0.5"), ("MESSAGE_BURST", "3")]).await;
    let cust = tokens::customer("fast");
    let sid = app.start_session(&cust).await;
    for i in 0..3 {
        let ok = app.send(&cust, &sid, "hi", &format!("k{i}")).await;
        assert!(ok.get("errors").is_none(), "{ok}");
    }
    let limited = app.send(&cust, &sid, "hi", "k3").await;
    assert_eq!(code_of(&limited), "RATE_LIMITED");
    // Another sender is not affected.
    let other = tokens::customer("slow");
    let sid2 = app.start_session(&other).await;
    assert!(app
        .send(&other, &sid2, "hi", "k0")
        .await
        .get("errors")
        .is_none());
    assert_eq!(
        app.all_seqs(&cust, &sid).await,
        vec![1, 2, 3],
        "the refused message was not stored"
    );
}

/// Only the server's own origin and configured ones may use the API from a
/// browser; a foreign page can neither open a WebSocket nor POST.
#[tokio::test]
async fn foreign_browser_origins_are_refused_and_allowed_ones_get_cors() {
    let app = spawn(&[("ALLOWED_ORIGINS", "https://shop.example.com")]).await;
    let ws = |origin: &'static str| {
        let addr = app.addr;
        async move {
            let mut request = format!("ws://{addr}/graphql")
                .into_client_request()
                .unwrap();
            let headers = request.headers_mut();
            headers.insert(
                "Sec-WebSocket-Protocol",
                "graphql-transport-ws".parse().unwrap(),
            );
            headers.insert("Origin", origin.parse().unwrap());
            tokio_tungstenite::connect_async(request).await
        }
    };
    assert!(
        ws("https://evil.example").await.is_err(),
        "a foreign page opened a WebSocket"
    );
    assert!(ws("https://shop.example.com").await.is_ok());
    let own: &'static str = Box::leak(format!("http://{}", app.addr).into_boxed_str());
    assert!(
        ws(own).await.is_ok(),
        "the server's own page (GraphiQL) must work"
    );

    let post = |origin: &str| {
        app.http
            .post(app.url("/graphql"))
            .header("Origin", origin)
            .json(&json!({ "query": "{ __typename }" }))
            .send()
    };
    let refused = post("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(code_of(&refused.json().await.unwrap()), "FORBIDDEN");
    let allowed = post("https://shop.example.com").await.unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );

    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("Origin", "https://shop.example.com")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert!(preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    // Clients that are not browser pages send no Origin and are unaffected.
    assert!(app.gql(None, "{ __typename }", json!({})).await["data"]["__typename"].is_string());
}

/// One connection holds a bounded number of subscriptions.
#[tokio::test]
async fn subscriptions_per_connection_are_capped() {
    let app = spawn(&[("WS_MAX_SUBSCRIPTIONS", "3")]).await;
    let cust = tokens::customer("sam");
    let sid = app.start_session(&cust).await;
    let mut ws = app.ws(Some(&cust)).await;
    for id in ["s1", "s2", "s3"] {
        ws.session_events(id, &sid, 0).await;
        ws.next_of("sessionEvents", "CaughtUp").await;
    }
    ws.session_events("s4", &sid, 0).await;
    assert_eq!(ws.error_code_for("s4").await, "RATE_LIMITED");
    // Another connection has its own budget.
    let mut other = app.ws(Some(&cust)).await;
    other.session_events("o1", &sid, 0).await;
    other.next_of("sessionEvents", "CaughtUp").await;
    // Ending one frees its place.
    ws.complete("s1").await;
    let mut freed = false;
    for attempt in 0..20 {
        let id = format!("again{attempt}");
        ws.session_events(&id, &sid, 0).await;
        let frame = ws.next().await;
        if frame["data"]["sessionEvents"]["__typename"] == "MessagePosted"
            || frame["data"]["sessionEvents"]["__typename"] == "CaughtUp"
        {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(freed, "completing a subscription did not free its place");
}

#[tokio::test]
async fn documents_with_too_many_aliases_are_refused_before_running() {
    let app = spawn(&[("MAX_ALIASES", "3")]).await;
    let cust = tokens::customer("ali");
    let allowed = app
        .gql(
            Some(&cust),
            "{ a: me { id } b: me { id } c: me { id } }",
            json!({}),
        )
        .await;
    assert!(allowed.get("errors").is_none(), "{allowed}");
    let refused = app
        .gql(
            Some(&cust),
            "{ a: me { id } b: me { id } c: me { id } d: me { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code_of(&refused), "BAD_USER_INPUT", "{refused}");
    assert!(refused["data"].is_null(), "{refused}");

    // Subscriptions go through the same check, and through the same coding
    // of errors async-graphql raises itself (here: validation).
    let mut ws = app.ws(Some(&cust)).await;
    ws.subscribe(
        "many",
        "subscription { a: sessionEvents(sessionId: \"x\") { __typename } \
         b: sessionEvents(sessionId: \"x\") { __typename } \
         c: sessionEvents(sessionId: \"x\") { __typename } \
         d: sessionEvents(sessionId: \"x\") { __typename } }",
        json!({}),
    )
    .await;
    assert_eq!(ws.error_code_for("many").await, "BAD_USER_INPUT");
    ws.subscribe("unknown", "subscription { noSuchField }", json!({}))
        .await;
    assert_eq!(ws.error_code_for("unknown").await, "BAD_USER_INPUT");
}

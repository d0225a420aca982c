//! What an attacker or a careless client can do to a server on the
//! internet: documents that explode, answers that balloon, connections that
//! hold descriptors, forged identities and addresses, hostile text.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use switchboard::auth::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use testkit::{
    graphql::code_of,
    server::{spawn, Options, Server},
    tokens,
    ws::subscription_error_code,
};

/// How long a refusal may take before the test calls the server stuck.
/// Generous: it bounds a hang, it is not a performance figure.
const ANSWER_BOUND: Duration = Duration::from_secs(15);

#[tokio::test]
async fn aliases_of_large_pages_are_refused_and_answers_are_bounded() {
    let app = spawn(&[("MAX_RESPONSE_BYTES", "4096")]).await;
    let customer = tokens::customer("balloon");
    let alias = |i: usize| {
        format!("a{i}: mySessions(first: 100) {{ nodes {{ messages(first: 500) {{ nodes {{ body }} }} }} }}")
    };
    let balloon = format!("{{ {} }}", (0..30).map(alias).collect::<Vec<_>>().join(" "));
    let answer = app.gql(Some(&customer), &balloon, json!({})).await;
    assert_eq!(code_of(&answer), "BAD_USER_INPUT", "{answer}");

    // Page sizes given as variables count too.
    let by_variable = "query($n: Int) { mySessions(first: 100) { nodes { messages(first: $n) { nodes { body } } } } }";
    let answer = app
        .gql(Some(&customer), by_variable, json!({ "n": 500 }))
        .await;
    assert_eq!(code_of(&answer), "BAD_USER_INPUT", "{answer}");

    // A cheap query whose data is large hits MAX_RESPONSE_BYTES.
    let agent = tokens::agent("ann");
    let session = app.active_session(&customer, &agent).await;
    for i in 0..3 {
        let sent = app
            .send(&customer, &session, &"x".repeat(2000), &format!("big-{i}"))
            .await;
        assert!(sent.get("errors").is_none(), "{sent}");
    }
    let transcript =
        "query($s: ID!) { session(id: $s) { messages(first: 10) { nodes { body } } } }";
    let answer = app
        .gql(Some(&customer), transcript, json!({ "s": session }))
        .await;
    assert_eq!(code_of(&answer), "BAD_USER_INPUT", "{answer}");
    assert!(answer["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("MAX_RESPONSE_BYTES"));
    assert!(answer["data"].is_null(), "no partial answer: {answer}");
    let small = app
        .gql(
            Some(&customer),
            "query($s: ID!) { session(id: $s) { messages(first: 1) { nodes { seq } } } }",
            json!({ "s": session }),
        )
        .await;
    assert!(small.get("errors").is_none(), "{small}");
}

/// Reads until the peer closes the connection; false if it stays open.
async fn closed_within(tcp: &mut TcpStream, bound: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let reading = async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(bound, reading).await.is_ok()
}

#[tokio::test]
async fn connections_that_send_no_request_are_closed() {
    let app = spawn(&[("HTTP_HEADER_TIMEOUT_SECS", "1")]).await;
    // Half a request head, then nothing.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // An idle keep-alive connection after one answered request.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 64];
    let n = idle.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));
    // Nothing at all.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    for (what, tcp) in [
        ("slow", &mut slow),
        ("idle", &mut idle),
        ("silent", &mut silent),
    ] {
        assert!(
            closed_within(tcp, ANSWER_BOUND).await,
            "the {what} connection was kept open"
        );
    }
}

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_connections_of_any_kind() {
    let app = spawn(&[("IP_MAX_CONNECTIONS", "3")]).await;
    let customer = tokens::customer("hog");
    // Two plain HTTP connections and one WebSocket fill the address's share.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let ws = app.ws(Some(&customer)).await;
    let mut extra = TcpStream::connect(app.addr).await.unwrap();
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(ANSWER_BOUND, extra.read_to_string(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("RATE_LIMITED"), "{answer}");
    // Closing one frees its place.
    drop(held.pop());
    drop(ws);
    let mut answered = false;
    for _ in 0..50 {
        if reqwest::get(app.url("/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "a freed place was not given back");
}

#[tokio::test]
async fn every_subscription_counts_against_the_budget_and_has_one_root_field() {
    let app = spawn(&[("WS_MAX_SUBSCRIPTIONS", "2")]).await;
    let agent = tokens::agent("watcher");
    let mut ws = app.ws(Some(&agent)).await;
    let queue = "subscription { queueEvents { __typename } }";
    for id in ["q1", "q2", "q3"] {
        ws.subscribe(id, queue, json!({})).await;
    }
    // The engine starts them in no set order: whichever comes third is
    // refused, and by then the other two hold their places.
    let refusal = loop {
        let frame = ws.next().await;
        if frame.get("errors").is_some() || frame["type"] == "error" {
            break frame;
        }
    };
    assert_eq!(subscription_error_code(&refusal), "RATE_LIMITED");
    let gauge = app.counter("switchboard_subscriptions").await;
    assert_eq!(gauge, 2, "queueEvents subscriptions are counted");

    let mut ws = app.ws(Some(&agent)).await;
    ws.subscribe(
        "two",
        "subscription { agentEvents { __typename } queueEvents { __typename } }",
        json!({}),
    )
    .await;
    assert_eq!(ws.error_code_for("two").await, "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_customer_and_an_agent_sharing_a_sub_are_two_senders() {
    let app = spawn(Options::default()).await;
    let customer = tokens::token(Role::Customer, "same-sub");
    let agent = tokens::token(Role::Agent, "same-sub");
    let session = app.active_session(&customer, &agent).await;
    let before = app.all_seqs(&customer, &session).await.len();
    let from_customer = app
        .send(&customer, &session, "from the customer", "m1")
        .await;
    let from_agent = app.send(&agent, &session, "from the agent", "m1").await;
    let c = &from_customer["data"]["sendMessage"];
    let a = &from_agent["data"]["sendMessage"];
    assert_eq!(c["sender"], "CUSTOMER", "{from_customer}");
    assert_eq!(a["sender"], "AGENT", "{from_agent}");
    assert_eq!(a["body"], "from the agent", "the agent's send was lost");
    assert_ne!(c["seq"], a["seq"]);
    // Each retry is still answered with its own first message.
    let again = app.send(&agent, &session, "retry", "m1").await;
    assert_eq!(again["data"]["sendMessage"]["seq"], a["seq"]);
    assert_eq!(app.all_seqs(&customer, &session).await.len(), before + 2);
}

#[tokio::test]
async fn an_agent_only_offered_a_session_cannot_mark_it_read() {
    let app = spawn(&[("ROUTING_MODE", "fair")]).await;
    let agent = tokens::agent("offered");
    let mut events = app.ws(Some(&agent)).await;
    events
        .subscribe(
            "a",
            "subscription { agentEvents { __typename ... on SessionOffered { session { id } } } }",
            json!({}),
        )
        .await;
    app.start_shift(&agent).await;
    let customer = tokens::customer("waiting");
    let session = app.start_session(&customer).await;
    let offer = events.next_of("agentEvents", "SessionOffered").await;
    assert_eq!(offer["session"]["id"], session.as_str());
    app.send(&customer, &session, "hello?", "c1").await;
    let mark = "mutation($s: ID!) { markRead(sessionId: $s, seq: 1) { id } }";
    assert_eq!(
        app.error_code(Some(&agent), mark, json!({ "s": session }))
            .await,
        "FORBIDDEN"
    );
    app.accept(&agent, &session).await;
    let marked = app.gql(Some(&agent), mark, json!({ "s": session })).await;
    assert!(marked.get("errors").is_none(), "{marked}");
}

#[tokio::test]
async fn invisible_bodies_and_bidi_overrides_are_refused() {
    let app = spawn(Options::default()).await;
    let customer = tokens::customer("text");
    let agent = tokens::agent("reader");
    let session = app.active_session(&customer, &agent).await;
    for (i, body) in ["\u{200B}\u{200D}\u{FEFF}", "total: \u{202E}0051$"]
        .iter()
        .enumerate()
    {
        let answer = app.send(&customer, &session, body, &format!("t{i}")).await;
        assert_eq!(code_of(&answer), "BAD_USER_INPUT", "{body:?}: {answer}");
    }
    let other = tokens::customer("subject");
    let answer = app
        .gql(
            Some(&other),
            "mutation { startSession(input: {subject: \"refund \u{2066}evil\u{2069}\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code_of(&answer), "BAD_USER_INPUT", "{answer}");
}

/// A token signed with the test secret from raw header and claims.
fn raw_token(header: Value, claims: Value) -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    use jsonwebtoken::{crypto::sign, Algorithm, EncodingKey};
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(
        message.as_bytes(),
        &EncodingKey::from_secret(tokens::SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

#[tokio::test]
async fn tokens_not_yet_valid_too_long_lived_or_with_critical_headers_are_refused() {
    let app = spawn(&[("MAX_TOKEN_TTL_SECS", "3600")]).await;
    let now = chrono::Utc::now().timestamp();
    let header = json!({ "alg": "HS256", "typ": "JWT" });
    let claims = |extra: Value| {
        let mut c = json!({ "sub": "t", "role": "customer", "iat": now, "exp": now + 600 });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    let me = "{ me { id } }";
    let fine = raw_token(header.clone(), claims(json!({})));
    assert_eq!(app.ok(&fine, me, json!({})).await["me"]["id"], "t");
    for (what, token) in [
        (
            "nbf",
            raw_token(header.clone(), claims(json!({ "nbf": now + 600 }))),
        ),
        (
            "ttl",
            raw_token(header.clone(), claims(json!({ "exp": now + 7200 }))),
        ),
        (
            "crit",
            raw_token(
                json!({ "alg": "HS256", "typ": "JWT", "crit": ["b64"], "b64": false }),
                claims(json!({})),
            ),
        ),
    ] {
        assert_eq!(
            app.error_code(Some(&token), me, json!({})).await,
            "UNAUTHENTICATED",
            "{what}"
        );
    }
}

#[tokio::test]
async fn the_servers_own_origin_is_configured_not_taken_from_the_host() {
    let app = spawn(Options::default()).await;
    let rebinding = app
        .http
        .post(app.url("/graphql"))
        .header("Host", "evil.example")
        .header("Origin", "http://evil.example")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(rebinding.status(), 403, "Origin = Host = evil.example");

    let app = spawn(&[("PUBLIC_URL", "https://chat.example.com")]).await;
    let own = app
        .http
        .post(app.url("/graphql"))
        .header("Origin", "https://chat.example.com")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
}

/// Starts sessions from two forged addresses; whether the second is
/// limited says whether the forgery was believed.
async fn second_forged_start_is_limited(app: &Server) -> bool {
    let mut codes = Vec::new();
    for (i, forged) in ["198.51.100.1", "198.51.100.2"].iter().enumerate() {
        let body: Value = app
            .http
            .post(app.url("/graphql"))
            .bearer_auth(tokens::customer(&format!("forger-{i}")))
            .header("X-Forwarded-For", *forged)
            .json(&json!({ "query": "mutation { startSession(input: {}) { id } }" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        codes.push(body["errors"][0]["extensions"]["code"].clone());
    }
    codes[1] == "RATE_LIMITED"
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_named_proxies() {
    let limited = [
        ("IP_SESSION_RATE_PER_MIN", "0.01"),
        ("IP_SESSION_BURST", "1"),
    ];
    let direct = spawn(&[limited[0], limited[1], ("TRUSTED_PROXIES", "10.0.0.0/8")]).await;
    assert!(
        second_forged_start_is_limited(&direct).await,
        "a client that is no trusted proxy forged its address"
    );
    let proxied = spawn(&[limited[0], limited[1], ("TRUSTED_PROXIES", "127.0.0.1")]).await;
    assert!(
        !second_forged_start_is_limited(&proxied).await,
        "the trusted proxy's X-Forwarded-For was ignored"
    );
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let token = "metrics-secret-0123456789";
    let app = spawn(&[("METRICS_TOKEN", token)]).await;
    let anonymous = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("metrics-secret-0123456780")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.text().await.unwrap().contains("switchboard_"));
}

#[tokio::test]
async fn queries_run_over_get_and_mutations_do_not() {
    let app = spawn(Options::default()).await;
    let customer = tokens::customer("getter");
    let get = |query: &str, accept: Option<&str>| {
        let mut request = app
            .http
            .get(app.url("/graphql"))
            .query(&[("query", query)])
            .bearer_auth(&customer);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        request.send()
    };
    let answer = get("{ me { id role } }", None).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["data"]["me"]["id"], "getter");

    let answer = get(
        "query Q($n: Int) { mySessions(first: $n) { nodes { id } } }",
        None,
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 200);

    let mutation = get("mutation { startSession(input: {}) { id } }", None)
        .await
        .unwrap();
    assert_eq!(mutation.status(), 405);
    assert_eq!(mutation.headers()["allow"], "POST");
    let body: Value = mutation.json().await.unwrap();
    assert_eq!(code_of(&body), "BAD_USER_INPUT");
    let sessions = app
        .ok(&customer, "{ mySessions { nodes { id } } }", json!({}))
        .await;
    assert_eq!(
        sessions["mySessions"]["nodes"],
        json!([]),
        "a GET changed nothing"
    );

    // The GraphQL media type: request errors are 400s.
    let modern = "application/graphql-response+json, application/json;q=0.9";
    let broken = get("{ me { id ", Some(modern)).await.unwrap();
    assert_eq!(broken.status(), 400);
    assert_eq!(
        broken.headers()["content-type"],
        "application/graphql-response+json"
    );
    assert_eq!(code_of(&broken.json().await.unwrap()), "BAD_USER_INPUT");
    let fine = get("{ me { id } }", Some(modern)).await.unwrap();
    assert_eq!(fine.status(), 200);

    // Whatever else reaches /graphql gets a GraphQL error with a code.
    let bare = app.http.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(bare.status(), 400);
    assert_eq!(code_of(&bare.json().await.unwrap()), "BAD_USER_INPUT");
    let put = app.http.put(app.url("/graphql")).send().await.unwrap();
    assert_eq!(put.status(), 405);
    assert_eq!(code_of(&put.json().await.unwrap()), "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_client_that_closes_gets_the_close_frame_back() {
    let app = spawn(Options::default()).await;
    for code in [1000u16, 4499] {
        let mut ws = app.ws(Some(&tokens::customer("closer"))).await;
        let socket = ws.socket();
        socket
            .send(WsMessage::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "bye".into(),
            })))
            .await
            .unwrap();
        let echoed = tokio::time::timeout(ANSWER_BOUND, async {
            loop {
                match socket.next().await {
                    Some(Ok(WsMessage::Close(frame))) => return Some(frame),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        })
        .await
        .expect("the server answers the close");
        assert!(
            echoed.is_some(),
            "code {code}: the server dropped TCP without a Close frame (1006)"
        );
    }
}

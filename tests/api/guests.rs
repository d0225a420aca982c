//! Guest visitors: tokens for people not signed in, limited per address,
//! optionally behind a proof-of-work challenge; blocked addresses refused
//! everywhere.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};
use switchboard::auth::guest::solve;
use switchboard::clock::Clock;

use testkit::graphql::code_of;
use testkit::server::{spawn, Options, Server};
use testkit::tokens;

const CREATE: &str = "mutation { createGuest { token customerId expiresAt } }";
const CREATE_SOLVED: &str = "mutation($c: String, $s: String) {
    createGuest(challenge: $c, solution: $s) { token customerId expiresAt } }";
const CHALLENGE: &str = "{ guestChallenge { challenge difficulty expiresAt } }";

/// POSTs an operation as a client behind a proxy that forwarded `from`.
async fn gql_from(app: &Server, from: &str, query: &str, variables: Value) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("x-forwarded-for", from)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

#[tokio::test]
async fn a_guest_gets_an_anonymous_customer_token_that_works_and_resumes() {
    let app = spawn(&[("GUEST_TOKEN_TTL_SECS", "600")]).await;
    let before = Utc::now();
    let body = app.gql(None, CREATE, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let guest = &body["data"]["createGuest"];
    let token = guest["token"].as_str().unwrap().to_owned();
    let id = guest["customerId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("guest_") && id.len() > 20, "{id}");

    // Only the claims a guest needs: no name, email or anything else.
    let c = claims(&token);
    let mut names: Vec<&String> = c.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["exp", "guest", "iat", "role", "sub"], "{c}");
    assert_eq!(c["guest"], true);
    assert_eq!(c["role"], "customer");
    assert_eq!(c["sub"], id.as_str());
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
    let expires: DateTime<Utc> = guest["expiresAt"].as_str().unwrap().parse().unwrap();
    assert!(
        expires >= before + Duration::seconds(599)
            && expires <= Utc::now() + Duration::seconds(601)
    );

    // A second guest is someone else.
    let other = app.gql(None, CREATE, json!({})).await;
    assert_ne!(other["data"]["createGuest"]["customerId"], id.as_str());

    // The token is a customer's: it chats, over HTTP and WebSocket.
    let me = app.ok(&token, "{ me { id role } }", json!({})).await;
    assert_eq!(me["me"], json!({ "id": id, "role": "CUSTOMER" }));
    let ann = tokens::agent("ann");
    let sid = app.active_session(&token, &ann).await;
    let sent = app.send(&token, &sid, "hello from a guest", "g1").await;
    assert!(sent.get("errors").is_none(), "{sent}");
    let mut ws = app.ws(Some(&token)).await;
    ws.session_events("1", &sid, 0).await;
    ws.next_of("sessionEvents", "CaughtUp").await;
    app.end(&ann, &sid).await;
    ws.next_of("sessionEvents", "SessionChanged").await;

    // Coming back later with the same token: their chats are listed.
    let listed = app
        .ok(&token, "{ mySessions { nodes { id status } } }", json!({}))
        .await;
    assert_eq!(
        listed["mySessions"]["nodes"],
        json!([{ "id": sid, "status": "ENDED" }])
    );
    // Guests rate like any customer.
    app.ok(
        &token,
        "mutation($s: ID!) { rateSession(sessionId: $s, score: 5) { id } }",
        json!({ "s": sid }),
    )
    .await;
}

#[tokio::test]
async fn guest_tokens_are_limited_per_client_address() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(
        Options::default()
            .clock(clock.clock())
            .set("IP_GUEST_RATE_PER_MIN", "1")
            .set("IP_GUEST_BURST", "2")
            .set("TRUSTED_PROXY_HOPS", "1"),
    )
    .await;
    let create = |from: &'static str| {
        let app = &app;
        async move { gql_from(app, from, CREATE, json!({})).await.1 }
    };
    for _ in 0..2 {
        let ok = create("203.0.113.7").await;
        assert!(ok.get("errors").is_none(), "{ok}");
    }
    let refused = create("203.0.113.7").await;
    assert_eq!(code_of(&refused), "RATE_LIMITED", "{refused}");
    // Another address has its own allowance.
    let elsewhere = create("198.51.100.4").await;
    assert!(elsewhere.get("errors").is_none(), "{elsewhere}");
    // A minute on, one more.
    clock.advance(std::time::Duration::from_secs(60)).await;
    let again = create("203.0.113.7").await;
    assert!(again.get("errors").is_none(), "{again}");
    assert_eq!(code_of(&create("203.0.113.7").await), "RATE_LIMITED");
}

#[tokio::test]
async fn blocked_clients_are_refused_over_http_and_websocket() {
    let app = spawn(&[
        ("BLOCKED_CLIENTS", "203.0.113.0/24, 192.0.2.1"),
        ("TRUSTED_PROXY_HOPS", "1"),
    ])
    .await;
    for from in ["203.0.113.77", "192.0.2.1"] {
        let (status, body) = gql_from(&app, from, CREATE, json!({})).await;
        assert_eq!(status, 403, "{from}: {body}");
        assert_eq!(code_of(&body), "FORBIDDEN", "{body}");
        // With a valid token too.
        let response = app
            .http
            .get(app.url("/graphql?query=%7B__typename%7D"))
            .header("x-forwarded-for", from)
            .bearer_auth(tokens::admin())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403);
    }
    let (status, body) = gql_from(&app, "192.0.2.2", CREATE, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");

    // The WebSocket handshake is refused before any protocol.
    let mut request = testkit::ws::request(app.addr);
    request
        .headers_mut()
        .insert("x-forwarded-for", "203.0.113.1".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403)
        }
        other => panic!("expected a 403 handshake, got {:?}", other.map(|_| ())),
    }
    let mut allowed = testkit::ws::request(app.addr);
    allowed
        .headers_mut()
        .insert("x-forwarded-for", "192.0.2.2".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(allowed).await.is_ok());

    // Health probes still answer for the platform.
    let probe = app
        .http
        .get(app.url("/healthz"))
        .header("x-forwarded-for", "203.0.113.77")
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status().as_u16(), 200);
}

#[tokio::test]
async fn a_blocked_peer_is_refused_without_any_proxy() {
    let app = spawn(&[("BLOCKED_CLIENTS", "127.0.0.0/8")]).await;
    let body = app
        .gql(Some(&tokens::customer("rita")), "{ me { id } }", json!({}))
        .await;
    assert_eq!(code_of(&body), "FORBIDDEN", "{body}");
    let ws = testkit::ws::Client::try_connect(app.addr, Some(&tokens::customer("rita"))).await;
    assert!(ws.is_err(), "the handshake is refused");
}

#[tokio::test]
async fn when_enabled_a_solved_challenge_buys_one_token() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(
        Options::default()
            .clock(clock.clock())
            .set("GUEST_CHALLENGE_BITS", "8")
            // Every attempt counts against the address, the failed ones too.
            .set("IP_GUEST_BURST", "100"),
    )
    .await;
    let missing = app.gql(None, CREATE, json!({})).await;
    assert_eq!(code_of(&missing), "BAD_USER_INPUT", "{missing}");
    assert!(missing["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("guestChallenge"));

    let asked = app.gql(None, CHALLENGE, json!({})).await;
    let challenge = asked["data"]["guestChallenge"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(asked["data"]["guestChallenge"]["difficulty"], 8);
    let solution = solve(&challenge).unwrap();
    let wrong = (0..)
        .map(|n: u64| n.to_string())
        .find(|s| *s != solution && solve_check(&challenge, s) < 8)
        .unwrap();
    let refused = app
        .gql(None, CREATE_SOLVED, json!({ "c": challenge, "s": wrong }))
        .await;
    assert_eq!(code_of(&refused), "BAD_USER_INPUT", "{refused}");
    let tampered = challenge.replacen(".8.", ".1.", 1);
    let forged = app
        .gql(None, CREATE_SOLVED, json!({ "c": tampered, "s": "0" }))
        .await;
    assert_eq!(code_of(&forged), "BAD_USER_INPUT", "{forged}");

    let ok = app
        .gql(
            None,
            CREATE_SOLVED,
            json!({ "c": challenge, "s": solution }),
        )
        .await;
    assert!(ok.get("errors").is_none(), "{ok}");
    let reused = app
        .gql(
            None,
            CREATE_SOLVED,
            json!({ "c": challenge, "s": solution }),
        )
        .await;
    assert_eq!(code_of(&reused), "BAD_USER_INPUT", "{reused}");
    assert!(reused["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("used already"));

    // A challenge left too long expires.
    let later = app.gql(None, CHALLENGE, json!({})).await;
    let later = later["data"]["guestChallenge"]["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let solution = solve(&later).unwrap();
    clock.step_wall(Duration::seconds(301));
    let expired = app
        .gql(None, CREATE_SOLVED, json!({ "c": later, "s": solution }))
        .await;
    assert_eq!(code_of(&expired), "BAD_USER_INPUT", "{expired}");
    assert!(expired["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
}

/// Leading zero bits of SHA-256(challenge ‖ solution), as a widget counts them.
fn solve_check(challenge: &str, solution: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(format!("{challenge}{solution}").as_bytes());
    let mut bits = 0;
    for b in hash {
        if b == 0 {
            bits += 8;
        } else {
            return bits + b.leading_zeros();
        }
    }
    bits
}

#[tokio::test]
async fn without_challenges_the_query_answers_null() {
    let app = spawn(&[]).await;
    let asked = app.gql(None, CHALLENGE, json!({})).await;
    assert!(asked["data"]["guestChallenge"].is_null(), "{asked}");
}

//! The customer context provider, against a real HTTP server started here
//! that checks each call's token as a shop would and counts the calls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{json, Value};
use switchboard::clock::Clock;
use testkit::{
    server::{spawn, Options},
    tokens,
};

const CONTEXT_SECRET: &str = "context-secret-0123456789abcdef";

#[derive(Clone)]
struct Shop {
    secret: Vec<u8>,
    calls: Arc<Mutex<HashMap<String, u32>>>,
    /// Calls whose token did not verify.
    rejected: Arc<Mutex<u32>>,
}

impl Shop {
    fn calls(&self, customer: &str) -> u32 {
        self.calls
            .lock()
            .unwrap()
            .get(customer)
            .copied()
            .unwrap_or(0)
    }
}

#[derive(serde::Deserialize)]
struct Ask {
    #[serde(rename = "customerId")]
    customer_id: String,
}

/// What the shop answers, by customer id: most get a profile; some show
/// each way a provider can fail.
async fn answer(State(shop): State<Shop>, headers: HeaderMap, Query(ask): Query<Ask>) -> Response {
    let id = ask.customer_id;
    *shop.calls.lock().unwrap().entry(id.clone()).or_default() += 1;
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match switchboard::service::verify_call(token, &shop.secret) {
        Ok(c) if c.sub == id && c.aud == "context" && c.exp - c.iat == 60 => {}
        _ => {
            *shop.rejected.lock().unwrap() += 1;
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    match id.as_str() {
        "slow" => std::future::pending().await,
        "down" => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "text" => "not json".into_response(),
        "array" => axum::Json(json!([1, 2])).into_response(),
        "huge" => axum::Json(json!({ "blob": "x".repeat(70 * 1024) })).into_response(),
        "crowd" => {
            // Held long enough for every concurrent ask to arrive: without
            // sharing one call, each would make its own meanwhile.
            tokio::time::sleep(Duration::from_millis(300)).await;
            axum::Json(json!({ "tier": "silver" })).into_response()
        }
        _ => axum::Json(json!({ "tier": "gold", "orders": [{ "id": "ORD-1" }], "customerId": id }))
            .into_response(),
    }
}

/// The shop's endpoint on a random port; its URL.
async fn start_shop(secret: &str) -> (Shop, String) {
    let shop = Shop {
        secret: secret.as_bytes().to_vec(),
        calls: Default::default(),
        rejected: Default::default(),
    };
    let app = axum::Router::new()
        .route("/context", axum::routing::get(answer))
        .with_state(shop.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/context", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (shop, url)
}

const CONTEXT: &str =
    "query($s: ID!) { session(id: $s) { customerContext { data fetchedAt error } } }";

#[tokio::test]
async fn signed_calls_cached_per_customer_one_call_for_concurrent_asks() {
    let (shop, url) = start_shop(CONTEXT_SECRET).await;
    let clock = Clock::manual(Utc::now());
    let app = spawn(
        Options::default()
            .set("CONTEXT_URL", &url)
            .set("CONTEXT_SECRET", CONTEXT_SECRET)
            .set("AGENT_CAPACITY", "10")
            .clock(clock.clock()),
    )
    .await;
    let issue = tokens::issued_by(&clock.clock());
    let (ann, bob, admin) = (issue.agent("ann"), issue.agent("bob"), issue.admin());
    let (alice, crowd) = (issue.customer("alice"), issue.customer("crowd"));
    let sid = app.active_session(&alice, &ann).await;
    let crowd_sid = app.active_session(&crowd, &ann).await;

    // Ten concurrent asks for one customer: one call.
    let asks = (0..10).map(|_| app.ok(&ann, CONTEXT, json!({ "s": crowd_sid })));
    for answer in futures_util::future::join_all(asks).await {
        assert_eq!(
            answer["session"]["customerContext"]["data"],
            json!({ "tier": "silver" })
        );
    }
    assert_eq!(shop.calls("crowd"), 1);

    // The answer as it came, signed for this customer.
    let got =
        app.ok(&ann, CONTEXT, json!({ "s": sid })).await["session"]["customerContext"].clone();
    assert_eq!(got["data"]["tier"], "gold");
    assert_eq!(got["data"]["orders"][0]["id"], "ORD-1");
    assert_eq!(got["error"], Value::Null);
    assert!(got["fetchedAt"].is_string());
    assert_eq!(*shop.rejected.lock().unwrap(), 0, "every call verified");
    // Admins too, from the cache.
    let by_admin = app.ok(&admin, CONTEXT, json!({ "s": sid })).await;
    assert_eq!(
        by_admin["session"]["customerContext"]["data"]["tier"],
        "gold"
    );
    assert_eq!(shop.calls("alice"), 1);

    // Canned responses name the context's top-level keys.
    let r = app
        .ok(
            &admin,
            "mutation { createCannedResponse(input: {shortCode: \"tier\", title: \"Tier\", body: \"Your tier: {{customer.tier}}\", scope: TEAM}) { id } }",
            json!({}),
        )
        .await;
    let rendered = app
        .ok(
            &ann,
            "query($id: ID!, $s: ID!) { renderCannedResponse(id: $id, sessionId: $s) { text unresolved } }",
            json!({ "id": r["createCannedResponse"]["id"], "s": sid }),
        )
        .await;
    assert_eq!(rendered["renderCannedResponse"]["text"], "Your tier: gold");
    assert_eq!(shop.calls("alice"), 1, "from the cache");

    // Not for the customer, nor for another agent.
    let own = app.ok(&alice, CONTEXT, json!({ "s": sid })).await;
    assert_eq!(own["session"]["customerContext"], Value::Null);
    let other = app.ok(&bob, CONTEXT, json!({ "s": sid })).await;
    assert_eq!(other["session"], Value::Null, "not bob's session to see");

    // Kept for CONTEXT_CACHE_SECS (60), then fetched again.
    clock.step_wall(chrono::TimeDelta::seconds(59));
    app.ok(&ann, CONTEXT, json!({ "s": sid })).await;
    assert_eq!(shop.calls("alice"), 1);
    clock.step_wall(chrono::TimeDelta::seconds(2));
    app.ok(&ann, CONTEXT, json!({ "s": sid })).await;
    assert_eq!(shop.calls("alice"), 2);
}

#[tokio::test]
async fn failures_say_why_and_never_fail_the_query() {
    // No CONTEXT_SECRET: calls are signed with JWT_SECRET.
    let (shop, url) = start_shop(tokens::SECRET).await;
    let app = spawn(
        Options::default()
            .set("CONTEXT_URL", &url)
            .set("CONTEXT_TIMEOUT_MS", "300")
            .set("AGENT_CAPACITY", "10"),
    )
    .await;
    let ann = tokens::agent("ann");
    let mut down = String::new();
    for (customer, error) in [
        ("slow", "TIMEOUT"),
        ("down", "UNAVAILABLE"),
        ("text", "BAD_RESPONSE"),
        ("array", "BAD_RESPONSE"),
        ("huge", "BAD_RESPONSE"),
        ("fine", ""),
    ] {
        let sid = app.active_session(&tokens::customer(customer), &ann).await;
        if customer == "down" {
            down = sid.clone();
        }
        let body = app.gql(Some(&ann), CONTEXT, json!({ "s": sid })).await;
        assert!(body.get("errors").is_none(), "{customer}: {body}");
        let context = &body["data"]["session"]["customerContext"];
        if error.is_empty() {
            assert_eq!(context["data"]["customerId"], customer);
            assert_eq!(context["error"], Value::Null);
        } else {
            assert_eq!(context["error"], error, "{customer}");
            assert_eq!(context["data"], Value::Null, "{customer}");
            assert_eq!(context["fetchedAt"], Value::Null, "{customer}");
        }
    }
    assert_eq!(*shop.rejected.lock().unwrap(), 0, "signed with JWT_SECRET");
    // Failures are not kept: the next ask calls again.
    let before = shop.calls("down");
    app.gql(Some(&tokens::admin()), CONTEXT, json!({ "s": down }))
        .await;
    assert_eq!(shop.calls("down"), before + 1);
}

#[tokio::test]
async fn without_a_provider_the_context_is_not_configured() {
    let app = spawn(Options::default()).await;
    let ann = tokens::agent("ann");
    let sid = app.active_session(&tokens::customer("alice"), &ann).await;
    let body = app.ok(&ann, CONTEXT, json!({ "s": sid })).await;
    assert_eq!(
        body["session"]["customerContext"],
        json!({ "data": null, "fetchedAt": null, "error": "NOT_CONFIGURED" })
    );
}

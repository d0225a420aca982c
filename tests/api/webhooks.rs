//! Outbound webhooks, against a real HTTP receiver started by each test:
//! every event type arrives signed, retries until delivered under one id,
//! no retry for 4xx but for 408/429 (after Retry-After), redelivery, the
//! refusal of private addresses and redirects, order per session, the
//! automatic disabling of an endpoint that keeps failing, and nothing
//! written while nothing is subscribed.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Database, DatabaseBackend, Statement};
use serde_json::{json, Value};
use switchboard::clock::Clock;
use switchboard::signing::WebhookSecret;
use testkit::receiver::{Received, Receiver, Reply};
use testkit::server::{spawn, Server};
use testkit::tokens;

/// Bound on waiting for deliveries; nothing is timed against it.
const PATIENCE: Duration = Duration::from_secs(30);

const ENDPOINT: &str = "mutation($url: String!, $events: [WebhookEventType!]!) {
    createWebhookEndpoint(input: {url: $url, events: $events, description: \"test\"}) {
      secret endpoint { id url events enabled description createdAt }
    }
  }";

const DELIVERIES: &str = "query($e: ID!, $s: DeliveryStatus) {
    webhookDeliveries(endpointId: $e, status: $s) {
      id endpointId event status attempts lastStatusCode lastError nextAttemptAt createdAt deliveredAt
    }
  }";

/// A server that may call 127.0.0.1, with these settings too.
async fn server(settings: &[(&str, &str)]) -> Server {
    let mut all = vec![("WEBHOOK_ALLOW_PRIVATE", "true")];
    all.extend_from_slice(settings);
    spawn(&all[..]).await
}

/// Registers the receiver for `events`; (endpoint id, secret).
async fn subscribe(app: &Server, receiver: &Receiver, events: &[&str]) -> (String, String) {
    subscribe_as(app, &tokens::admin(), receiver, events).await
}

async fn subscribe_as(
    app: &Server,
    admin: &str,
    receiver: &Receiver,
    events: &[&str],
) -> (String, String) {
    let data = app
        .ok(
            admin,
            ENDPOINT,
            json!({ "url": receiver.url("/hooks"), "events": events }),
        )
        .await;
    let created = &data["createWebhookEndpoint"];
    assert_eq!(created["endpoint"]["enabled"], true);
    (
        created["endpoint"]["id"].as_str().expect("id").to_owned(),
        created["secret"].as_str().expect("secret").to_owned(),
    )
}

async fn deliveries(app: &Server, admin: &str, endpoint: &str) -> Vec<Value> {
    let data = app
        .ok(admin, DELIVERIES, json!({ "e": endpoint, "s": null }))
        .await;
    data["webhookDeliveries"]
        .as_array()
        .expect("a list")
        .clone()
}

/// Waits until the endpoint's deliveries satisfy `done`.
async fn deliveries_until(
    app: &Server,
    admin: &str,
    endpoint: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = std::time::Instant::now();
    loop {
        let list = deliveries(app, admin, endpoint).await;
        if done(&list) {
            return list;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "gave up waiting until {what}: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks the Standard Webhooks signature of a request with `secret`.
fn assert_signed(r: &Received, secret: &str) {
    let key = WebhookSecret::parse(secret).expect("a whsec_ secret");
    let timestamp: i64 = r.header("webhook-timestamp").parse().expect("a timestamp");
    assert_eq!(
        r.header("webhook-signature"),
        key.sign(r.id(), timestamp, r.body.as_bytes()),
        "signature of {}",
        r.body
    );
    assert!(r.header("webhook-signature").starts_with("v1,"));
    assert_eq!(r.header("content-type"), "application/json");
}

fn ok(r: &Received) -> bool {
    r.answered.is_some_and(|s| (200..300).contains(&s))
}

#[tokio::test]
async fn every_event_of_a_chat_arrives_signed_in_order() {
    let app = server(&[]).await;
    let receiver = Receiver::start().await;
    let (endpoint, secret) = subscribe(
        &app,
        &receiver,
        &[
            "SESSION_STARTED",
            "SESSION_ASSIGNED",
            "SESSION_TRANSFERRED",
            "SESSION_ENDED",
            "MESSAGE_CREATED",
        ],
    )
    .await;
    let (customer, ann, bob) = (
        tokens::customer("cust-1"),
        tokens::agent("ann"),
        tokens::agent("bob"),
    );
    app.start_shift(&bob).await;
    let sid = app.active_session(&customer, &ann).await;
    app.send(&customer, &sid, "hello", "c1").await;
    app.send(&ann, &sid, "hi there", "a1").await;
    app.ok(
        &ann,
        "mutation($s: ID!) { transferSession(sessionId: $s, toAgentId: \"bob\") { id } }",
        json!({ "s": sid }),
    )
    .await;
    app.end(&customer, &sid).await;

    let received = receiver.wait_for_ok(6, PATIENCE).await;
    let kinds: Vec<&str> = received.iter().map(Received::kind).collect();
    assert_eq!(
        kinds,
        [
            "session.started",
            "session.assigned",
            "message.created",
            "message.created",
            "session.transferred",
            "session.ended"
        ]
    );
    for r in &received {
        assert_signed(r, &secret);
        assert!(r.json["timestamp"].as_str().is_some(), "{}", r.body);
    }
    let session = |i: usize| &received[i].json["data"]["session"];
    assert_eq!(session(0)["id"], sid.as_str());
    assert_eq!(session(0)["status"], "WAITING");
    assert_eq!(session(0)["customerId"], "cust-1");
    assert_eq!(session(0)["agentId"], Value::Null);
    assert_eq!(session(1)["status"], "ACTIVE");
    assert_eq!(session(1)["agentId"], "ann");
    assert_eq!(session(4)["agentId"], "bob");
    assert_eq!(session(5)["status"], "ENDED");
    assert_eq!(session(5)["endReason"], "RESOLVED");
    assert_eq!(session(5)["endedBy"], "CUSTOMER");
    let message = &received[2].json["data"]["message"];
    assert_eq!(message["sessionId"], sid.as_str());
    assert_eq!(message["body"], "hello");
    assert_eq!(message["sender"], "CUSTOMER");
    assert_eq!(message["senderId"], "cust-1");
    assert_eq!(message["clientMessageId"], "c1");
    let seqs: Vec<i64> = received[2..4]
        .iter()
        .map(|r| r.json["data"]["message"]["seq"].as_i64().expect("seq"))
        .collect();
    assert!(seqs[0] < seqs[1], "{seqs:?}");

    // Each delivery is listed, DELIVERED, under the id it was sent with.
    let listed = deliveries_until(&app, &tokens::admin(), &endpoint, "six delivered", |l| {
        l.len() == 6 && l.iter().all(|d| d["status"] == "DELIVERED")
    })
    .await;
    let mut ids: Vec<&str> = listed.iter().map(|d| d["id"].as_str().unwrap()).collect();
    let mut sent: Vec<&str> = received.iter().map(Received::id).collect();
    ids.sort_unstable();
    sent.sort_unstable();
    assert_eq!(ids, sent);
    assert!(listed
        .iter()
        .all(|d| d["attempts"] == 1 && d["lastStatusCode"] == 200 && d["endpointId"] == endpoint));
    assert_eq!(listed[0]["event"], "SESSION_ENDED", "newest first");
}

/// The two events that follow a chat's end: its rating, and its hand-off
/// to the ticket system (a second receiver here, answering as one does).
#[tokio::test]
async fn a_rating_and_a_ticket_arrive_signed() {
    let tickets = Receiver::start().await;
    tickets.script([Reply::Json(
        200,
        r#"{"id":"T-7","url":"https://tickets.example/T-7"}"#.to_owned(),
    )]);
    let ticket_secret = WebhookSecret::generate().expect("a secret").expose();
    let ticket_url = tickets.url("/tickets");
    let app = server(&[
        ("TICKET_URL", ticket_url.as_str()),
        ("TICKET_SECRET", ticket_secret.as_str()),
    ])
    .await;
    let receiver = Receiver::start().await;
    let (_, secret) = subscribe(&app, &receiver, &["SESSION_RATED", "TICKET_REQUESTED"]).await;
    let (customer, ann) = (tokens::customer("cust-1"), tokens::agent("ann"));
    let sid = app.active_session(&customer, &ann).await;
    app.end(&customer, &sid).await;
    app.ok(
        &customer,
        "mutation($s: ID!) { rateSession(sessionId: $s, score: 5, comment: \"quick\") { id } }",
        json!({ "s": sid }),
    )
    .await;
    app.ok(
        &ann,
        "mutation($s: ID!) { convertToTicket(sessionId: $s) { ticket { externalId } } }",
        json!({ "s": sid }),
    )
    .await;

    let received = receiver.wait_for_ok(2, PATIENCE).await;
    let kinds: Vec<&str> = received.iter().map(Received::kind).collect();
    assert_eq!(kinds, ["session.rated", "ticket.requested"]);
    for r in &received {
        assert_signed(r, &secret);
        assert_eq!(r.json["data"]["session"]["id"], sid.as_str());
    }
    let rating = &received[0].json["data"]["session"]["rating"];
    assert_eq!(rating["score"], 5, "{}", received[0].body);
    assert_eq!(rating["comment"], "quick");
    assert_eq!(rating["agentId"], "ann");
    let ticket = &received[1].json["data"]["ticket"];
    assert_eq!(ticket["externalId"], "T-7", "{}", received[1].body);
    assert_eq!(ticket["url"], "https://tickets.example/T-7");
    assert_eq!(tickets.received().len(), 1, "one call to the ticket system");
}

#[tokio::test]
async fn a_receiver_failing_three_times_gets_the_event_once_more_under_the_same_id() {
    let app = server(&[("WEBHOOK_RETRY_SCHEDULE", "20ms,20ms,20ms,20ms")]).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::Status(500), Reply::Status(500), Reply::Status(500)]);
    let (endpoint, secret) = subscribe(&app, &receiver, &["SESSION_STARTED"]).await;
    app.start_session(&tokens::customer("c")).await;

    let listed = deliveries_until(&app, &tokens::admin(), &endpoint, "delivered", |l| {
        l.first().is_some_and(|d| d["status"] == "DELIVERED")
    })
    .await;
    assert_eq!(listed.len(), 1);
    let delivery = &listed[0];
    assert_eq!(delivery["attempts"], 4);
    assert_eq!(delivery["lastStatusCode"], 200);
    assert_eq!(delivery["nextAttemptAt"], Value::Null);
    assert!(delivery["deliveredAt"].is_string());
    let received = receiver.received();
    assert_eq!(received.len(), 4, "{received:#?}");
    let answers: Vec<Option<u16>> = received.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [Some(500), Some(500), Some(500), Some(200)]);
    for r in &received {
        assert_eq!(r.id(), delivery["id"].as_str().unwrap());
        assert_eq!(r.body, received[0].body, "the same body every time");
        assert_signed(r, &secret);
    }
}

#[tokio::test]
async fn client_errors_end_a_delivery_but_408_is_retried() {
    let app = server(&[("WEBHOOK_RETRY_SCHEDULE", "20ms,20ms")]).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::Status(404)]);
    let (endpoint, _) = subscribe(&app, &receiver, &["SESSION_STARTED"]).await;
    app.start_session(&tokens::customer("c1")).await;
    let failed = deliveries_until(&app, &tokens::admin(), &endpoint, "failed", |l| {
        l.first().is_some_and(|d| d["status"] == "FAILED")
    })
    .await;
    assert_eq!(failed[0]["attempts"], 1, "no retry after 404");
    assert_eq!(failed[0]["lastStatusCode"], 404);
    assert!(failed[0]["lastError"].as_str().unwrap().contains("404"));
    assert_eq!(receiver.received().len(), 1);

    receiver.script([Reply::Status(408)]);
    app.start_session(&tokens::customer("c2")).await;
    let listed = deliveries_until(&app, &tokens::admin(), &endpoint, "delivered", |l| {
        l.len() == 2 && l[0]["status"] == "DELIVERED"
    })
    .await;
    assert_eq!(listed[0]["attempts"], 2, "408 is retried");
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(
        testkit::server::Options::from(&[
            ("WEBHOOK_ALLOW_PRIVATE", "true"),
            ("WEBHOOK_RETRY_SCHEDULE", "1s,1s"),
        ])
        .clock(clock.clock()),
    )
    .await;
    let issue = tokens::issued_by(&clock.clock());
    let admin = issue.admin();
    let receiver = Receiver::start().await;
    receiver.script([Reply::With(429, vec![("retry-after", "120".into())])]);
    let (endpoint, _) = subscribe_as(&app, &admin, &receiver, &["SESSION_STARTED"]).await;
    app.start_session(&issue.customer("c")).await;
    let waiting = deliveries_until(&app, &admin, &endpoint, "one attempt", |l| {
        l.first().is_some_and(|d| d["attempts"] == 1)
    })
    .await;
    assert_eq!(waiting[0]["status"], "PENDING");
    assert_eq!(waiting[0]["lastStatusCode"], 429);
    let next: DateTime<Utc> = waiting[0]["nextAttemptAt"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a next attempt");
    // Not the schedule's second, the 120 it asked for (the clock stands still).
    let wait = next - clock.now();
    assert!(
        wait > chrono::Duration::seconds(119) && wait <= chrono::Duration::seconds(120),
        "{wait}"
    );
    clock.advance(Duration::from_secs(60)).await;
    assert_eq!(
        deliveries(&app, &admin, &endpoint).await[0]["attempts"],
        1,
        "not before"
    );
    clock.advance(Duration::from_secs(61)).await;
    let delivered = deliveries_until(&app, &admin, &endpoint, "delivered", |l| {
        l[0]["status"] == "DELIVERED"
    })
    .await;
    assert_eq!(delivered[0]["attempts"], 2);
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn a_failed_delivery_is_sent_again_with_the_same_id() {
    // No retries: the first 500 fails the delivery.
    let app = server(&[("WEBHOOK_RETRY_SCHEDULE", "")]).await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::Status(500)]);
    let (endpoint, secret) = subscribe(&app, &receiver, &["SESSION_STARTED"]).await;
    app.start_session(&tokens::customer("c")).await;
    let failed = deliveries_until(&app, &tokens::admin(), &endpoint, "failed", |l| {
        l.first().is_some_and(|d| d["status"] == "FAILED")
    })
    .await;
    let id = failed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(failed[0]["attempts"], 1);

    let redeliver = "mutation($d: ID!) { redeliverWebhook(deliveryId: $d) { id status attempts } }";
    let queued = app.as_admin(redeliver, json!({ "d": id })).await;
    assert_eq!(queued["redeliverWebhook"]["id"], id.as_str());
    let received = receiver.wait_for_ok(1, PATIENCE).await;
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].id(), id);
    assert_eq!(received[1].body, received[0].body);
    assert_signed(&received[1], &secret);
    let delivered = deliveries_until(&app, &tokens::admin(), &endpoint, "delivered", |l| {
        l[0]["status"] == "DELIVERED"
    })
    .await;
    assert_eq!(delivered.len(), 1, "the same delivery, not a new one");
    assert_eq!(delivered[0]["id"], id.as_str());

    // Only admins; and a pending delivery is not queued twice.
    let code = app
        .error_code(Some(&tokens::agent("ann")), redeliver, json!({ "d": id }))
        .await;
    assert_eq!(code, "FORBIDDEN");
    let code = app
        .error_code(
            Some(&tokens::admin()),
            redeliver,
            json!({ "d": uuid::Uuid::new_v4().to_string() }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
}

#[tokio::test]
async fn endpoints_on_this_servers_networks_are_refused() {
    // Private addresses not allowed: the default.
    let app = spawn(&[]).await;
    let create = |url: &str| json!({ "url": url, "events": ["SESSION_ENDED"] });
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "not a url",
    ] {
        let code = app
            .error_code(Some(&tokens::admin()), ENDPOINT, create(url))
            .await;
        assert_eq!(code, "BAD_USER_INPUT", "{url}");
    }
    for who in [tokens::agent("ann"), tokens::customer("c")] {
        let code = app
            .error_code(Some(&who), ENDPOINT, create("https://example.com/hook"))
            .await;
        assert_eq!(code, "FORBIDDEN");
        let code = app
            .error_code(Some(&who), "{ webhookEndpoints { id } }", json!({}))
            .await;
        assert_eq!(code, "FORBIDDEN");
    }
    let listed = app.as_admin("{ webhookEndpoints { id } }", json!({})).await;
    assert_eq!(listed["webhookEndpoints"], json!([]));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let app = server(&[("WEBHOOK_RETRY_SCHEDULE", "20ms")]).await;
    let elsewhere = Receiver::start().await;
    let receiver = Receiver::start().await;
    receiver.answer_with(Reply::With(307, vec![("location", elsewhere.url("/x"))]));
    let (endpoint, _) = subscribe(&app, &receiver, &["SESSION_STARTED"]).await;
    app.start_session(&tokens::customer("c")).await;
    let failed = deliveries_until(&app, &tokens::admin(), &endpoint, "failed", |l| {
        l.first().is_some_and(|d| d["status"] == "FAILED")
    })
    .await;
    assert_eq!(failed[0]["lastStatusCode"], 307);
    assert!(elsewhere.received().is_empty());
}

#[tokio::test]
async fn each_sessions_events_reach_an_endpoint_in_order_through_retries() {
    let app = server(&[("WEBHOOK_RETRY_SCHEDULE", "10ms,10ms,10ms,10ms,10ms,10ms")]).await;
    let receiver = Receiver::start().await;
    // Early attempts fail, so that later events wait for earlier ones.
    receiver.script((0..8).map(|i| Reply::Status(if i % 2 == 0 { 500 } else { 503 })));
    subscribe(&app, &receiver, &["MESSAGE_CREATED"]).await;
    let sessions: Vec<(String, String)> = futures_util::future::join_all((0..3).map(|i| {
        let app = &app;
        async move {
            let customer = tokens::customer(&format!("c{i}"));
            let sid = app
                .active_session(&customer, &tokens::agent(&format!("a{i}")))
                .await;
            (customer, sid)
        }
    }))
    .await;
    // Each session's messages go in one after another; the sessions at once.
    let app = &app;
    futures_util::future::join_all(sessions.iter().map(|(customer, sid)| async move {
        for n in 0..8 {
            app.send(customer, sid, &format!("m{n}"), &format!("k{n}"))
                .await;
        }
    }))
    .await;
    let received = receiver.wait_for_ok(24, PATIENCE).await;
    let of = |r: &Received| {
        let message = &r.json["data"]["message"];
        (
            message["sessionId"].as_str().unwrap().to_owned(),
            message["seq"].as_i64().unwrap(),
        )
    };
    let mut delivered: HashMap<String, Vec<i64>> = HashMap::new();
    for r in received.iter().filter(|r| ok(r)) {
        let (sid, seq) = of(r);
        delivered.entry(sid).or_default().push(seq);
    }
    for (_, sid) in &sessions {
        let seqs = &delivered[sid];
        assert_eq!(seqs.len(), 8, "{sid}: {seqs:?}");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{sid}: {seqs:?}");
    }
    // No attempt of a message before every earlier one got through.
    let mut through: HashMap<String, Vec<i64>> = HashMap::new();
    for r in &received {
        let (sid, seq) = of(r);
        let earlier = delivered[&sid].iter().filter(|&&s| s < seq).count();
        let done = through.entry(sid.clone()).or_default();
        assert_eq!(
            done.len(),
            earlier,
            "session {sid}: seq {seq} was tried before every earlier message was delivered"
        );
        if ok(r) {
            done.push(seq);
        }
    }
}

#[tokio::test]
async fn an_endpoint_failing_for_too_long_is_disabled() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(
        testkit::server::Options::from(&[
            ("WEBHOOK_ALLOW_PRIVATE", "true"),
            ("WEBHOOK_RETRY_SCHEDULE", "10s,10s,10s"),
            ("WEBHOOK_DISABLE_AFTER_SECS", "5"),
        ])
        .clock(clock.clock()),
    )
    .await;
    let issue = tokens::issued_by(&clock.clock());
    let admin = issue.admin();
    let receiver = Receiver::start().await;
    receiver.answer_with(Reply::Status(503));
    let (endpoint, _) = subscribe_as(&app, &admin, &receiver, &["SESSION_STARTED"]).await;
    app.start_session(&issue.customer("c")).await;
    deliveries_until(&app, &admin, &endpoint, "one attempt", |l| {
        l.first().is_some_and(|d| d["attempts"] == 1)
    })
    .await;
    clock.advance(Duration::from_secs(13)).await;
    deliveries_until(&app, &admin, &endpoint, "two attempts", |l| {
        l[0]["attempts"] == 2
    })
    .await;
    let started = std::time::Instant::now();
    loop {
        let listed = app
            .ok(&admin, "{ webhookEndpoints { id enabled } }", json!({}))
            .await;
        if listed["webhookEndpoints"][0]["enabled"] == false {
            break;
        }
        assert!(started.elapsed() < PATIENCE, "still enabled: {listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Enabled again by an admin, it is tried again.
    receiver.answer_with(Reply::Status(200));
    app.ok(
        &admin,
        "mutation($id: ID!, $url: String!) { updateWebhookEndpoint(id: $id, \
           input: {url: $url, events: [SESSION_STARTED]}, enabled: true) { enabled } }",
        json!({ "id": endpoint, "url": receiver.url("/hooks") }),
    )
    .await;
    clock.advance(Duration::from_secs(13)).await;
    deliveries_until(&app, &admin, &endpoint, "delivered", |l| {
        l[0]["status"] == "DELIVERED"
    })
    .await;
}

/// Rows in the outbox, read straight from the database.
async fn outbox_rows(app: &Server) -> i64 {
    let url = app
        .database_url
        .as_deref()
        .expect("a Postgres test database");
    let db = Database::connect(url).await.expect("connect");
    let row = db
        .query_one(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT count(*) AS n FROM webhook_events",
        ))
        .await
        .expect("count")
        .expect("a row");
    row.try_get("", "n").expect("n")
}

#[tokio::test]
async fn nothing_is_written_for_events_nobody_subscribes_to() {
    let app = server(&[]).await;
    let (customer, agent) = (tokens::customer("c"), tokens::agent("a"));
    let sid = app.active_session(&customer, &agent).await;
    app.send(&customer, &sid, "hello", "k1").await;
    assert_eq!(outbox_rows(&app).await, 0, "no endpoint");

    let receiver = Receiver::start().await;
    let (endpoint, _) = subscribe(&app, &receiver, &["SESSION_ENDED"]).await;
    app.send(&customer, &sid, "again", "k2").await;
    assert_eq!(outbox_rows(&app).await, 0, "no endpoint wants messages");
    app.end(&customer, &sid).await;
    assert_eq!(outbox_rows(&app).await, 1);
    receiver.wait_for_ok(1, PATIENCE).await;

    // Deleted, its deliveries go with it and nothing more is written.
    let deleted = app
        .as_admin(
            "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) }",
            json!({ "id": endpoint }),
        )
        .await;
    assert_eq!(deleted["deleteWebhookEndpoint"], true);
    let sid = app.active_session(&tokens::customer("c2"), &agent).await;
    app.end(&agent, &sid).await;
    assert_eq!(outbox_rows(&app).await, 1);
    let code = app
        .error_code(
            Some(&tokens::admin()),
            DELIVERIES,
            json!({ "e": endpoint, "s": null }),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
}

#[tokio::test]
async fn the_embedded_database_delivers_too() {
    let app =
        spawn(testkit::server::Options::from(&[("WEBHOOK_ALLOW_PRIVATE", "true")]).database(""))
            .await;
    let receiver = Receiver::start().await;
    receiver.script([Reply::Status(500)]);
    let (endpoint, secret) = subscribe(
        &app,
        &receiver,
        &["SESSION_STARTED", "MESSAGE_CREATED", "SESSION_ENDED"],
    )
    .await;
    let customer = tokens::customer("c");
    let sid = app.active_session(&customer, &tokens::agent("a")).await;
    app.send(&customer, &sid, "one", "k1").await;
    app.send(&customer, &sid, "two", "k2").await;
    app.end(&customer, &sid).await;
    let received = receiver.wait_for_ok(4, PATIENCE).await;
    let kinds: Vec<&str> = received
        .iter()
        .filter(|r| ok(r))
        .map(Received::kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "session.started",
            "message.created",
            "message.created",
            "session.ended"
        ]
    );
    received.iter().for_each(|r| assert_signed(r, &secret));
    let listed = deliveries_until(&app, &tokens::admin(), &endpoint, "delivered", |l| {
        l.len() == 4 && l.iter().all(|d| d["status"] == "DELIVERED")
    })
    .await;
    assert_eq!(listed[3]["attempts"], 2, "the first, retried once");
}

#[tokio::test]
async fn deliveries_are_purged_with_the_rest_after_retention() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(
        testkit::server::Options::from(&[
            ("WEBHOOK_ALLOW_PRIVATE", "true"),
            ("RETENTION_DAYS", "1"),
        ])
        .clock(clock.clock()),
    )
    .await;
    let receiver = Receiver::start().await;
    let admin = tokens::issued_by(&clock.clock()).admin();
    let (endpoint, _) = subscribe_as(&app, &admin, &receiver, &["SESSION_STARTED"]).await;
    app.start_session(&tokens::issued_by(&clock.clock()).customer("c"))
        .await;
    deliveries_until(&app, &admin, &endpoint, "delivered", |l| {
        l.first().is_some_and(|d| d["status"] == "DELIVERED")
    })
    .await;
    app.service
        .retention()
        .purge_expired()
        .await
        .expect("purge");
    assert_eq!(
        deliveries(&app, &admin, &endpoint).await.len(),
        1,
        "kept a day"
    );

    clock.step_wall(chrono::Duration::days(2));
    let admin = tokens::issued_by(&clock.clock()).admin();
    app.service
        .retention()
        .purge_expired()
        .await
        .expect("purge");
    assert!(deliveries(&app, &admin, &endpoint).await.is_empty());
    assert_eq!(
        outbox_rows(&app).await,
        0,
        "the event went with its delivery"
    );
}

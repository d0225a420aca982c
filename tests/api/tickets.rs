//! Tickets: a chat handed to a ticket system that the test runs itself (a
//! real HTTP server on a random port that checks each Standard Webhooks
//! signature with its own code, counts calls, and can be slow or fail).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::future::join_all;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use testkit::graphql::code_of;
use testkit::server::{spawn, Options, Server};
use testkit::tokens;

/// The ticket system's key, as its operator would configure both sides.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const CONVERT: &str = "mutation($s: ID!) { convertToTicket(sessionId: $s) {
    id ticket { externalId url createdAt } } }";

/// One request the ticket system took.
#[derive(Clone, Debug)]
struct Call {
    webhook_id: String,
    body: Value,
}

/// The ticket system: answers `{id, url}` to each correctly signed POST.
#[derive(Default)]
struct Receiver {
    /// Every POST, signed or not.
    calls: AtomicUsize,
    /// POSTs whose signature did not verify (answered 401).
    forged: AtomicUsize,
    /// Milliseconds to wait before answering.
    delay_ms: AtomicU64,
    /// Answer this status instead of a ticket, on the next N calls.
    fail_with: AtomicU16,
    fail_next: AtomicUsize,
    /// The webhook-id of every signed POST, answered or not.
    ids: Mutex<Vec<String>>,
    accepted: Mutex<Vec<Call>>,
}

impl Receiver {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn accepted(&self) -> Vec<Call> {
        self.accepted.lock().unwrap().clone()
    }
}

/// Standard Webhooks verification, written here from the spec rather than
/// with the server's signing code: HMAC-SHA256 over `id.timestamp.body`
/// with the base64 key after `whsec_`, compared with each `v1,` signature,
/// and the timestamp within five minutes.
fn verify(headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(format!("no {name}"))
    };
    let (id, timestamp, signatures) = (
        header("webhook-id")?,
        header("webhook-timestamp")?,
        header("webhook-signature")?,
    );
    let ts: i64 = timestamp.parse().map_err(|_| "timestamp not a number")?;
    if (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return Err("timestamp outside the tolerance".into());
    }
    let key = STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    if signatures.split(' ').any(|s| s == expected) {
        Ok(id)
    } else {
        Err(format!("no matching signature in {signatures:?}"))
    }
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = r.calls.fetch_add(1, Ordering::SeqCst) + 1;
    let webhook_id = match verify(&headers, &body) {
        Ok(id) => id,
        Err(why) => {
            eprintln!("ticket receiver: {why}");
            r.forged.fetch_add(1, Ordering::SeqCst);
            return StatusCode::UNAUTHORIZED.into_response();
        }
    };
    r.ids.lock().unwrap().push(webhook_id.clone());
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/json",
        "the transcript is JSON"
    );
    let delay = r.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        // The slow ticket system being simulated, not a wait for time.
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let failing = r
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |k| k.checked_sub(1))
        .is_ok();
    if failing {
        let status = StatusCode::from_u16(r.fail_with.load(Ordering::SeqCst)).unwrap();
        return status.into_response();
    }
    r.accepted.lock().unwrap().push(Call {
        webhook_id,
        body: serde_json::from_slice(&body).expect("JSON transcript"),
    });
    axum::Json(json!({ "id": format!("T-{n}"), "url": format!("https://desk.example/T-{n}") }))
        .into_response()
}

async fn start_receiver() -> (SocketAddr, Arc<Receiver>) {
    let receiver = Arc::new(Receiver::default());
    let app = Router::new()
        .route("/tickets", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, receiver)
}

fn ticket_options(addr: SocketAddr) -> Options {
    Options::default()
        .set("TICKET_URL", &format!("http://{addr}/tickets"))
        .set("TICKET_SECRET", SECRET)
}

async fn with_ticket_system() -> (Server, Arc<Receiver>) {
    let (addr, receiver) = start_receiver().await;
    (spawn(ticket_options(addr)).await, receiver)
}

/// The SYSTEM lines of a session.
async fn system_lines(app: &Server, session: &str) -> Vec<String> {
    let data = app
        .as_admin(
            "query($s: ID!) { session(id: $s) { messages(first: 100) { nodes { sender body } } } }",
            json!({ "s": session }),
        )
        .await;
    data["session"]["messages"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["sender"] == "SYSTEM")
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect()
}

fn ticket_lines(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.starts_with("Ticket #")).collect()
}

/// The ids of the sessions an admin finds by these words.
async fn found_by_words(app: &Server, words: &str) -> Vec<String> {
    crate::workspace::search::search(app, &tokens::admin(), json!({ "text": words })).await
}

#[tokio::test]
async fn a_chat_becomes_one_signed_ticket_with_its_transcript_and_rating() {
    let (app, receiver) = with_ticket_system().await;
    let (rita, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    app.start_shift(&ann).await;
    let sid = app
        .ok(
            &rita,
            "mutation { startSession(input: {subject: \"Lost parcel\"}) { id } }",
            json!({}),
        )
        .await["startSession"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.accept(&ann, &sid).await;
    app.send(&rita, &sid, "Where is my parcel?", "m1").await;
    app.send(&ann, &sid, "Let me look into it.", "m2").await;
    app.ok(
        &ann,
        "mutation($s: ID!) { addNote(sessionId: $s, body: \"Courier lost it twice\") { id } }",
        json!({ "s": sid }),
    )
    .await;
    app.end(&ann, &sid).await;
    app.ok(
        &rita,
        "mutation($s: ID!) { rateSession(sessionId: $s, score: 2, comment: \"slow\") { id } }",
        json!({ "s": sid }),
    )
    .await;

    let done = app.ok(&ann, CONVERT, json!({ "s": sid })).await;
    let ticket = &done["convertToTicket"]["ticket"];
    assert_eq!(ticket["externalId"], "T-1", "{done}");
    assert_eq!(ticket["url"], "https://desk.example/T-1");
    assert!(ticket["createdAt"].is_string());
    assert_eq!(receiver.calls(), 1);
    assert_eq!(receiver.forged.load(Ordering::SeqCst), 0);

    // What the ticket system got: the transcript, customer, subject, rating.
    let calls = receiver.accepted();
    let call = &calls[0];
    assert_eq!(
        call.webhook_id,
        format!("msg_ticket_{}", sid.replace('-', ""))
    );
    assert_eq!(call.body["type"], "chat.ticket");
    let data = &call.body["data"];
    assert_eq!(data["sessionId"], sid.as_str());
    assert_eq!(data["customerId"], "rita");
    assert_eq!(data["agentId"], "ann");
    assert_eq!(data["subject"], "Lost parcel");
    assert_eq!(data["status"], "ENDED");
    assert_eq!(data["rating"]["score"], 2);
    assert_eq!(data["rating"]["comment"], "slow");
    // The internal notes go to the ticket (it is for staff), never to her.
    assert_eq!(data["notes"].as_array().map(Vec::len), Some(1), "{data}");
    assert_eq!(data["notes"][0]["body"], "Courier lost it twice");
    assert_eq!(data["notes"][0]["authorId"], "ann");
    let bodies: Vec<(&str, &str)> = data["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["sender"].as_str().unwrap(), m["body"].as_str().unwrap()))
        .collect();
    assert!(
        bodies.contains(&("CUSTOMER", "Where is my parcel?")),
        "{bodies:?}"
    );
    assert!(
        bodies.contains(&("AGENT", "Let me look into it.")),
        "{bodies:?}"
    );
    let seqs: Vec<i64> = data["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "oldest first: {seqs:?}"
    );

    // The SYSTEM line, once; and again returns the same ticket with no call.
    assert_eq!(
        ticket_lines(&system_lines(&app, &sid).await),
        vec!["Ticket #T-1 created"]
    );
    let again = app.ok(&ann, CONVERT, json!({ "s": sid })).await;
    assert_eq!(again["convertToTicket"]["ticket"], *ticket);
    let by_admin = app.as_admin(CONVERT, json!({ "s": sid })).await;
    assert_eq!(by_admin["convertToTicket"]["ticket"], *ticket);
    assert_eq!(receiver.calls(), 1);
    assert_eq!(ticket_lines(&system_lines(&app, &sid).await).len(), 1);
    // A line added after the end is searchable like the others.
    assert_eq!(
        found_by_words(&app, "ticket T-1 parcel").await,
        [sid.as_str()]
    );

    // The customer sees the line in the transcript, not the ticket's link.
    let seen = app
        .ok(
            &rita,
            "query($s: ID!) { session(id: $s) { ticket { externalId } } }",
            json!({ "s": sid }),
        )
        .await;
    assert!(seen["session"]["ticket"].is_null(), "{seen}");
}

#[tokio::test]
async fn ten_concurrent_conversions_call_the_ticket_system_once() {
    let (app, receiver) = with_ticket_system().await;
    // Slow enough that every call arrives while the first is out.
    receiver.delay_ms.store(400, Ordering::SeqCst);
    let (rita, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&rita, &ann).await;
    let answers =
        join_all((0..10).map(|_| app.gql(Some(&ann), CONVERT, json!({ "s": sid })))).await;
    for a in &answers {
        assert!(a.get("errors").is_none(), "{a}");
        assert_eq!(a["data"]["convertToTicket"]["ticket"]["externalId"], "T-1");
    }
    assert_eq!(receiver.calls(), 1);
    assert_eq!(ticket_lines(&system_lines(&app, &sid).await).len(), 1);
}

#[tokio::test]
async fn two_servers_on_one_database_call_the_ticket_system_once() {
    let (addr, receiver) = start_receiver().await;
    receiver.delay_ms.store(400, Ordering::SeqCst);
    let a = spawn(ticket_options(addr)).await;
    let db = a.database_url.clone().unwrap();
    let b = spawn(ticket_options(addr).database(&db)).await;
    let (rita, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = a.active_session(&rita, &ann).await;
    let calls = (0..10).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        server.gql(Some(&ann), CONVERT, json!({ "s": sid }))
    });
    for answer in join_all(calls).await {
        assert!(answer.get("errors").is_none(), "{answer}");
        assert_eq!(
            answer["data"]["convertToTicket"]["ticket"]["externalId"],
            "T-1"
        );
    }
    assert_eq!(receiver.calls(), 1);
    assert_eq!(ticket_lines(&system_lines(&a, &sid).await).len(), 1);
}

#[tokio::test]
async fn who_may_hand_a_chat_over() {
    let (app, receiver) = with_ticket_system().await;
    let (rita, ann, bob, cid) = (
        tokens::customer("rita"),
        tokens::agent("ann"),
        tokens::agent("bob"),
        tokens::agent("cid"),
    );
    let sid = app.active_session(&rita, &ann).await;
    let customer = app.gql(Some(&rita), CONVERT, json!({ "s": sid })).await;
    assert_eq!(code_of(&customer), "FORBIDDEN", "{customer}");
    app.start_shift(&cid).await;
    let stranger = app.gql(Some(&cid), CONVERT, json!({ "s": sid })).await;
    assert_eq!(code_of(&stranger), "NOT_FOUND", "{stranger}");
    let nobody = app.gql(None, CONVERT, json!({ "s": sid })).await;
    assert_eq!(code_of(&nobody), "UNAUTHENTICATED", "{nobody}");
    let no_such = app
        .gql(Some(&ann), CONVERT, json!({ "s": uuid::Uuid::new_v4() }))
        .await;
    assert_eq!(code_of(&no_such), "NOT_FOUND", "{no_such}");
    assert_eq!(receiver.calls(), 0);

    // Ann hands the chat to Bob: she held it, so she still may.
    app.start_shift(&bob).await;
    app.ok(
        &ann,
        "mutation($s: ID!) { transferSession(sessionId: $s, toAgentId: \"bob\") { status } }",
        json!({ "s": sid }),
    )
    .await;
    let by_ann = app.ok(&ann, CONVERT, json!({ "s": sid })).await;
    assert_eq!(by_ann["convertToTicket"]["ticket"]["externalId"], "T-1");

    // An admin may too, on any chat.
    let other = app.active_session(&tokens::customer("kim"), &cid).await;
    let by_admin = app.as_admin(CONVERT, json!({ "s": other })).await;
    assert_eq!(by_admin["convertToTicket"]["ticket"]["externalId"], "T-2");
}

#[tokio::test]
async fn without_a_ticket_system_the_answer_says_so() {
    let app = spawn(&[]).await;
    let (rita, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&rita, &ann).await;
    let body = app.gql(Some(&ann), CONVERT, json!({ "s": sid })).await;
    assert_eq!(code_of(&body), "BAD_USER_INPUT", "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("TICKET_URL"));
}

#[tokio::test]
async fn a_slow_ticket_system_times_out_stores_nothing_and_a_later_call_retries() {
    let (addr, receiver) = start_receiver().await;
    receiver.delay_ms.store(3_000, Ordering::SeqCst);
    let app = spawn(
        ticket_options(addr)
            .set("TICKET_TIMEOUT_MS", "300")
            .set("TICKET_ATTEMPTS", "2"),
    )
    .await;
    let (rita, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&rita, &ann).await;

    let failed = app.gql(Some(&ann), CONVERT, json!({ "s": sid })).await;
    assert_eq!(code_of(&failed), "INTERNAL", "{failed}");
    assert_eq!(failed["errors"][0]["extensions"]["retryable"], true);
    let message = failed["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("did not answer in time"), "{message}");
    assert!(
        !message.contains(&addr.to_string()),
        "no internals: {message}"
    );
    assert_eq!(receiver.calls(), 2, "two attempts");
    let stored = app
        .ok(
            &ann,
            "query($s: ID!) { session(id: $s) { ticket { externalId } } }",
            json!({ "s": sid }),
        )
        .await;
    assert!(stored["session"]["ticket"].is_null());
    assert!(ticket_lines(&system_lines(&app, &sid).await).is_empty());

    // The system is back: the next call creates the ticket.
    receiver.delay_ms.store(0, Ordering::SeqCst);
    let done = app.ok(&ann, CONVERT, json!({ "s": sid })).await;
    assert_eq!(done["convertToTicket"]["ticket"]["externalId"], "T-3");
    assert_eq!(receiver.calls(), 3);
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_message_id_and_refusals_are_not() {
    let (app, receiver) = with_ticket_system().await;
    let (rita, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&rita, &ann).await;
    receiver.fail_with.store(503, Ordering::SeqCst);
    receiver.fail_next.store(1, Ordering::SeqCst);
    let done = app.ok(&ann, CONVERT, json!({ "s": sid })).await;
    assert_eq!(done["convertToTicket"]["ticket"]["externalId"], "T-2");
    assert_eq!(receiver.calls(), 2);
    let ids = receiver.ids.lock().unwrap().clone();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1], "a retry is the same message");

    let other = app.active_session(&tokens::customer("kim"), &ann).await;
    receiver.fail_with.store(400, Ordering::SeqCst);
    receiver.fail_next.store(5, Ordering::SeqCst);
    let refused = app.gql(Some(&ann), CONVERT, json!({ "s": other })).await;
    assert_eq!(code_of(&refused), "INTERNAL", "{refused}");
    assert!(refused["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("HTTP 400"));
    assert_eq!(receiver.calls(), 3, "a 400 is final: one attempt");
}

#[tokio::test]
async fn an_agent_only_offered_the_chat_may_not_hand_it_over() {
    let (addr, receiver) = start_receiver().await;
    let app = spawn(ticket_options(addr).set("ROUTING_MODE", "fair")).await;
    let ann = tokens::agent("ann");
    app.start_shift(&ann).await;
    let sid = app.start_session(&tokens::customer("rita")).await;
    let deadline = tokio::time::Instant::now() + testkit::EVENT_TIMEOUT;
    while app.state(&sid).await != ("OFFERED".to_owned(), Some("ann".to_owned())) {
        assert!(tokio::time::Instant::now() < deadline, "never offered");
        tokio::task::yield_now().await;
    }
    let offered = app.gql(Some(&ann), CONVERT, json!({ "s": sid })).await;
    assert_eq!(code_of(&offered), "FORBIDDEN", "{offered}");
    app.accept(&ann, &sid).await;
    let held = app.ok(&ann, CONVERT, json!({ "s": sid })).await;
    assert_eq!(held["convertToTicket"]["ticket"]["externalId"], "T-1");
    assert_eq!(receiver.calls(), 1);
}

#[tokio::test]
async fn on_the_embedded_database_too() {
    let (addr, receiver) = start_receiver().await;
    let app = spawn(ticket_options(addr).database("")).await;
    let (rita, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&rita, &ann).await;
    app.end(&ann, &sid).await;
    app.ok(
        &rita,
        "mutation($s: ID!) { rateSession(sessionId: $s, score: 4) { id } }",
        json!({ "s": sid }),
    )
    .await;
    let again = app
        .gql(
            Some(&rita),
            "mutation($s: ID!) { rateSession(sessionId: $s, score: 4) { id } }",
            json!({ "s": sid }),
        )
        .await;
    assert_eq!(code_of(&again), "CONFLICT", "{again}");
    let answers = join_all((0..5).map(|_| app.gql(Some(&ann), CONVERT, json!({ "s": sid })))).await;
    for a in &answers {
        assert_eq!(
            a["data"]["convertToTicket"]["ticket"]["externalId"], "T-1",
            "{a}"
        );
    }
    assert_eq!(receiver.calls(), 1);
    assert_eq!(found_by_words(&app, "ticket T-1").await, [sid.as_str()]);
    assert_eq!(receiver.accepted()[0].body["data"]["rating"]["score"], 4);
    let stats = app
        .as_admin(
            "query($f: DateTime!, $t: DateTime!) { ratingStats(from: $f, to: $t) { count average satisfied } }",
            json!({ "f": "2000-01-01T00:00:00Z", "t": "2100-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(
        stats["ratingStats"],
        json!({ "count": 1, "average": 4.0, "satisfied": 1.0 })
    );
    let guest = app
        .gql(None, "mutation { createGuest { customerId } }", json!({}))
        .await;
    assert!(guest.get("errors").is_none(), "{guest}");
}

#[tokio::test]
async fn the_claim_of_a_caller_that_died_runs_out_and_is_taken_over() {
    use sea_orm::{ConnectionTrait, Database};
    let (app, receiver) = with_ticket_system().await;
    let (rita, ann) = (tokens::customer("rita"), tokens::agent("ann"));
    let sid = app.active_session(&rita, &ann).await;
    // A process took the claim and died: the row stays, its time ran out.
    let db = Database::connect(app.database_url.clone().unwrap())
        .await
        .unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO session_tickets (session_id, claim_id, claimed_until, attempts)
         VALUES ('{sid}', '{}', now() - interval '1 second', 1)",
        uuid::Uuid::new_v4()
    ))
    .await
    .unwrap();
    let done = app.ok(&ann, CONVERT, json!({ "s": sid })).await;
    assert_eq!(done["convertToTicket"]["ticket"]["externalId"], "T-1");
    assert_eq!(receiver.calls(), 1);
}

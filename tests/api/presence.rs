//! Resume and presence: a customer who drops off keeps the chat for the
//! grace period (2 s here), across processes, and loses it after.
//!
//! Time is a manual clock the tests move, a heartbeat at a time: each step
//! returns once the heartbeats and absence sweeps it set off are done.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use switchboard::clock::{Clock, ManualClock};

use testkit::server::{spawn as spawn_server, Options, Server};
use testkit::tokens;

const GRACE: &str = "2";
/// How often presence is refreshed and absence looked for: a quarter of
/// the grace period.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// A server with the 2 s grace period on `clock`.
async fn spawn(clock: &ManualClock, more: &[(&str, &str)]) -> Server {
    let mut settings = vec![("RESUME_GRACE_SECS", GRACE)];
    settings.extend_from_slice(more);
    spawn_server(Options::from(settings.as_slice()).clock(clock.clock())).await
}

/// Lets `span` pass in heartbeat steps, as the server's timers would see it.
async fn pass(clock: &ManualClock, span: Duration) {
    let mut left = span;
    while !left.is_zero() {
        let step = left.min(HEARTBEAT);
        clock.advance(step).await;
        left -= step;
    }
}

async fn wait_for_end(app: &Server, clock: &ManualClock, sid: &str) -> serde_json::Value {
    let admin = tokens::issued_by(&clock.clock()).admin();
    let deadline = clock.now() + chrono::Duration::seconds(15);
    loop {
        let s = app
            .ok(
                &admin,
                "query($s: ID!) { session(id: $s) { status endReason endedBy } }",
                json!({"s": sid}),
            )
            .await;
        if s["session"]["status"] == "ENDED" {
            return s["session"].clone();
        }
        assert!(
            clock.now() < deadline,
            "the chat of an absent customer was never closed"
        );
        clock.advance(HEARTBEAT).await;
    }
}

#[tokio::test]
async fn a_connected_customer_keeps_a_queued_chat_and_a_departed_one_loses_it() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(&clock, &[]).await;
    let cust = tokens::issued_by(&clock.clock()).customer("gina");
    let sid = app.start_session(&cust).await;
    let mut feed = app.ws(Some(&cust)).await;
    feed.session_events("s", &sid, 0).await;
    feed.next_of("sessionEvents", "CaughtUp").await;
    pass(&clock, Duration::from_millis(3500)).await;
    assert_eq!(
        app.state(&sid).await.0,
        "WAITING",
        "closed while the customer was connected"
    );

    drop(feed);
    let ended = wait_for_end(&app, &clock, &sid).await;
    assert_eq!(
        ended,
        json!({"status": "ENDED", "endReason": "CANCELLED", "endedBy": null})
    );
}

#[tokio::test]
async fn a_customer_who_returns_within_grace_resumes_and_one_who_does_not_is_abandoned() {
    let clock = Clock::manual(Utc::now());
    let app = spawn(&clock, &[]).await;
    let cust = tokens::issued_by(&clock.clock()).customer("hugo");
    let ann = tokens::issued_by(&clock.clock()).agent("ann");
    app.start_shift(&ann).await;
    let sid = app.start_session(&cust).await;
    app.accept(&ann, &sid).await;
    let mut feed = app.ws(Some(&cust)).await;
    feed.session_events("s", &sid, 0).await;
    let caught = feed.next_of("sessionEvents", "CaughtUp").await;
    let seen = caught["seq"].as_i64().unwrap();
    drop(feed);

    // Away for a moment while the agent writes.
    for i in 0..5 {
        app.send(&ann, &sid, &format!("are you there? {i}"), &format!("a{i}"))
            .await;
    }
    pass(&clock, Duration::from_millis(1000)).await;
    let mut feed = app.ws(Some(&cust)).await;
    feed.session_events("s", &sid, seen).await;
    let mut replayed = Vec::new();
    loop {
        let ev = feed.next().await;
        let ev = &ev["data"]["sessionEvents"];
        match ev["__typename"].as_str() {
            Some("MessagePosted") => replayed.push(ev["message"]["seq"].as_i64().unwrap()),
            Some("CaughtUp") => break,
            _ => {}
        }
    }
    assert_eq!(replayed, ((seen + 1)..=(seen + 5)).collect::<Vec<_>>());
    pass(&clock, Duration::from_millis(2500)).await;
    assert_eq!(
        app.state(&sid).await.0,
        "ACTIVE",
        "the returned customer kept the chat"
    );

    drop(feed);
    let ended = wait_for_end(&app, &clock, &sid).await;
    assert_eq!(
        ended,
        json!({"status": "ENDED", "endReason": "ABANDONED", "endedBy": null})
    );
    let me = app
        .ok(
            &ann,
            "{ me { agent { activeSessionCount status } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["me"]["agent"],
        json!({"activeSessionCount": 0, "status": "AVAILABLE"}),
        "the agent was freed"
    );
}

#[tokio::test]
async fn presence_on_another_process_counts() {
    // Both processes on one clock, as on one host.
    let clock = Clock::manual(Utc::now());
    let a = spawn(&clock, &[]).await;
    let db = a.database_url.clone().unwrap();
    let b = spawn(&clock, &[("DATABASE_URL", &db)]).await;
    let cust = tokens::issued_by(&clock.clock()).customer("iris");
    let sid = a.start_session(&cust).await;
    // Connected to B only; both processes sweep.
    let mut feed = b.ws(Some(&cust)).await;
    feed.session_events("s", &sid, 0).await;
    feed.next_of("sessionEvents", "CaughtUp").await;
    pass(&clock, Duration::from_millis(3500)).await;
    assert_eq!(a.state(&sid).await.0, "WAITING");
    drop(feed);
    assert_eq!(
        wait_for_end(&a, &clock, &sid).await["endReason"],
        "CANCELLED"
    );
}

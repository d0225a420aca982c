//! Several processes on one database: events published by one reach
//! subscribers on the other through the Postgres relay.

use sea_orm::{ConnectionTrait, Database};
use serde_json::json;

use crate::helpers::{spawn_app_with, TestApp};

/// Two servers on one fresh database.
async fn two_servers(mode: &str) -> (TestApp, TestApp) {
    let a = spawn_app_with(&[("ROUTING_MODE", mode)]).await;
    let db = a.database_url.clone().unwrap();
    let b = spawn_app_with(&[("ROUTING_MODE", mode), ("DATABASE_URL", &db)]).await;
    (a, b)
}

#[tokio::test]
async fn events_reach_subscribers_connected_to_another_process() {
    let (a, b) = two_servers("fair").await;
    let ann = a.agent("ann");
    let cust = a.customer("carl");

    // The agent listens on B; shift start and offer happen on A.
    let mut agent_events = b.ws(Some(&ann)).await;
    agent_events
        .subscribe(
            "a",
            "subscription { agentEvents { __typename ... on SessionOffered { session { id } } ... on AgentChanged { agent { status } } } }",
            json!({}),
        )
        .await;
    // Keep starting the shift until B relays the change: that proves both
    // the subscription and B's relay listener are live.
    a.start_shift(&ann).await;
    let mut ready = false;
    for _ in 0..50 {
        a.ok(&ann, "mutation { requestBreak { status } }", json!({}))
            .await;
        a.start_shift(&ann).await;
        let wait = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            agent_events.next_of("agentEvents", "AgentChanged"),
        );
        if wait.await.is_ok() {
            ready = true;
            break;
        }
    }
    assert!(ready, "no AgentChanged relayed from A to B");
    let sid = a.start_session(&cust).await;
    let offer = agent_events.next_of("agentEvents", "SessionOffered").await;
    assert_eq!(offer["session"]["id"], sid.as_str());

    // The customer listens on B; everything happens on A.
    let mut feed = b.ws(Some(&cust)).await;
    feed.session_events("s", &sid, 0).await;
    feed.next_of("sessionEvents", "CaughtUp").await;
    a.accept(&ann, &sid).await;
    // The join line (published as a hint, read from storage) and the change.
    let (mut join_line, mut activated) = (None, false);
    while join_line.is_none() || !activated {
        let ev = feed.next().await;
        let ev = &ev["data"]["sessionEvents"];
        match ev["__typename"].as_str() {
            Some("MessagePosted") => join_line = Some(ev["message"].clone()),
            Some("SessionChanged") => activated = ev["session"]["status"] == "ACTIVE",
            _ => {}
        }
    }
    let join_line = join_line.unwrap();
    assert_eq!(join_line["seq"], 1);
    assert_eq!(join_line["sender"], "SYSTEM");
    a.ok(
        &ann,
        "mutation($s: ID!) { setTyping(sessionId: $s, typing: true) }",
        json!({"s": sid}),
    )
    .await;
    let typing = feed.next_of("sessionEvents", "TypingChanged").await;
    assert_eq!(typing["sender"], "AGENT");
    a.send(&ann, &sid, "hello across processes", "x1").await;
    let reply = feed.next_of("sessionEvents", "MessagePosted").await;
    assert_eq!(reply["message"]["seq"], 2);
    assert_eq!(reply["message"]["body"], "hello across processes");
}

/// The relay's listener reconnects by itself; subscribers catch up from
/// storage so nothing published meanwhile is lost.
#[tokio::test]
async fn subscribers_lose_nothing_when_the_relay_connection_drops() {
    let (a, b) = two_servers("manual").await;
    let ann = a.agent("ann");
    let cust = a.customer("cora");
    a.start_shift(&ann).await;
    let sid = a.start_session(&cust).await;
    a.accept(&ann, &sid).await;
    let mut feed = b.ws(Some(&cust)).await;
    feed.session_events("s", &sid, 0).await;
    feed.next_of("sessionEvents", "CaughtUp").await;

    // Cut every LISTEN connection on this database, then write at once.
    let db = Database::connect(a.database_url.clone().unwrap())
        .await
        .unwrap();
    let killed = db
        .query_all(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        ))
        .await
        .unwrap();
    assert!(!killed.is_empty(), "expected listener connections to cut");
    for i in 0..10 {
        a.send(
            &ann,
            &sid,
            &format!("during the outage {i}"),
            &format!("k{i}"),
        )
        .await;
    }
    let mut seqs = Vec::new();
    while seqs.len() < 10 {
        let m = feed.next_of("sessionEvents", "MessagePosted").await;
        seqs.push(m["message"]["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, (2..=11).collect::<Vec<_>>());
}

/// Queue order comes from the database's clock: a server whose own clock
/// runs a minute slow still queues its later arrival behind an earlier one.
#[tokio::test]
async fn queue_order_holds_across_servers_with_skewed_clocks() {
    let a = spawn_app_with(&[]).await;
    let db = a.database_url.clone().unwrap();
    let slow: switchboard::service::Clock =
        std::sync::Arc::new(|| chrono::Utc::now() - chrono::Duration::seconds(60));
    let b = crate::helpers::spawn_app_with_clock(
        &[("DATABASE_URL", &db), ("ROUTING_MODE", "manual")],
        slow,
    )
    .await;
    let first = a.start_session(&a.customer("early")).await;
    let second = b.start_session(&b.customer("late")).await;
    let queue = a
        .ok(&a.agent("ann"), "{ queue { id queuePosition } }", json!({}))
        .await;
    assert_eq!(queue["queue"][0]["id"], first.as_str());
    assert_eq!(queue["queue"][1]["id"], second.as_str());
    assert_eq!(queue["queue"][1]["queuePosition"], 2);
}

//! Agent presence across processes: `Agent.online` and `lastSeenAt`, AWAY
//! after AGENT_AWAY_SECS (60 s) without a connection, chats back in the
//! queue after AGENT_ABANDON_SECS (300 s), and servers that stop.
//!
//! Two servers share one database. Time is a manual clock the tests move a
//! heartbeat (15 s) at a time; each step returns once the heartbeats and
//! sweeps it set off are done.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{json, Value};
use switchboard::clock::{Clock, ManualClock};
use switchboard::domain::AgentStatus;
use switchboard::events::AgentEvent;

use testkit::server::{spawn as spawn_server, Options, Server};
use testkit::tokens;

/// A quarter of the default AGENT_AWAY_SECS.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// A server on `clock`; the second one (with `database`) shares the first's
/// database. Server pings are rare: idle test sockets do not answer them.
async fn spawn(clock: &ManualClock, database: Option<&str>, more: &[(&str, &str)]) -> Server {
    let mut options = Options::from(more)
        .set("WS_KEEPALIVE_SECS", "3600")
        .clock(clock.clock());
    if let Some(url) = database {
        options = options.database(url);
    }
    spawn_server(options).await
}

/// Two servers on one database and one clock, as two processes on one host.
async fn two_servers(clock: &ManualClock, more: &[(&str, &str)]) -> (Server, Server) {
    let a = spawn(clock, None, more).await;
    let db = a.database_url.clone().unwrap();
    let b = spawn(clock, Some(&db), more).await;
    (a, b)
}

/// Lets `span` pass in heartbeat steps, as the servers' timers would see it.
async fn pass(clock: &ManualClock, span: Duration) {
    let mut left = span;
    while !left.is_zero() {
        let step = left.min(HEARTBEAT);
        clock.advance(step).await;
        left -= step;
    }
}

/// The agent as an admin of `app` sees them.
async fn agent(app: &Server, clock: &ManualClock, id: &str) -> Value {
    let admin = tokens::issued_by(&clock.clock()).admin();
    let data = app
        .ok(
            &admin,
            "{ agents { id status online lastSeenAt activeSessionCount } }",
            json!({}),
        )
        .await;
    data["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no agent {id}"))
}

/// Reads the agent until `done` holds: for what other processes' writes
/// and after-commit work make true soon (real time, bounded), never for
/// time to pass.
async fn agent_until(
    app: &Server,
    clock: &ManualClock,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let a = agent(app, clock, id).await;
        if done(&a) {
            return a;
        }
        assert!(tokio::time::Instant::now() < give_up, "agent stayed {a}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

/// What the admin reads of a session: status, agent, queue place.
async fn session(app: &Server, clock: &ManualClock, sid: &str) -> Value {
    let admin = tokens::issued_by(&clock.clock()).admin();
    app.ok(
        &admin,
        "query($s: ID!) { session(id: $s) { status agent { id } queuePosition
            history { kind agentId actorId }
            messages { nodes { sender body } } } }",
        json!({ "s": sid }),
    )
    .await["session"]
        .clone()
}

#[tokio::test]
async fn an_agent_connected_to_one_server_is_online_on_both_and_seen_when_they_leave() {
    let clock = Clock::manual(Utc::now());
    let (a, b) = two_servers(&clock, &[]).await;
    let issue = tokens::issued_by(&clock.clock());
    let (ann, bob) = (issue.agent("ann"), issue.agent("bob"));
    a.start_shift(&ann).await;
    a.start_shift(&bob).await;
    assert_eq!(
        agent(&a, &clock, "ann").await["online"],
        false,
        "no connection yet"
    );

    // Ann's graphql-transport-ws connection is on B; the admin asks A.
    let ann_ws = b.ws(Some(&ann)).await;
    // A socket that never sends connection_init is nobody's.
    let _anonymous = testkit::ws::Client::open(b.addr).await;
    let seen = agent(&a, &clock, "ann").await;
    assert_eq!(seen["online"], true);
    assert_eq!(seen["status"], "AVAILABLE");
    assert_eq!(agent(&a, &clock, "bob").await["online"], false);
    // Still online a minute on: B vouches for her every heartbeat.
    pass(&clock, Duration::from_secs(75)).await;
    let seen = agent(&a, &clock, "ann").await;
    assert_eq!(
        (&seen["online"], &seen["status"]),
        (&json!(true), &json!("AVAILABLE"))
    );

    // A second connection, on A, then the first closes: still online.
    let again = a.ws(Some(&ann)).await;
    drop(ann_ws);
    pass(&clock, HEARTBEAT).await;
    assert_eq!(agent(&a, &clock, "ann").await["online"], true);

    let left_at = clock.now().trunc_subsecs(6);
    drop(again);
    let gone = agent_until(&b, &clock, "ann", |a| a["online"] == false).await;
    assert_eq!(time(&gone["lastSeenAt"]), left_at);
}

#[tokio::test]
async fn an_available_agent_gone_a_minute_is_away_their_offer_moves_on_and_they_come_back() {
    let clock = Clock::manual(Utc::now());
    // The offer must outlive the minute: what moves it on here is her
    // absence, not its own deadline (which the driven clock also moves).
    let (a, b) = two_servers(
        &clock,
        &[("ROUTING_MODE", "fair"), ("OFFER_TIMEOUT_SECS", "3600")],
    )
    .await;
    let issue = tokens::issued_by(&clock.clock());
    let (ann, bob, cust) = (
        issue.agent("ann"),
        issue.agent("bob"),
        issue.customer("cleo"),
    );

    let mut ann_ws = b.ws(Some(&ann)).await;
    ann_ws
        .subscribe(
            "ann",
            "subscription { agentEvents { __typename } }",
            json!({}),
        )
        .await;
    b.start_shift(&ann).await;
    let sid = a.start_session(&cust).await;
    ann_ws.next_of("agentEvents", "SessionOffered").await;
    let mut bob_ws = a.ws(Some(&bob)).await;
    bob_ws
        .subscribe(
            "bob",
            "subscription { agentEvents { __typename ... on SessionOffered { session { id } } } }",
            json!({}),
        )
        .await;
    a.start_shift(&bob).await;
    let mut ann_events = a.service.bus().subscribe_agent("ann");

    // Ann's connection drops; she holds an offer. 45 s: not yet AWAY.
    drop(ann_ws);
    agent_until(&a, &clock, "ann", |a| a["online"] == false).await;
    pass(&clock, Duration::from_secs(45)).await;
    assert_eq!(agent(&a, &clock, "ann").await["status"], "AVAILABLE");
    assert_eq!(session(&a, &clock, &sid).await["agent"]["id"], "ann");

    // A minute without a connection: AWAY, told to her feed, offer gone on.
    pass(&clock, Duration::from_secs(15)).await;
    let away = agent(&a, &clock, "ann").await;
    assert_eq!(
        (&away["status"], &away["activeSessionCount"]),
        (&json!("AWAY"), &json!(0))
    );
    let told = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ann_events.recv().await {
                Ok(AgentEvent::AgentChanged(a)) if a.status == AgentStatus::Away => return a,
                _ => {}
            }
        }
    })
    .await
    .expect("an AgentChanged to AWAY for ann");
    assert_eq!(told.active_session_count, 0);
    let offered = bob_ws.next_of("agentEvents", "SessionOffered").await;
    assert_eq!(offered["session"]["id"], sid.as_str());
    let s = session(&a, &clock, &sid).await;
    assert_eq!(
        (&s["status"], &s["agent"]["id"]),
        (&json!("OFFERED"), &json!("bob"))
    );
    let kinds: Vec<(String, String)> = s["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let agent = h["agentId"].as_str().unwrap_or_default();
            (h["kind"].as_str().unwrap().to_owned(), agent.to_owned())
        })
        .collect();
    let tail = &kinds[kinds.len() - 3..];
    assert_eq!(
        tail,
        [
            ("OFFERED".to_owned(), "ann".to_owned()),
            ("WITHDRAWN".to_owned(), "ann".to_owned()),
            ("OFFERED".to_owned(), "bob".to_owned()),
        ]
    );

    // Nothing new reaches her while away, and she is back as she reconnects.
    pass(&clock, Duration::from_secs(60)).await;
    assert_eq!(agent(&a, &clock, "ann").await["status"], "AWAY");
    let _back = a.ws(Some(&ann)).await;
    let back = agent(&b, &clock, "ann").await;
    assert_eq!(
        (&back["status"], &back["online"]),
        (&json!("AVAILABLE"), &json!(true))
    );
}

#[tokio::test]
async fn an_agent_gone_five_minutes_has_their_chat_sent_back_to_its_place_in_the_queue() {
    let clock = Clock::manual(Utc::now());
    let (a, b) = two_servers(&clock, &[]).await;
    let issue = tokens::issued_by(&clock.clock());
    let ann = issue.agent("ann");
    let (first, second) = (issue.customer("cleo"), issue.customer("dora"));

    let ann_ws = b.ws(Some(&ann)).await;
    let held = a.active_session(&first, &ann).await;
    // The second customer comes later (the driven clock stands still
    // unless moved, and equal times would leave the order to the ids).
    pass(&clock, Duration::from_secs(1)).await;
    let queued_after = a.start_session(&second).await;
    assert_eq!(session(&a, &clock, &queued_after).await["queuePosition"], 1);

    drop(ann_ws);
    agent_until(&a, &clock, "ann", |a| a["online"] == false).await;
    pass(&clock, Duration::from_secs(285)).await;
    assert_eq!(session(&a, &clock, &held).await["status"], "ACTIVE");
    assert_eq!(agent(&a, &clock, "ann").await["status"], "AWAY");

    pass(&clock, HEARTBEAT).await;
    let s = session(&a, &clock, &held).await;
    assert_eq!(
        (&s["status"], &s["agent"]),
        (&json!("WAITING"), &Value::Null)
    );
    // Its original place: ahead of the chat that was queued after it.
    assert_eq!(s["queuePosition"], 1);
    assert_eq!(session(&a, &clock, &queued_after).await["queuePosition"], 2);
    let last = s["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        json!({"kind": "REQUEUED", "agentId": "ann", "actorId": null})
    );
    let line = s["messages"]["nodes"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        line,
        json!({"sender": "SYSTEM", "body": "ann (name) lost their connection; you are back in the queue."})
    );
    // The customer reads it too.
    let read = a
        .ok(
            &first,
            "query($s: ID!) { session(id: $s) { status messages { nodes { body } } } }",
            json!({ "s": held }),
        )
        .await;
    assert_eq!(read["session"]["status"], "WAITING");
    assert_eq!(
        read["session"]["messages"]["nodes"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["body"],
        "ann (name) lost their connection; you are back in the queue."
    );
    let ann_now = agent(&a, &clock, "ann").await;
    assert_eq!(
        (&ann_now["status"], &ann_now["activeSessionCount"]),
        (&json!("AWAY"), &json!(0))
    );
}

#[tokio::test]
async fn a_server_that_stops_vouching_loses_its_agents_after_three_heartbeats() {
    // B's clock stands still: it never vouches again, as if hung or killed
    // (nothing cleans up after it). A's clock moves.
    let start = Utc::now();
    let (clock_a, clock_b) = (Clock::manual(start), Clock::manual(start));
    let a = spawn(&clock_a, None, &[]).await;
    let db = a.database_url.clone().unwrap();
    let b = spawn(&clock_b, Some(&db), &[]).await;
    let ann = tokens::issued_by(&clock_b.clock()).agent("ann");
    let _ann_ws = b.ws(Some(&ann)).await;
    b.start_shift(&ann).await;
    assert_eq!(agent(&a, &clock_a, "ann").await["online"], true);

    // Two missed heartbeats are forgiven (a slow process, skewed clocks)…
    pass(&clock_a, Duration::from_secs(45)).await;
    assert_eq!(agent(&a, &clock_a, "ann").await["online"], true);
    // …a third is not: offline since B last vouched, and AWAY a minute on.
    pass(&clock_a, HEARTBEAT).await;
    let gone = agent(&a, &clock_a, "ann").await;
    assert_eq!(gone["online"], false);
    assert_eq!(time(&gone["lastSeenAt"]), start.trunc_subsecs(6));
    assert_eq!(gone["status"], "AWAY");
}

#[tokio::test]
async fn a_server_that_is_stopped_takes_its_agents_offline_at_once() {
    let clock = Clock::manual(Utc::now());
    let (a, mut b) = two_servers(&clock, &[]).await;
    let ann = tokens::issued_by(&clock.clock()).agent("ann");
    let _ann_ws = b.ws(Some(&ann)).await;
    assert_eq!(agent(&a, &clock, "ann").await["online"], true);
    b.stop();
    let gone = agent_until(&a, &clock, "ann", |a| a["online"] == false).await;
    assert_eq!(time(&gone["lastSeenAt"]), clock.now().trunc_subsecs(6));
}

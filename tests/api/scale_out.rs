//! Several processes on one database: events published by one reach
//! subscribers on the other through the relay, Postgres LISTEN/NOTIFY or
//! NATS, and deployments sharing one NATS server never see each other's.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use sea_orm::{ConnectionTrait, Database};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use testkit::{
    server::{nats_url, spawn, Options, Server},
    tokens, ws,
};

/// The relay between the processes of a test.
#[derive(Clone, Copy, Debug)]
enum Bus {
    Postgres,
    Nats,
}

impl Bus {
    fn setting(self) -> String {
        match self {
            Bus::Postgres => "postgres".to_owned(),
            Bus::Nats => nats_url(),
        }
    }
}

/// Two servers on one fresh database.
async fn two_servers(bus: Bus, mode: &str) -> (Server, Server) {
    two_servers_with(bus, &[("ROUTING_MODE", mode)]).await
}

/// Two servers on one fresh database, both with `settings`.
async fn two_servers_with(bus: Bus, settings: &[(&str, &str)]) -> (Server, Server) {
    let event_bus = bus.setting();
    let mut vars = vec![("EVENT_BUS", event_bus.as_str())];
    vars.extend_from_slice(settings);
    let a = spawn(vars.as_slice()).await;
    let db = a.database_url.clone().unwrap();
    vars.push(("DATABASE_URL", db.as_str()));
    let b = spawn(vars.as_slice()).await;
    (a, b)
}

#[tokio::test]
async fn events_reach_subscribers_connected_to_another_process_over_postgres() {
    events_reach_subscribers_connected_to_another_process(Bus::Postgres).await;
}

#[tokio::test]
async fn events_reach_subscribers_connected_to_another_process_over_nats() {
    events_reach_subscribers_connected_to_another_process(Bus::Nats).await;
}

async fn events_reach_subscribers_connected_to_another_process(bus: Bus) {
    let (a, b) = two_servers(bus, "fair").await;
    let ann = tokens::agent("ann");
    let cust = tokens::customer("carl");

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
    let (a, b) = two_servers(Bus::Postgres, "manual").await;
    let ann = tokens::agent("ann");
    let cust = tokens::customer("cora");
    let sid = a.active_session(&cust, &ann).await;
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

/// The NATS client reconnects by itself; once its subscription is live
/// again, subscribers catch up from storage, so what was published while
/// the process was cut off is not lost.
#[tokio::test]
async fn subscribers_lose_nothing_when_the_nats_connection_drops() {
    let proxy = CuttableProxy::start().await;
    let a = spawn(&[("EVENT_BUS", nats_url().as_str())]).await;
    let db = a.database_url.clone().unwrap();
    // Only B, where the subscriber is, reaches NATS through the proxy.
    let b = spawn(&[
        ("EVENT_BUS", proxy.url().as_str()),
        ("DATABASE_URL", db.as_str()),
    ])
    .await;
    let ann = tokens::agent("ann");
    let cust = tokens::customer("cora");
    let sid = a.active_session(&cust, &ann).await;
    let mut feed = b.ws(Some(&cust)).await;
    feed.session_events("s", &sid, 0).await;
    feed.next_of("sessionEvents", "CaughtUp").await;

    // B is cut off while A writes: these events never reach B over NATS.
    proxy.cut();
    for i in 0..10 {
        a.send(
            &ann,
            &sid,
            &format!("during the outage {i}"),
            &format!("k{i}"),
        )
        .await;
    }
    proxy.reopen();
    let mut seqs = Vec::new();
    while seqs.len() < 10 {
        let m = feed.next_of("sessionEvents", "MessagePosted").await;
        seqs.push(m["message"]["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, (2..=11).collect::<Vec<_>>());
    assert!(
        proxy.accepted() >= 2,
        "B should have reconnected through the proxy"
    );
    // Live events flow again after the reconnect.
    a.send(&ann, &sid, "after the outage", "k-after").await;
    let m = feed.next_of("sessionEvents", "MessagePosted").await;
    assert_eq!(m["message"]["seq"], 12);
}

/// Two deployments (two databases) on one NATS server, with the same agent
/// id in both: neither sees the other's events.
#[tokio::test]
async fn deployments_sharing_a_nats_server_never_see_each_others_events() {
    // Agents of deployment one have capacity 5, of two capacity 2, so every
    // AgentChanged tells which deployment it came from.
    let (one_a, one_b) = two_servers_with(Bus::Nats, &[("AGENT_CAPACITY", "5")]).await;
    let (two_a, two_b) = two_servers_with(Bus::Nats, &[]).await;
    let ann_one = tokens::agent("ann");
    let ann_two = tokens::agent("ann");

    let mut feed_two = agent_feed(&two_b, &ann_two).await;
    relay_until_seen(&two_a, &ann_two, &mut feed_two).await;
    let mut feed_one = agent_feed(&one_b, &ann_one).await;
    relay_until_seen(&one_a, &ann_one, &mut feed_one).await;
    // Deployment one's events have crossed NATS (B1 got one). One NATS
    // server forwards messages in the order it receives them, so had they
    // gone to deployment two as well, B2 would see them before this.
    two_a
        .ok(
            &tokens::admin(),
            "mutation { setAgentCapacity(agentId: \"ann\", capacity: 7) { capacity } }",
            json!({}),
        )
        .await;
    loop {
        let ev = feed_two.next_of("agentEvents", "AgentChanged").await;
        let capacity = ev["agent"]["capacity"].as_i64().unwrap();
        assert_ne!(
            capacity, 5,
            "deployment two saw deployment one's event: {ev}"
        );
        if capacity == 7 {
            break;
        }
    }
}

async fn agent_feed(app: &Server, agent: &str) -> ws::Client {
    let mut feed = app.ws(Some(agent)).await;
    feed.subscribe(
        "a",
        "subscription { agentEvents { __typename ... on AgentChanged { agent { capacity status } } } }",
        json!({}),
    )
    .await;
    feed
}

/// Changes the agent's status through `app` until `feed` (on another
/// process) receives the change: the subscription and relay are live.
async fn relay_until_seen(app: &Server, agent: &str, feed: &mut ws::Client) {
    app.start_shift(agent).await;
    for _ in 0..50 {
        app.ok(agent, "mutation { requestBreak { status } }", json!({}))
            .await;
        app.start_shift(agent).await;
        let wait = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            feed.next_of("agentEvents", "AgentChanged"),
        );
        if wait.await.is_ok() {
            return;
        }
    }
    panic!("no AgentChanged relayed to the other process");
}

/// A TCP proxy to the NATS server whose connections a test can cut, and
/// which then refuses new ones until reopened: one process loses NATS while
/// the shared server (other tests use it) stays up.
struct CuttableProxy {
    addr: SocketAddr,
    /// `user:pass@` of TEST_NATS_URL, if any, for the server behind.
    credentials: String,
    open: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
    accepted: Arc<AtomicUsize>,
}

impl CuttableProxy {
    async fn start() -> Self {
        let url = nats_url();
        let rest = url.trim_start_matches("nats://");
        let (credentials, upstream) = match rest.rsplit_once('@') {
            Some((credentials, upstream)) => (format!("{credentials}@"), upstream.to_owned()),
            None => (String::new(), rest.to_owned()),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let (is_open, count) = (open.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cuts = cuts.clone();
                // Seen before `open` is read: a cut after this line still
                // reaches the connection, one before it refuses it.
                cuts.borrow_and_update();
                if !is_open.load(Ordering::SeqCst) {
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        CuttableProxy {
            addr,
            credentials,
            open,
            cut,
            accepted,
        }
    }

    fn url(&self) -> String {
        format!("nats://{}{}", self.credentials, self.addr)
    }

    /// Closes every connection and refuses new ones.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cut.send_modify(|generation| *generation += 1);
    }

    fn reopen(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Connections passed through so far.
    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Queue order comes from the database's clock: a server whose own clock
/// runs a minute slow still queues its later arrival behind an earlier one.
#[tokio::test]
async fn queue_order_holds_across_servers_with_skewed_clocks() {
    let a = spawn(Options::default()).await;
    let db = a.database_url.clone().unwrap();
    let slow = switchboard::clock::Clock::skewed(-chrono::Duration::seconds(60));
    let b = spawn(
        Options::from(&[("DATABASE_URL", db.as_str()), ("ROUTING_MODE", "manual")]).clock(slow),
    )
    .await;
    let first = a.start_session(&tokens::customer("early")).await;
    let second = b.start_session(&tokens::customer("late")).await;
    let queue = a
        .ok(
            &tokens::agent("ann"),
            "{ queue { id queuePosition } }",
            json!({}),
        )
        .await;
    assert_eq!(queue["queue"][0]["id"], first.as_str());
    assert_eq!(queue["queue"][1]["id"], second.as_str());
    assert_eq!(queue["queue"][1]["queuePosition"], 2);
}

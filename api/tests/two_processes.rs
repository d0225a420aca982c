//! Two `switchboard` processes on one Postgres database, 200 customers and
//! 10 agents of capacity 2 spread over both, agents accepting and ending at
//! random. Afterwards the assignment history must show every customer served
//! exactly once, offers made in arrival order, no session ever held by two
//! agents and no agent ever over capacity. It runs once with each relay
//! between the processes: Postgres LISTEN/NOTIFY and NATS.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::json;
use switchboard::auth::Role;
use testkit::db::fresh_database;
use testkit::graphql;
use testkit::server::{nats_url, spawn_process, Options, Process};
use testkit::tokens;

const CUSTOMERS: usize = 200;
const AGENTS: usize = 10;
const CAPACITY: i64 = 2;
const DEADLINE: Duration = Duration::from_secs(150);

async fn start_server(database_url: &str, event_bus: &str, routing: &str) -> Process {
    let capacity = CAPACITY.to_string();
    let server = spawn_process(
        env!("CARGO_BIN_EXE_switchboard"),
        Options::from(&[
            ("EVENT_BUS", event_bus),
            ("ROUTING_MODE", routing),
            ("AGENT_CAPACITY", &capacity),
            ("DB_POOL_SIZE", "8"),
        ])
        .database(database_url),
    )
    .await;
    let on_nats = server
        .startup_log
        .iter()
        .any(|l| l.contains("relaying events through NATS"));
    assert_eq!(
        on_nats,
        event_bus.starts_with("nats://"),
        "the server did not start the relay asked for"
    );
    server
}

/// A tiny deterministic generator: the race needs variety, not quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn run_agent(
    (client, token): (graphql::Client, String),
    seed: u64,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let mut rng = Rng(seed | 1);
    client.start_shift(&token).await;
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        // Newest first and ended ones included: a page smaller than all an
        // agent handles would hide an older session they still hold or are
        // offered, and the race would stall on it (offers lapse, agents go
        // on break). An agent handles about CUSTOMERS / AGENTS sessions.
        let data = client
            .ok(
                &token,
                "{ mySessions(first: 100) { nodes { id status } pageInfo { hasNextPage } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            data["mySessions"]["pageInfo"]["hasNextPage"], false,
            "an agent's sessions no longer fit one page"
        );
        for s in data["mySessions"]["nodes"].as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            match s["status"].as_str().unwrap() {
                "OFFERED" => {
                    let r = client
                        .gql(
                            Some(&token),
                            "mutation($s: ID!) { acceptSession(sessionId: $s) { status } }",
                            json!({ "s": id }),
                        )
                        .await;
                    // Only an offer withdrawn meanwhile may refuse; nothing here withdraws.
                    assert!(r.get("errors").is_none(), "accept failed: {r}");
                }
                "ACTIVE" if rng.below(3) == 0 => {
                    client.end(&token, id).await;
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(5 + rng.below(20))).await;
    }
}

/// The races run one at a time: four servers and two swarms of clients at
/// once would only measure how two cores share out.
static ONE_RACE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_the_postgres_bus_serve_every_customer_once_in_order_within_capacity() {
    let _one = ONE_RACE_AT_A_TIME.lock().await;
    race("postgres", "fair").await;
}

/// Auto routing gives sessions without offers, a burst of them per matcher
/// pass: the same invariants must hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_with_auto_routing_serve_every_customer_once_in_order_within_capacity() {
    let _one = ONE_RACE_AT_A_TIME.lock().await;
    race("postgres", "auto").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_the_nats_bus_serve_every_customer_once_in_order_within_capacity() {
    let _one = ONE_RACE_AT_A_TIME.lock().await;
    race(&nats_url(), "fair").await;
}

async fn race(event_bus: &str, routing: &str) {
    let db_url = fresh_database().await;
    let db = Database::connect(&db_url)
        .await
        .expect("connect to test database");
    let servers = [
        start_server(&db_url, event_bus, routing).await,
        start_server(&db_url, event_bus, routing).await,
    ];
    // Two hundred clients at once: a request that gets no answer is retried.
    let client = |role, sub: String, i: usize| {
        (
            servers[i % 2].api.clone().with_retries(3),
            tokens::token(role, &sub),
        )
    };

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let agents: Vec<_> = (0..AGENTS)
        .map(|i| {
            tokio::spawn(run_agent(
                client(Role::Agent, format!("agent-{i}"), i),
                0x9E37_79B9 * (i as u64 + 1),
                done.clone(),
            ))
        })
        .collect();

    // Customers arrive in waves on both processes while the agents work.
    let mut customers = Vec::new();
    for i in 0..CUSTOMERS {
        let (c, token) = client(Role::Customer, format!("customer-{i}"), i);
        customers.push(tokio::spawn(async move {
            let id = c.start_session(&token).await;
            let sent = c
                .gql(
                    Some(&token),
                    "mutation($s: ID!) { sendMessage(input: {sessionId: $s, body: \"hello\", clientMessageId: \"k\"}) { seq } }",
                    json!({ "s": id }),
                )
                .await;
            // A quick agent may already have ended the chat.
            if let Some(errors) = sent.get("errors") {
                assert_eq!(errors[0]["extensions"]["code"], "CONFLICT", "{sent}");
            }
            id
        }));
        if i % 20 == 19 {
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    let mut session_ids = HashSet::new();
    for c in customers {
        session_ids.insert(c.await.expect("customer task"));
    }
    assert_eq!(session_ids.len(), CUSTOMERS);

    // Wait until every session has been served and ended.
    let started = Instant::now();
    loop {
        let open = count(
            &db,
            "SELECT COUNT(*) AS n FROM chat_sessions WHERE status <> 'ENDED'",
        )
        .await;
        if open == 0 {
            break;
        }
        if started.elapsed() >= DEADLINE {
            let states = db
                .query_all(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT status || ' ' || COALESCE(agent_id, '-') || ' ' || COALESCE(offer_expires_at::text, '-') AS s \
                     FROM chat_sessions WHERE status <> 'ENDED'",
                ))
                .await
                .map(|rows| {
                    rows.iter()
                        .filter_map(|r| r.try_get::<String>("", "s").ok())
                        .collect::<Vec<_>>()
                });
            let agents = db
                .query_all(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT id || ' ' || status AS s FROM agents ORDER BY id",
                ))
                .await
                .map(|rows| {
                    rows.iter()
                        .filter_map(|r| r.try_get::<String>("", "s").ok())
                        .collect::<Vec<_>>()
                });
            panic!("{open} sessions still open after {DEADLINE:?}: {states:?}; agents {agents:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for a in agents {
        a.await.expect("agent task");
    }
    drop(servers);

    check_history(&db).await;
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("a row");
    row.try_get::<i64>("", "n").expect("count")
}

/// Replays the assignment history in the order it was written and checks
/// every invariant at every step.
async fn check_history(db: &DatabaseConnection) {
    let backend = db.get_database_backend();
    let events = db
        .query_all(Statement::from_string(
            backend,
            "SELECT id, session_id::text AS session_id, kind, agent_id FROM session_events ORDER BY id",
        ))
        .await
        .expect("history");
    let sessions = db
        .query_all(Statement::from_string(
            backend,
            "SELECT id::text AS id, status, end_reason FROM chat_sessions ORDER BY queued_at, id",
        ))
        .await
        .expect("sessions");
    let arrival: Vec<String> = sessions
        .iter()
        .map(|r| r.try_get("", "id").unwrap())
        .collect();
    for r in &sessions {
        assert_eq!(r.try_get::<String>("", "status").unwrap(), "ENDED");
        assert_eq!(r.try_get::<String>("", "end_reason").unwrap(), "RESOLVED");
    }

    let mut holder: HashMap<String, String> = HashMap::new();
    let mut held: HashMap<String, i64> = HashMap::new();
    let mut accepted: HashMap<String, usize> = HashMap::new();
    let mut first_offer_order = Vec::new();
    for e in &events {
        let session: String = e.try_get("", "session_id").unwrap();
        let kind: String = e.try_get("", "kind").unwrap();
        let agent: Option<String> = e.try_get("", "agent_id").unwrap();
        match kind.as_str() {
            "OFFERED" | "ASSIGNED" => {
                let agent = agent.expect("offer names an agent");
                assert!(
                    !holder.contains_key(&session),
                    "{session} offered while held by {:?}",
                    holder.get(&session)
                );
                let n = held.entry(agent.clone()).or_default();
                *n += 1;
                assert!(*n <= CAPACITY, "{agent} over capacity");
                holder.insert(session.clone(), agent);
                if !first_offer_order.contains(&session) {
                    first_offer_order.push(session.clone());
                }
                if kind == "ASSIGNED" {
                    // Given without an offer: served at once.
                    *accepted.entry(session.clone()).or_default() += 1;
                }
            }
            "ACCEPTED" => {
                assert_eq!(
                    holder.get(&session),
                    agent.as_ref(),
                    "{session} accepted by someone it was not offered to"
                );
                *accepted.entry(session.clone()).or_default() += 1;
            }
            "DECLINED" | "LAPSED" | "WITHDRAWN" => {
                let h = holder
                    .remove(&session)
                    .expect("withdrawn offer had a holder");
                *held.get_mut(&h).unwrap() -= 1;
            }
            "ENDED" => {
                if let Some(h) = holder.remove(&session) {
                    *held.get_mut(&h).unwrap() -= 1;
                }
            }
            "QUEUED" => {}
            other => panic!("unexpected history entry {other} in this scenario"),
        }
    }
    assert!(
        held.values().all(|n| *n == 0),
        "slots not released: {held:?}"
    );
    assert_eq!(accepted.len(), CUSTOMERS, "every customer was served");
    assert!(
        accepted.values().all(|n| *n == 1),
        "someone was served twice"
    );
    // Offers were made strictly in arrival order: the matcher always took
    // the head of the queue whenever an agent was free.
    assert_eq!(first_offer_order, arrival);
}

//! Two `switchboard` processes on one Postgres database, 200 customers of
//! mixed priorities (the shop's signed claim) and skills, and 10 agents of
//! capacity 2 with different skills, spread over both. Agents accept and
//! end at random, go on breaks, end shifts and come back, and drop their
//! WebSocket for a while (presence turns them AWAY and, past
//! AGENT_ABANDON_SECS, returns their chats to the queue); the customers
//! arrive faster than they are served, so most wait. Afterwards:
//!
//! - the assignment history must show every customer served exactly once
//!   per stay in the queue,
//!   first offers in arrival order within each priority among sessions
//!   that need no skills, no session ever held by two agents and no agent
//!   ever over capacity;
//! - the audit (`switchboard::audit`, the code `switchboard audit` runs)
//!   over the whole run must find no violation;
//! - the public API's timestamps must agree (see `public_api`).
//!
//! It runs once with each relay between the processes (Postgres
//! LISTEN/NOTIFY and NATS), and with auto routing.

#[path = "two_processes/public_api.rs"]
mod public_api;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::json;
use switchboard::auth::{Claims, Role};
use testkit::db::fresh_database;
use testkit::graphql;
use testkit::server::{nats_url, spawn_process, Options, Process};
use testkit::tokens;
use testkit::ws;

const CUSTOMERS: usize = 200;
const AGENTS: usize = 10;
const CAPACITY: i64 = 2;
/// Short, so that sessions needing skills few agents have are relaxed
/// during the run.
const SKILL_WAIT_SECS: i64 = 1;
/// Short, so that agents who drop their WebSocket turn AWAY, and some have
/// their chats returned to the queue, during the run.
const AGENT_AWAY_SECS: i64 = 1;
const AGENT_ABANDON_SECS: i64 = 2;
const DEADLINE: Duration = Duration::from_secs(150);

/// The skills of agent `i`: three billing, two German, one both.
fn agent_skills(i: usize) -> &'static [&'static str] {
    match i {
        0..=2 => &["billing"],
        3 | 4 => &["de"],
        5 => &["billing", "de"],
        _ => &[],
    }
}

/// Customer `i`'s priority claim, if any, and the skills they choose.
fn customer_profile(i: usize) -> (Option<&'static str>, &'static [&'static str]) {
    let priority = match i % 10 {
        0 => Some("URGENT"),
        3 | 7 => Some("HIGH"),
        5 => Some("LOW"),
        8 => Some("NORMAL"),
        _ => None,
    };
    let skills: &[&str] = match i % 6 {
        1 => &["billing"],
        4 => &["de"],
        _ if i % 15 == 2 => &["billing", "de"],
        _ => &[],
    };
    (priority, skills)
}

/// A customer token as the shop's backend signs it, with its priority claim.
fn customer_token(sub: &str, priority: Option<&str>) -> String {
    let now = Utc::now().timestamp();
    tokens::keys()
        .sign(&Claims {
            sub: sub.into(),
            role: Role::Customer.as_claim().into(),
            name: None,
            exp: now + 3600,
            iat: now,
            nbf: None,
            priority: priority.map(str::to_owned),
        })
        .expect("token")
}

async fn start_server(database_url: &str, event_bus: &str, routing: &str) -> Process {
    let capacity = CAPACITY.to_string();
    let server = spawn_process(
        env!("CARGO_BIN_EXE_switchboard"),
        Options::from(&[
            ("EVENT_BUS", event_bus),
            ("ROUTING_MODE", routing),
            ("AGENT_CAPACITY", &capacity),
            ("SKILL_WAIT_SECS", &SKILL_WAIT_SECS.to_string()),
            ("AGENT_AWAY_SECS", &AGENT_AWAY_SECS.to_string()),
            ("AGENT_ABANDON_SECS", &AGENT_ABANDON_SECS.to_string()),
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

/// Why an agent is away, and so how they come back.
#[derive(Clone, Copy)]
enum Away {
    Break,
    ShiftEnd,
    /// The agent's WebSocket drops and they do nothing until it is back:
    /// presence turns them AWAY after AGENT_AWAY_SECS (their offers move
    /// on) and, past AGENT_ABANDON_SECS, returns their chats to the queue.
    Offline,
}

/// An agent's live WebSocket: what makes them online. Nothing is
/// subscribed; it is read now and then so that the server's pings are
/// answered.
async fn go_online(addr: std::net::SocketAddr, token: &str) -> ws::Client {
    ws::Client::connect(addr, Some(token)).await
}

/// After a reconnect, for this long, the agent's last absence may still be
/// acted on (a sweep that began before the reconnect was written may take
/// an offer back or return a chat to the queue): refusals are expected.
const SETTLING: Duration = Duration::from_secs(3);

async fn run_agent(
    (client, token): (graphql::Client, String),
    addr: std::net::SocketAddr,
    seed: u64,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (usize, usize) {
    let mut rng = Rng(seed | 1);
    let mut socket = Some(go_online(addr, &token).await);
    client.start_shift(&token).await;
    let mut away: Option<(Instant, Away)> = None;
    let mut settled_at = Instant::now();
    let mut absences = 0;
    let mut seen_away = 0;
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        if let Some(socket) = socket.as_mut() {
            while !matches!(
                socket.frame(Duration::from_millis(1)).await,
                ws::Frame::Quiet
            ) {}
        }
        let offline = matches!(away, Some((_, Away::Offline)));
        let settling = Instant::now() < settled_at;
        // Newest first and ended ones included: a page smaller than all an
        // agent handles would hide an older session they still hold or are
        // offered, and the race would stall on it (offers lapse, agents go
        // on break). An agent handles about CUSTOMERS / AGENTS sessions.
        let data = if offline {
            json!({ "mySessions": { "nodes": [], "pageInfo": { "hasNextPage": false } } })
        } else {
            client
                .ok(
                    &token,
                    "{ mySessions(first: 100) { nodes { id status } pageInfo { hasNextPage } } }",
                    json!({}),
                )
                .await
        };
        assert_eq!(
            data["mySessions"]["pageInfo"]["hasNextPage"], false,
            "an agent's sessions no longer fit one page"
        );
        for s in data["mySessions"]["nodes"].as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            let r = match s["status"].as_str().unwrap() {
                "OFFERED" => {
                    client
                        .gql(
                            Some(&token),
                            "mutation($s: ID!) { acceptSession(sessionId: $s) { status } }",
                            json!({ "s": id }),
                        )
                        .await
                }
                // Slow enough that customers arrive faster than they are served.
                "ACTIVE" if rng.below(8) == 0 => {
                    client
                        .gql(
                            Some(&token),
                            "mutation($s: ID!) { endSession(sessionId: $s) { status } }",
                            json!({ "s": id }),
                        )
                        .await
                }
                _ => continue,
            };
            // Only an offer withdrawn meanwhile may refuse: this agent's own
            // break or shift end comes after this loop, so only the tail of
            // an absence can.
            if r.get("errors").is_some() {
                assert!(settling, "refused outside an absence's tail: {r}");
                assert!(
                    ["CONFLICT", "FORBIDDEN"].contains(&graphql::code_of(&r).as_str()),
                    "{r}"
                );
            }
        }
        match away {
            None if rng.below(40) == 0 => {
                // A break or the end of a shift: offers go back to the
                // queue; sessions held are finished first (draining).
                let why = match rng.below(3) {
                    0 => Away::Break,
                    1 => Away::ShiftEnd,
                    _ => Away::Offline,
                };
                let change = match why {
                    Away::Break => Some("mutation { requestBreak { status } }"),
                    Away::ShiftEnd => Some("mutation { endShift { status } }"),
                    Away::Offline => None,
                };
                let gone_for = match why {
                    // Past AGENT_AWAY_SECS, and half the time past
                    // AGENT_ABANDON_SECS too.
                    Away::Offline => {
                        socket = None;
                        absences += 1;
                        Duration::from_millis(
                            (AGENT_AWAY_SECS * 1000 + 300) as u64
                                + rng.below(
                                    2 * (AGENT_ABANDON_SECS - AGENT_AWAY_SECS) as u64 * 1000,
                                ),
                        )
                    }
                    _ => Duration::from_millis(50 + rng.below(250)),
                };
                if let Some(change) = change {
                    client.ok(&token, change, json!({})).await;
                }
                away = Some((Instant::now() + gone_for, why));
            }
            Some((back, why)) if Instant::now() >= back => {
                let change = match why {
                    Away::Break => "mutation { endBreak { status } }",
                    Away::ShiftEnd => "mutation { startShift { status } }",
                    Away::Offline => {
                        let me = client
                            .ok(&token, "{ me { agent { status online } } }", json!({}))
                            .await;
                        assert_eq!(me["me"]["agent"]["online"], false, "{me}");
                        if me["me"]["agent"]["status"] == "AWAY" {
                            seen_away += 1;
                        }
                        // Back by itself: AWAY returns to AVAILABLE.
                        socket = Some(go_online(addr, &token).await);
                        settled_at = Instant::now() + SETTLING;
                        away = None;
                        continue;
                    }
                };
                let r = client.gql(Some(&token), change, json!({})).await;
                match r.get("errors") {
                    None => away = None,
                    // A new shift starts only once the old one has drained.
                    Some(_) => assert_eq!(graphql::code_of(&r), "CONFLICT", "{r}"),
                }
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(5 + rng.below(20))).await;
    }
    (absences, seen_away)
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

    // The agents' rows exist once their tokens are seen; then their skills.
    let admin = tokens::admin();
    for i in 0..AGENTS {
        let (c, token) = client(Role::Agent, format!("agent-{i}"), i);
        c.ok(
            &token,
            "{ mySessions(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
        c.ok(
            &admin,
            "mutation($a: ID!, $k: [String!]!) { setAgentSkills(agentId: $a, skills: $k) { id } }",
            json!({ "a": format!("agent-{i}"), "k": agent_skills(i) }),
        )
        .await;
    }
    let started_at = Utc::now();

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let agents: Vec<_> = (0..AGENTS)
        .map(|i| {
            tokio::spawn(run_agent(
                client(Role::Agent, format!("agent-{i}"), i),
                servers[i % 2].addr,
                0x9E37_79B9 * (i as u64 + 1),
                done.clone(),
            ))
        })
        .collect();

    // Customers arrive in waves on both processes while the agents work.
    let mut customers = Vec::new();
    for i in 0..CUSTOMERS {
        let (c, _) = client(Role::Customer, format!("customer-{i}"), i);
        let (priority, skills) = customer_profile(i);
        let token = customer_token(&format!("customer-{i}"), priority);
        customers.push(tokio::spawn(async move {
            let started = c
                .ok(
                    &token,
                    "mutation($k: [String!]) { startSession(input: {skills: $k}) { id } }",
                    json!({ "k": skills }),
                )
                .await;
            let id = started["startSession"]["id"].as_str().unwrap().to_owned();
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
    let (mut absences, mut away) = (0, 0);
    for a in agents {
        let (gone, seen_away) = a.await.expect("agent task");
        absences += gone;
        away += seen_away;
    }
    let returned = count(
        &db,
        "SELECT COUNT(*) AS n FROM session_events WHERE kind = 'REQUEUED'",
    )
    .await;
    eprintln!(
        "presence: {absences} WebSocket drops, {away} seen AWAY before reconnecting, {returned} chats returned to the queue"
    );
    assert!(away > 0, "no agent was seen AWAY during the race");
    check_history(&db).await;
    check_with_the_audit(&db, started_at).await;
    check_with_the_public_api(&servers[0].api, &admin, routing).await;
    drop(servers);
}

/// The audit's own code, over the whole run: every decision checked, none
/// found wanting.
async fn check_with_the_audit(db: &DatabaseConnection, started_at: chrono::DateTime<Utc>) {
    let from = started_at - chrono::Duration::minutes(1);
    let to = Utc::now() + chrono::Duration::minutes(1);
    let skill_wait = chrono::Duration::seconds(SKILL_WAIT_SECS);
    let period = switchboard::repo::audit::load_period(db, from, to, skill_wait)
        .await
        .expect("load the period");
    let report = switchboard::audit::check(&period);
    let decisions = count(db, "SELECT COUNT(*) AS n FROM routing_decisions").await;
    let relaxed = count(
        db,
        "SELECT COUNT(*) AS n FROM routing_decisions WHERE skills_relaxed",
    )
    .await;
    let withdrawn = count(
        db,
        "SELECT COUNT(*) AS n FROM session_events WHERE kind = 'WITHDRAWN'",
    )
    .await;
    eprintln!(
        "audit: {} (skills relaxed in {relaxed}, offers withdrawn {withdrawn})",
        report.lines(from, to).join("\n")
    );
    assert_eq!(
        report.checked as i64, decisions,
        "the audit saw every decision"
    );
    assert!(report.checked >= CUSTOMERS, "every customer was decided");
    assert!(
        report.violations.is_empty(),
        "the audit found violations:\n{}",
        report.lines(from, to).join("\n")
    );

    // From the middle of the run: the state at `from` is rebuilt from the
    // history of the sessions open then, and the rest checks as clean.
    let mid = period.decisions[period.decisions.len() / 2].1.at;
    let later = period.decisions.iter().filter(|(_, d)| d.at >= mid).count();
    let period = switchboard::repo::audit::load_period(db, mid, to, skill_wait)
        .await
        .expect("load the second half");
    let report = switchboard::audit::check(&period);
    eprintln!(
        "audit from the middle: {}",
        report.lines(mid, to).join("\n")
    );
    assert_eq!(report.checked, later);
    assert!(
        report.at_from.waiting + report.at_from.held > 0,
        "the middle of the run had sessions waiting or held"
    );
    assert!(
        report.violations.is_empty(),
        "the audit from the middle found violations:\n{}",
        report.lines(mid, to).join("\n")
    );
}

/// The public API's timestamps and history, read as an admin, with no
/// help from the audit: see `public_api`.
async fn check_with_the_public_api(client: &graphql::Client, admin: &str, routing: &str) {
    let sessions = public_api::sessions(client, admin).await;
    assert_eq!(sessions.len(), CUSTOMERS);
    let skills: HashMap<String, Vec<String>> = (0..AGENTS)
        .map(|i| {
            (
                format!("agent-{i}"),
                agent_skills(i).iter().map(|k| (*k).to_owned()).collect(),
            )
        })
        .collect();
    let problems = public_api::problems(
        &sessions,
        &skills,
        CAPACITY,
        chrono::Duration::seconds(SKILL_WAIT_SECS),
        routing == "auto",
    );
    assert!(
        problems.is_empty(),
        "the public API shows {} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Loaded so that most sessions wait: they join a queue already there.
    let joined = public_api::joined_a_queue(&sessions);
    eprintln!("public API: {joined} of {CUSTOMERS} sessions joined a queue");
    assert!(
        joined * 2 > CUSTOMERS,
        "only {joined} of {CUSTOMERS} sessions waited behind another"
    );
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
            "SELECT id::text AS id, status, end_reason, priority, required_skills \
             FROM chat_sessions ORDER BY queued_at, id",
        ))
        .await
        .expect("sessions");
    // Arrival order within each priority, among sessions that need no skills.
    let class_of: HashMap<String, Option<i16>> = sessions
        .iter()
        .map(|r| {
            let skills: String = r.try_get("", "required_skills").unwrap();
            let priority: i16 = r.try_get("", "priority").unwrap();
            (
                r.try_get("", "id").unwrap(),
                skills.is_empty().then_some(priority),
            )
        })
        .collect();
    let arrival: Vec<String> = sessions
        .iter()
        .map(|r| r.try_get::<String>("", "id").unwrap())
        .filter(|id| class_of[id].is_some())
        .collect();
    for r in &sessions {
        assert_eq!(r.try_get::<String>("", "status").unwrap(), "ENDED");
        assert_eq!(r.try_get::<String>("", "end_reason").unwrap(), "RESOLVED");
    }

    let mut holder: HashMap<String, String> = HashMap::new();
    let mut held: HashMap<String, i64> = HashMap::new();
    let mut accepted: HashMap<String, usize> = HashMap::new();
    let mut requeued: HashMap<String, usize> = HashMap::new();
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
            // An absent agent's chat back in the queue: served again.
            "REQUEUED" => {
                let h = holder.remove(&session).expect("requeued chat had a holder");
                assert_eq!(
                    agent.as_ref(),
                    Some(&h),
                    "{session} requeued from a non-holder"
                );
                *held.get_mut(&h).unwrap() -= 1;
                *requeued.entry(session.clone()).or_default() += 1;
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
    // Once per stay in the queue.
    for (session, n) in &accepted {
        assert_eq!(
            *n,
            1 + requeued.get(session).copied().unwrap_or(0),
            "{session} served a wrong number of times"
        );
    }
    // First offers were made in arrival order within each priority, among
    // sessions any agent can take: the matcher always took the head of
    // that queue whenever an agent was free.
    for class in [0, 1, 2, 3].map(Some) {
        let in_class = |ids: &[String]| -> Vec<String> {
            ids.iter()
                .filter(|id| class_of[*id] == class)
                .cloned()
                .collect()
        };
        assert_eq!(
            in_class(&first_offer_order),
            in_class(&arrival),
            "priority {class:?}"
        );
    }
}

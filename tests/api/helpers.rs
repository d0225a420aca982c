//! Test harness: a real server on a random port against a fresh Postgres
//! database, and clients that talk to it as browsers and consoles do.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{json, Value};
use switchboard::auth::{JwtKeys, Role};
use switchboard::config::{JwtSecret, Settings};
use switchboard::startup::Application;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TEST_SECRET: &str = "integration-test-secret-0123456789";
/// How long a test waits for an event before it fails.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Postgres server the tests create their databases on.
fn pg_base() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// NATS server the NATS-bus tests relay through; shared by every test (and
/// every engineer), which is why each deployment gets its own subject.
pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

static CLEANUP: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Test databases are named sbtest_<unix secs>_<random>; ones older than an
/// hour are left over from earlier runs and are dropped once per run.
async fn drop_stale_databases(admin: &sea_orm::DatabaseConnection) {
    let now = chrono::Utc::now().timestamp();
    let rows = admin
        .query_all(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            "SELECT datname FROM pg_database WHERE datname LIKE 'sbtest_%'",
        ))
        .await
        .unwrap_or_default();
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "datname") else {
            continue;
        };
        let stamp = name
            .split('_')
            .nth(1)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(now);
        if now - stamp > 3600 {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> String {
    let base = pg_base();
    let admin = Database::connect(format!("{base}/postgres"))
        .await
        .unwrap_or_else(|e| {
            panic!("Postgres at {base} is unreachable ({e}); set TEST_DATABASE_URL")
        });
    CLEANUP.get_or_init(|| drop_stale_databases(&admin)).await;
    let name = format!(
        "sbtest_{}_{}",
        chrono::Utc::now().timestamp(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    let _ = admin.close().await;
    format!("{base}/{name}")
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub database_url: Option<String>,
    keys: JwtKeys,
    /// Dropping or firing this stops the server.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// For driving background jobs directly (retention) instead of waiting.
    pub service: switchboard::service::ChatService,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts a server; `overrides` are environment-style settings.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_with_clock(overrides, switchboard::clock::Clock::system()).await
}

/// Starts a server that reads the time from `clock` (a test moves a
/// `Clock::manual` instead of sleeping); its tokens are issued by it too.
pub async fn spawn_app_with_clock(
    overrides: &[(&str, &str)],
    clock: switchboard::clock::Clock,
) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        switchboard::telemetry::init(false);
    }
    let mut vars: HashMap<String, String> = HashMap::new();
    let wants_sqlite = overrides
        .iter()
        .any(|(k, v)| *k == "DATABASE_URL" && v.is_empty());
    if !wants_sqlite {
        vars.insert("DATABASE_URL".into(), fresh_database().await);
    }
    vars.insert("LISTEN_ADDR".into(), "127.0.0.1:0".into());
    vars.insert("JWT_SECRET".into(), TEST_SECRET.into());
    vars.insert("DB_POOL_SIZE".into(), "10".into());
    // The core tests pick sessions by hand; routing tests choose their mode.
    vars.insert("ROUTING_MODE".into(), "manual".into());
    // Tests that race many sends from one sender are not about rate limits;
    // the limits test sets its own.
    vars.insert("MESSAGE_RATE_PER_SEC".into(), "100000".into());
    vars.insert("MESSAGE_BURST".into(), "100000".into());
    // Every test client comes from 127.0.0.1; the per-address limits have
    // tests of their own.
    vars.insert("IP_SESSION_RATE_PER_MIN".into(), "1000000".into());
    vars.insert("IP_SESSION_BURST".into(), "1000000".into());
    vars.insert("IP_MAX_CONNECTIONS".into(), "100000".into());
    vars.insert(
        "DATA_DIR".into(),
        std::env::temp_dir()
            .join(format!("switchboard-test-{}", uuid::Uuid::new_v4()))
            .display()
            .to_string(),
    );
    for (k, v) in overrides {
        vars.insert(k.to_string(), v.to_string());
    }
    let settings = Settings::from_lookup(|k| vars.get(k).cloned()).expect("test settings");
    let keys =
        JwtKeys::new(&JwtSecret::new(TEST_SECRET.as_bytes().to_vec())).with_clock(clock.clone());
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("server starts");
    let service = app.service().clone();
    let addr = app.local_addr().expect("bound address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        http: reqwest::Client::new(),
        database_url: vars.get("DATABASE_URL").filter(|u| !u.is_empty()).cloned(),
        keys,
        stop: Some(stop),
        service,
    }
}

impl TestApp {
    /// Stops serving: the listener closes and background work ends.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Status and agent of a session, read as an admin.
    pub async fn state(&self, session: &str) -> (String, Option<String>) {
        let data = self
            .ok(
                &self.admin(),
                "query($s: ID!) { session(id: $s) { status agent { id } } }",
                json!({ "s": session }),
            )
            .await;
        let s = &data["session"];
        (
            s["status"].as_str().unwrap().to_owned(),
            s["agent"]["id"].as_str().map(str::to_owned),
        )
    }

    /// The kinds and agents of a session's assignment history.
    pub async fn history(&self, session: &str) -> Vec<(String, Option<String>)> {
        let data = self
            .ok(
                &self.admin(),
                "query($s: ID!) { session(id: $s) { history { kind agentId } } }",
                json!({ "s": session }),
            )
            .await;
        data["session"]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["kind"].as_str().unwrap().to_owned(),
                    h["agentId"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }

    pub async fn agent_status(&self, agent: &str) -> String {
        let data = self
            .ok(&self.admin(), "{ agents { id status } }", json!({}))
            .await;
        data["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == agent)
            .map(|a| a["status"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no agent {agent}"))
    }

    pub async fn set_capacity(&self, agent: &str, capacity: i64) {
        self.ok(
            &self.admin(),
            "mutation($a: ID!, $c: Int!) { setAgentCapacity(agentId: $a, capacity: $c) { capacity } }",
            json!({ "a": agent, "c": capacity }),
        )
        .await;
    }

    pub async fn end(&self, token: &str, session: &str) {
        self.ok(
            token,
            "mutation($s: ID!) { endSession(sessionId: $s) { status } }",
            json!({ "s": session }),
        )
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn token(&self, role: Role, sub: &str) -> String {
        self.token_with_ttl(role, sub, 3600)
    }

    pub fn token_with_ttl(&self, role: Role, sub: &str, ttl_secs: i64) -> String {
        self.keys
            .issue(role, sub, Some(&format!("{sub} (name)")), ttl_secs)
            .expect("token")
    }

    pub fn customer(&self, sub: &str) -> String {
        self.token(Role::Customer, sub)
    }

    pub fn agent(&self, sub: &str) -> String {
        self.token(Role::Agent, sub)
    }

    pub fn admin(&self) -> String {
        self.token(Role::Admin, "root")
    }

    /// POSTs a GraphQL operation and returns the whole response body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request sent");
        resp.json().await.expect("JSON response")
    }

    /// Like [`Self::gql`], but fails the test on any GraphQL error and returns `data`.
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(Some(token), query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Runs an operation expected to fail and returns errors[0].extensions.code.
    pub async fn error_code(&self, token: Option<&str>, query: &str, variables: Value) -> String {
        let body = self.gql(token, query, variables).await;
        code_of(&body)
    }

    // Common operations.

    pub async fn start_session(&self, customer: &str) -> String {
        let data = self
            .ok(
                customer,
                "mutation { startSession(input: {}) { id status } }",
                json!({}),
            )
            .await;
        data["startSession"]["id"]
            .as_str()
            .expect("session id")
            .to_owned()
    }

    pub async fn start_shift(&self, agent: &str) {
        self.ok(agent, "mutation { startShift { status } }", json!({}))
            .await;
    }

    pub async fn accept(&self, agent: &str, session: &str) -> Value {
        self.gql(
            Some(agent),
            "mutation($id: ID!) { acceptSession(sessionId: $id) { id status agent { id } } }",
            json!({ "id": session }),
        )
        .await
    }

    pub async fn send(&self, token: &str, session: &str, body: &str, client_id: &str) -> Value {
        self.gql(
            Some(token),
            "mutation($s: ID!, $b: String!, $c: String!) {
               sendMessage(input: {sessionId: $s, body: $b, clientMessageId: $c}) { id seq sender body status clientMessageId }
             }",
            json!({ "s": session, "b": body, "c": client_id }),
        )
        .await
    }

    /// Every message seq of a session, read through the API page by page.
    pub async fn all_seqs(&self, token: &str, session: &str) -> Vec<i64> {
        let mut seqs = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data = self
                .ok(
                    token,
                    "query($id: ID!, $after: String) { session(id: $id) {
                       messages(first: 500, after: $after) { nodes { seq } pageInfo { hasNextPage endCursor } } } }",
                    json!({ "id": session, "after": after }),
                )
                .await;
            let conn = &data["session"]["messages"];
            seqs.extend(
                conn["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n["seq"].as_i64().unwrap()),
            );
            if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap() {
                return seqs;
            }
            after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
    }

    /// The body of a GET, as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("text body")
    }

    /// A counter from /metrics.
    pub async fn counter(&self, name: &str) -> u64 {
        let metrics = self.get_text("/metrics").await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}"))
    }

    /// A customer's session accepted by an agent on shift (manual routing).
    pub async fn active_session(&self, customer: &str, agent: &str) -> String {
        self.start_shift(agent).await;
        let sid = self.start_session(customer).await;
        self.accept(agent, &sid).await;
        sid
    }

    pub async fn ws(&self, token: Option<&str>) -> WsClient {
        WsClient::connect(self.addr, token).await
    }
}

/// errors[0].extensions.code of a response, or a panic that shows the body.
pub fn code_of(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code, got {body}"))
        .to_owned()
}

/// The error code of a subscription that failed: async-graphql reports a
/// resolver error as a `next` payload with `errors`, a protocol-level
/// refusal as an `error` frame; clients handle both.
pub fn subscription_error_code(frame: &Value) -> String {
    let errors = if frame["type"] == "error" {
        &frame["payload"]
    } else {
        &frame["errors"]
    };
    errors[0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a subscription error, got {frame}"))
        .to_owned()
}

/// A WebSocket handshake request offering graphql-transport-ws.
pub fn ws_request(addr: SocketAddr) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    request
}

/// A graphql-transport-ws client.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// Opens the socket without connection_init.
    pub async fn open(addr: SocketAddr) -> WsClient {
        let (socket, _) = tokio_tungstenite::connect_async(ws_request(addr))
            .await
            .expect("WebSocket connects");
        WsClient { socket }
    }

    pub async fn connect(addr: SocketAddr, token: Option<&str>) -> WsClient {
        let mut client = WsClient::open(addr).await;
        client.init(token).await;
        client
    }

    pub fn from_socket(socket: WebSocketStream<MaybeTlsStream<TcpStream>>) -> WsClient {
        WsClient { socket }
    }

    /// Sends connection_init and waits for the acknowledgement.
    pub async fn init(&mut self, token: Option<&str>) {
        let payload = match token {
            Some(t) => json!({ "authorization": format!("Bearer {t}") }),
            None => json!({}),
        };
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        let ack = self.next_frame().await;
        assert_eq!(ack["type"], "connection_ack", "expected ack, got {ack}");
    }

    pub async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(WsMessage::Text(text.to_owned().into()))
            .await
            .expect("WebSocket send");
    }

    /// Reads until the server closes the socket; its close code and reason.
    /// Protocol messages on the way are skipped (pings are answered).
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            let frame = tokio::time::timeout(EVENT_TIMEOUT, self.socket.next())
                .await
                .expect("timed out waiting for the server to close");
            match frame {
                Some(Ok(WsMessage::Close(Some(c)))) => {
                    return (c.code.into(), c.reason.to_string())
                }
                Some(Ok(WsMessage::Close(None))) => panic!("closed without a code"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("WebSocket error before a close frame: {e}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// The socket itself, for tests of the transport.
    pub fn socket(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.socket
    }

    /// The next protocol message, answering pings on the way.
    async fn next_frame(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(EVENT_TIMEOUT, self.socket.next())
                .await
                .expect("timed out waiting for a WebSocket message")
                .expect("WebSocket closed")
                .expect("WebSocket error");
            match frame {
                WsMessage::Text(text) => {
                    let v: Value = serde_json::from_str(&text).expect("JSON frame");
                    if v["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return v;
                }
                WsMessage::Close(c) => panic!("WebSocket closed by server: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Ends subscription `id` from the client side.
    pub async fn complete(&mut self, id: &str) {
        self.send(json!({ "id": id, "type": "complete" })).await;
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// Subscribes to sessionEvents with every field a client would ask for.
    pub async fn session_events(&mut self, id: &str, session: &str, after_seq: i64) {
        self.subscribe(
            id,
            "subscription($s: ID!, $a: Int) { sessionEvents(sessionId: $s, afterSeq: $a) {
               __typename
               ... on MessagePosted { message { seq sender body status senderId } }
               ... on CaughtUp { seq sessionId }
               ... on TypingChanged { sender typing }
               ... on ReceiptUpdated { reader deliveredSeq readSeq }
               ... on SessionChanged { session { status endReason endedBy } }
             } }",
            json!({ "s": session, "a": after_seq }),
        )
        .await;
    }

    /// The payload of the next `next` message (the subscription's data), or
    /// the frame itself for `error`/`complete`.
    pub async fn next(&mut self) -> Value {
        let frame = self.next_frame().await;
        match frame["type"].as_str() {
            Some("next") => frame["payload"].clone(),
            _ => frame,
        }
    }

    /// The error code that subscription `id` fails with; its ordinary events
    /// and frames of other subscriptions (e.g. the `complete` after an
    /// earlier failure) are skipped.
    pub async fn error_code_for(&mut self, id: &str) -> String {
        loop {
            let frame = self.next_frame().await;
            if frame["id"] != id || frame["type"] == "complete" {
                continue;
            }
            let payload = if frame["type"] == "next" {
                frame["payload"].clone()
            } else {
                frame
            };
            if payload.get("errors").is_none() && payload["type"] != "error" {
                continue; // an ordinary event before the error
            }
            return subscription_error_code(&payload);
        }
    }

    /// Reads events until one with this __typename arrives (under `field`).
    pub async fn next_of(&mut self, field: &str, typename: &str) -> Value {
        loop {
            let ev = self.next().await;
            assert!(
                ev.get("errors").is_none() && ev.get("type").is_none(),
                "unexpected frame {ev}"
            );
            if ev["data"][field]["__typename"] == typename {
                return ev["data"][field].clone();
            }
        }
    }
}

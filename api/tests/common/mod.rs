//! Shared by the tests that run the real `switchboard` binary: starting,
//! signalling and stopping it, fresh databases, private Postgres clusters,
//! and small HTTP and graphql-transport-ws clients that survive the server
//! going away (they report failures instead of panicking).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{json, Value};
use switchboard::auth::{JwtKeys, Role};
use switchboard::config::JwtSecret;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const SECRET: &str = "two-process-race-secret-0123456789";

/// A child server process, killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    pub addr: SocketAddr,
    /// Log lines that say something went wrong (WARN, ERROR, panics).
    pub trouble: Arc<Mutex<Vec<String>>>,
    /// Its log up to the line saying where it listens.
    pub startup_log: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port with `env` on top of settings every
/// test shares, and waits until it listens.
pub fn start_server(database_url: &str, env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .env("DATABASE_URL", database_url)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("JWT_SECRET", SECRET)
        // Tests connect many clients from 127.0.0.1.
        .env("IP_SESSION_RATE_PER_MIN", "1000000")
        .env("IP_SESSION_BURST", "1000000")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start switchboard");
    let trouble = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    drain(BufReader::new(stderr).lines(), trouble.clone());
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut startup_log = Vec::new();
    let url = loop {
        let line = lines
            .next()
            .expect("server exited before listening")
            .expect("read log");
        startup_log.push(line.clone());
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on ".len()..];
            let url: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '\u{1b}')
                .collect();
            break url;
        }
    };
    // Keep draining the log so the child never blocks on a full pipe, and
    // show what went wrong in the server when something did.
    drain(lines, trouble.clone());
    let addr = url
        .trim_start_matches("http://")
        .parse()
        .expect("listen address");
    Server {
        child,
        url,
        addr,
        trouble,
        startup_log,
    }
}

fn drain(
    lines: impl Iterator<Item = std::io::Result<String>> + Send + 'static,
    trouble: Arc<Mutex<Vec<String>>>,
) {
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("WARN") || line.contains("ERROR") || line.contains("panicked") {
                eprintln!("server: {line}");
                if let Ok(mut t) = trouble.lock() {
                    t.push(line);
                }
            }
        }
    });
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `KILL`) with kill(1): the tests
    /// need no libc for it.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// The exit status, waiting at most `bound`; `None` if still running.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if started.elapsed() > bound {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Log lines of panics seen so far.
    pub fn panics(&self) -> Vec<String> {
        self.trouble
            .lock()
            .map(|t| {
                t.iter()
                    .filter(|l| l.contains("panicked"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A new, empty database on the shared test Postgres.
pub async fn fresh_database() -> (String, DatabaseConnection) {
    let base = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let admin = Database::connect(format!("{base}/postgres"))
        .await
        .expect("Postgres reachable");
    let name = format!(
        "sbtest_{}_{}",
        chrono::Utc::now().timestamp(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create database");
    let url = format!("{base}/{name}");
    let db = Database::connect(&url)
        .await
        .expect("connect to test database");
    (url, db)
}

/// A Postgres 15 cluster of the test's own, in a temporary folder on a free
/// port, so that a test may stop and restart it without disturbing the
/// shared server other tests use. Stopped and deleted when dropped (also
/// when the test panics).
///
/// initdb and postgres refuse to run as root; as root (CI) they run as the
/// `postgres` OS user, which then owns the folder.
pub struct PgCluster {
    dir: PathBuf,
    pub port: u16,
    as_postgres_user: bool,
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let as_postgres_user = running_as_root();
        let dir =
            std::env::temp_dir().join(format!("switchboard-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create cluster folder");
        let cluster = PgCluster {
            port: free_port(),
            dir,
            as_postgres_user,
        };
        if as_postgres_user {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&cluster.dir)
                .status()
                .expect("run chown");
            assert!(chown.success(), "chown of the cluster folder failed");
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.start_again();
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Starts the (stopped) cluster on its port and waits until it accepts.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the cluster the hard way (as a crash would: no goodbye to
    /// clients, recovery on the next start).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn command(&self, program: &str) -> Command {
        let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
        let program = Path::new(&bin).join(program);
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} (set PG_BIN?): {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Already stopped is fine; the point is that nothing outlives the test.
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn token(role: Role, sub: &str) -> String {
    JwtKeys::new(&JwtSecret::new(SECRET.as_bytes().to_vec()))
        .issue(role, sub, None, 3600)
        .expect("token")
}

/// GraphQL over HTTP that reports a failed request instead of panicking:
/// the fault tests talk to servers that go away.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
}

impl Default for Api {
    fn default() -> Self {
        Api {
            // Only a guard against a hung test; no assertion is timed.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
        }
    }
}

impl Api {
    pub async fn gql(
        &self,
        url: &str,
        token: &str,
        query: &str,
        variables: Value,
    ) -> Result<Value, reqwest::Error> {
        self.http
            .post(format!("{url}/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .json()
            .await
    }

    /// `data` of an operation that must succeed.
    pub async fn ok(&self, url: &str, token: &str, query: &str, variables: Value) -> Value {
        let body = self
            .gql(url, token, query, variables)
            .await
            .expect("request answered");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub async fn status(&self, url: &str, path: &str) -> Result<u16, reqwest::Error> {
        Ok(self
            .http
            .get(format!("{url}{path}"))
            .send()
            .await?
            .status()
            .as_u16())
    }

    /// Sends one message; its seq, or the response or transport error.
    pub async fn send(
        &self,
        url: &str,
        token: &str,
        session: &str,
        client_id: &str,
    ) -> Result<i64, SendError> {
        let body = self
            .gql(
                url,
                token,
                "mutation($s: ID!, $b: String!, $c: String!) {
                   sendMessage(input: {sessionId: $s, body: $b, clientMessageId: $c}) { seq } }",
                json!({ "s": session, "b": format!("body of {client_id}"), "c": client_id }),
            )
            .await
            .map_err(|e| SendError::Transport(e.to_string()))?;
        match body["data"]["sendMessage"]["seq"].as_i64() {
            Some(seq) if body.get("errors").is_none() => Ok(seq),
            _ => Err(SendError::Refused(body)),
        }
    }

    /// Every message of a session as (seq, clientMessageId), read page by page.
    pub async fn transcript(&self, url: &str, token: &str, session: &str) -> Vec<(i64, String)> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data = self
                .ok(
                    url,
                    token,
                    "query($id: ID!, $after: String) { session(id: $id) {
                       messages(first: 500, after: $after) {
                         nodes { seq clientMessageId } pageInfo { hasNextPage endCursor } } } }",
                    json!({ "id": session, "after": after }),
                )
                .await;
            let conn = &data["session"]["messages"];
            for n in conn["nodes"].as_array().expect("nodes") {
                all.push((
                    n["seq"].as_i64().expect("seq"),
                    n["clientMessageId"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            if !conn["pageInfo"]["hasNextPage"].as_bool().unwrap_or(false) {
                return all;
            }
            after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
    }

    pub async fn session_status(&self, url: &str, token: &str, session: &str) -> String {
        let data = self
            .ok(
                url,
                token,
                "query($id: ID!) { session(id: $id) { status } }",
                json!({ "id": session }),
            )
            .await;
        data["session"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

#[derive(Debug)]
pub enum SendError {
    /// No answer: the connection failed or was cut.
    Transport(String),
    /// An answer without data: the GraphQL response.
    Refused(Value),
}

/// What a subscriber saw of one session, across every reconnect.
#[derive(Debug, Default)]
pub struct FollowLog {
    /// The seq of every MessagePosted received, in arrival order.
    pub seqs: Vec<i64>,
    /// Every subscription made: the server and the afterSeq it resumed from.
    pub subscriptions: Vec<(SocketAddr, i64)>,
    /// Close codes the server sent (None: the connection ended without one).
    pub closes: Vec<Option<u16>>,
    /// GraphQL errors that ended a subscription.
    pub errors: Vec<Value>,
}

/// A running [`follow`]: its log so far, and the task.
pub struct Follower {
    log: Arc<Mutex<FollowLog>>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// How many GraphQL errors have ended a subscription so far.
    pub fn errors_so_far(&self) -> usize {
        self.log.lock().map(|l| l.errors.len()).unwrap_or(0)
    }

    /// Waits (at most `bound`) until the follower has seen its last seq.
    pub async fn finish(self, bound: Duration) -> FollowLog {
        tokio::time::timeout(bound, self.task)
            .await
            .expect("the subscriber caught up")
            .expect("follower task");
        let mut log = self.log.lock().expect("follow log");
        std::mem::take(&mut *log)
    }
}

/// Follows a session's `sessionEvents` as a resilient client does: on any
/// error, completion or lost connection it reconnects — to the next server
/// in `servers` when the current one cannot be reached or closed the socket,
/// as a load balancer would route it — and resumes with `afterSeq` = the
/// last seq it saw. Ends once it has seen seq `until` (0: not known yet).
pub fn follow(
    servers: Vec<SocketAddr>,
    token: String,
    session: String,
    until: Arc<AtomicI64>,
) -> Follower {
    let shared = Arc::new(Mutex::new(FollowLog::default()));
    let log = shared.clone();
    let note = move |f: &mut dyn FnMut(&mut FollowLog)| {
        if let Ok(mut l) = log.lock() {
            f(&mut l);
        }
    };
    let task = tokio::spawn(async move {
        let mut last = 0;
        let mut server = 0;
        let done = |last: i64| {
            let target = until.load(Ordering::SeqCst);
            target > 0 && last >= target
        };
        while !done(last) {
            let addr = servers[server % servers.len()];
            let mut ws = match Ws::connect(addr, &token).await {
                Ok(ws) => ws,
                Err(_) => {
                    server += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            ws.session_events("s", &session, last).await;
            note(&mut |l| l.subscriptions.push((addr, last)));
            loop {
                match ws.next(Duration::from_millis(200)).await {
                    Frame::Quiet if done(last) => break,
                    Frame::Quiet => continue,
                    Frame::Next(payload) if payload.get("errors").is_some() => {
                        note(&mut |l| l.errors.push(payload.clone()));
                        break;
                    }
                    Frame::Next(payload) => {
                        let event = &payload["data"]["sessionEvents"];
                        if event["__typename"] == "MessagePosted" {
                            last = event["message"]["seq"].as_i64().expect("seq");
                            note(&mut |l| l.seqs.push(last));
                        }
                    }
                    Frame::Error(frame) => {
                        note(&mut |l| l.errors.push(frame.clone()));
                        break;
                    }
                    Frame::Complete => break,
                    Frame::Closed(code) => {
                        note(&mut |l| l.closes.push(code));
                        server += 1;
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    Follower { log: shared, task }
}

/// One graphql-transport-ws frame, or what happened instead.
#[derive(Debug)]
pub enum Frame {
    Next(Value),
    Error(Value),
    Complete,
    /// The connection ended: with the server's close code, if it sent one.
    Closed(Option<u16>),
    /// Nothing arrived in the time given.
    Quiet,
}

/// A graphql-transport-ws client.
pub struct Ws {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Connects, initialises and waits for the acknowledgement.
    pub async fn connect(addr: SocketAddr, token: &str) -> Result<Ws, String> {
        let mut request = format!("ws://{addr}/graphql")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws"
                .parse()
                .map_err(|_| "header".to_owned())?,
        );
        // A stopping server may leave a connection in its backlog unserved.
        let (socket, _) = tokio::time::timeout(
            Duration::from_secs(3),
            tokio_tungstenite::connect_async(request),
        )
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        let mut ws = Ws { socket };
        ws.send(json!({ "type": "connection_init",
                        "payload": { "authorization": format!("Bearer {token}") } }))
            .await;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.socket.next()).await {
                Ok(Some(Ok(WsMessage::Text(text)))) => {
                    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                    if v["type"] == "connection_ack" {
                        return Ok(ws);
                    }
                }
                Ok(Some(Ok(_))) => continue,
                other => return Err(format!("no connection_ack: {other:?}")),
            }
        }
    }

    async fn send(&mut self, value: Value) {
        // A failed send shows up as a closed connection on the next read.
        let _ = self
            .socket
            .send(WsMessage::Text(value.to_string().into()))
            .await;
    }

    /// Starts any subscription document.
    pub async fn subscribe(&mut self, id: &str, query: &str) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query } }))
            .await;
    }

    pub async fn session_events(&mut self, id: &str, session: &str, after_seq: i64) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": {
            "query": "subscription($s: ID!, $a: Int) { sessionEvents(sessionId: $s, afterSeq: $a) {
                        __typename
                        ... on MessagePosted { message { seq } }
                        ... on CaughtUp { seq } } }",
            "variables": { "s": session, "a": after_seq } } }))
            .await;
    }

    /// The next frame, waiting at most `wait`; protocol pings are answered.
    pub async fn next(&mut self, wait: Duration) -> Frame {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let read = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Err(_) => return Frame::Quiet,
                Ok(read) => read,
            };
            match read {
                Some(Ok(WsMessage::Text(text))) => {
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    match v["type"].as_str() {
                        Some("next") => return Frame::Next(v["payload"].clone()),
                        Some("error") => return Frame::Error(v),
                        Some("complete") => return Frame::Complete,
                        Some("ping") => self.send(json!({ "type": "pong" })).await,
                        _ => continue,
                    }
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    return Frame::Closed(frame.map(|f| f.code.into()))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Frame::Closed(None),
            }
        }
    }
}

/// Asserts that `seqs` is exactly 1, 2, …, n.
pub fn assert_one_to_n(what: &str, seqs: &[i64]) {
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(
        seqs,
        expected.as_slice(),
        "{what}: not 1..n in order without gap or duplicate"
    );
}

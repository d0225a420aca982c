//! The GraphQL clients people use, unchanged and with their default
//! options, each doing a whole chat against the real binary: Apollo Client
//! with GraphQLWsLink, urql with its defaults, graphql-ws, and Python gql
//! over both WebSocket subprotocols (graphql-transport-ws and the legacy
//! graphql-ws). The scripts are in tests/clients/; each test starts its own
//! server on a fresh database, runs one script with a bounded timeout, and
//! fails with the script's whole output.
//!
//! Node.js 20+ with npm, and python3, must be installed: without them these
//! tests fail, they never skip. The clients are installed only from the
//! project's files, when missing or stale: `npm ci` from
//! tests/clients/package-lock.json, and tests/clients/.venv from the pinned
//! tests/clients/requirements.txt (as fuzz/run builds fuzz/.venv).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use testkit::node::{install_lock, install_step, npm_ci, run_bounded, tests_dir, version};
use testkit::server::spawn_process;
use testkit::tokens;

/// The most one script may run. Each gives up by itself after 20 seconds
/// and says where it was; this only stops one that hangs anyway.
const SCRIPT_BOUND: Duration = Duration::from_secs(30);

/// The line each script prints once its chat is done.
const PASSED: &str = "PASSED: a whole chat";

fn clients_dir() -> PathBuf {
    tests_dir("clients")
}

/// tests/clients/node_modules as package-lock.json pins it. Once per
/// test binary.
fn node_modules() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| npm_ci(&clients_dir(), &lock_path()))
        .clone()
}

/// Held while installing: tests of this binary run in parallel, and other
/// `cargo test` runs may share the target directory (and so this lock).
fn lock_path() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("client-tests-install.lock")
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust releases, for
/// the venv's stamp.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// tests/clients/.venv from the pinned requirements.txt, made anew when it
/// is missing or was made from other requirements (a stamp of their hash
/// says which); its python. `PYTHON` picks the interpreter, as for
/// fuzz/run. Once per test binary.
fn python_venv() -> Result<PathBuf, String> {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
            let python_version = version(&python)?;
            let dir = clients_dir();
            let requirements = dir.join("requirements.txt");
            let pinned = std::fs::read(&requirements)
                .map_err(|e| format!("read {}: {e}", requirements.display()))?;
            let venv = dir.join(".venv");
            let venv_python = venv.join("bin").join("python");
            let stamp_file = venv.join("requirements.hash");
            let stamp = format!("fnv1a64 {:016x}\n", fnv1a(&pinned));
            let _lock = install_lock(&lock_path())?;
            if venv_python.is_file()
                && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp)
            {
                return Ok(venv_python);
            }
            eprintln!(
                "clients: creating {} from requirements.txt ({python_version})",
                venv.display()
            );
            match std::fs::remove_dir_all(&venv) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("remove {}: {e}", venv.display())),
            }
            install_step(
                &format!("{python} -m venv"),
                Command::new(&python).arg("-m").arg("venv").arg(&venv),
            )?;
            install_step(
                "pip install -r requirements.txt",
                Command::new(venv.join("bin").join("pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                    .arg(&requirements),
            )?;
            std::fs::write(&stamp_file, stamp)
                .map_err(|e| format!("write {}: {e}", stamp_file.display()))?;
            Ok(venv_python)
        })
        .clone()
}

/// Which script, in tests/clients/, plays the chat.
enum Script {
    /// `node FILE`.
    Node(&'static str),
    /// `gql_client.py MODE` in the venv.
    Gql(&'static str),
}

/// Starts a server on a fresh database and has `script` do a whole chat
/// on it, as customer `customer-NAME` and agent `agent-NAME`.
async fn chat(name: &str, script: Script) {
    let dir = clients_dir();
    // Dependencies first: a missing tool fails here, before any server.
    let mut command = match script {
        Script::Node(file) => {
            if let Err(e) = node_modules() {
                panic!("{name}: cannot set up the JavaScript clients: {e}");
            }
            let mut c = Command::new("node");
            c.arg(dir.join(file));
            c
        }
        Script::Gql(mode) => {
            let python =
                python_venv().unwrap_or_else(|e| panic!("{name}: cannot set up Python gql: {e}"));
            let mut c = Command::new(python);
            c.arg(dir.join("gql_client.py")).arg(mode);
            c
        }
    };

    // Routing as deployed by default: the agent is offered the session.
    let server = spawn_process(
        env!("CARGO_BIN_EXE_switchboard"),
        &[("ROUTING_MODE", "fair")],
    )
    .await;
    command
        .current_dir(&dir)
        .env("SWITCHBOARD_URL", &server.url)
        .env(
            "CUSTOMER_TOKEN",
            tokens::customer(&format!("customer-{name}")),
        )
        .env("AGENT_TOKEN", tokens::agent(&format!("agent-{name}")))
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "client-{name}-{}.log",
        uuid::Uuid::new_v4().simple()
    ));
    let run = run_bounded(command, SCRIPT_BOUND, &log);

    let passed = run.status.is_some_and(|s| s.success()) && run.output.contains(PASSED);
    let panics = server.panics();
    if passed && panics.is_empty() {
        return;
    }
    let verdict = match run.status {
        None => format!("was stopped after {SCRIPT_BOUND:?} without finishing"),
        Some(s) if s.success() => format!("exited 0 without printing {PASSED:?}"),
        Some(s) => format!("failed ({s})"),
    };
    // The script's own account of what went wrong, first.
    let reason = run
        .output
        .lines()
        .filter(|l| l.contains("FAILED"))
        .collect::<Vec<_>>()
        .join("\n");
    panic!(
        "the {name} client {verdict}{}\n{reason}\n\
         ---- its whole output ----\n{}\n\
         ---- the server's warnings and errors ----\n{}",
        if panics.is_empty() {
            String::new()
        } else {
            format!(", and the server panicked: {panics:?}")
        },
        run.output.trim_end(),
        server.trouble_text(),
    );
}

/// Apollo Client 3: HttpLink and GraphQLWsLink, chosen with `split`.
#[tokio::test]
async fn apollo() {
    chat("apollo", Script::Node("apollo.mjs")).await;
}

/// urql with its defaults: queries as GET, mutations as POST, and
/// subscriptionExchange over graphql-ws.
#[tokio::test]
async fn urql() {
    chat("urql", Script::Node("urql.mjs")).await;
}

/// graphql-ws alone: every operation over the socket.
#[tokio::test]
async fn graphql_ws() {
    chat("graphql-ws", Script::Node("graphql_ws.mjs")).await;
}

/// Python gql: aiohttp for queries and mutations, graphql-transport-ws.
#[tokio::test]
async fn gql_transport_ws() {
    chat("gql-transport-ws", Script::Gql("transport-ws")).await;
}

/// Python gql: aiohttp for queries and mutations, the legacy graphql-ws
/// (subscriptions-transport-ws) protocol.
#[tokio::test]
async fn gql_legacy_ws() {
    chat("gql-legacy-ws", Script::Gql("legacy")).await;
}

/// Webhook deliveries of a whole chat, verified by the Standard Webhooks
/// reference libraries for Node and Python (`standardwebhooks`, pinned in
/// tests/clients/package.json and requirements.txt) exactly as a receiver
/// would verify them.
#[tokio::test]
async fn webhooks_verify_with_standardwebhooks() {
    use serde_json::json;
    use testkit::receiver::Receiver;

    if let Err(e) = node_modules() {
        panic!("cannot set up the JavaScript clients: {e}");
    }
    let receiver = Receiver::start().await;
    let server = spawn_process(
        env!("CARGO_BIN_EXE_switchboard"),
        &[
            ("ROUTING_MODE", "manual"),
            ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ],
    )
    .await;
    let created = server
        .as_admin(
            "mutation($url: String!) { createWebhookEndpoint(input: {url: $url, events: \
               [SESSION_STARTED, SESSION_ASSIGNED, SESSION_TRANSFERRED, SESSION_ENDED, MESSAGE_CREATED]}) \
               { secret endpoint { id } } }",
            json!({ "url": receiver.url("/hooks") }),
        )
        .await;
    let secret = created["createWebhookEndpoint"]["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    let (customer, agent) = (tokens::customer("customer-wh"), tokens::agent("agent-wh"));
    server.start_shift(&tokens::agent("agent-wh2")).await;
    let session = server.active_session(&customer, &agent).await;
    server.send(&customer, &session, "hello", "m1").await;
    server
        .send(&agent, &session, "hi, how can I help?", "m2")
        .await;
    server
        .ok(
            &agent,
            "mutation($s: ID!) { transferSession(sessionId: $s, toAgentId: \"agent-wh2\") { id } }",
            json!({ "s": session }),
        )
        .await;
    server.end(&customer, &session).await;
    // started, assigned, two messages, transferred, ended.
    let received = receiver.wait_for_ok(6, Duration::from_secs(30)).await;
    let requests: Vec<_> = received
        .iter()
        .map(|r| json!({ "headers": r.headers, "body": r.body }))
        .collect();
    let input = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("webhooks-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(
        &input,
        json!({ "secret": secret, "requests": requests }).to_string(),
    )
    .expect("write the deliveries");
    let python = match python_venv() {
        Ok(python) => python,
        Err(e) => panic!("cannot set up the Python clients: {e}"),
    };
    let expected = format!("VERIFIED {} deliveries", requests.len());
    // The same deliveries through both reference libraries.
    for (runtime, script) in [
        (PathBuf::from("node"), "webhook_verify.mjs"),
        (python, "webhook_verify.py"),
    ] {
        let mut command = Command::new(&runtime);
        command
            .current_dir(clients_dir())
            .arg(clients_dir().join(script))
            .arg(&input);
        let log = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("webhooks-{}.log", uuid::Uuid::new_v4().simple()));
        let run = run_bounded(command, SCRIPT_BOUND, &log);
        assert!(
            run.status.is_some_and(|s| s.success()) && run.output.contains(&expected),
            "standardwebhooks ({script}) did not verify every delivery:\n{}",
            run.output
        );
    }
    let _ = std::fs::remove_file(&input);
}

//! The widget and the console in a real browser: each test starts the real
//! binary on a fresh Postgres database with the settings its spec needs,
//! and runs one spec of tests/browser/specs/ with Node's test runner, which
//! drives Debian's Chromium through playwright-core.
//!
//! Node.js 20+ with npm and /usr/bin/chromium (or `CHROMIUM`) must be there:
//! without them these tests fail, they never skip (`apt-get install -y
//! chromium` installs it). The packages are installed from the project's
//! files only, when missing or stale: `npm ci` from
//! tests/browser/package-lock.json. Specs run one at a time: each browser
//! wants a core of its own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::Mutex;

use testkit::node::{npm_ci, run_bounded, tests_dir, version};
use testkit::server::spawn_process;
use testkit::tokens;

/// The most one spec may run; each step in it waits at most 30 s itself.
const SPEC_BOUND: Duration = Duration::from_secs(180);

fn browser_dir() -> PathBuf {
    tests_dir("browser")
}

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// Everything a spec needs besides the server, checked once.
fn ready() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            version("node")?;
            let browser = chromium();
            if !Path::new(&browser).is_file() {
                return Err(format!(
                    "{browser} is missing: the browser tests need Debian's chromium \
                     (`apt-get install -y chromium`; .ci/run installs it); they never skip"
                ));
            }
            npm_ci(
                &browser_dir(),
                &Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-tests-install.lock"),
            )
        })
        .clone()
}

/// A port nothing listens on now, for the spec's shop page: the server must
/// be told the shop's origin before the spec starts.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Runs `spec` against a server started with `settings` (on top of those
/// every spec gets; `{shop}` in a value stands for the shop's origin, where
/// lib.mjs also plays the ticket system and the context provider) and
/// fails with its whole output.
async fn spec(spec: &str, settings: &[(&str, &str)]) {
    // One browser at a time, across this binary's tests.
    // Each test has its own runtime: tokio's Mutex works across them.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());
    if let Err(e) = ready() {
        panic!("{spec}: cannot run the browser tests: {e}");
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let shop_port = free_port();
    let shop_origin = format!("http://127.0.0.1:{shop_port}");
    let settings: Vec<(&str, String)> = settings
        .iter()
        .map(|(k, v)| (*k, v.replace("{shop}", &shop_origin)))
        .collect();
    let mut all: Vec<(&str, &str)> = vec![
        ("ALLOWED_ORIGINS", &shop_origin),
        ("MESSAGE_RATE_PER_SEC", "1000"),
        ("MESSAGE_BURST", "1000"),
    ];
    all.extend(settings.iter().map(|(k, v)| (*k, v.as_str())));
    let server = spawn_process(env!("CARGO_BIN_EXE_switchboard"), &all[..]).await;

    let dir = browser_dir();
    let mut command = Command::new("node");
    command
        .args(["--test", "--test-reporter=spec", "--test-concurrency=1"])
        .arg(dir.join("specs").join(spec))
        .current_dir(&dir)
        .env("SWITCHBOARD_URL", &server.url)
        .env("JWT_SECRET", tokens::SECRET)
        .env("SHOP_PORT", shop_port.to_string())
        .env("CHROMIUM", chromium())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "browser-{spec}-{}.log",
        uuid::Uuid::new_v4().simple()
    ));
    let run = tokio::task::block_in_place(|| run_bounded(command, SPEC_BOUND, &log));
    let passed = run.status.is_some_and(|s| s.success());
    let panics = server.panics();
    if passed && panics.is_empty() {
        return;
    }
    panic!(
        "browser spec {spec} {}{}\n---- its output ----\n{}\n---- the server's warnings and errors ----\n{}",
        match run.status {
            None => format!("was stopped after {SPEC_BOUND:?}"),
            Some(s) => format!("failed ({s})"),
        },
        if panics.is_empty() {
            String::new()
        } else {
            format!(", and the server panicked: {panics:?}")
        },
        run.output.trim_end(),
        server.trouble_text(),
    );
}

/// Customer in the widget and agent in the console: a whole chat with
/// typing and read ticks both ways, the unread badge, end, the transcript
/// and the list of past chats; axe-core on both; the README's screenshots.
#[tokio::test(flavor = "multi_thread")]
async fn whole_chat() {
    spec("chat.spec.mjs", &[("ROUTING_MODE", "fair")]).await;
}

/// The widget on a page of another origin: allowed by ALLOWED_ORIGINS, and
/// refused (HTTP and WebSocket) for an origin it does not name.
#[tokio::test(flavor = "multi_thread")]
async fn embedding_origins() {
    spec("origin.spec.mjs", &[("ROUTING_MODE", "fair")]).await;
}

/// The network cut and restored mid-chat, and a lost acknowledgement:
/// nothing lost or doubled on either side.
#[tokio::test(flavor = "multi_thread")]
async fn offline_and_back() {
    spec("offline.spec.mjs", &[("ROUTING_MODE", "fair")]).await;
}

/// A break requested while holding two chats; several chats with unread
/// counts; a transfer to another agent; an end.
#[tokio::test(flavor = "multi_thread")]
async fn break_transfer_end() {
    spec("shifts.spec.mjs", &[("ROUTING_MODE", "fair")]).await;
}

/// An offer left alone lapses at expiresAt and goes to the next agent.
#[tokio::test(flavor = "multi_thread")]
async fn offer_lapses() {
    spec(
        "lapse.spec.mjs",
        &[("ROUTING_MODE", "fair"), ("OFFER_TIMEOUT_SECS", "3")],
    )
    .await;
}

/// Manual routing: take, CONFLICT for the second taker, back to the queue;
/// the admin's overview, assign, history and routing decisions.
#[tokio::test(flavor = "multi_thread")]
async fn queue_and_admin() {
    spec("manual.spec.mjs", &[("ROUTING_MODE", "manual")]).await;
}

/// Keyboard only, on a 360 px phone; the console's sign-in there; axe-core.
#[tokio::test(flavor = "multi_thread")]
async fn phone_and_keyboard() {
    spec("mobile.spec.mjs", &[("ROUTING_MODE", "manual")]).await;
}

/// A visitor with no token becomes a guest in the widget, chats with an
/// agent both ways, and a reload resumes the same chat.
#[tokio::test(flavor = "multi_thread")]
async fn guest_chat() {
    spec("guest.spec.mjs", &[("ROUTING_MODE", "fair")]).await;
}

/// The same with the proof-of-work challenge on: the widget solves it with
/// the browser's SHA-256 before createGuest.
#[tokio::test(flavor = "multi_thread")]
async fn guest_chat_with_challenge() {
    spec(
        "guest.spec.mjs",
        &[("ROUTING_MODE", "fair"), ("GUEST_CHALLENGE_BITS", "12")],
    )
    .await;
}

/// The customer ends the chat and rates it in the widget; the agent and
/// the admin see the rating; files and article cards on both sides.
#[tokio::test(flavor = "multi_thread")]
async fn end_and_rating() {
    spec(
        "rating.spec.mjs",
        &[
            ("ROUTING_MODE", "fair"),
            ("ARTICLE_ORIGINS", "https://help.example.com"),
        ],
    )
    .await;
}

/// The agent's workspace in a chat: canned responses filled in for the
/// customer, internal notes the widget never shows, the customer context,
/// convert to ticket.
#[tokio::test(flavor = "multi_thread")]
async fn agent_workspace() {
    spec(
        "workspace.spec.mjs",
        &[
            ("ROUTING_MODE", "fair"),
            ("TICKET_URL", "{shop}/tickets"),
            ("TICKET_SECRET", TICKET_SECRET),
            ("CONTEXT_URL", "{shop}/context"),
        ],
    )
    .await;
}

/// The admin's tools: search sessions, ratings over a period, workload.
#[tokio::test(flavor = "multi_thread")]
async fn admin_search_and_ratings() {
    spec("admin.spec.mjs", &[("ROUTING_MODE", "manual")]).await;
}

/// A `whsec_` key for the spec's ticket system (lib.mjs does not check it).
const TICKET_SECRET: &str = "whsec_c3dpdGNoYm9hcmQgYnJvd3NlciB0ZXN0cyB0aWNrZXQ=";

//! The server under test on a random port: in this process ([`spawn`]), or
//! the real binary as a child process ([`spawn_process`]) for tests that
//! signal, kill or hang it. Both start from the same test settings with
//! [`Options`] on top, and both are a [`graphql::Client`] of themselves
//! (through `Deref`), so a test reads `app.ok(…)`.

mod process;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Deref;

use switchboard::clock::Clock;
use switchboard::config::Settings;
use switchboard::service::Services;
use switchboard::startup::Application;

pub use process::{spawn_process, Process};

use crate::{db, graphql, tokens};

/// NATS server the NATS-bus tests relay through (`TEST_NATS_URL`); shared
/// by every test (and every engineer), which is why each deployment gets
/// its own subject.
pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// How to start a test server: settings on top of the test defaults, and
/// what only an in-process server can be given.
///
/// `&[("ROUTING_MODE", "fair")]` converts into options, so
/// `spawn(&[("ROUTING_MODE", "fair")])` reads as the settings it changes.
#[derive(Clone, Default)]
pub struct Options {
    /// Environment-style settings; later ones win.
    settings: Vec<(String, String)>,
    /// The time the server reads (in-process only); the system clock if None.
    clock: Option<Clock>,
}

impl Options {
    /// One setting, named as its environment variable.
    pub fn set(mut self, name: &str, value: &str) -> Options {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The settings given so far, in order.
    pub fn settings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The database: a URL, or "" for the embedded SQLite in DATA_DIR.
    /// Without it, a fresh Postgres database (see [`db::fresh_database`]).
    pub fn database(self, url: &str) -> Options {
        self.set("DATABASE_URL", url)
    }

    /// Time as the server reads it. Only for [`spawn`]: a child process
    /// keeps its own.
    pub fn clock(mut self, clock: Clock) -> Options {
        self.clock = Some(clock);
        self
    }

    /// The settings the server starts with: the test defaults, then these
    /// options. DATABASE_URL is a fresh database unless given.
    ///
    /// A child process runs the binary as shipped, so it gets only what
    /// every test needs (an address, the secret, room for many clients from
    /// 127.0.0.1, its own data folder); the in-process server of the API
    /// tests also gets the defaults those tests are written against.
    async fn resolve(&self, defaults: Defaults) -> HashMap<String, String> {
        let mut vars: HashMap<String, String> = HashMap::new();
        let given = |name: &str| self.settings.iter().any(|(k, _)| k == name);
        if !given("DATABASE_URL") {
            vars.insert("DATABASE_URL".into(), db::fresh_database().await);
        }
        vars.insert("LISTEN_ADDR".into(), "127.0.0.1:0".into());
        vars.insert("JWT_SECRET".into(), tokens::SECRET.into());
        // Every test client comes from 127.0.0.1; the per-address limits have
        // tests of their own.
        vars.insert("IP_SESSION_RATE_PER_MIN".into(), "1000000".into());
        vars.insert("IP_SESSION_BURST".into(), "1000000".into());
        if defaults == Defaults::ApiTests {
            vars.insert("DB_POOL_SIZE".into(), "10".into());
            // The core tests pick sessions by hand; routing tests choose their mode.
            vars.insert("ROUTING_MODE".into(), "manual".into());
            // Tests that race many sends from one sender are not about rate
            // limits; the limits test sets its own.
            vars.insert("MESSAGE_RATE_PER_SEC".into(), "100000".into());
            vars.insert("MESSAGE_BURST".into(), "100000".into());
            vars.insert("IP_MAX_CONNECTIONS".into(), "100000".into());
        }
        vars.insert(
            "DATA_DIR".into(),
            std::env::temp_dir()
                .join(format!("switchboard-test-{}", uuid::Uuid::new_v4()))
                .display()
                .to_string(),
        );
        for (k, v) in &self.settings {
            vars.insert(k.clone(), v.clone());
        }
        vars
    }
}

/// Which test defaults a server starts from; see [`Options::resolve`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Defaults {
    ApiTests,
    Binary,
}

impl From<&[(&str, &str)]> for Options {
    fn from(settings: &[(&str, &str)]) -> Options {
        settings
            .iter()
            .fold(Options::default(), |o, (k, v)| o.set(k, v))
    }
}

impl<const N: usize> From<&[(&str, &str); N]> for Options {
    fn from(settings: &[(&str, &str); N]) -> Options {
        Options::from(&settings[..])
    }
}

/// A server running in this test's process; stopped when dropped.
pub struct Server {
    pub addr: SocketAddr,
    /// Its client; also reached through `Deref`.
    pub api: graphql::Client,
    /// None on the embedded SQLite.
    pub database_url: Option<String>,
    /// For driving background jobs directly (retention) instead of waiting.
    pub service: Services,
    /// Dropping or firing this stops the server.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Starts a server in this process; see [`Options`]. Its log goes to the
/// test's output when `TEST_LOG` is set.
pub async fn spawn(options: impl Into<Options>) -> Server {
    let options = options.into();
    if std::env::var("TEST_LOG").is_ok() {
        switchboard::telemetry::init(false);
    }
    let vars = options.resolve(Defaults::ApiTests).await;
    let settings = Settings::from_lookup(|k| vars.get(k).cloned()).expect("test settings");
    let clock = options.clock.unwrap_or_else(Clock::system);
    let app = Application::build_with_clock(settings, clock)
        .await
        .expect("server starts");
    let service = app.service().clone();
    let addr = app.local_addr().expect("bound address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        api: graphql::Client::new(addr),
        database_url: vars.get("DATABASE_URL").filter(|u| !u.is_empty()).cloned(),
        stop: Some(stop),
        service,
    }
}

impl Server {
    /// Stops serving: the listener closes and background work ends.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Deref for Server {
    type Target = graphql::Client;

    fn deref(&self) -> &graphql::Client {
        &self.api
    }
}

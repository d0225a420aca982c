//! switchboard-loadgen: drives a running Switchboard server the way real
//! clients do and measures it.
//!
//! - [`client`]: GraphQL over HTTP and graphql-transport-ws, every response
//!   checked for GraphQL errors.
//! - [`scenarios`]: `chat`, `idle`, `burst`, `resume` and the raw-insert
//!   `baseline`; each returns one [`Report`].
//! - [`stats`]: /proc readings, HDR histograms, delivery bookkeeping.
//!
//! Benchmarks measure; nothing here asserts a timing.

pub mod client;
pub mod scenarios;
pub mod stats;

use serde_json::Value;
use switchboard::auth::{JwtKeys, Role};
use switchboard::config::JwtSecret;

/// Where the server is and how to sign in to it.
#[derive(Clone)]
pub struct Target {
    /// `http://host:port`
    pub base_url: String,
    pub keys: JwtKeys,
    /// The server's pid, for its CPU and RSS from /proc.
    pub server_pid: Option<String>,
    /// Distinguishes this run's users from earlier runs on the same server.
    pub run_id: String,
}

impl Target {
    pub fn new(base_url: &str, jwt_secret: &str, server_pid: Option<String>) -> Self {
        Target {
            base_url: base_url.trim_end_matches('/').to_owned(),
            keys: JwtKeys::new(&JwtSecret::new(jwt_secret.as_bytes().to_vec())),
            server_pid,
            run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        }
    }

    pub fn ws_url(&self) -> String {
        let rest = self
            .base_url
            .strip_prefix("http://")
            .unwrap_or(&self.base_url);
        format!("ws://{rest}/graphql")
    }

    /// A token for user `n` of `kind` in this run.
    pub fn token(&self, role: Role, kind: &str, n: usize) -> Result<String, ScenarioError> {
        let sub = format!("lg-{}-{kind}-{n}", self.run_id);
        self.keys
            .issue(role, &sub, Some(&sub), 24 * 3600)
            .map_err(|e| ScenarioError::Setup(format!("signing a token: {e}")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("setup failed: {0}")]
    Setup(String),
    #[error(transparent)]
    Client(#[from] client::ClientError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// One scenario's result: rows for the human table, and the JSON line.
pub struct Report {
    pub scenario: &'static str,
    pub json: Value,
    /// Errors, lost, duplicated and reordered messages: the run's flaws.
    pub flaws: u64,
}

impl Report {
    /// A two-column table of the JSON's leaves, for people.
    pub fn table(&self) -> String {
        let mut rows = Vec::new();
        flatten("", &self.json, &mut rows);
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = format!("== {}\n", self.scenario);
        for (k, v) in rows {
            out.push_str(&format!("  {k:<width$}  {v}\n"));
        }
        out
    }
}

fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, rows);
            }
        }
        Value::String(s) => rows.push((prefix.to_owned(), s.clone())),
        other => rows.push((prefix.to_owned(), other.to_string())),
    }
}

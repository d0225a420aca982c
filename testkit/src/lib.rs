//! The test kit: everything a Switchboard test needs besides the test
//! itself, in one place for every test binary (tests/api, api/tests,
//! loadgen/tests).
//!
//! - [`db`]: a fresh Postgres database per test, and private Postgres
//!   clusters a test may stop and start.
//! - [`server`]: the server on a random port, in this process ([`server::spawn`])
//!   or as the real binary in a child process ([`server::spawn_process`]),
//!   both from one [`server::Options`] over the same test settings.
//! - [`graphql`]: GraphQL over HTTP to one server, and the operations tests repeat.
//! - [`ws`]: a graphql-transport-ws client, strict for tests of the protocol
//!   and resilient for tests of servers that go away.
//! - [`tokens`]: tokens signed with the secret every test server shares.
//! - [`files`]: uploads as clients send them, and an S3-compatible server.
//! - [`html`]: the start tags and attributes of a page the server writes.
//! - [`node`]: Node.js programs a test runs: versions, `npm ci`, bounded runs.
//! - [`receiver`]: a local HTTP server that records what the server sends out.
//! - [`pgcount`]: a proxy that counts the statements a server sends to Postgres.
//!
//! Helpers panic with a message that shows what came instead, except the
//! `try_…` ones, which report failures for tests that expect some.

pub mod db;
pub mod files;
pub mod graphql;
pub mod html;
pub mod node;
pub mod pgcount;
pub mod receiver;
pub mod server;
pub mod tokens;
pub mod ws;

use std::time::Duration;

/// How long a test waits for an event before it fails.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

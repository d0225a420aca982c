//! Switchboard: a real-time customer-support chat server.
//!
//! How a request travels, outside in:
//! - [`startup`] binds the listener; [`http`] accepts connections
//!   (`http::serve`: header timeout, connections per address) and routes
//!   HTTP (POST, GET queries) and WebSocket requests.
//! - [`graphql`] is the transport: its gateway refuses what a document may
//!   not ask for (aliases, cost counted through fragments and list pages,
//!   answer size) before anything runs; thin resolvers read the caller
//!   ([`auth::Viewer`]) and the input, call one service method, and map the
//!   typed [`error::AppError`] to a GraphQL error with `extensions.code` once.
//! - [`service`] holds the use cases: permission checks, transactions, and
//!   publishing events after commit. It knows nothing of GraphQL.
//! - [`domain`] holds the rules that need no I/O: states and their
//!   transitions, message validation, receipt status.
//! - [`matching`] decides who is served next; [`events`] fans events out to
//!   live subscribers, and relays them to the other processes (Postgres
//!   LISTEN/NOTIFY or NATS).
//! - [`repo`] is the only code that touches SeaORM entities and queries.
//! - [`clock`] is where every part reads the time, so tests can drive it.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod matching;
pub mod metrics;
pub mod repo;
pub mod service;
pub mod shutdown;
pub mod startup;
pub mod telemetry;

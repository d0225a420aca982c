//! Switchboard: a real-time customer-support chat server.
//!
//! How a request travels, outside in:
//! - [`startup`] binds the listener and wires HTTP and WebSocket routes ([`http`]).
//! - [`graphql`] is the transport: thin resolvers that read the caller
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

pub mod auth;
pub mod cli;
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

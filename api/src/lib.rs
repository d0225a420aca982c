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
//! - [`service`] holds the use cases, one service per aggregate over a
//!   shared core (`Sessions`, `Queue`, `Messages`, `Routing`, `Agents`,
//!   `Live`, `Presence`, `Retention`, `Audit`, `Webhooks`, `Ratings`,
//!   `Tickets`, `Guests`, `Workspace`): each asks the domain whether the caller may
//!   act and what the change is, runs its writes in one transaction, and
//!   publishes events only after the commit. The transitions several of
//!   them share (end, release a slot, give, requeue, a SYSTEM line with the
//!   next seq) are in `service::transitions`; batching, shared matcher
//!   passes, rate limits and the after-commit buffer in `service::infra`.
//!   It knows nothing of GraphQL.
//! - [`domain`] holds the rules that need no I/O, each in one place: who
//!   may view, follow, write, read, end, transfer, rate, note and set a
//!   priority (`domain::access`); the session's transitions
//!   (`domain::session`); an agent's status, capacity, free slots and
//!   absence (`domain::agent`); priorities, skills and routing decisions
//!   (`domain::routing`); message rules and receipts (`domain::message`);
//!   history kinds (`domain::history`); ratings and their figures
//!   (`domain::rating`); the ticket system's answers (`domain::ticket`);
//!   canned responses and their one-pass templates (`domain::canned`).
//! - [`matching`] decides who is served next; [`events`] fans events out to
//!   live subscribers, and relays them to the other processes (Postgres
//!   LISTEN/NOTIFY or NATS).
//! - [`repo`] is the only code that touches SeaORM entities and queries.
//! - [`storage`] keeps the bytes of uploaded files (a folder, or any
//!   S3-compatible store) behind one small trait.
//! - [`clock`] is where every part reads the time, so tests can drive it.
//! - [`audit`] replays the routing decisions and history of a period and
//!   checks every routing invariant (`switchboard audit`); pure, like
//!   [`matching`], and written apart from it so that it can catch it.
//! - [`signing`] signs what Switchboard sends out (webhooks, tickets) per
//!   the Standard Webhooks scheme.
//! - [`web`] is the UI the binary serves (the customer widget and the
//!   agent console): HTML, CSS and JavaScript built in at compile time,
//!   served by `http` like any other route, talking to the same API.

pub mod audit;
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
pub mod signing;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod web;

//! Integration tests: each starts the real server against a fresh Postgres
//! database and talks to it over HTTP and graphql-transport-ws.

mod agent_presence;
mod auth;
mod concurrency;
mod graphiql;
mod hardening;
mod lifecycle;
mod limits;
mod meta;
mod presence;
mod priorities;
mod retention;
mod routing;
mod scale_out;
mod storage;
mod validation;
mod websocket;
mod workspace;

//! Integration tests: each starts the real server against a fresh Postgres
//! database and talks to it over HTTP and graphql-transport-ws.

mod agent_presence;
mod auth;
mod concurrency;
mod files;
mod graphiql;
mod guests;
mod hardening;
mod lifecycle;
mod limits;
mod meta;
mod presence;
mod priorities;
mod ratings;
mod retention;
mod routing;
mod scale_out;
mod storage;
mod tickets;
mod validation;
mod web;
mod webhooks;
mod websocket;
mod workspace;

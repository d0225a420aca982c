//! SeaORM entities: the rows Switchboard stores. Only `api::repo` touches them;
//! enum-like columns hold the domain's names as text so that SQLite and
//! Postgres store them alike.

pub mod agent;
pub mod agent_connection;
pub mod canned_response;
pub mod chat_session;
pub mod guest_challenge;
pub mod message;
pub mod routing_decision;
pub mod routing_pass;
pub mod session_event;
pub mod session_note;
pub mod session_rating;
pub mod session_ticket;
pub mod webhook_delivery;
pub mod webhook_endpoint;
pub mod webhook_event;

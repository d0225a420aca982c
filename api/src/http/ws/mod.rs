//! One driver per WebSocket connection, between the socket and
//! async-graphql's protocol engine (`async_graphql::http::WebSocket`).
//!
//! The engine runs operations for both protocols, but leaves out what
//! graphql-transport-ws asks of a server and what a server facing the
//! internet needs, so the driver adds it:
//! - the protocol's close codes: 4400 for a malformed message, 4401 for a
//!   subscribe before the acknowledgement, 4408 when no connection_init
//!   arrives in time, 4409 for a subscribe whose id is in use, 4429 for a
//!   second connection_init (the engine would send 1002 or 1011, or silently
//!   replace the running operation);
//! - 4403 when the connection's token expires, so the client reconnects
//!   with a fresh one;
//! - server pings, and closing a peer that stopped answering them;
//! - disconnecting a peer that does not read what it is sent, instead of
//!   buffering for it (it resumes by seq when it reconnects);
//! - 1012 to every socket when the server stops, so clients reconnect.

mod driver;
mod inbox;
mod protocol;

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::WebSocketProtocols;
use async_graphql::Data;
use axum::extract::ws::WebSocket;
use futures_util::StreamExt;

use crate::clock::Clock;
use crate::graphql::Gateway;
use crate::metrics::Metrics;
use crate::shutdown::ShutdownWatch;
use driver::Connection;
use inbox::Inbox;
use protocol::ProtocolState;

/// A close code and the reason sent with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: String,
}

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Close {
            code,
            reason: reason.into(),
        }
    }
}

pub const BAD_MESSAGE: u16 = 4400;
pub const UNAUTHORIZED: u16 = 4401;
pub const FORBIDDEN: u16 = 4403;
pub const INIT_TIMEOUT: u16 = 4408;
pub const DUPLICATE_ID: u16 = 4409;
pub const TOO_MANY_INITS: u16 = 4429;
/// RFC 6455: the server is restarting; reconnect.
pub const SERVICE_RESTART: u16 = 1012;
/// RFC 6455: a message over WS_MAX_MESSAGE_BYTES.
pub const MESSAGE_TOO_BIG: u16 = 1009;

/// What the driver needs besides the socket.
pub struct Settings {
    pub protocol: WebSocketProtocols,
    /// Every timer of the connection runs on it.
    pub clock: Clock,
    pub keepalive: Duration,
    pub init_timeout: Duration,
    pub send_timeout: Duration,
}

/// What a connection_init produced: the operations' data and, for a
/// verified caller, when the token expires (Unix seconds).
pub struct Init {
    pub data: Data,
    pub expires_at: Option<i64>,
}

/// Serves one connection until either side ends it or the server stops;
/// `hold` (guards the connection keeps) is dropped when it ends.
///
/// Everything the connection keeps is built here, outside any `async`, and
/// moved once into the future as one [`Connection`] that the loop uses in
/// place. An `async fn` copies its arguments into locals, and a value moved
/// into an inner future keeps its old place too: layered that way, the
/// connection task stayed ~5 KiB, mostly dead copies, for the connection's
/// whole life.
pub fn drive<F, Fut, H>(
    socket: WebSocket,
    gateway: Gateway,
    settings: Settings,
    on_init: F,
    shutdown: ShutdownWatch,
    metrics: Arc<Metrics>,
    hold: H,
) -> impl Future<Output = ()> + Send
where
    F: FnOnce(serde_json::Value) -> Fut + Send + 'static,
    Fut: Future<Output = Init> + Send + 'static,
    H: Send + 'static,
{
    let (sink, source) = socket.split();
    let to_engine = Inbox::default();
    // Set by connection_init, read when its acknowledgement goes out.
    let expiry = Arc::new(AtomicI64::new(i64::MAX));
    let expiry_at_init = expiry.clone();
    let engine = async_graphql::http::WebSocket::new(gateway, to_engine.clone(), settings.protocol)
        .on_connection_init(move |payload| async move {
            let init = on_init(payload).await;
            expiry_at_init.store(init.expires_at.unwrap_or(i64::MAX), Ordering::Relaxed);
            Ok(init.data)
        })
        .peekable();
    let connection = Connection {
        sink,
        source,
        to_engine,
        expiry,
        engine,
        protocol: ProtocolState::new(settings.protocol == WebSocketProtocols::GraphQLWS),
        settings,
        shutdown,
        metrics,
        _hold: hold,
    };
    connection.run()
}

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

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_graphql::http::{WebSocketProtocols, WsMessage};
use async_graphql::Data;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{Peekable, SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, Stream, StreamExt};
use tokio::time::Instant;

use crate::graphql::Gateway;
use crate::metrics::Metrics;
use crate::shutdown::ShutdownWatch;

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
/// RFC 6455: the peer went silent.
const NORMAL: u16 = 1000;
const GOING_AWAY: u16 = 1001;
/// RFC 6455: try again later (the peer did not keep up).
const TRY_AGAIN_LATER: u16 = 1013;
/// RFC 6455: a message over WS_MAX_MESSAGE_BYTES.
pub const MESSAGE_TOO_BIG: u16 = 1009;

/// Client messages queued for the engine. The socket is not read while
/// they wait, so a flooding client is slowed by TCP, not by memory.
const ENGINE_INPUT: usize = 32;
/// How long a close frame may take to leave.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Frames the engine has ready at once go out in one write (one system
/// call) instead of one each; at most this many.
const MAX_FRAMES_PER_WRITE: usize = 16;

/// What the driver needs besides the socket.
pub struct Settings {
    pub protocol: WebSocketProtocols,
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

/// One connection's state, owned by its future.
struct Connection<E: Stream, H> {
    sink: SplitSink<WebSocket, Message>,
    source: SplitStream<WebSocket>,
    to_engine: Inbox,
    expiry: Arc<AtomicI64>,
    engine: Peekable<E>,
    protocol: ProtocolState,
    settings: Settings,
    shutdown: ShutdownWatch,
    metrics: Arc<Metrics>,
    _hold: H,
}

impl<E, H> Connection<E, H>
where
    E: Stream<Item = WsMessage> + Unpin + Send,
    H: Send,
{
    /// Not an `async fn`: its body would begin by moving `self` into a
    /// local, and the future would hold both places.
    #[allow(clippy::manual_async_fn)]
    fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            // One timer: the deadline for connection_init, then (once the
            // caller is known) the token's expiry.
            let deadline = tokio::time::sleep(self.settings.init_timeout);
            let mut deadline = std::pin::pin!(deadline);
            let mut token_expiry_armed = false;
            let mut ping = tokio::time::interval(self.settings.keepalive);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ping.reset();
            let mut last_heard = Instant::now();

            let mut closed_by_peer = false;
            let close: Option<Close> = loop {
                let awaiting_init = !self.protocol.initialised;
                tokio::select! {
                    _ = self.shutdown.started() => {
                        break Some(Close::new(SERVICE_RESTART, "server restarting; reconnect"));
                    }
                    frame = self.source.next(), if self.to_engine.len() < ENGINE_INPUT => {
                        last_heard = Instant::now();
                        let bytes = match frame {
                            Some(Err(e)) => {
                                break too_big(e).then(|| Close::new(MESSAGE_TOO_BIG, "message too big"));
                            }
                            None => break None,
                            Some(Ok(Message::Close(_))) => {
                                closed_by_peer = true;
                                break None;
                            }
                            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                            Some(Ok(Message::Text(text))) => Vec::from(text.as_bytes()),
                            Some(Ok(Message::Binary(bytes))) => bytes.to_vec(),
                        };
                        if let Err(close) = self.protocol.client_message(&bytes) {
                            break Some(close);
                        }
                        self.to_engine.push(bytes);
                    }
                    out = self.engine.next() => {
                        let text = match out {
                            // The client ended the connection in the
                            // protocol (the legacy connection_terminate):
                            // close the socket properly, not by dropping it.
                            None => break Some(Close::new(NORMAL, "")),
                            Some(WsMessage::Close(code, reason)) => break Some(self.protocol.engine_close(code, reason)),
                            Some(WsMessage::Text(text)) => text,
                        };
                        let mut frames = Vec::new();
                        let mut next = Some(text);
                        while let Some(text) = next {
                            match self.protocol.server_message(&text) {
                                Outgoing::Drop => {}
                                Outgoing::Acknowledged => {
                                    let expires_at = self.expiry.load(Ordering::Relaxed);
                                    if let Some(at) = deadline_of(expires_at) {
                                        deadline.as_mut().reset(at);
                                        token_expiry_armed = true;
                                    }
                                    frames.push(Message::Text(text.into()));
                                }
                                Outgoing::Send => frames.push(Message::Text(text.into())),
                            }
                            next = if frames.len() < MAX_FRAMES_PER_WRITE {
                                ready_text(&mut self.engine)
                            } else {
                                None
                            };
                        }
                        if frames.is_empty() {
                            continue;
                        }
                        let sent = frames.len() as u64;
                        if let Err(stalled) = send_all(&mut self.sink, frames, self.settings.send_timeout).await {
                            if stalled {
                                self.metrics.slow_consumer_disconnects.fetch_add(1, Ordering::Relaxed);
                                tracing::info!("WebSocket peer does not read what it is sent; disconnecting it");
                                break Some(Close::new(TRY_AGAIN_LATER, "not reading fast enough; reconnect and resume"));
                            }
                            break None;
                        }
                        self.metrics.websocket_frames.fetch_add(sent, Ordering::Relaxed);
                        self.metrics.websocket_writes.fetch_add(1, Ordering::Relaxed);
                    }
                    _ = &mut deadline, if awaiting_init || token_expiry_armed => {
                        if token_expiry_armed {
                            break Some(Close::new(FORBIDDEN, "Forbidden: token expired; reconnect with a fresh one"));
                        }
                        break Some(Close::new(INIT_TIMEOUT, "Connection initialisation timeout"));
                    }
                    _ = ping.tick() => {
                        if last_heard.elapsed() > self.settings.keepalive * 2 {
                            break Some(Close::new(GOING_AWAY, "no answer to pings"));
                        }
                        if send(&mut self.sink, Message::Ping(Default::default()), self.settings.send_timeout).await.is_err() {
                            break None;
                        }
                    }
                }
            };
            if let Some(close) = close {
                let frame = Message::Close(Some(CloseFrame {
                    code: close.code,
                    reason: close.reason.into(),
                }));
                // A peer that stopped reading will not get it; don't wait for it.
                let _ = send(&mut self.sink, frame, CLOSE_TIMEOUT).await;
            } else if closed_by_peer {
                // The close handshake: tungstenite queued the echo of the
                // peer's Close frame when it read it; closing the sink
                // flushes it. Dropped unsent, the client saw 1006.
                let _ = within(CLOSE_TIMEOUT, futures_util::SinkExt::close(&mut self.sink)).await;
            }
            // Ends the connection's life here. Without a use of the whole,
            // the block would capture only the fields it reads, and `_hold`
            // (the address slot, the gauge) would be dropped at the start.
            drop(self);
        }
    }
}

/// Client messages on their way to the engine. The driver pushes and the
/// engine pulls, both in the connection's task; a channel would cost a
/// preallocated block per connection, which idle connections pay for.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<InboxState>>);

#[derive(Default)]
struct InboxState {
    queue: VecDeque<Vec<u8>>,
    waiting: Option<Waker>,
}

impl Inbox {
    fn state(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> usize {
        self.state().queue.len()
    }

    fn push(&self, message: Vec<u8>) {
        let mut state = self.state();
        state.queue.push_back(message);
        if let Some(waker) = state.waiting.take() {
            waker.wake();
        }
    }
}

impl Stream for Inbox {
    type Item = Vec<u8>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        let mut state = self.state();
        match state.queue.pop_front() {
            Some(message) => Poll::Ready(Some(message)),
            None => {
                state.waiting = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Whether a read failed because the peer sent more than the size limits.
fn too_big(error: axum::Error) -> bool {
    error
        .into_inner()
        .downcast::<tungstenite::Error>()
        .is_ok_and(|e| matches!(*e, tungstenite::Error::Capacity(_)))
}

/// When a token that expires at `unix_secs` runs out, as a timer deadline.
fn deadline_of(unix_secs: i64) -> Option<Instant> {
    if unix_secs == i64::MAX {
        return None;
    }
    let left = unix_secs.saturating_sub(chrono::Utc::now().timestamp());
    Some(Instant::now() + Duration::from_secs(left.max(0) as u64))
}

/// Sends one message within `limit`. `Err(true)`: the peer is not reading;
/// `Err(false)`: the socket is gone.
async fn send<S>(sink: &mut S, message: Message, limit: Duration) -> Result<(), bool>
where
    S: futures_util::Sink<Message> + Unpin,
{
    within(limit, sink.send(message)).await
}

/// The engine's next text frame if it has one ready now. A close or the
/// end of its stream is left in place for the connection loop.
fn ready_text<E>(engine: &mut Peekable<E>) -> Option<String>
where
    E: Stream<Item = WsMessage> + Unpin,
{
    // Polled without the task's waker: when nothing is ready, the loop
    // polls the engine again, with it, before the task sleeps.
    match Pin::new(engine)
        .next_if(|m| matches!(m, WsMessage::Text(_)))
        .now_or_never()
    {
        Some(Some(WsMessage::Text(text))) => Some(text),
        _ => None,
    }
}

/// Sends `frames` in order with one flush; errors as [`send`]. Each step
/// (a frame handed to the socket, which writes when its buffer fills, and
/// the flush) gets `limit`: a peer that stopped reading is caught as soon
/// as one step stalls, and one that reads slowly has as long per frame as
/// when frames went one by one.
async fn send_all<S>(sink: &mut S, frames: Vec<Message>, limit: Duration) -> Result<(), bool>
where
    S: futures_util::Sink<Message> + Unpin,
{
    for frame in frames {
        within(limit, sink.feed(frame)).await?;
    }
    within(limit, sink.flush()).await
}

async fn within<E>(limit: Duration, step: impl Future<Output = Result<(), E>>) -> Result<(), bool> {
    match tokio::time::timeout(limit, step).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(false),
        Err(_) => Err(true),
    }
}

/// What to do with a message the engine produced.
#[derive(Debug, PartialEq, Eq)]
enum Outgoing {
    Send,
    /// The connection_ack: the caller is known now.
    Acknowledged,
    /// The engine answers a client's `complete` with one of its own, which
    /// graphql-transport-ws does not have.
    Drop,
}

/// The protocol rules the engine does not enforce. Pure, so the rules are
/// unit-tested without sockets.
struct ProtocolState {
    /// graphql-transport-ws (strict); the legacy protocol is passed through.
    strict: bool,
    initialised: bool,
    acknowledged: bool,
    /// Operation ids running now.
    running: HashSet<String>,
    /// Ids the client completed while running: the engine echoes them once.
    echoes: HashSet<String>,
}

#[derive(serde::Deserialize)]
struct ClientFrame {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct ServerFrame {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

impl ProtocolState {
    fn new(strict: bool) -> Self {
        ProtocolState {
            strict,
            initialised: false,
            acknowledged: false,
            running: HashSet::new(),
            echoes: HashSet::new(),
        }
    }

    /// Checks a client message; `Err` closes the connection.
    fn client_message(&mut self, raw: &[u8]) -> Result<(), Close> {
        let frame: ClientFrame = match serde_json::from_slice(raw) {
            Ok(f) => f,
            Err(_) if !self.strict => return Ok(()),
            Err(e) => return Err(Close::new(BAD_MESSAGE, format!("Invalid message: {e}"))),
        };
        if frame.kind == "connection_init" {
            if self.initialised && self.strict {
                return Err(Close::new(
                    TOO_MANY_INITS,
                    "Too many initialisation requests",
                ));
            }
            if self.strict && !matches!(frame.payload, None | Some(serde_json::Value::Object(_))) {
                return Err(Close::new(
                    BAD_MESSAGE,
                    "connection_init payload must be an object",
                ));
            }
            self.initialised = true;
            return Ok(());
        }
        if !self.strict {
            return Ok(());
        }
        match frame.kind.as_str() {
            "ping" | "pong" => Ok(()),
            "subscribe" => {
                let id = operation_id(frame.id)?;
                let has_query = frame
                    .payload
                    .as_ref()
                    .and_then(|p| p.get("query"))
                    .is_some_and(serde_json::Value::is_string);
                if !has_query {
                    return Err(Close::new(
                        BAD_MESSAGE,
                        "subscribe needs a payload with a query",
                    ));
                }
                if !self.acknowledged {
                    return Err(Close::new(UNAUTHORIZED, "Unauthorized"));
                }
                if !self.running.insert(id.clone()) {
                    return Err(Close::new(
                        DUPLICATE_ID,
                        format!("Subscriber for {id} already exists"),
                    ));
                }
                Ok(())
            }
            "complete" => {
                let id = operation_id(frame.id)?;
                if self.running.remove(&id) {
                    self.echoes.insert(id);
                }
                Ok(())
            }
            other => Err(Close::new(
                BAD_MESSAGE,
                format!("Invalid message type {other:?}"),
            )),
        }
    }

    /// Notes what an engine message means for the protocol state.
    fn server_message(&mut self, text: &str) -> Outgoing {
        // Operation data is most of the traffic; only control messages are parsed.
        let control = text.starts_with(r#"{"type":"connection_ack""#)
            || text.starts_with(r#"{"type":"complete""#);
        if !control {
            return Outgoing::Send;
        }
        let Ok(frame) = serde_json::from_str::<ServerFrame>(text) else {
            return Outgoing::Send;
        };
        match (frame.kind.as_str(), frame.id) {
            ("connection_ack", _) => {
                self.acknowledged = true;
                Outgoing::Acknowledged
            }
            ("complete", Some(id)) if self.echoes.remove(&id) => {
                if self.strict {
                    Outgoing::Drop
                } else {
                    Outgoing::Send
                }
            }
            ("complete", Some(id)) => {
                self.running.remove(&id);
                Outgoing::Send
            }
            _ => Outgoing::Send,
        }
    }

    /// The close the client gets when the engine ends the connection. Its
    /// 1002 means a message it could not use, which the protocol calls 4400.
    fn engine_close(&self, code: u16, reason: String) -> Close {
        match code {
            1002 if self.strict => Close::new(BAD_MESSAGE, reason),
            1011 if self.strict => Close::new(UNAUTHORIZED, reason),
            _ => Close::new(code, reason),
        }
    }
}

fn operation_id(id: Option<String>) -> Result<String, Close> {
    id.filter(|id| !id.is_empty())
        .ok_or_else(|| Close::new(BAD_MESSAGE, "the message needs an id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked() -> ProtocolState {
        let mut p = ProtocolState::new(true);
        p.client_message(br#"{"type":"connection_init","payload":{}}"#)
            .unwrap();
        assert_eq!(
            p.server_message(r#"{"type":"connection_ack"}"#),
            Outgoing::Acknowledged
        );
        p
    }

    fn code(r: Result<(), Close>) -> u16 {
        r.expect_err("expected a close").code
    }

    const SUB: &[u8] = br#"{"type":"subscribe","id":"1","payload":{"query":"subscription { x }"}}"#;

    #[test]
    fn malformed_messages_close_with_4400() {
        let mut p = acked();
        assert_eq!(code(p.client_message(b"not json")), BAD_MESSAGE);
        assert_eq!(code(p.client_message(br#"{"type":"nope"}"#)), BAD_MESSAGE);
        assert_eq!(code(p.client_message(br#"{"id":"1"}"#)), BAD_MESSAGE);
        assert_eq!(
            code(p.client_message(br#"{"type":"subscribe","payload":{"query":"x"}}"#)),
            BAD_MESSAGE
        );
        assert_eq!(
            code(p.client_message(br#"{"type":"subscribe","id":"2","payload":{}}"#)),
            BAD_MESSAGE
        );
        let mut fresh = ProtocolState::new(true);
        assert_eq!(
            code(fresh.client_message(br#"{"type":"connection_init","payload":5}"#)),
            BAD_MESSAGE
        );
    }

    #[test]
    fn subscribing_before_the_ack_closes_with_4401() {
        let mut p = ProtocolState::new(true);
        assert_eq!(code(p.client_message(SUB)), UNAUTHORIZED);
        let mut p = ProtocolState::new(true);
        p.client_message(br#"{"type":"connection_init"}"#).unwrap();
        assert_eq!(
            code(p.client_message(SUB)),
            UNAUTHORIZED,
            "init sent, no ack yet"
        );
    }

    #[test]
    fn a_second_init_closes_with_4429() {
        let mut p = acked();
        assert_eq!(
            code(p.client_message(br#"{"type":"connection_init"}"#)),
            TOO_MANY_INITS
        );
    }

    #[test]
    fn a_running_id_cannot_be_reused_until_it_completes() {
        let mut p = acked();
        p.client_message(SUB).unwrap();
        assert_eq!(code(p.client_message(SUB)), DUPLICATE_ID);
        // The server completes it: the id is free again.
        assert_eq!(
            p.server_message(r#"{"type":"complete","id":"1"}"#),
            Outgoing::Send
        );
        p.client_message(SUB).unwrap();
        // The client completes it: free at once, and the engine's echo is
        // dropped without freeing the id's next use.
        p.client_message(br#"{"type":"complete","id":"1"}"#)
            .unwrap();
        p.client_message(SUB).unwrap();
        assert_eq!(
            p.server_message(r#"{"type":"complete","id":"1"}"#),
            Outgoing::Drop
        );
        assert_eq!(code(p.client_message(SUB)), DUPLICATE_ID);
    }

    #[test]
    fn data_passes_without_being_parsed() {
        let mut p = acked();
        assert_eq!(
            p.server_message(r#"{"type":"next","id":"1","payload":{"data":{}}}"#),
            Outgoing::Send
        );
        assert_eq!(p.engine_close(1002, "bad".into()).code, BAD_MESSAGE);
        assert_eq!(p.engine_close(4429, "x".into()).code, 4429);
    }

    #[test]
    fn the_legacy_protocol_is_passed_through() {
        let mut p = ProtocolState::new(false);
        p.client_message(br#"{"type":"start","id":"1","payload":{"query":"x"}}"#)
            .unwrap();
        p.client_message(b"garbage").unwrap();
        p.client_message(br#"{"type":"connection_init"}"#).unwrap();
        assert!(p.initialised);
        assert_eq!(p.engine_close(1002, "bad".into()).code, 1002);
    }
}

//! The connection loop: reads the socket into the engine, writes what the
//! engine answers, and keeps the timers (connection_init, token expiry,
//! pings, stalled writes).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::WsMessage;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{Peekable, SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, Stream, StreamExt};
use std::time::Instant;

use super::inbox::Inbox;
use super::protocol::{Outgoing, ProtocolState};
use super::{Close, Settings, FORBIDDEN, INIT_TIMEOUT, MESSAGE_TOO_BIG, SERVICE_RESTART};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::shutdown::ShutdownWatch;

/// RFC 6455: an ordinary close.
const NORMAL: u16 = 1000;
/// RFC 6455: the peer went silent.
const GOING_AWAY: u16 = 1001;
/// RFC 6455: try again later (the peer did not keep up).
const TRY_AGAIN_LATER: u16 = 1013;

/// Client messages queued for the engine. The socket is not read while
/// they wait, so a flooding client is slowed by TCP, not by memory.
const ENGINE_INPUT: usize = 32;
/// How long a close frame may take to leave.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Frames the engine has ready at once go out in one write (one system
/// call) instead of one each; at most this many.
const MAX_FRAMES_PER_WRITE: usize = 16;

/// One connection's state, owned by its future.
pub(super) struct Connection<E: Stream, H> {
    pub(super) sink: SplitSink<WebSocket, Message>,
    pub(super) source: SplitStream<WebSocket>,
    pub(super) to_engine: Inbox,
    pub(super) expiry: Arc<AtomicI64>,
    pub(super) engine: Peekable<E>,
    pub(super) protocol: ProtocolState,
    pub(super) settings: Settings,
    pub(super) shutdown: ShutdownWatch,
    pub(super) metrics: Arc<Metrics>,
    pub(super) _hold: H,
}

impl<E, H> Connection<E, H>
where
    E: Stream<Item = WsMessage> + Unpin + Send,
    H: Send,
{
    /// Not an `async fn`: its body would begin by moving `self` into a
    /// local, and the future would hold both places.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn run(mut self) -> impl Future<Output = ()> + Send {
        async move {
            // One timer: the deadline for connection_init, then (once the
            // caller is known) the token's expiry.
            let clock = &self.settings.clock;
            let deadline = clock.sleep(self.settings.init_timeout);
            let mut deadline = std::pin::pin!(deadline);
            let mut token_expiry_armed = false;
            let mut ping = clock.interval(self.settings.keepalive);
            ping.reset();
            let mut last_heard = clock.instant();

            let mut closed_by_peer = false;
            let close: Option<Close> = loop {
                let awaiting_init = !self.protocol.initialised;
                tokio::select! {
                    _ = self.shutdown.started() => {
                        break Some(Close::new(SERVICE_RESTART, "server restarting; reconnect"));
                    }
                    frame = self.source.next(), if self.to_engine.len() < ENGINE_INPUT => {
                        last_heard = self.settings.clock.instant();
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
                                    if let Some(at) = deadline_of(&self.settings.clock, expires_at) {
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
                        if let Err(stalled) = send_all(&mut self.sink, frames, &self.settings.clock, self.settings.send_timeout).await {
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
                        let silent = self.settings.clock.instant().saturating_duration_since(last_heard);
                        if silent > self.settings.keepalive * 2 {
                            break Some(Close::new(GOING_AWAY, "no answer to pings"));
                        }
                        if send(&mut self.sink, Message::Ping(Default::default()), &self.settings.clock, self.settings.send_timeout).await.is_err() {
                            break None;
                        }
                    }
                }
            };
            // Timers that will not be waited on again go now: a clock
            // driven by a test waits for the ones it set off (see
            // `ManualClock::advance`).
            drop(ping);
            if let Some(close) = close {
                let frame = Message::Close(Some(CloseFrame {
                    code: close.code,
                    reason: close.reason.into(),
                }));
                // A peer that stopped reading will not get it; don't wait for it.
                let _ = send(&mut self.sink, frame, &self.settings.clock, CLOSE_TIMEOUT).await;
            } else if closed_by_peer {
                // The close handshake: tungstenite queued the echo of the
                // peer's Close frame when it read it; closing the sink
                // flushes it. Dropped unsent, the client saw 1006.
                let close = futures_util::SinkExt::close(&mut self.sink);
                let _ = within(&self.settings.clock, CLOSE_TIMEOUT, close).await;
            }
            // Ends the connection's life here. Without a use of the whole,
            // the block would capture only the fields it reads, and `_hold`
            // (the address slot, the gauge) would be dropped at the start.
            drop(self);
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

/// When a token that expires at `unix_secs` runs out, as a deadline of
/// `clock`.
fn deadline_of(clock: &Clock, unix_secs: i64) -> Option<Instant> {
    if unix_secs == i64::MAX {
        return None;
    }
    let left = unix_secs.saturating_sub(clock.now().timestamp()).max(0) as u64;
    Some(clock.deadline(Duration::from_secs(left)))
}

/// Sends one message within `limit`. `Err(true)`: the peer is not reading;
/// `Err(false)`: the socket is gone.
async fn send<S>(sink: &mut S, message: Message, clock: &Clock, limit: Duration) -> Result<(), bool>
where
    S: futures_util::Sink<Message> + Unpin,
{
    within(clock, limit, sink.send(message)).await
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
async fn send_all<S>(
    sink: &mut S,
    frames: Vec<Message>,
    clock: &Clock,
    limit: Duration,
) -> Result<(), bool>
where
    S: futures_util::Sink<Message> + Unpin,
{
    for frame in frames {
        within(clock, limit, sink.feed(frame)).await?;
    }
    within(clock, limit, sink.flush()).await
}

async fn within<E>(
    clock: &Clock,
    limit: Duration,
    step: impl Future<Output = Result<(), E>>,
) -> Result<(), bool> {
    match clock.timeout(limit, step).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(false),
        Err(_) => Err(true),
    }
}

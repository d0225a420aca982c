//! graphql-transport-ws from the client's side: a client whose reads fail
//! the test on anything unexpected ([`Client::next`]), the same client read
//! frame by frame for servers that go away ([`Client::frame`]), and
//! [`follow`], a subscriber that reconnects and resumes as real clients do.

mod follow;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use follow::{follow, FollowLog, Follower};

use crate::EVENT_TIMEOUT;

/// The WebSocket underneath a [`Client`].
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long [`Client::try_connect`] waits for the connection: a stopping
/// server may leave one in its backlog unserved.
const CONNECT_BOUND: Duration = Duration::from_secs(3);

/// Every field of `sessionEvents` a client would ask for.
const SESSION_EVENTS: &str =
    "subscription($s: ID!, $a: Int) { sessionEvents(sessionId: $s, afterSeq: $a) {
               __typename
               ... on MessagePosted { message { seq sender body status senderId } }
               ... on CaughtUp { seq sessionId }
               ... on TypingChanged { sender typing }
               ... on ReceiptUpdated { reader deliveredSeq readSeq }
               ... on SessionChanged { session { status endReason endedBy } }
             } }";

/// A WebSocket handshake request offering graphql-transport-ws.
pub fn request(addr: SocketAddr) -> Request {
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .expect("a WebSocket URL");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("a header value"),
    );
    request
}

/// One graphql-transport-ws frame, or what happened instead.
#[derive(Debug)]
pub enum Frame {
    /// A `next` frame's payload.
    Next(Value),
    /// An `error` frame, whole.
    Error(Value),
    Complete,
    /// The connection ended: with the server's close code, if it sent one.
    Closed(Option<u16>),
    /// Nothing arrived in the time given.
    Quiet,
}

/// A graphql-transport-ws client.
pub struct Client {
    socket: Socket,
}

impl Client {
    async fn handshake(addr: SocketAddr, bound: Duration) -> Result<Socket, String> {
        let (socket, _) =
            tokio::time::timeout(bound, tokio_tungstenite::connect_async(request(addr)))
                .await
                .map_err(|_| "connect timed out".to_owned())?
                .map_err(|e| e.to_string())?;
        Ok(socket)
    }

    /// Opens the socket without connection_init.
    pub async fn open(addr: SocketAddr) -> Client {
        let socket = Client::handshake(addr, EVENT_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("WebSocket does not connect: {e}"));
        Client { socket }
    }

    /// Opens the socket and waits for the acknowledgement of connection_init.
    pub async fn connect(addr: SocketAddr, token: Option<&str>) -> Client {
        let mut client = Client::open(addr).await;
        client.init(token).await;
        client
    }

    /// Like [`Self::connect`], but says why it could not connect: for
    /// servers that go away.
    pub async fn try_connect(addr: SocketAddr, token: Option<&str>) -> Result<Client, String> {
        let socket = Client::handshake(addr, CONNECT_BOUND).await?;
        let mut client = Client { socket };
        client.try_init(token).await?;
        Ok(client)
    }

    pub fn from_socket(socket: Socket) -> Client {
        Client { socket }
    }

    /// The socket itself, for tests of the transport.
    pub fn socket(&mut self) -> &mut Socket {
        &mut self.socket
    }

    /// Sends connection_init and waits for the acknowledgement.
    pub async fn init(&mut self, token: Option<&str>) {
        if let Err(e) = self.try_init(token).await {
            panic!("{e}");
        }
    }

    async fn try_init(&mut self, token: Option<&str>) -> Result<(), String> {
        let payload = match token {
            Some(t) => json!({ "authorization": format!("Bearer {t}") }),
            None => json!({}),
        };
        self.try_send(json!({ "type": "connection_init", "payload": payload }))
            .await?;
        match self.read(Instant::now() + EVENT_TIMEOUT).await {
            Ok(ack) if ack["type"] == "connection_ack" => Ok(()),
            Ok(other) => Err(format!("expected connection_ack, got {other}")),
            Err(instead) => Err(format!("no connection_ack: {instead:?}")),
        }
    }

    pub async fn send(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(WsMessage::Text(text.to_owned().into()))
            .await
            .expect("WebSocket send");
    }

    /// Sends without failing the test: a failed send shows up as
    /// [`Frame::Closed`] on the next read.
    async fn try_send(&mut self, value: Value) -> Result<(), String> {
        self.socket
            .send(WsMessage::Text(value.to_string().into()))
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(subscribe_message(id, query, variables)).await;
    }

    /// Subscribes to sessionEvents with every field a client would ask for.
    pub async fn session_events(&mut self, id: &str, session: &str, after_seq: i64) {
        self.send(session_events_message(id, session, after_seq))
            .await;
    }

    /// Ends subscription `id` from the client side.
    pub async fn complete(&mut self, id: &str) {
        self.send(json!({ "id": id, "type": "complete" })).await;
    }

    /// The next protocol message until `deadline`, answering pings on the
    /// way; what happened instead ([`Frame::Closed`] or [`Frame::Quiet`]).
    async fn read(&mut self, deadline: Instant) -> Result<Value, Frame> {
        loop {
            let read = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| Frame::Quiet)?;
            match read {
                Some(Ok(WsMessage::Text(text))) => {
                    let v: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("a frame that is not JSON ({e}): {text}"));
                    if v["type"] == "ping" {
                        // A failed pong shows up on the next read.
                        let _ = self.try_send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return Ok(v);
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    return Err(Frame::Closed(frame.map(|f| f.code.into())))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(Frame::Closed(None)),
            }
        }
    }

    /// The next protocol message; fails the test if none comes in time.
    async fn next_frame(&mut self) -> Value {
        match self.read(Instant::now() + EVENT_TIMEOUT).await {
            Ok(frame) => frame,
            Err(Frame::Quiet) => panic!("timed out waiting for a WebSocket message"),
            Err(instead) => panic!("WebSocket closed by server: {instead:?}"),
        }
    }

    /// The next `next`, `error` or `complete` frame, waiting at most
    /// `wait`; never fails the test. Other messages are skipped.
    pub async fn frame(&mut self, wait: Duration) -> Frame {
        let deadline = Instant::now() + wait;
        loop {
            let v = match self.read(deadline).await {
                Ok(v) => v,
                Err(instead) => return instead,
            };
            match v["type"].as_str() {
                Some("next") => return Frame::Next(v["payload"].clone()),
                Some("error") => return Frame::Error(v),
                Some("complete") => return Frame::Complete,
                _ => continue,
            }
        }
    }

    /// The payload of the next `next` message (the subscription's data), or
    /// the frame itself for `error`/`complete`.
    pub async fn next(&mut self) -> Value {
        let frame = self.next_frame().await;
        match frame["type"].as_str() {
            Some("next") => frame["payload"].clone(),
            _ => frame,
        }
    }

    /// Reads events until one with this __typename arrives (under `field`).
    pub async fn next_of(&mut self, field: &str, typename: &str) -> Value {
        loop {
            let ev = self.next().await;
            assert!(
                ev.get("errors").is_none() && ev.get("type").is_none(),
                "unexpected frame {ev}"
            );
            if ev["data"][field]["__typename"] == typename {
                return ev["data"][field].clone();
            }
        }
    }

    /// The error code that subscription `id` fails with; its ordinary events
    /// and frames of other subscriptions (e.g. the `complete` after an
    /// earlier failure) are skipped.
    pub async fn error_code_for(&mut self, id: &str) -> String {
        loop {
            let frame = self.next_frame().await;
            if frame["id"] != id || frame["type"] == "complete" {
                continue;
            }
            let payload = if frame["type"] == "next" {
                frame["payload"].clone()
            } else {
                frame
            };
            if payload.get("errors").is_none() && payload["type"] != "error" {
                continue; // an ordinary event before the error
            }
            return subscription_error_code(&payload);
        }
    }

    /// Reads until the server closes the socket; its close code and reason.
    /// Protocol messages on the way are skipped (pings are answered).
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            let frame = tokio::time::timeout(EVENT_TIMEOUT, self.socket.next())
                .await
                .expect("timed out waiting for the server to close");
            match frame {
                Some(Ok(WsMessage::Close(Some(c)))) => {
                    return (c.code.into(), c.reason.to_string())
                }
                Some(Ok(WsMessage::Close(None))) => panic!("closed without a code"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("WebSocket error before a close frame: {e}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    }
}

fn subscribe_message(id: &str, query: &str, variables: Value) -> Value {
    json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } })
}

fn session_events_message(id: &str, session: &str, after_seq: i64) -> Value {
    subscribe_message(id, SESSION_EVENTS, json!({ "s": session, "a": after_seq }))
}

/// The error code of a subscription that failed: async-graphql reports a
/// resolver error as a `next` payload with `errors`, a protocol-level
/// refusal as an `error` frame; clients handle both.
pub fn subscription_error_code(frame: &Value) -> String {
    let errors = if frame["type"] == "error" {
        &frame["payload"]
    } else {
        &frame["errors"]
    };
    errors[0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a subscription error, got {frame}"))
        .to_owned()
}

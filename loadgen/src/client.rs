//! Clients as real ones talk to the server: GraphQL over HTTP POST, and
//! graphql-transport-ws over WebSocket. Every response is checked for
//! GraphQL `errors`: an HTTP 200 can carry one.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("graphql error: {0}")]
    Graphql(String),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

/// GraphQL over HTTP against one server.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    endpoint: String,
}

impl Http {
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        let client = reqwest::Client::builder()
            // Every simulated client keeps its connection, as a browser would.
            .pool_max_idle_per_host(usize::MAX)
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Http {
            client,
            endpoint: format!("{}/graphql", base_url.trim_end_matches('/')),
        })
    }

    /// Runs one operation; any `errors` in the body is an error.
    pub async fn run(
        &self,
        token: &str,
        query: &str,
        variables: Value,
    ) -> Result<Value, ClientError> {
        let resp = self
            .client
            .post(&self.endpoint)
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if let Some(errors) = body.get("errors") {
            return Err(ClientError::Graphql(format!("HTTP {status}: {errors}")));
        }
        if !status.is_success() {
            return Err(ClientError::Graphql(format!("HTTP {status}: {body}")));
        }
        Ok(body["data"].clone())
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a graphql-transport-ws connection and completes `connection_init`.
pub async fn ws_connect(ws_url: &str, token: &str) -> Result<Socket, ClientError> {
    let mut request = ws_url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    send_json(
        &mut socket,
        &json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } }),
    )
    .await?;
    let ack = tokio::time::timeout(Duration::from_secs(30), next_frame(&mut socket))
        .await
        .map_err(|_| ClientError::Timeout("connection_ack"))??;
    match ack {
        Some(frame) if frame["type"] == "connection_ack" => Ok(socket),
        other => Err(ClientError::Protocol(format!(
            "expected connection_ack, got {other:?}"
        ))),
    }
}

pub async fn send_json(socket: &mut Socket, value: &Value) -> Result<(), ClientError> {
    socket
        .send(WsMessage::Text(value.to_string().into()))
        .await?;
    Ok(())
}

pub async fn subscribe(
    socket: &mut Socket,
    id: &str,
    query: &str,
    variables: Value,
) -> Result<(), ClientError> {
    send_json(
        socket,
        &json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }),
    )
    .await
}

/// The next graphql-transport-ws message, answering protocol pings on the
/// way; `None` when the socket closed.
pub async fn next_frame(socket: &mut Socket) -> Result<Option<Value>, ClientError> {
    while let Some(msg) = socket.next().await {
        let text = match msg? {
            WsMessage::Text(t) => t,
            WsMessage::Close(_) => return Ok(None),
            // WebSocket pings are answered by tungstenite itself.
            _ => continue,
        };
        let frame: Value = serde_json::from_str(text.as_str())
            .map_err(|e| ClientError::Protocol(format!("not JSON: {e}")))?;
        if frame["type"] == "ping" {
            send_json(socket, &json!({ "type": "pong" })).await?;
            continue;
        }
        return Ok(Some(frame));
    }
    Ok(None)
}

/// What a frame of a subscription carries: the event, or the error it
/// reports (an `error` frame, or a `next` whose payload has `errors`).
pub enum Frame {
    Next { id: String, data: Value },
    Complete { id: String },
    Error(String),
    Other,
}

pub fn classify(frame: &Value) -> Frame {
    let id = frame["id"].as_str().unwrap_or_default().to_owned();
    match frame["type"].as_str() {
        Some("next") => match frame["payload"].get("errors") {
            Some(errors) => Frame::Error(format!("subscription {id}: {errors}")),
            None => Frame::Next {
                id,
                data: frame["payload"]["data"].clone(),
            },
        },
        Some("error") => Frame::Error(format!("subscription {id}: {}", frame["payload"])),
        Some("complete") => Frame::Complete { id },
        _ => Frame::Other,
    }
}

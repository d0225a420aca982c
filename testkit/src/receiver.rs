//! A local HTTP receiver for what the server sends out (webhooks): it
//! records every request and answers as the test scripts it, so a test can
//! wait on what arrived instead of sleeping.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::Notify;

/// One request as it arrived, and how it was answered.
#[derive(Clone, Debug)]
pub struct Received {
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: String,
    /// The body as JSON (Null when it is not JSON).
    pub json: Value,
    /// The status it was answered with (None: held, never answered).
    pub answered: Option<u16>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    /// The `webhook-id` header.
    pub fn id(&self) -> &str {
        self.header("webhook-id")
    }

    /// The payload's `type`.
    pub fn kind(&self) -> &str {
        self.json["type"].as_str().unwrap_or("")
    }
}

/// How to answer a request.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// A status with headers (`Retry-After`).
    With(u16, Vec<(&'static str, String)>),
    /// Never answer: the connection is held until the client gives up.
    Hold,
    /// A status with a JSON body (a ticket system's answer).
    Json(u16, String),
}

#[derive(Default)]
struct Shared {
    state: Mutex<Inner>,
    changed: Notify,
}

struct Inner {
    received: Vec<Received>,
    script: VecDeque<Reply>,
    default: Reply,
}

/// The receiver; it stops with the test's runtime.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            received: Vec::new(),
            script: VecDeque::new(),
            default: Reply::Status(200),
        }
    }
}

impl Receiver {
    /// Listens on 127.0.0.1; answers 200 until told otherwise.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, shared }
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next requests are answered with these, in order; then the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// How requests are answered once the script is used up.
    pub fn answer_with(&self, reply: Reply) {
        self.lock().default = reply;
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Waits until `done` holds for what has arrived (or fails after `bound`).
    pub async fn wait_until(
        &self,
        what: &str,
        bound: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + bound;
        loop {
            let changed = self.shared.changed.notified();
            {
                let received = self.received();
                if done(&received) {
                    return received;
                }
                if Instant::now() >= deadline {
                    panic!("gave up waiting until {what}; received: {received:#?}");
                }
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), changed).await;
        }
    }

    /// Waits until `n` requests were answered with 2xx.
    pub async fn wait_for_ok(&self, n: usize, bound: Duration) -> Vec<Received> {
        self.wait_until(&format!("{n} requests answered 2xx"), bound, |r| {
            r.iter()
                .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)))
                .count()
                >= n
        })
        .await
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let reply = {
        let mut state = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        let reply = state
            .script
            .pop_front()
            .unwrap_or_else(|| state.default.clone());
        let body = String::from_utf8_lossy(&body).into_owned();
        state.received.push(Received {
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
            json: serde_json::from_str(&body).unwrap_or(Value::Null),
            body,
            answered: match &reply {
                Reply::Status(s) | Reply::With(s, _) | Reply::Json(s, _) => Some(*s),
                Reply::Hold => None,
            },
            at: Instant::now(),
        });
        reply
    };
    shared.changed.notify_waiters();
    match reply {
        Reply::Status(s) => status(s).into_response(),
        Reply::With(s, headers) => {
            let mut response = status(s).into_response();
            for (name, value) in headers {
                if let Ok(v) = value.parse() {
                    response.headers_mut().insert(name, v);
                }
            }
            response
        }
        Reply::Hold => std::future::pending().await,
        Reply::Json(s, body) => (
            status(s),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

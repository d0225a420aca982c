//! GraphQL over HTTP to one server: requests, the answers read as the
//! contract says (`data`, or `errors[0].extensions.code`), and the
//! operations tests repeat.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{tokens, ws};

/// A client of one server. Cheap to clone: clones share connections.
#[derive(Clone)]
pub struct Client {
    /// For requests the methods below do not cover.
    pub http: reqwest::Client,
    addr: SocketAddr,
    /// How often [`Client::gql`] retries a request that got no answer.
    retries: u32,
}

/// Why [`Client::try_send`] stored nothing, as far as the client knows.
#[derive(Debug)]
pub enum SendError {
    /// No answer: the connection failed or was cut.
    Transport(String),
    /// An answer without data: the GraphQL response.
    Refused(Value),
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            // Only a guard against a hung test; no assertion is timed.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client"),
            addr,
            retries: 0,
        }
    }

    /// Retries requests that get no answer up to `retries` times (in
    /// [`Client::gql`] only): for swarms of clients on a small machine,
    /// where a connection is sometimes refused.
    pub fn with_retries(mut self, retries: u32) -> Client {
        self.retries = retries;
        self
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn post(&self, token: Option<&str>, query: &str, variables: &Value) -> reqwest::RequestBuilder {
        let request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    }

    /// POSTs an operation; the whole response body, or why there is none.
    pub async fn try_gql(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Result<Value, reqwest::Error> {
        self.post(token, query, &variables)
            .send()
            .await?
            .json()
            .await
    }

    /// POSTs an operation and returns the whole response body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut attempt = 0;
        let response = loop {
            match self.post(token, query, &variables).send().await {
                Ok(response) => break response,
                Err(e) if attempt < self.retries => {
                    eprintln!("retrying after transport error: {e}");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("request failed: {e}"),
            }
        };
        response.json().await.expect("JSON response")
    }

    /// Like [`Self::gql`], but fails the test on any GraphQL error and returns `data`.
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let body = self.gql(Some(token), query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Runs an operation expected to fail and returns errors[0].extensions.code.
    pub async fn error_code(&self, token: Option<&str>, query: &str, variables: Value) -> String {
        let body = self.gql(token, query, variables).await;
        code_of(&body)
    }

    /// The body of a GET, as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("text body")
    }

    /// The status of a GET, or why there is none.
    pub async fn status(&self, path: &str) -> Result<u16, reqwest::Error> {
        Ok(self
            .http
            .get(self.url(path))
            .send()
            .await?
            .status()
            .as_u16())
    }

    /// A counter from /metrics.
    pub async fn counter(&self, name: &str) -> u64 {
        let metrics = self.get_text("/metrics").await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}"))
    }

    /// A graphql-transport-ws socket to the same server, initialised.
    pub async fn ws(&self, token: Option<&str>) -> ws::Client {
        ws::Client::connect(self.addr, token).await
    }

    // Common operations.

    pub async fn start_session(&self, customer: &str) -> String {
        let data = self
            .ok(
                customer,
                "mutation { startSession(input: {}) { id status } }",
                json!({}),
            )
            .await;
        data["startSession"]["id"]
            .as_str()
            .expect("session id")
            .to_owned()
    }

    pub async fn start_shift(&self, agent: &str) {
        self.ok(agent, "mutation { startShift { status } }", json!({}))
            .await;
    }

    pub async fn accept(&self, agent: &str, session: &str) -> Value {
        self.gql(
            Some(agent),
            "mutation($id: ID!) { acceptSession(sessionId: $id) { id status agent { id } } }",
            json!({ "id": session }),
        )
        .await
    }

    /// A customer's session accepted by an agent on shift (manual routing).
    pub async fn active_session(&self, customer: &str, agent: &str) -> String {
        self.start_shift(agent).await;
        let sid = self.start_session(customer).await;
        let accepted = self.accept(agent, &sid).await;
        assert!(
            accepted.get("errors").is_none(),
            "accept failed: {accepted}"
        );
        sid
    }

    pub async fn end(&self, token: &str, session: &str) {
        self.ok(
            token,
            "mutation($s: ID!) { endSession(sessionId: $s) { status } }",
            json!({ "s": session }),
        )
        .await;
    }

    /// Sends a message; the whole response body.
    pub async fn send(&self, token: &str, session: &str, body: &str, client_id: &str) -> Value {
        self.gql(
            Some(token),
            "mutation($s: ID!, $b: String!, $c: String!) {
               sendMessage(input: {sessionId: $s, body: $b, clientMessageId: $c}) { id seq sender body status clientMessageId }
             }",
            json!({ "s": session, "b": body, "c": client_id }),
        )
        .await
    }

    /// Sends message `client_id` (its body says which) as a client that
    /// keeps count of what was acknowledged: its seq, or why there is none.
    pub async fn try_send(
        &self,
        token: &str,
        session: &str,
        client_id: &str,
    ) -> Result<i64, SendError> {
        let body = self
            .try_gql(
                Some(token),
                "mutation($s: ID!, $b: String!, $c: String!) {
                   sendMessage(input: {sessionId: $s, body: $b, clientMessageId: $c}) { seq } }",
                json!({ "s": session, "b": format!("body of {client_id}"), "c": client_id }),
            )
            .await
            .map_err(|e| SendError::Transport(e.to_string()))?;
        match body["data"]["sendMessage"]["seq"].as_i64() {
            Some(seq) if body.get("errors").is_none() => Ok(seq),
            _ => Err(SendError::Refused(body)),
        }
    }

    /// Every message of a session as (seq, clientMessageId; empty for
    /// system messages), read through the API page by page.
    pub async fn transcript(&self, token: &str, session: &str) -> Vec<(i64, String)> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let data = self
                .ok(
                    token,
                    "query($id: ID!, $after: String) { session(id: $id) {
                       messages(first: 500, after: $after) {
                         nodes { seq clientMessageId } pageInfo { hasNextPage endCursor } } } }",
                    json!({ "id": session, "after": after }),
                )
                .await;
            let conn = &data["session"]["messages"];
            for n in conn["nodes"].as_array().expect("nodes") {
                all.push((
                    n["seq"].as_i64().expect("seq"),
                    n["clientMessageId"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            if !conn["pageInfo"]["hasNextPage"]
                .as_bool()
                .expect("hasNextPage")
            {
                return all;
            }
            after = conn["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
    }

    /// Every message seq of a session, in order.
    pub async fn all_seqs(&self, token: &str, session: &str) -> Vec<i64> {
        let transcript = self.transcript(token, session).await;
        transcript.into_iter().map(|(seq, _)| seq).collect()
    }

    // Read and set as the admin.

    /// `data` of an operation run as the admin, which must succeed.
    pub async fn as_admin(&self, query: &str, variables: Value) -> Value {
        self.ok(&tokens::admin(), query, variables).await
    }

    /// Status and agent of a session.
    pub async fn state(&self, session: &str) -> (String, Option<String>) {
        let data = self
            .as_admin(
                "query($s: ID!) { session(id: $s) { status agent { id } } }",
                json!({ "s": session }),
            )
            .await;
        let s = &data["session"];
        (
            s["status"].as_str().expect("status").to_owned(),
            s["agent"]["id"].as_str().map(str::to_owned),
        )
    }

    /// The kinds and agents of a session's assignment history.
    pub async fn history(&self, session: &str) -> Vec<(String, Option<String>)> {
        let data = self
            .as_admin(
                "query($s: ID!) { session(id: $s) { history { kind agentId } } }",
                json!({ "s": session }),
            )
            .await;
        data["session"]["history"]
            .as_array()
            .expect("history")
            .iter()
            .map(|h| {
                (
                    h["kind"].as_str().expect("kind").to_owned(),
                    h["agentId"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }

    pub async fn agent_status(&self, agent: &str) -> String {
        let data = self.as_admin("{ agents { id status } }", json!({})).await;
        data["agents"]
            .as_array()
            .expect("agents")
            .iter()
            .find(|a| a["id"] == agent)
            .map(|a| a["status"].as_str().expect("status").to_owned())
            .unwrap_or_else(|| panic!("no agent {agent}"))
    }

    pub async fn set_capacity(&self, agent: &str, capacity: i64) {
        self.as_admin(
            "mutation($a: ID!, $c: Int!) { setAgentCapacity(agentId: $a, capacity: $c) { capacity } }",
            json!({ "a": agent, "c": capacity }),
        )
        .await;
    }
}

/// errors[0].extensions.code of a response, or a panic that shows the body.
pub fn code_of(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code, got {body}"))
        .to_owned()
}

//! The graphql-transport-ws rules the engine does not enforce, as a pure
//! state machine over the messages each way.

use std::collections::HashSet;

use super::{Close, BAD_MESSAGE, DUPLICATE_ID, TOO_MANY_INITS, UNAUTHORIZED};

/// What to do with a message the engine produced.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outgoing {
    Send,
    /// The connection_ack: the caller is known now.
    Acknowledged,
    /// The engine answers a client's `complete` with one of its own, which
    /// graphql-transport-ws does not have.
    Drop,
}

/// The protocol rules the engine does not enforce. Pure, so the rules are
/// unit-tested without sockets.
pub(super) struct ProtocolState {
    /// graphql-transport-ws (strict); the legacy protocol is passed through.
    strict: bool,
    pub(super) initialised: bool,
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
    pub(super) fn new(strict: bool) -> Self {
        ProtocolState {
            strict,
            initialised: false,
            acknowledged: false,
            running: HashSet::new(),
            echoes: HashSet::new(),
        }
    }

    /// Checks a client message; `Err` closes the connection.
    pub(super) fn client_message(&mut self, raw: &[u8]) -> Result<(), Close> {
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
    pub(super) fn server_message(&mut self, text: &str) -> Outgoing {
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
    pub(super) fn engine_close(&self, code: u16, reason: String) -> Close {
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

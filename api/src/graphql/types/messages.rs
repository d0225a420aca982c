//! Messages, their senders and receipt status, a session's transcript as a
//! connection, and the input of `sendMessage`.

use async_graphql::{Enum, InputObject, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::PageInfo;
use crate::domain::{self, Party};
use crate::service::Page;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "SenderRole")]
pub enum SenderRoleGql {
    Customer,
    Agent,
    System,
}

impl From<domain::SenderRole> for SenderRoleGql {
    fn from(s: domain::SenderRole) -> Self {
        use domain::SenderRole as S;
        match s {
            S::Customer => SenderRoleGql::Customer,
            S::Agent => SenderRoleGql::Agent,
            S::System => SenderRoleGql::System,
        }
    }
}

impl From<Party> for SenderRoleGql {
    fn from(p: Party) -> Self {
        domain::SenderRole::from(p).into()
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "MessageStatus")]
pub enum MessageStatusGql {
    /// Stored by the server.
    Sent,
    /// Pushed to a live connection of the recipient, or fetched by the recipient.
    Delivered,
    /// The recipient marked it read.
    Read,
}

impl From<domain::MessageStatus> for MessageStatusGql {
    fn from(s: domain::MessageStatus) -> Self {
        use domain::MessageStatus as M;
        match s {
            M::Sent => MessageStatusGql::Sent,
            M::Delivered => MessageStatusGql::Delivered,
            M::Read => MessageStatusGql::Read,
        }
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Message", complex)]
pub struct MessageGql {
    pub id: ID,
    pub session_id: ID,
    /// 1, 2, 3, ... within the session, with no gaps.
    pub seq: i32,
    pub sender: SenderRoleGql,
    /// Sender's id; null for SYSTEM messages.
    pub sender_id: Option<ID>,
    pub body: String,
    /// The sender's idempotency key; null for SYSTEM messages.
    pub client_message_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// How far the message got with its recipient.
    pub status: MessageStatusGql,
    /// kind, attachment and article are resolved in `files.rs`.
    #[graphql(skip)]
    pub kind: domain::MessageKind,
    #[graphql(skip)]
    pub payload: Option<domain::MessagePayload>,
}

impl From<domain::MessageView> for MessageGql {
    fn from(v: domain::MessageView) -> Self {
        let m = v.message;
        let kind = m.kind();
        MessageGql {
            kind,
            payload: m.payload,
            id: ID(m.id.to_string()),
            session_id: ID(m.session_id.to_string()),
            seq: m.seq,
            sender: m.sender.into(),
            sender_id: m.sender_id.map(ID),
            body: m.body,
            client_message_id: m.client_message_id,
            created_at: m.created_at,
            status: v.status.into(),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "MessageEdge")]
pub struct MessageEdge {
    pub cursor: String,
    pub node: MessageGql,
}

#[derive(SimpleObject)]
#[graphql(name = "MessageConnection")]
pub struct MessageConnection {
    pub edges: Vec<MessageEdge>,
    pub nodes: Vec<MessageGql>,
    pub page_info: PageInfo,
}

impl From<Page<domain::MessageView>> for MessageConnection {
    fn from(page: Page<domain::MessageView>) -> Self {
        let page_info = PageInfo::from(&page);
        let edges: Vec<MessageEdge> = page
            .items
            .into_iter()
            .map(|(cursor, m)| MessageEdge {
                cursor,
                node: m.into(),
            })
            .collect();
        MessageConnection {
            nodes: edges.iter().map(|e| e.node.clone()).collect(),
            edges,
            page_info,
        }
    }
}

#[derive(InputObject)]
pub struct SendMessageInput {
    pub session_id: ID,
    pub body: String,
    /// Chosen by the client; sending the same key again returns the first message and stores nothing new.
    pub client_message_id: String,
}

//! Output and input types of the API. They are defined here rather than
//! derived on domain types or entities, so that no internal change can
//! silently change the public schema.

use async_graphql::{ComplexObject, Context, Enum, InputObject, Object, SimpleObject, Union, ID};
use chrono::{DateTime, Utc};

use super::context::caller_and_service;
use super::error::GqlResultExt;
use crate::auth::Role;
use crate::domain::{self, HistoryEntry, Party};
use crate::events;
use crate::service::{Page, PageArgs};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "Role")]
pub enum RoleGql {
    Customer,
    Agent,
    Admin,
}

impl From<Role> for RoleGql {
    fn from(r: Role) -> Self {
        match r {
            Role::Customer => RoleGql::Customer,
            Role::Agent => RoleGql::Agent,
            Role::Admin => RoleGql::Admin,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "SessionStatus")]
pub enum SessionStatusGql {
    /// In the queue, waiting for an agent.
    Waiting,
    /// Reserved for one agent (fair routing) who has not accepted yet.
    Offered,
    /// Accepted by an agent; both sides exchange messages.
    Active,
    /// Over. An ended session can be read but never resumed.
    Ended,
}

impl From<domain::SessionStatus> for SessionStatusGql {
    fn from(s: domain::SessionStatus) -> Self {
        use domain::SessionStatus as S;
        match s {
            S::Waiting => SessionStatusGql::Waiting,
            S::Offered => SessionStatusGql::Offered,
            S::Active => SessionStatusGql::Active,
            S::Ended => SessionStatusGql::Ended,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "EndReason")]
pub enum EndReasonGql {
    /// Ended on purpose by the customer, the agent or an admin.
    Resolved,
    /// The customer left the queue before any agent accepted.
    Cancelled,
    /// The customer stayed disconnected longer than the grace period.
    Abandoned,
}

impl From<domain::EndReason> for EndReasonGql {
    fn from(r: domain::EndReason) -> Self {
        use domain::EndReason as R;
        match r {
            R::Resolved => EndReasonGql::Resolved,
            R::Cancelled => EndReasonGql::Cancelled,
            R::Abandoned => EndReasonGql::Abandoned,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "AgentStatus")]
pub enum AgentStatusGql {
    /// Not on shift. Receives nothing.
    Offline,
    /// On shift; receives new sessions while below capacity.
    Available,
    /// Wants a break: keeps current sessions, receives no new ones; ON_BREAK when the last one ends.
    BreakRequested,
    OnBreak,
    /// Ending the shift: keeps current sessions, receives no new ones; OFFLINE when the last one ends.
    ShiftEnding,
}

impl From<domain::AgentStatus> for AgentStatusGql {
    fn from(s: domain::AgentStatus) -> Self {
        use domain::AgentStatus as A;
        match s {
            A::Offline => AgentStatusGql::Offline,
            A::Available => AgentStatusGql::Available,
            A::BreakRequested => AgentStatusGql::BreakRequested,
            A::OnBreak => AgentStatusGql::OnBreak,
            A::ShiftEnding => AgentStatusGql::ShiftEnding,
        }
    }
}

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

#[derive(SimpleObject)]
#[graphql(name = "Viewer")]
pub struct ViewerGql {
    pub id: ID,
    pub role: RoleGql,
    /// The caller's agent record, when the caller is an agent.
    pub agent: Option<AgentGql>,
}

#[derive(SimpleObject)]
#[graphql(name = "Customer")]
pub struct CustomerGql {
    /// The opaque subject of the customer's token. No other personal data is stored.
    pub id: ID,
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Agent")]
pub struct AgentGql {
    pub id: ID,
    pub name: String,
    pub status: AgentStatusGql,
    /// Most sessions (OFFERED + ACTIVE) the agent holds at once. Default 2.
    pub capacity: i32,
    pub active_session_count: i32,
    /// When the agent last became free for a new session: shift start, break end, session end, or last assignment. Fair routing serves the earliest first.
    pub idle_since: Option<DateTime<Utc>>,
}

impl From<domain::Agent> for AgentGql {
    fn from(a: domain::Agent) -> Self {
        AgentGql {
            id: ID(a.id),
            name: a.name,
            status: a.status.into(),
            capacity: a.capacity,
            active_session_count: a.active_session_count,
            idle_since: a.idle_since,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "PageInfo")]
pub struct PageInfo {
    pub has_previous_page: bool,
    pub has_next_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

impl<T> From<&Page<T>> for PageInfo {
    fn from(p: &Page<T>) -> Self {
        PageInfo {
            has_previous_page: p.has_previous_page,
            has_next_page: p.has_next_page,
            start_cursor: p.start_cursor().map(str::to_owned),
            end_cursor: p.end_cursor().map(str::to_owned),
        }
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Message")]
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
}

impl From<domain::MessageView> for MessageGql {
    fn from(v: domain::MessageView) -> Self {
        let m = v.message;
        MessageGql {
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

/// A chat session. `position` is filled in when the caller already knows the
/// queue position (the queue listing), to save a query per row.
pub struct ChatSessionGql {
    pub inner: domain::ChatSession,
    pub position: Option<Option<i32>>,
}

impl From<domain::ChatSession> for ChatSessionGql {
    fn from(inner: domain::ChatSession) -> Self {
        ChatSessionGql {
            inner,
            position: None,
        }
    }
}

#[Object(name = "ChatSession")]
impl ChatSessionGql {
    async fn id(&self) -> ID {
        ID(self.inner.id.to_string())
    }
    async fn status(&self) -> SessionStatusGql {
        self.inner.status.into()
    }
    async fn subject(&self) -> Option<&str> {
        self.inner.subject.as_deref()
    }
    async fn customer(&self) -> CustomerGql {
        CustomerGql {
            id: ID(self.inner.customer_id.clone()),
        }
    }
    /// The agent the session is offered to or accepted by.
    async fn agent(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AgentGql>> {
        let Some(agent_id) = self.inner.agent_id.as_deref() else {
            return Ok(None);
        };
        let (_, svc) = caller_and_service(ctx)?;
        Ok(svc.agent(agent_id).await.gql()?.map(Into::into))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.inner.created_at
    }
    /// When an agent accepted.
    async fn assigned_at(&self) -> Option<DateTime<Utc>> {
        self.inner.assigned_at
    }
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.inner.ended_at
    }
    /// Who ended it; null when the system did.
    async fn ended_by(&self) -> Option<RoleGql> {
        self.inner.ended_by.map(Into::into)
    }
    async fn end_reason(&self) -> Option<EndReasonGql> {
        self.inner.end_reason.map(Into::into)
    }
    /// 1-based place in the queue while WAITING; null otherwise.
    async fn queue_position(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i32>> {
        if let Some(known) = self.position {
            return Ok(known);
        }
        let (_, svc) = caller_and_service(ctx)?;
        svc.queue_position(&self.inner).await.gql()
    }
    /// seq of the newest message; 0 when there is none.
    async fn last_seq(&self) -> i32 {
        self.inner.last_seq
    }
    /// The transcript, oldest first; cursors are message seqs.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<MessageConnection> {
        let (viewer, svc) = caller_and_service(ctx)?;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        Ok(svc.messages(viewer, &self.inner, &args).await.gql()?.into())
    }
    /// Admin: every offer, acceptance, transfer, return to the queue and end, oldest first.
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SessionHistoryEntry>> {
        let (viewer, svc) = caller_and_service(ctx)?;
        Ok(svc
            .session_history(viewer, &self.inner)
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// One step in a session's assignment history.
#[derive(SimpleObject)]
pub struct SessionHistoryEntry {
    /// QUEUED, ACCEPTED, ENDED, ...
    pub kind: String,
    pub agent_id: Option<ID>,
    /// Who caused it; null when the system did.
    pub actor_id: Option<ID>,
    pub at: DateTime<Utc>,
}

impl From<HistoryEntry> for SessionHistoryEntry {
    fn from(h: HistoryEntry) -> Self {
        SessionHistoryEntry {
            kind: h.kind.as_str().to_owned(),
            agent_id: h.agent_id.map(ID),
            actor_id: h.actor_id.map(ID),
            at: h.at,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "ChatSessionEdge")]
pub struct ChatSessionEdge {
    pub cursor: String,
    pub node: ChatSessionGql,
}

#[derive(SimpleObject)]
#[graphql(name = "ChatSessionConnection", complex)]
pub struct ChatSessionConnection {
    pub edges: Vec<ChatSessionEdge>,
    pub page_info: PageInfo,
}

#[ComplexObject]
impl ChatSessionConnection {
    async fn nodes(&self) -> Vec<&ChatSessionGql> {
        self.edges.iter().map(|e| &e.node).collect()
    }
}

impl From<Page<domain::ChatSession>> for ChatSessionConnection {
    fn from(page: Page<domain::ChatSession>) -> Self {
        let page_info = PageInfo::from(&page);
        ChatSessionConnection {
            edges: page
                .items
                .into_iter()
                .map(|(cursor, s)| ChatSessionEdge {
                    cursor,
                    node: s.into(),
                })
                .collect(),
            page_info,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "QueueStats")]
pub struct QueueStatsGql {
    pub waiting: i32,
    pub offered: i32,
    pub active: i32,
    pub available_agents: i32,
    /// Sum over AVAILABLE agents of capacity minus held sessions.
    pub free_slots: i32,
    /// Seconds the head of the queue has waited; 0 when the queue is empty.
    pub longest_wait_seconds: i32,
}

impl From<events::QueueStats> for QueueStatsGql {
    fn from(s: events::QueueStats) -> Self {
        QueueStatsGql {
            waiting: s.waiting,
            offered: s.offered,
            active: s.active,
            available_agents: s.available_agents,
            free_slots: s.free_slots,
            longest_wait_seconds: s.longest_wait_seconds,
        }
    }
}

#[derive(InputObject)]
pub struct StartSessionInput {
    pub subject: Option<String>,
}

#[derive(InputObject)]
pub struct SendMessageInput {
    pub session_id: ID,
    pub body: String,
    /// Chosen by the client; sending the same key again returns the first message and stores nothing new.
    pub client_message_id: String,
}

#[derive(SimpleObject)]
pub struct MessagePosted {
    pub message: MessageGql,
}

#[derive(SimpleObject)]
pub struct TypingChanged {
    pub session_id: ID,
    pub sender: SenderRoleGql,
    pub typing: bool,
}

#[derive(SimpleObject)]
pub struct ReceiptUpdated {
    pub session_id: ID,
    /// Whose receipt moved.
    pub reader: SenderRoleGql,
    pub delivered_seq: i32,
    pub read_seq: i32,
}

#[derive(SimpleObject)]
pub struct SessionChanged {
    pub session: ChatSessionGql,
}

/// Sent once per subscription, after the replay from storage and before any live event.
#[derive(SimpleObject)]
pub struct CaughtUp {
    pub session_id: ID,
    /// The newest seq replayed (afterSeq when there was nothing to replay).
    pub seq: i32,
}

#[derive(Union)]
pub enum SessionEvent {
    MessagePosted(MessagePosted),
    TypingChanged(TypingChanged),
    ReceiptUpdated(ReceiptUpdated),
    SessionChanged(SessionChanged),
    CaughtUp(CaughtUp),
}

impl SessionEvent {
    pub fn from_live(session_id: &str, item: crate::service::LiveItem) -> Self {
        use crate::service::LiveItem;
        match item {
            LiveItem::Message(m) => {
                SessionEvent::MessagePosted(MessagePosted { message: m.into() })
            }
            LiveItem::CaughtUp { seq } => SessionEvent::CaughtUp(CaughtUp {
                session_id: ID(session_id.to_owned()),
                seq,
            }),
            LiveItem::Event(e) => e.into(),
        }
    }
}

impl From<events::SessionEvent> for SessionEvent {
    fn from(e: events::SessionEvent) -> Self {
        match e {
            // Live messages reach subscribers through the service's replay
            // logic as LiveItem::Message; this arm only serves completeness.
            events::SessionEvent::MessagePosted(m) => SessionEvent::MessagePosted(MessagePosted {
                message: domain::MessageView {
                    message: m,
                    status: domain::MessageStatus::Sent,
                }
                .into(),
            }),
            events::SessionEvent::TypingChanged {
                session_id,
                sender,
                typing,
            } => SessionEvent::TypingChanged(TypingChanged {
                session_id: ID(session_id.to_string()),
                sender: sender.into(),
                typing,
            }),
            events::SessionEvent::ReceiptUpdated {
                session_id,
                reader,
                delivered_seq,
                read_seq,
            } => SessionEvent::ReceiptUpdated(ReceiptUpdated {
                session_id: ID(session_id.to_string()),
                reader: reader.into(),
                delivered_seq,
                read_seq,
            }),
            events::SessionEvent::SessionChanged(s) => {
                SessionEvent::SessionChanged(SessionChanged { session: s.into() })
            }
        }
    }
}

#[derive(SimpleObject)]
pub struct QueueChanged {
    /// The session that entered, moved in, or left the queue.
    pub session: ChatSessionGql,
    pub stats: QueueStatsGql,
}

impl From<events::QueueChanged> for QueueChanged {
    fn from(e: events::QueueChanged) -> Self {
        QueueChanged {
            session: e.session.into(),
            stats: e.stats.into(),
        }
    }
}

#[derive(SimpleObject)]
pub struct SessionOffered {
    pub session: ChatSessionGql,
    /// When the offer lapses and goes to the next agent; null when offers do not lapse.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct SessionAssigned {
    pub session: ChatSessionGql,
}

#[derive(SimpleObject)]
pub struct AgentChanged {
    pub agent: AgentGql,
}

#[derive(Union)]
pub enum AgentEvent {
    SessionOffered(SessionOffered),
    SessionAssigned(SessionAssigned),
    AgentChanged(AgentChanged),
}

impl From<events::AgentEvent> for AgentEvent {
    fn from(e: events::AgentEvent) -> Self {
        match e {
            events::AgentEvent::SessionOffered {
                session,
                expires_at,
            } => AgentEvent::SessionOffered(SessionOffered {
                session: session.into(),
                expires_at,
            }),
            events::AgentEvent::SessionAssigned(s) => {
                AgentEvent::SessionAssigned(SessionAssigned { session: s.into() })
            }
            events::AgentEvent::AgentChanged(a) => {
                AgentEvent::AgentChanged(AgentChanged { agent: a.into() })
            }
        }
    }
}

//! Agents, and the events of an agent's feed (`agentEvents`).

use std::sync::Arc;

use async_graphql::{ComplexObject, Context, Enum, SimpleObject, Union, ID};
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use super::ChatSessionGql;
use crate::domain::{self, AgentPresence};
use crate::events;
use crate::graphql::context::service;
use crate::graphql::error::GqlResultExt;

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
    /// Was AVAILABLE and has had no live connection for AGENT_AWAY_SECS: keeps current sessions, receives no new ones; AVAILABLE again when they reconnect.
    Away,
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
            A::Away => AgentStatusGql::Away,
        }
    }
}

#[derive(SimpleObject, Clone)]
#[graphql(name = "Agent", complex)]
pub struct AgentGql {
    pub id: ID,
    pub name: String,
    pub status: AgentStatusGql,
    /// Most sessions (OFFERED + ACTIVE) the agent holds at once. Default 2.
    pub capacity: i32,
    pub active_session_count: i32,
    /// When the agent last became free for a new session: shift start, break end, session end, or last assignment. Fair routing serves the earliest first.
    pub idle_since: Option<DateTime<Utc>>,
    /// Topics the agent handles; sessions that require skills go to agents having all of them.
    pub skills: Vec<String>,
    /// Read once per object, on demand, unless the resolver that made it
    /// read it for a whole list.
    #[graphql(skip)]
    pub presence: Arc<OnceCell<AgentPresence>>,
}

#[ComplexObject]
impl AgentGql {
    /// True while the agent has at least one live connection on any server.
    async fn online(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.presence(ctx).await?.online)
    }

    /// When the agent last had a live connection: set when their last one closes (or when the server holding it stopped answering). While online, at most a heartbeat ago. Null if they never connected.
    async fn last_seen_at(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<DateTime<Utc>>> {
        Ok(self.presence(ctx).await?.last_seen_at)
    }
}

impl AgentGql {
    /// The agent with their presence already read.
    pub fn with_presence(self, presence: Option<AgentPresence>) -> Self {
        if let Some(p) = presence {
            let _ = self.presence.set(p);
        }
        self
    }

    async fn presence(&self, ctx: &Context<'_>) -> async_graphql::Result<AgentPresence> {
        let id = self.id.as_str();
        let read = || async {
            let found = service(ctx)?
                .presence()
                .agents_presence(&[id])
                .await
                .gql()?;
            Ok::<_, async_graphql::Error>(found.get(id).copied().unwrap_or(AgentPresence {
                online: false,
                last_seen_at: None,
            }))
        };
        self.presence.get_or_try_init(read).await.copied()
    }
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
            skills: a.skills.names().to_vec(),
            presence: Arc::default(),
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

//! The `chat_sessions` table, split by what each part of a session's row is
//! for. Every public item is re-exported here, so callers name
//! `repo::sessions::X` whatever file `X` lives in.

mod cursors;
mod lifecycle;
mod lookup;
mod presence;
mod queue;
mod retention;
mod search;
mod seq;

pub use cursors::*;
pub use lifecycle::*;
pub use lookup::*;
pub use presence::*;
pub use queue::*;
pub use retention::*;
pub use search::*;
pub use seq::*;

use entity::chat_session;
use sea_orm::DbErr;

use super::parse;
use crate::auth::Role;
use crate::domain::{ChatSession, EndReason, Priority, Skills};

fn to_domain(m: chat_session::Model) -> Result<ChatSession, DbErr> {
    Ok(ChatSession {
        id: m.id,
        status: parse(&m.status)?,
        ended_by: m
            .ended_by
            .as_deref()
            .map(|r| Role::from_claim(r).ok_or_else(|| DbErr::Type(format!("unknown role {r:?}"))))
            .transpose()?,
        end_reason: m
            .end_reason
            .as_deref()
            .map(parse::<EndReason>)
            .transpose()?,
        customer_id: m.customer_id,
        subject: m.subject,
        agent_id: m.agent_id,
        created_at: m.created_at,
        queued_at: m.queued_at,
        assigned_at: m.assigned_at,
        offer_expires_at: m.offer_expires_at,
        ended_at: m.ended_at,
        last_seq: m.last_seq,
        customer_delivered_seq: m.customer_delivered_seq,
        customer_read_seq: m.customer_read_seq,
        agent_delivered_seq: m.agent_delivered_seq,
        agent_read_seq: m.agent_read_seq,
        customer_seen_at: m.customer_seen_at,
        priority: Priority::from_rank(m.priority)
            .ok_or_else(|| DbErr::Type(format!("unknown priority {}", m.priority)))?,
        required_skills: Skills::from_stored(&m.required_skills),
    })
}

fn all_to_domain(rows: Vec<chat_session::Model>) -> Result<Vec<ChatSession>, DbErr> {
    rows.into_iter().map(to_domain).collect()
}

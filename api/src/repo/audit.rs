//! Reads what the fairness audit of a period needs ([`crate::audit`]):
//! the sessions open at some moment of it, their whole history (what came
//! before `from` rebuilds the state as it stood then), the decisions taken
//! in it, and how early each agent's idle time could be at `from`.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use entity::{chat_session, routing_decision, session_event};
use sea_orm::sea_query::Query;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::{decisions, parse};
use crate::audit::{Event, Period, SessionFacts};
use crate::domain::{HistoryKind, Priority, Skills};

/// Decisions are read this many at a time.
const PAGE: u64 = 1000;

fn priority(rank: i16) -> Result<Priority, DbErr> {
    Priority::from_rank(rank).ok_or_else(|| DbErr::Type(format!("unknown priority {rank}")))
}

/// Everything [`crate::audit::check`] needs for [`from`, `to`).
pub async fn load_period<C: ConnectionTrait>(
    db: &C,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    skill_wait: Duration,
) -> Result<Period, DbErr> {
    use chat_session::Column as S;
    use session_event::Column as E;
    // In the queue or held at some moment of the period.
    let open = Condition::all().add(S::QueuedAt.lt(to)).add(
        Condition::any()
            .add(S::EndedAt.is_null())
            .add(S::EndedAt.gte(from)),
    );
    let sessions = chat_session::Entity::find()
        .select_only()
        .columns([S::Id, S::QueuedAt, S::Priority, S::RequiredSkills])
        .filter(open.clone())
        .into_tuple::<(Uuid, DateTime<Utc>, i16, String)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, queued_at, rank, skills)| {
            Ok(SessionFacts {
                id,
                queued_at,
                priority: priority(rank)?,
                required_skills: Skills::from_stored(&skills),
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;

    let events = session_event::Entity::find()
        .filter(
            E::SessionId.in_subquery(
                Query::select()
                    .column(S::Id)
                    .from(chat_session::Entity)
                    .cond_where(open)
                    .to_owned(),
            ),
        )
        // QUEUED takes effect at queued_at, whatever its own time says.
        .filter(
            Condition::any()
                .add(E::At.lt(to))
                .add(E::Kind.eq(HistoryKind::Queued.as_str())),
        )
        .order_by_asc(E::At)
        .order_by_asc(E::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|m| {
            Ok(Event {
                id: m.id,
                session_id: m.session_id,
                kind: parse(&m.kind)?,
                agent_id: m.agent_id,
                priority: m.priority.map(priority).transpose()?,
                at: m.at,
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;

    let mut taken = Vec::new();
    let mut after = None;
    loop {
        let page = decisions::between(db, from, to, after, PAGE).await?;
        let full = page.len() as u64 == PAGE;
        after = page.last().map(|(id, d)| (d.at, *id));
        taken.extend(page);
        if !full {
            break;
        }
    }

    Ok(Period {
        from,
        to,
        skill_wait,
        sessions,
        events,
        decisions: taken,
        idle_floors: idle_floors(db, from).await?,
    })
}

/// Per agent, the last time before `from` a session was given to them (a
/// decision) or left them (ended or sent back to the queue): each resets
/// `idle_since`, or the agent was not AVAILABLE and becoming so resets it
/// later.
async fn idle_floors<C: ConnectionTrait>(
    db: &C,
    from: DateTime<Utc>,
) -> Result<HashMap<String, DateTime<Utc>>, DbErr> {
    use routing_decision::Column as D;
    use session_event::Column as E;
    let given = routing_decision::Entity::find()
        .select_only()
        .column(D::AgentId)
        .column_as(D::At.max(), "at")
        .filter(D::At.lt(from))
        .group_by(D::AgentId)
        .into_tuple::<(String, Option<DateTime<Utc>>)>()
        .all(db)
        .await?;
    let left = session_event::Entity::find()
        .select_only()
        .column(E::AgentId)
        .column_as(E::At.max(), "at")
        .filter(E::At.lt(from))
        .filter(E::AgentId.is_not_null())
        .filter(E::Kind.is_in([HistoryKind::Ended.as_str(), HistoryKind::Requeued.as_str()]))
        .group_by(E::AgentId)
        .into_tuple::<(Option<String>, Option<DateTime<Utc>>)>()
        .all(db)
        .await?;
    let mut floors: HashMap<String, DateTime<Utc>> = HashMap::new();
    let rows = given.into_iter().map(|(a, t)| (Some(a), t)).chain(left);
    for (agent, at) in rows {
        if let (Some(agent), Some(at)) = (agent, at) {
            let f = floors.entry(agent).or_insert(at);
            *f = (*f).max(at);
        }
    }
    Ok(floors)
}

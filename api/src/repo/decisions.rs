//! The `routing_decisions` table: one row per offer, assignment, manual
//! accept, admin assignment and transfer, written in the transaction that
//! made it.

use chrono::{DateTime, Utc};
use entity::routing_decision::{self, Column};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, NotSet, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use uuid::Uuid;

use super::parse;
use crate::domain::{DecisionKind, Priority, RoutingDecision, Skills};

fn to_row(d: &RoutingDecision) -> Result<routing_decision::ActiveModel, DbErr> {
    Ok(routing_decision::ActiveModel {
        id: NotSet,
        session_id: Set(d.session_id),
        agent_id: Set(d.agent_id.clone()),
        kind: Set(d.kind.as_str().to_owned()),
        priority: Set(d.priority.rank()),
        queued_at: Set(d.queued_at),
        agent_idle_since: Set(d.agent_idle_since),
        agent_held: Set(d.agent_held),
        agent_capacity: Set(d.agent_capacity),
        candidates: Set(
            serde_json::to_string(&d.candidates).map_err(|e| DbErr::Custom(e.to_string()))?
        ),
        required_skills: Set(d.required_skills.to_stored()),
        skills_relaxed: Set(d.skills_relaxed),
        at: Set(d.at),
        pass_agents: Set(
            serde_json::to_string(&d.pass_agents).map_err(|e| DbErr::Custom(e.to_string()))?
        ),
    })
}

fn to_domain(m: routing_decision::Model) -> Result<(i64, RoutingDecision), DbErr> {
    Ok((
        m.id,
        RoutingDecision {
            session_id: m.session_id,
            agent_id: m.agent_id,
            kind: parse(&m.kind)?,
            priority: Priority::from_rank(m.priority)
                .ok_or_else(|| DbErr::Type(format!("unknown priority {}", m.priority)))?,
            queued_at: m.queued_at,
            agent_idle_since: m.agent_idle_since,
            agent_held: m.agent_held,
            agent_capacity: m.agent_capacity,
            candidates: serde_json::from_str(&m.candidates)
                .map_err(|e| DbErr::Type(format!("candidates: {e}")))?,
            required_skills: Skills::from_stored(&m.required_skills),
            skills_relaxed: m.skills_relaxed,
            at: m.at,
            pass_agents: serde_json::from_str(&m.pass_agents)
                .map_err(|e| DbErr::Type(format!("pass_agents: {e}")))?,
        },
    ))
}

/// Records decisions in one statement.
pub async fn record_many<C: ConnectionTrait>(
    db: &C,
    decisions: &[RoutingDecision],
) -> Result<(), DbErr> {
    if decisions.is_empty() {
        return Ok(());
    }
    let rows = decisions
        .iter()
        .map(to_row)
        .collect::<Result<Vec<_>, _>>()?;
    routing_decision::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// A session's decisions, oldest first.
pub async fn for_session<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
) -> Result<Vec<RoutingDecision>, DbErr> {
    routing_decision::Entity::find()
        .filter(Column::SessionId.eq(session_id))
        .order_by_asc(Column::At)
        .order_by_asc(Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|m| to_domain(m).map(|(_, d)| d))
        .collect()
}

/// Decisions taken in [from, to), in the order they took effect, after the
/// one at (`at`, `id`) when given; at most `limit`. Each comes with its row
/// id, the tie-break of the order and of the cursor.
pub async fn between<C: ConnectionTrait>(
    db: &C,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<(DateTime<Utc>, i64)>,
    limit: u64,
) -> Result<Vec<(i64, RoutingDecision)>, DbErr> {
    let mut query = routing_decision::Entity::find()
        .filter(Column::At.gte(from))
        .filter(Column::At.lt(to));
    if let Some((at, id)) = after {
        query = query.filter(
            sea_orm::Condition::any()
                .add(Column::At.gt(at))
                .add(Column::At.eq(at).and(Column::Id.gt(id))),
        );
    }
    query
        .order_by_asc(Column::At)
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(to_domain)
        .collect()
}

/// How many sessions left the queue for an agent since `since`: offers,
/// assignments and manual accepts and assignments (transfers are between
/// agents, not from the queue).
pub async fn served_since<C: ConnectionTrait>(db: &C, since: DateTime<Utc>) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    routing_decision::Entity::find()
        .filter(Column::At.gte(since))
        .filter(Column::Kind.ne(DecisionKind::Transferred.as_str()))
        .count(db)
        .await
}

/// Deletes the decisions of purged sessions (retention).
pub async fn delete_for_sessions<C: ConnectionTrait>(
    db: &C,
    session_ids: &[Uuid],
) -> Result<u64, DbErr> {
    if session_ids.is_empty() {
        return Ok(0);
    }
    Ok(routing_decision::Entity::delete_many()
        .filter(Column::SessionId.is_in(session_ids.iter().copied()))
        .exec(db)
        .await?
        .rows_affected)
}

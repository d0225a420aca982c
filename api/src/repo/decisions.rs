//! The `routing_decisions` table: one row per offer, assignment, manual
//! accept, admin assignment and transfer, written in the transaction that
//! made it.

use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};

use entity::routing_decision::{self, Column};
use entity::routing_pass;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, NotSet, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use uuid::Uuid;

use super::{history, json_batch, parse, pg_time, uses_json_batches};
use crate::domain::{DecisionKind, PassAgent, Priority, RoutingDecision, Skills};
use crate::matching::{self, AgentSlots};

fn to_row(
    d: &RoutingDecision,
    pass_id: Option<i64>,
) -> Result<routing_decision::ActiveModel, DbErr> {
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
        pass_id: Set(pass_id),
    })
}

/// A decision as stored, with its pass's agents still to be filled in
/// ([`with_passes`]).
fn to_domain(m: routing_decision::Model) -> Result<(i64, Option<i64>, RoutingDecision), DbErr> {
    Ok((
        m.id,
        m.pass_id,
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
            pass_agents: Vec::new(),
        },
    ))
}

/// Completes decisions a matcher pass made: the agents it chose from, and
/// the candidates at each one's turn, replayed from the pass
/// ([`matching::candidates_at_turn`]): the pass's earlier decisions and
/// the session's declines before it. Three queries however many decisions.
async fn with_passes<C: ConnectionTrait>(
    db: &C,
    rows: Vec<routing_decision::Model>,
) -> Result<Vec<(i64, RoutingDecision)>, DbErr> {
    let decided = rows
        .into_iter()
        .map(to_domain)
        .collect::<Result<Vec<_>, _>>()?;
    let mut ids: Vec<i64> = decided.iter().filter_map(|(_, pass, _)| *pass).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(decided.into_iter().map(|(id, _, d)| (id, d)).collect());
    }
    let mut passes: HashMap<i64, Vec<PassAgent>> = HashMap::new();
    for p in routing_pass::Entity::find()
        .filter(routing_pass::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
    {
        let agents = serde_json::from_str(&p.agents)
            .map_err(|e| DbErr::Type(format!("pass agents: {e}")))?;
        passes.insert(p.id, agents);
    }
    // Every decision of those passes, in the order they were made.
    let mut given: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    for (id, pass, agent) in routing_decision::Entity::find()
        .select_only()
        .column(Column::Id)
        .column(Column::PassId)
        .column(Column::AgentId)
        .filter(Column::PassId.is_in(ids.iter().copied()))
        .order_by_asc(Column::Id)
        .into_tuple::<(i64, Option<i64>, String)>()
        .all(db)
        .await?
    {
        if let Some(pass) = pass {
            given.entry(pass).or_default().push((id, agent));
        }
    }
    let sessions: Vec<Uuid> = decided.iter().map(|(_, _, d)| d.session_id).collect();
    let declines = history::declines_with_times(db, &sessions).await?;
    Ok(decided
        .into_iter()
        .map(|(id, pass, mut d)| {
            let Some(agents) = pass.and_then(|p| passes.get(&p)) else {
                return (id, d);
            };
            let slots: Vec<AgentSlots> = agents
                .iter()
                .map(|a| AgentSlots {
                    id: a.id.clone(),
                    idle_since: a.idle_since,
                    free: a.capacity - a.held,
                    skills: a.skills.clone(),
                })
                .collect();
            let before: Vec<&str> = pass
                .and_then(|p| given.get(&p))
                .map(|all| {
                    all.iter()
                        .filter(|(other, _)| *other < id)
                        .map(|(_, agent)| agent.as_str())
                        .collect()
                })
                .unwrap_or_default();
            let declined_by: HashSet<String> = declines
                .iter()
                .filter(|(session, _, at)| *session == d.session_id && *at < d.at)
                .map(|(_, agent, _)| agent.clone())
                .collect();
            d.candidates = matching::candidates_at_turn(
                &slots,
                &before,
                &d.required_skills,
                d.skills_relaxed,
                &declined_by,
            );
            d.pass_agents = agents.clone();
            (id, d)
        })
        .collect())
}

/// Records decisions people made (no pass) in one statement.
pub async fn record_many<C: ConnectionTrait>(
    db: &C,
    decisions: &[RoutingDecision],
) -> Result<(), DbErr> {
    insert(db, decisions, None).await
}

/// Records a matcher pass: the agents it chose from, once, and its
/// decisions, in the order it made them, naming it.
pub async fn record_pass<C: ConnectionTrait>(
    db: &C,
    agents: &[PassAgent],
    decisions: &[RoutingDecision],
) -> Result<(), DbErr> {
    if decisions.is_empty() {
        return Ok(());
    }
    let agents = serde_json::to_string(agents).map_err(|e| DbErr::Custom(e.to_string()))?;
    let pass = routing_pass::Entity::insert(routing_pass::ActiveModel {
        id: NotSet,
        agents: Set(agents),
    })
    .exec(db)
    .await?
    .last_insert_id;
    insert(db, decisions, Some(pass)).await
}

/// A decision as a row of the JSON batch Postgres inserts in one
/// statement (see [`super::json_batch`]).
#[derive(serde::Serialize)]
struct Row<'a> {
    session_id: Uuid,
    agent_id: &'a str,
    kind: &'static str,
    priority: i16,
    #[serde(serialize_with = "pg_time::at")]
    queued_at: DateTime<Utc>,
    #[serde(serialize_with = "pg_time::opt")]
    agent_idle_since: Option<DateTime<Utc>>,
    agent_held: i32,
    agent_capacity: i32,
    candidates: String,
    required_skills: String,
    skills_relaxed: bool,
    #[serde(serialize_with = "pg_time::at")]
    at: DateTime<Utc>,
    pass_id: Option<i64>,
}

async fn insert<C: ConnectionTrait>(
    db: &C,
    decisions: &[RoutingDecision],
    pass: Option<i64>,
) -> Result<(), DbErr> {
    if decisions.is_empty() {
        return Ok(());
    }
    if uses_json_batches(db) {
        let rows = decisions
            .iter()
            .map(|d| {
                Ok(Row {
                    session_id: d.session_id,
                    agent_id: &d.agent_id,
                    kind: d.kind.as_str(),
                    priority: d.priority.rank(),
                    queued_at: d.queued_at,
                    agent_idle_since: d.agent_idle_since,
                    agent_held: d.agent_held,
                    agent_capacity: d.agent_capacity,
                    candidates: serde_json::to_string(&d.candidates)
                        .map_err(|e| DbErr::Custom(e.to_string()))?,
                    required_skills: d.required_skills.to_stored(),
                    skills_relaxed: d.skills_relaxed,
                    at: d.at,
                    pass_id: pass,
                })
            })
            .collect::<Result<Vec<_>, DbErr>>()?;
        let statement = json_batch(
            "INSERT INTO routing_decisions (session_id, agent_id, kind, priority, queued_at, \
               agent_idle_since, agent_held, agent_capacity, candidates, required_skills, \
               skills_relaxed, at, pass_id) \
             SELECT session_id, agent_id, kind, priority, queued_at, agent_idle_since, \
               agent_held, agent_capacity, candidates, required_skills, skills_relaxed, at, \
               pass_id \
             FROM json_to_recordset($1::json) AS d(session_id uuid, agent_id text, kind text, \
               priority smallint, queued_at timestamptz, agent_idle_since timestamptz, \
               agent_held int, agent_capacity int, candidates text, required_skills text, \
               skills_relaxed bool, at timestamptz, pass_id bigint)",
            &rows,
        )?;
        db.execute(statement).await?;
        return Ok(());
    }
    let rows = decisions
        .iter()
        .map(|d| to_row(d, pass))
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
    let rows = routing_decision::Entity::find()
        .filter(Column::SessionId.eq(session_id))
        .order_by_asc(Column::At)
        .order_by_asc(Column::Id)
        .all(db)
        .await?;
    Ok(with_passes(db, rows)
        .await?
        .into_iter()
        .map(|(_, d)| d)
        .collect())
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
    let rows = query
        .order_by_asc(Column::At)
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    with_passes(db, rows).await
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

/// Deletes the decisions of purged sessions (retention), and the passes
/// none of the remaining decisions name.
pub async fn delete_for_sessions<C: ConnectionTrait>(
    db: &C,
    session_ids: &[Uuid],
) -> Result<u64, DbErr> {
    if session_ids.is_empty() {
        return Ok(0);
    }
    let deleted = routing_decision::Entity::delete_many()
        .filter(Column::SessionId.is_in(session_ids.iter().copied()))
        .exec(db)
        .await?
        .rows_affected;
    let named = sea_orm::sea_query::Query::select()
        .column(Column::PassId)
        .from(routing_decision::Entity)
        .and_where(Column::PassId.is_not_null())
        .to_owned();
    routing_pass::Entity::delete_many()
        .filter(routing_pass::Column::Id.not_in_subquery(named))
        .exec(db)
        .await?;
    Ok(deleted)
}

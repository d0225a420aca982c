//! Searching sessions (by status, agent, customer, time and words), and
//! what the workload view reads about the sessions agents hold.
//!
//! Words match case-insensitively anywhere in the subject or in any one
//! message body; every word must match (each may match a different
//! message). On Postgres, `ILIKE '%word%'` is answered by the trigram
//! indexes on session subjects (migration 000009) and on ended sessions'
//! search documents (000015), and by the messages of the open sessions;
//! SQLite scans.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::chat_session::{self, Column};
use entity::session_event;
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::all_to_domain;
use crate::domain::access::SearchScope;
use crate::domain::{ChatSession, HistoryKind, SessionStatus};

/// What a search asks for; every part given must hold.
#[derive(Clone, Debug, Default)]
pub struct SearchFilter {
    pub statuses: Vec<SessionStatus>,
    pub agent_id: Option<String>,
    pub customer_id: Option<String>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
    /// Lowercase words, each of which must appear.
    pub words: Vec<String>,
}

/// `%word%` with LIKE's wildcards (and the escape character) escaped by `!`.
fn contains_pattern(word: &str) -> String {
    let mut p = String::with_capacity(word.len() + 2);
    p.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | '!') {
            p.push('!');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Every word is in the subject or in some message body of the session:
/// an ended session's bodies are read from its search document, an open
/// one's from its messages (see `repo::search_documents`).
fn words_condition(backend: DatabaseBackend, words: &[String]) -> SimpleExpr {
    let patterns: Vec<String> = words.iter().map(|w| contains_pattern(w)).collect();
    // The escape character is bound too: sea-query would read quoted text
    // in a custom expression as a cast.
    if backend == DatabaseBackend::Postgres {
        // The matching ids are gathered first, each word through the
        // trigram indexes and the words intersected, so a search costs
        // what it finds rather than the number of sessions. (Over 50,000
        // sessions and 1,000,000 messages, an OR read every session when
        // few matched: 43 ms, against 0.1 ms; ANDed id lists compared each
        // pair: 276 ms for two common words, against 49 ms intersected.)
        // Open sessions are listed first and their messages read by
        // session, whatever the planner guesses of their number.
        let escape = patterns.len() + 1;
        let sets: Vec<String> = (1..=patterns.len())
            .map(|i| {
                format!(
                    "(SELECT \"id\" FROM \"chat_sessions\" WHERE \"subject\" ILIKE ${i} ESCAPE ${escape} \
                     UNION SELECT \"session_id\" FROM \"session_search_documents\" \
                       WHERE \"body\" ILIKE ${i} ESCAPE ${escape} \
                     UNION SELECT \"session_id\" FROM \"messages\" \
                       WHERE \"session_id\" = ANY(ARRAY(SELECT \"id\" FROM \"chat_sessions\" \
                         WHERE \"status\" <> 'ENDED')) \
                       AND \"body\" ILIKE ${i} ESCAPE ${escape})"
                )
            })
            .collect();
        let mut values = patterns;
        values.push("!".to_owned());
        return Expr::cust_with_values(
            format!(
                "\"chat_sessions\".\"id\" = ANY(ARRAY({}))",
                sets.join(" INTERSECT ")
            ),
            values,
        );
    }
    // SQLite scans either way; its LIKE ignores ASCII case already.
    let mut all = Condition::all();
    for p in patterns {
        all = all.add(Expr::cust_with_values(
            "(\"chat_sessions\".\"subject\" LIKE ? ESCAPE ? \
              OR (\"chat_sessions\".\"status\" = 'ENDED' AND \"chat_sessions\".\"id\" IN \
                (SELECT \"session_id\" FROM \"session_search_documents\" WHERE \"body\" LIKE ? ESCAPE ?)) \
              OR (\"chat_sessions\".\"status\" <> 'ENDED' AND \"chat_sessions\".\"id\" IN \
                (SELECT \"session_id\" FROM \"messages\" WHERE \"body\" LIKE ? ESCAPE ?)))",
            [
                p.clone(),
                "!".to_owned(),
                p.clone(),
                "!".to_owned(),
                p,
                "!".to_owned(),
            ],
        ));
    }
    all.into()
}

/// The sessions an agent held at some time (accepted, were assigned or
/// were transferred), as a condition on `chat_sessions.id`.
fn held_by(agent_id: &str) -> SimpleExpr {
    let kinds: Vec<&str> = HistoryKind::GIVING.iter().map(|k| k.as_str()).collect();
    Column::Id.in_subquery(
        sea_orm::sea_query::Query::select()
            .column(session_event::Column::SessionId)
            .from(session_event::Entity)
            .and_where(session_event::Column::AgentId.eq(agent_id))
            .and_where(session_event::Column::Kind.is_in(kinds))
            .to_owned(),
    )
}

/// Whether the agent held the session at some time (see [`held_by`]).
pub async fn held_before<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    agent_id: &str,
) -> Result<bool, DbErr> {
    let found = chat_session::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Id.eq(session_id))
        .filter(held_by(agent_id))
        .into_tuple::<Uuid>()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// A page of matching sessions, newest first, keyset-paginated on
/// (created_at, id) like the other session listings.
pub async fn search<C: ConnectionTrait>(
    db: &C,
    scope: &SearchScope,
    filter: &SearchFilter,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<ChatSession>, DbErr> {
    let mut q = chat_session::Entity::find();
    if let SearchScope::Agent(me) = scope {
        q = q.filter(
            Condition::any()
                .add(Column::AgentId.eq(me.as_str()))
                .add(held_by(me)),
        );
    }
    if !filter.statuses.is_empty() {
        q = q.filter(Column::Status.is_in(filter.statuses.iter().map(|s| s.as_str())));
    }
    if let Some(agent) = &filter.agent_id {
        q = q.filter(Column::AgentId.eq(agent.as_str()));
    }
    if let Some(customer) = &filter.customer_id {
        q = q.filter(Column::CustomerId.eq(customer.as_str()));
    }
    if let Some(from) = filter.from {
        q = q.filter(Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(Column::CreatedAt.lt(to));
    }
    if !filter.words.is_empty() {
        q = q.filter(words_condition(db.get_database_backend(), &filter.words));
    }
    if let Some(before) = before {
        q = q.filter(super::lookup::older_than(before));
    }
    all_to_domain(
        q.order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(db)
            .await?,
    )
}

/// The OFFERED and ACTIVE sessions of these agents (all agents when None),
/// oldest first.
pub async fn held_by_agents<C: ConnectionTrait>(
    db: &C,
    agent_ids: Option<&[&str]>,
) -> Result<Vec<ChatSession>, DbErr> {
    let mut q = chat_session::Entity::find().filter(Column::Status.is_in([
        SessionStatus::Offered.as_str(),
        SessionStatus::Active.as_str(),
    ]));
    if let Some(ids) = agent_ids {
        q = q.filter(Column::AgentId.is_in(ids.iter().copied()));
    }
    all_to_domain(
        q.order_by_asc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .all(db)
            .await?,
    )
}

/// How many sessions each agent accepted (or was given) since `since`.
pub async fn accepted_since<C: ConnectionTrait>(
    db: &C,
    since: DateTime<Utc>,
) -> Result<HashMap<String, i64>, DbErr> {
    let kinds = [
        HistoryKind::Accepted.as_str(),
        HistoryKind::Assigned.as_str(),
    ];
    Ok(session_event::Entity::find()
        .select_only()
        .column(session_event::Column::AgentId)
        .column_as(session_event::Column::Id.count(), "n")
        .filter(session_event::Column::Kind.is_in(kinds))
        .filter(session_event::Column::At.gte(since))
        .filter(session_event::Column::AgentId.is_not_null())
        .group_by(session_event::Column::AgentId)
        .into_tuple::<(Option<String>, i64)>()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(id, n)| id.map(|id| (id, n)))
        .collect())
}

/// The customer's name as their token gave it when the session started.
pub async fn customer_name<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<Option<String>, DbErr> {
    Ok(chat_session::Entity::find_by_id(id)
        .select_only()
        .column(Column::CustomerName)
        .into_tuple::<Option<String>>()
        .one(db)
        .await?
        .flatten())
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(super::contains_pattern("50%_off!"), "%50!%!_off!!%");
        assert_eq!(super::contains_pattern("refund"), "%refund%");
    }
}

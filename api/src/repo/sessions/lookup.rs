//! Reading sessions: by id, by customer, many at once (optionally locked,
//! in id order), and the keyset-paginated listings.

use chrono::{DateTime, Utc};
use entity::chat_session::{self, Column};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::{all_to_domain, to_domain};
use crate::domain::{ChatSession, SessionStatus};
use crate::repo::{json_batch, uses_json_batches};

pub async fn find<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<Option<ChatSession>, DbErr> {
    chat_session::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}

/// Reads the session and locks its row until the transaction ends (Postgres;
/// SQLite serializes writers anyway). Message seqs, receipts and status
/// changes of one session are serialized by this lock.
pub async fn lock<C: ConnectionTrait>(txn: &C, id: Uuid) -> Result<Option<ChatSession>, DbErr> {
    chat_session::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
        .map(to_domain)
        .transpose()
}

pub async fn find_open_for_customer<C: ConnectionTrait>(
    db: &C,
    customer_id: &str,
) -> Result<Option<ChatSession>, DbErr> {
    chat_session::Entity::find()
        .filter(Column::CustomerId.eq(customer_id))
        .filter(Column::Status.ne(SessionStatus::Ended.as_str()))
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}

/// The open sessions of these customers.
pub async fn find_open_for_customers<C: ConnectionTrait>(
    db: &C,
    customer_ids: &[&str],
) -> Result<Vec<ChatSession>, DbErr> {
    all_to_domain(
        chat_session::Entity::find()
            .filter(Column::CustomerId.is_in(customer_ids.iter().copied()))
            .filter(Column::Status.ne(SessionStatus::Ended.as_str()))
            .all(db)
            .await?,
    )
}

/// The sessions with these ids.
pub async fn find_many<C: ConnectionTrait>(
    db: &C,
    ids: &[Uuid],
) -> Result<Vec<ChatSession>, DbErr> {
    all_to_domain(
        chat_session::Entity::find()
            .filter(Column::Id.is_in(ids.iter().copied()))
            .all(db)
            .await?,
    )
}

/// Reads the sessions and locks their rows until the transaction ends, in
/// id order, so that two transactions locking overlapping sets wait for
/// each other instead of deadlocking. Ids with no session are left out.
pub async fn lock_many<C: ConnectionTrait>(
    txn: &C,
    ids: &[Uuid],
) -> Result<Vec<ChatSession>, DbErr> {
    if uses_json_batches(txn) {
        let statement = json_batch(
            "SELECT * FROM chat_sessions WHERE id IN \
               (SELECT value::uuid FROM json_array_elements_text($1::json)) \
             ORDER BY id FOR UPDATE",
            &ids,
        )?;
        return all_to_domain(
            chat_session::Entity::find()
                .from_raw_sql(statement)
                .all(txn)
                .await?,
        );
    }
    all_to_domain(
        chat_session::Entity::find()
            .filter(Column::Id.is_in(ids.iter().copied()))
            .order_by_asc(Column::Id)
            .lock_exclusive()
            .all(txn)
            .await?,
    )
}

/// Who may appear in a listing.
pub enum Scope<'a> {
    Customer { id: &'a str, since: DateTime<Utc> },
    Agent { id: &'a str },
    All,
}

/// Sessions after this one in a newest-first listing: the keyset of
/// (created_at, id) that every session listing pages on.
pub(super) fn older_than((at, id): (DateTime<Utc>, Uuid)) -> Condition {
    Condition::any().add(Column::CreatedAt.lt(at)).add(
        Condition::all()
            .add(Column::CreatedAt.eq(at))
            .add(Column::Id.lt(id)),
    )
}

/// Newest first, keyset-paginated on (created_at, id).
pub async fn page<C: ConnectionTrait>(
    db: &C,
    scope: Scope<'_>,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<ChatSession>, DbErr> {
    let mut q = chat_session::Entity::find();
    q = match scope {
        Scope::Customer { id, since } => q
            .filter(Column::CustomerId.eq(id))
            .filter(Column::CreatedAt.gte(since)),
        Scope::Agent { id } => q.filter(Column::AgentId.eq(id)),
        Scope::All => q,
    };
    if let Some(before) = before {
        q = q.filter(older_than(before));
    }
    all_to_domain(
        q.order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(db)
            .await?,
    )
}

//! Customer presence: when each open session's customer was last seen.

use chrono::{DateTime, Utc};
use entity::chat_session::{self, Column};
use sea_orm::sea_query::{Expr, LockType, Order, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use crate::domain::SessionStatus;

/// Records that the customer of an open session is here now.
pub async fn touch_customer<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    chat_session::Entity::update_many()
        .col_expr(Column::CustomerSeenAt, Expr::value(now))
        .filter(Column::Id.eq(id))
        .filter(Column::Status.ne(SessionStatus::Ended.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// Counts every open session's customer as seen at `now`; how many.
pub async fn touch_all_open_customers<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    // Rows locked in id order first, as everything that holds several
    // session rows takes them: this runs right after an outage, when the
    // sends that waited flush in large batches.
    let in_id_order = Query::select()
        .column(Column::Id)
        .from(chat_session::Entity)
        .and_where(Column::Status.ne(SessionStatus::Ended.as_str()))
        .and_where(Column::CustomerSeenAt.lt(now))
        .order_by(Column::Id, Order::Asc)
        .lock(LockType::Update)
        .to_owned();
    Ok(chat_session::Entity::update_many()
        .col_expr(Column::CustomerSeenAt, Expr::value(now))
        .filter(Column::Id.in_subquery(in_id_order))
        .filter(Column::CustomerSeenAt.lt(now))
        .exec(db)
        .await?
        .rows_affected)
}

/// Open sessions whose customer has not been seen since `cutoff`.
pub async fn with_absent_customer<C: ConnectionTrait>(
    db: &C,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Uuid>, DbErr> {
    chat_session::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Status.ne(SessionStatus::Ended.as_str()))
        .filter(
            Condition::any().add(Column::CustomerSeenAt.lt(cutoff)).add(
                Condition::all()
                    .add(Column::CustomerSeenAt.is_null())
                    .add(Column::CreatedAt.lt(cutoff)),
            ),
        )
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

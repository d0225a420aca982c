//! Guest challenges already spent.

use chrono::{DateTime, Utc};
use entity::guest_challenge::{self, Column};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

/// Spends a challenge's nonce: true the first time, false ever after
/// (until it would have expired anyway). Spent challenges past their
/// expiry are dropped on the way: they can no longer be used.
pub async fn spend_challenge<C: ConnectionTrait>(
    db: &C,
    nonce: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    guest_challenge::Entity::delete_many()
        .filter(Column::ExpiresAt.lt(now))
        .exec(db)
        .await?;
    let stored = guest_challenge::Entity::insert(guest_challenge::ActiveModel {
        nonce: Set(nonce.to_owned()),
        expires_at: Set(expires_at),
    })
    .on_conflict(OnConflict::column(Column::Nonce).do_nothing().to_owned())
    .exec_without_returning(db)
    .await?;
    Ok(stored == 1)
}

//! Canned responses.

use chrono::{DateTime, Utc};
use entity::canned_response::{self, Column};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::parse;
use crate::domain::canned::{CannedResponse, CannedScope};

/// The unique index that makes a short code taken (see the migration).
pub const SHORT_CODE_KEY: &str = "canned_responses_short_code_key";

/// TEAM responses have no owner; they are stored with this one so that the
/// unique index covers them (NULLs would never collide).
const TEAM_OWNER: &str = "";

fn to_domain(m: canned_response::Model) -> Result<CannedResponse, DbErr> {
    Ok(CannedResponse {
        scope: parse(&m.scope)?,
        owner_id: Some(m.owner_id).filter(|o| o != TEAM_OWNER),
        id: m.id,
        short_code: m.short_code,
        title: m.title,
        body: m.body,
        updated_at: m.updated_at,
    })
}

pub async fn insert<C: ConnectionTrait>(
    db: &C,
    r: &CannedResponse,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    canned_response::Entity::insert(canned_response::ActiveModel {
        id: Set(r.id),
        scope: Set(r.scope.as_str().to_owned()),
        owner_id: Set(r.owner_id.clone().unwrap_or_default()),
        short_code: Set(r.short_code.clone()),
        title: Set(r.title.clone()),
        body: Set(r.body.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Rewrites the text of a response (scope and owner stay).
pub async fn update<C: ConnectionTrait>(db: &C, r: &CannedResponse) -> Result<(), DbErr> {
    canned_response::Entity::update_many()
        .col_expr(Column::ShortCode, Expr::value(r.short_code.clone()))
        .col_expr(Column::Title, Expr::value(r.title.clone()))
        .col_expr(Column::Body, Expr::value(r.body.clone()))
        .col_expr(Column::UpdatedAt, Expr::value(r.updated_at))
        .filter(Column::Id.eq(r.id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn delete<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<bool, DbErr> {
    let res = canned_response::Entity::delete_by_id(id).exec(db).await?;
    Ok(res.rows_affected > 0)
}

pub async fn find<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<Option<CannedResponse>, DbErr> {
    canned_response::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}

/// Every TEAM response, and the PERSONAL ones of `owner` when given.
pub async fn visible<C: ConnectionTrait>(
    db: &C,
    owner: Option<&str>,
) -> Result<Vec<CannedResponse>, DbErr> {
    let mut cond = Condition::any().add(Column::Scope.eq(CannedScope::Team.as_str()));
    if let Some(owner) = owner {
        cond = cond.add(
            Condition::all()
                .add(Column::Scope.eq(CannedScope::Personal.as_str()))
                .add(Column::OwnerId.eq(owner)),
        );
    }
    canned_response::Entity::find()
        .filter(cond)
        .all(db)
        .await?
        .into_iter()
        .map(to_domain)
        .collect()
}

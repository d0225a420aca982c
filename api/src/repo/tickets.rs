//! Tickets: the claim on creating a session's ticket, and the ticket.
//!
//! One row per session. While it has no ticket, the claim (`claim_id`
//! until `claimed_until`) says which caller is talking to the ticket
//! system; a claim is taken by inserting the row, or by updating one whose
//! claim was released or ran out. Both are single statements the database
//! decides, so two processes never hold a claim at once.

use chrono::{DateTime, Utc};
use entity::session_ticket::{self, Column};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::domain::Ticket;

/// A session's ticket row as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TicketState {
    /// No row: no one ever tried.
    None,
    /// Someone holds the claim (until `until`).
    Claimed {
        claim: Uuid,
        until: DateTime<Utc>,
    },
    /// Tried before, released without a ticket.
    Released {
        last_error: Option<String>,
    },
    Created(Ticket),
}

pub async fn state<C: ConnectionTrait>(db: &C, session_id: Uuid) -> Result<TicketState, DbErr> {
    let Some(row) = session_ticket::Entity::find_by_id(session_id)
        .one(db)
        .await?
    else {
        return Ok(TicketState::None);
    };
    Ok(
        match (
            row.external_id,
            row.created_at,
            row.claim_id,
            row.claimed_until,
        ) {
            (Some(external_id), Some(created_at), _, _) => TicketState::Created(Ticket {
                external_id,
                url: row.url,
                created_at,
            }),
            (_, _, Some(claim), Some(until)) => TicketState::Claimed { claim, until },
            _ => TicketState::Released {
                last_error: row.last_error,
            },
        },
    )
}

/// The session's ticket, if it has one.
pub async fn find<C: ConnectionTrait>(db: &C, session_id: Uuid) -> Result<Option<Ticket>, DbErr> {
    match state(db, session_id).await? {
        TicketState::Created(t) => Ok(Some(t)),
        _ => Ok(None),
    }
}

/// Takes the claim as `claim` until `until`, unless the session has a
/// ticket or someone else's claim is still good at `now`. True if taken.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    claim: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let inserted = session_ticket::Entity::insert(session_ticket::ActiveModel {
        session_id: Set(session_id),
        claim_id: Set(Some(claim)),
        claimed_until: Set(Some(until)),
        attempts: Set(1),
        last_error: Set(None),
        external_id: Set(None),
        url: Set(None),
        created_at: Set(None),
    })
    .on_conflict(
        OnConflict::column(Column::SessionId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    if inserted == 1 {
        return Ok(true);
    }
    let taken = session_ticket::Entity::update_many()
        .col_expr(Column::ClaimId, Expr::value(claim))
        .col_expr(Column::ClaimedUntil, Expr::value(until))
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .filter(Column::SessionId.eq(session_id))
        .filter(Column::ExternalId.is_null())
        .filter(
            Condition::any()
                .add(Column::ClaimId.is_null())
                .add(Column::ClaimedUntil.lt(now)),
        )
        .exec(db)
        .await?;
    Ok(taken.rows_affected == 1)
}

/// Stores the ticket under `claim`; false if the claim was lost meanwhile
/// (it ran out and another caller took it), and then nothing is stored.
pub async fn complete<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    claim: Uuid,
    ticket: &Ticket,
) -> Result<bool, DbErr> {
    let done = session_ticket::Entity::update_many()
        .col_expr(Column::ExternalId, Expr::value(ticket.external_id.clone()))
        .col_expr(Column::Url, Expr::value(ticket.url.clone()))
        .col_expr(Column::CreatedAt, Expr::value(ticket.created_at))
        .col_expr(Column::ClaimId, Expr::value(Option::<Uuid>::None))
        .col_expr(
            Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::LastError, Expr::value(Option::<String>::None))
        .filter(Column::SessionId.eq(session_id))
        .filter(Column::ClaimId.eq(claim))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Gives the claim up without a ticket, saying why; a later call may try again.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    claim: Uuid,
    error: &str,
) -> Result<(), DbErr> {
    session_ticket::Entity::update_many()
        .col_expr(Column::ClaimId, Expr::value(Option::<Uuid>::None))
        .col_expr(
            Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(Column::LastError, Expr::value(error.to_owned()))
        .filter(Column::SessionId.eq(session_id))
        .filter(Column::ClaimId.eq(claim))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes the ticket rows of these sessions (retention, before the
/// sessions go; the tickets themselves live on in the ticket system).
pub async fn delete_for_sessions<C: ConnectionTrait>(
    db: &C,
    session_ids: &[Uuid],
) -> Result<(), DbErr> {
    session_ticket::Entity::delete_many()
        .filter(Column::SessionId.is_in(session_ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

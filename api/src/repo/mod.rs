//! Persistence: the only code that touches SeaORM entities and query
//! builders. Functions take any connection or transaction, so the service
//! layer decides transaction boundaries.

pub mod agents;
pub mod history;
pub mod messages;
pub mod sessions;

use crate::domain::UnknownName;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};

/// Serializes routing decisions across every process on the database: the
/// matcher, queue entry (startSession) and admin assignment take it first;
/// offer lapsing relies on agent and session row locks. Released at the end
/// of the transaction. SQLite needs none: it has one writer at a time.
pub async fn lock_routing<C: ConnectionTrait>(txn: &C) -> Result<(), DbErr> {
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        // An arbitrary constant key that names "the routing lock".
        txn.execute(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock(7242019001)",
        ))
        .await?;
    }
    Ok(())
}

/// A stored name this code does not know is a corrupt row, not a user error.
fn parse<T: std::str::FromStr<Err = UnknownName>>(s: &str) -> Result<T, DbErr> {
    s.parse()
        .map_err(|e: UnknownName| DbErr::Type(e.to_string()))
}

//! Persistence: the only code that touches SeaORM entities and query
//! builders. Functions take any connection or transaction, so the service
//! layer decides transaction boundaries.

pub mod agents;
pub mod deployment;
pub mod history;
pub mod messages;
pub mod sessions;

use crate::domain::UnknownName;
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, Statement,
    TransactionTrait,
};

/// Starts a transaction that will write. On SQLite its first statement takes
/// the write lock (a write that changes nothing): a transaction that reads
/// first cannot upgrade to writing while another connection writes, and
/// fails at once with "database is locked" instead of waiting its turn.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DatabaseBackend::Sqlite {
        txn.execute_unprepared("UPDATE chat_sessions SET id = id WHERE 0")
            .await?;
    }
    Ok(txn)
}

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

/// The database's wall clock, the one clock every process shares: queue
/// order and offer deadlines are taken from it so that two servers with
/// skewed clocks still agree. `None` on SQLite (one process, its own clock).
pub async fn shared_now<C: ConnectionTrait>(
    db: &C,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, DbErr> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(None);
    }
    let row = db
        .query_one(Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT clock_timestamp() AS now",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("clock_timestamp() returned no row".into()))?;
    Ok(Some(
        row.try_get::<chrono::DateTime<chrono::Utc>>("", "now")?,
    ))
}

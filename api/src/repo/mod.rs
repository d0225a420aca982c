//! Persistence: the only code that touches SeaORM entities and query
//! builders. Functions take any connection or transaction, so the service
//! layer decides transaction boundaries.

pub mod agent_presence;
pub mod agents;
pub mod audit;
pub mod canned;
pub mod decisions;
pub mod deployment;
pub mod guests;
pub mod history;
pub mod messages;
pub mod notes;
pub mod outbox;
pub mod ratings;
pub mod search_documents;
pub mod sessions;
pub mod tickets;
pub mod webhooks;

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

/// Batch statements on Postgres take their rows as one JSON parameter
/// (`json_to_recordset($1::json)`) instead of a list of values: the text is
/// the same for any batch size, so each connection prepares it once (a
/// text per size kept Postgres parsing and planning, and churned its
/// prepared-statement cache), and nothing builds an expression tree per row
/// on this side. Other backends keep the query builder.
fn uses_json_batches<C: ConnectionTrait>(db: &C) -> bool {
    db.get_database_backend() == DatabaseBackend::Postgres
}

fn json_batch(sql: &str, rows: &impl serde::Serialize) -> Result<Statement, DbErr> {
    let json = serde_json::to_string(rows).map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        sql,
        [json.into()],
    ))
}

/// A timestamp as Postgres reads it from JSON, cut to whole microseconds as
/// the driver cuts a bound value, so a row stores the same instant either way.
mod pg_time {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

    pub fn at<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.format(FORMAT))
    }

    pub fn opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => at(t, s),
            None => s.serialize_none(),
        }
    }

    #[cfg(test)]
    mod tests {
        use chrono::TimeZone;

        #[test]
        fn cuts_to_microseconds_like_the_driver() {
            let t = chrono::Utc
                .timestamp_opt(1_795_000_000, 123_456_789)
                .unwrap();
            let json = serde_json::to_string(&Wrap(t)).unwrap();
            assert_eq!(json, "\"2026-11-18T11:06:40.123456Z\"");
        }

        #[derive(serde::Serialize)]
        struct Wrap(#[serde(serialize_with = "super::at")] chrono::DateTime<chrono::Utc>);
    }
}

//! One search document per ended session: its message bodies in seq
//! order, one per line. Session search matches words in these instead of
//! in every message (migration 000015 says why); open sessions, whose
//! transcripts still grow, are searched in their messages.

use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};
use uuid::Uuid;

/// Writes (or rewrites) the session's document from its messages as they
/// are in `db`. Called in the transaction that ends the session, and in
/// any later one that adds a line to an ended session, with the session
/// row locked, so that no document misses a message.
pub async fn refresh<C: ConnectionTrait>(db: &C, session_id: Uuid) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            "INSERT INTO session_search_documents (session_id, body) \
             SELECT $1, coalesce(string_agg(body, E'\\n' ORDER BY seq), '') \
             FROM messages WHERE session_id = $1 \
             ON CONFLICT (session_id) DO UPDATE SET body = excluded.body"
        }
        // SQLite reads `ON CONFLICT` after a bare `FROM` as the join's;
        // the `WHERE` ends the SELECT.
        _ => {
            "INSERT INTO session_search_documents (session_id, body) \
             SELECT ?1, coalesce(group_concat(body, char(10)), '') FROM \
               (SELECT body FROM messages WHERE session_id = ?1 ORDER BY seq) \
             WHERE true \
             ON CONFLICT (session_id) DO UPDATE SET body = excluded.body"
        }
    };
    db.execute(Statement::from_sql_and_values(
        backend,
        sql,
        [session_id.into()],
    ))
    .await?;
    Ok(())
}

/// Deletes the documents of these sessions (retention, before the
/// sessions themselves go).
pub async fn delete_for_sessions<C: ConnectionTrait>(db: &C, ids: &[Uuid]) -> Result<(), DbErr> {
    let delete = Query::delete()
        .from_table(Alias::new("session_search_documents"))
        .and_where(Expr::col(Alias::new("session_id")).is_in(ids.iter().copied()))
        .to_owned();
    db.execute(db.get_database_backend().build(&delete)).await?;
    Ok(())
}

//! How Postgres stores what every message writes.

use sea_orm::{ConnectionTrait, Database, Statement, TransactionTrait};

use testkit::{
    server::{spawn, Options},
    tokens,
};

/// Every message moves its session's row: the seq counter, the sender's
/// last-seen time, the delivery marks. Postgres can write such an update in
/// place (HOT, no new entry in any index) only when no index covers a
/// changed column and the page has room; otherwise each one adds an entry
/// to every index of the table, which under chat load cost more of the
/// database's CPU than inserting the messages themselves.
#[tokio::test]
async fn the_session_columns_each_message_moves_are_in_no_index() {
    let app = spawn(Options::default()).await;
    let db = Database::connect(app.database_url.clone().unwrap())
        .await
        .unwrap();
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index \
             WHERE indrelid = 'chat_sessions'::regclass",
        ))
        .await
        .unwrap();
    let definitions: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String>("", "def").unwrap())
        .collect();
    assert!(definitions.len() >= 5, "{definitions:?}");
    for column in [
        "last_seq",
        "customer_seen_at",
        "customer_delivered_seq",
        "agent_delivered_seq",
        "customer_read_seq",
        "agent_read_seq",
    ] {
        for def in &definitions {
            assert!(!def.contains(column), "{column} is indexed: {def}");
        }
    }
    let options = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT coalesce(array_to_string(reloptions, ','), '') AS o FROM pg_class \
             WHERE oid = 'chat_sessions'::regclass",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "o")
        .unwrap();
    assert_eq!(
        options, "fillfactor=70",
        "room on each page for new versions"
    );
}

/// The lookup of earlier sends, which runs in every send transaction while
/// it holds session locks, reads messages by index even while the table is
/// small, whatever plan Postgres settles on for the prepared statement.
#[tokio::test]
async fn earlier_sends_are_looked_up_by_index_on_a_small_table() {
    let app = spawn(Options::default()).await;
    let cust = tokens::customer("plan");
    let sid = app.start_session(&cust).await;
    let db = Database::connect(app.database_url.clone().unwrap())
        .await
        .unwrap();
    let backend = db.get_database_backend();
    let txn = db.begin().await.unwrap();
    for sql in [
        // A few thousand messages: a young deployment. A plain join of the
        // keys with messages reads the whole table at this size.
        format!(
            "INSERT INTO messages \
               (id, session_id, seq, sender, sender_id, body, client_message_id, created_at) \
             SELECT gen_random_uuid(), '{sid}', g, 'CUSTOMER', 'plan', 'hello', 'k' || g, now() \
             FROM generate_series(1, 5000) g"
        ),
        "ANALYZE messages".to_owned(),
        "SET LOCAL plan_cache_mode = force_generic_plan".to_owned(),
        format!(
            "PREPARE earlier(text) AS {}",
            switchboard::repo::messages::EARLIER_SENDS_SQL
        ),
    ] {
        txn.execute(Statement::from_string(backend, sql))
            .await
            .unwrap();
    }
    let plan: Vec<String> = txn
        .query_all(Statement::from_string(
            backend,
            "EXPLAIN EXECUTE earlier('[]')",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "QUERY PLAN").unwrap())
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("Index Scan"), "{plan}");
    assert!(!plan.contains("Seq Scan on messages"), "{plan}");
}

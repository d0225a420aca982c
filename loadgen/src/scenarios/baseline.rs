//! `baseline`: the database's own ceiling, for comparison with `chat`.

use std::time::Instant;

use serde_json::json;

use super::{stamp, Errors};
use crate::stats::{self, round1};
use crate::{Report, ScenarioError};

#[derive(Clone, Debug)]
pub struct BaselineParams {
    pub database_url: String,
    /// Connections, as the server's DB_POOL_SIZE.
    pub connections: u32,
    /// Rows to insert in all, as messages in the chat run.
    pub rows: usize,
    pub body_bytes: usize,
}

/// The database's own ceiling for the work behind a message: one
/// single-row INSERT per message, autocommit, over as many connections as
/// the server uses, into a table shaped and indexed like `messages`.
pub async fn baseline(p: BaselineParams) -> Result<Report, ScenarioError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(p.connections)
        .connect(&p.database_url)
        .await?;
    let table = format!(
        "loadgen_baseline_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    sqlx::query(&format!(
        "CREATE TABLE {table} (id uuid PRIMARY KEY, session_id uuid NOT NULL, seq int NOT NULL, \
         sender varchar(16) NOT NULL, sender_id varchar, body text NOT NULL, client_message_id varchar, \
         created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (session_id, seq), \
         UNIQUE (session_id, sender_id, client_message_id))"
    ))
    .execute(&pool)
    .await?;
    let insert = format!(
        "INSERT INTO {table} (id, session_id, seq, sender, sender_id, body, client_message_id) \
         VALUES ($1, $2, $3, 'CUSTOMER', 'lg', $4, $5)"
    );
    let workers = p.connections.max(1) as usize;
    let body = stamp(0, 0, p.body_bytes);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (pool, insert, body) = (pool.clone(), insert.clone(), body.clone());
            let rows = p.rows / workers + usize::from(w < p.rows % workers);
            tokio::spawn(async move {
                let session = uuid::Uuid::new_v4();
                let mut h = stats::histogram();
                for seq in 0..rows {
                    let began = Instant::now();
                    sqlx::query(&insert)
                        .bind(uuid::Uuid::new_v4())
                        .bind(session)
                        .bind(seq as i32)
                        .bind(&body)
                        .bind(format!("b-{seq}"))
                        .execute(&pool)
                        .await?;
                    stats::record(&mut h, began.elapsed());
                }
                Ok::<_, sqlx::Error>(h)
            })
        })
        .collect();
    let mut latency = stats::histogram();
    let errors = Errors::default();
    for t in tasks {
        match t.await {
            Ok(Ok(h)) => {
                let _ = latency.add(&h);
            }
            Ok(Err(e)) => errors.add(format!("insert: {e}")),
            Err(e) => errors.add(format!("task: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    sqlx::query(&format!("DROP TABLE {table}"))
        .execute(&pool)
        .await?;
    pool.close().await;
    let inserted = latency.len();
    let errors_n = errors.count();
    Ok(Report {
        scenario: "baseline",
        flaws: errors_n,
        json: json!({
            "scenario": "baseline",
            "connections": p.connections,
            "rows": inserted,
            "secs": (secs * 1000.0).round() / 1000.0,
            "rows_per_sec": round1(inserted as f64 / secs),
            "insert": stats::summary(&latency),
            "errors": errors_n,
            "error_samples": errors.json(),
        }),
    })
}

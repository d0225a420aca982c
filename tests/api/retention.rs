//! Retention and history windows, driven by an injected clock.

use chrono::{Duration, Utc};
use sea_orm::{ConnectionTrait, Database};
use serde_json::json;
use switchboard::clock::Clock;

use testkit::server::{spawn, Options};
use testkit::tokens;

#[tokio::test]
async fn customers_list_fourteen_days_and_data_is_purged_after_ninety() {
    // The date moves, the timers do not: the test runs the purge itself.
    let clock = Clock::manual(Utc::now());
    let app = spawn(Options::default().clock(clock.clock())).await;
    let cust = tokens::issued_by(&clock.clock()).customer("rita");
    let ann = tokens::issued_by(&clock.clock()).agent("ann");
    app.start_shift(&ann).await;
    let old = app.start_session(&cust).await;
    app.accept(&ann, &old).await;
    app.send(&cust, &old, "an old question", "k1").await;
    app.end(&cust, &old).await;

    // Ten days later: still listed. A new chat starts (with a token of the day).
    clock.step_wall(Duration::days(10));
    let cust = tokens::issued_by(&clock.clock()).customer("rita");
    let recent = app.start_session(&cust).await;
    app.end(&cust, &recent).await;
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["mySessions"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let listed = app
        .ok(&cust, "{ mySessions { nodes { id } } }", json!({}))
        .await;
    assert_eq!(ids(&listed), vec![recent.clone(), old.clone()]);

    // Fifteen days after the first: it drops out of the customer's list but
    // can still be read, and nothing is purged yet.
    clock.step_wall(Duration::days(5));
    let cust = tokens::issued_by(&clock.clock()).customer("rita");
    let listed = app
        .ok(&cust, "{ mySessions { nodes { id } } }", json!({}))
        .await;
    assert_eq!(ids(&listed), vec![recent.clone()]);
    let read = app
        .ok(
            &cust,
            "query($s: ID!) { session(id: $s) { messages { nodes { body } } } }",
            json!({"s": old}),
        )
        .await;
    assert_eq!(
        read["session"]["messages"]["nodes"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(app.service.retention().purge_expired().await.unwrap(), 0);

    // Ninety-one days after the first chat ended: it is purged, the newer one stays.
    clock.step_wall(Duration::days(76));
    assert_eq!(app.service.retention().purge_expired().await.unwrap(), 1);
    let admin = tokens::issued_by(&clock.clock()).admin();
    let gone = app
        .ok(
            &admin,
            "query($s: ID!) { session(id: $s) { id } }",
            json!({"s": old}),
        )
        .await;
    assert!(gone["session"].is_null());
    let kept = app
        .ok(
            &admin,
            "query($s: ID!) { session(id: $s) { id } }",
            json!({"s": recent}),
        )
        .await;
    assert_eq!(kept["session"]["id"], recent.as_str());
    let db = Database::connect(app.database_url.clone().unwrap())
        .await
        .unwrap();
    let left = db
        .query_one(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT (SELECT COUNT(*) FROM messages WHERE session_id = '{old}') + (SELECT COUNT(*) FROM session_events WHERE session_id = '{old}') AS n"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(left, 0, "messages and history of a purged session are gone");
}

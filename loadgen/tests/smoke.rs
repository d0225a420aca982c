//! CI smoke: every scenario, with tiny parameters, against a real server
//! started in this process on a fresh Postgres database. Nothing here
//! asserts a timing: only that each scenario completes with no error and
//! no lost, duplicated or reordered message.

use std::collections::HashMap;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use switchboard::config::Settings;
use switchboard::startup::Application;
use switchboard_loadgen::scenarios::{
    self, BaselineParams, BurstParams, ChatParams, IdleParams, ResumeParams,
};
use switchboard_loadgen::{Report, Target};

const SECRET: &str = "loadgen-smoke-secret-0123456789";

async fn fresh_database() -> String {
    let base = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let admin = Database::connect(format!("{base}/postgres"))
        .await
        .unwrap_or_else(|e| panic!("Postgres at {base} is unreachable ({e})"));
    // Named like the API tests' databases, so their stale-database sweep
    // drops leftovers of this test too.
    let name = format!(
        "sbtest_{}_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create database");
    format!("{base}/{name}")
}

/// A server configured as the benchmark runs it (bench.sh), on port 0.
async fn spawn_server(routing: &str) -> (Target, String, tokio::sync::oneshot::Sender<()>) {
    let database_url = fresh_database().await;
    let vars: HashMap<&str, String> = [
        ("DATABASE_URL", database_url.clone()),
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("JWT_SECRET", SECRET.to_owned()),
        ("ROUTING_MODE", routing.to_owned()),
        ("MESSAGE_RATE_PER_SEC", "100000".to_owned()),
        ("MESSAGE_BURST", "100000".to_owned()),
        ("IP_SESSION_RATE_PER_MIN", "10000000".to_owned()),
        ("IP_SESSION_BURST", "10000000".to_owned()),
        ("IP_MAX_CONNECTIONS", "100000".to_owned()),
        ("DB_POOL_SIZE", "8".to_owned()),
        (
            "DATA_DIR",
            std::env::temp_dir()
                .join(format!("loadgen-smoke-{}", uuid::Uuid::new_v4()))
                .display()
                .to_string(),
        ),
    ]
    .into_iter()
    .collect();
    let settings = Settings::from_lookup(|k| vars.get(k).cloned()).expect("settings");
    let app = Application::build(settings).await.expect("server starts");
    let addr = app.local_addr().expect("bound address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let pid = std::process::id().to_string();
    (
        Target::new(&format!("http://{addr}"), SECRET, Some(pid)),
        database_url,
        stop,
    )
}

fn assert_clean(report: &Report) {
    println!("{}", report.table());
    assert_eq!(report.flaws, 0, "flawed run: {}", report.json);
    assert_eq!(report.json["errors"], 0, "{}", report.json);
}

/// A chat run that must finish clean, every message delivered.
async fn chat_clean(target: &Target, chats: usize, messages: usize, think: Duration) -> Report {
    let report = scenarios::chat(
        target,
        ChatParams {
            chats,
            messages,
            think,
            body_bytes: 100,
            drain: Duration::from_secs(10),
            setup_timeout: Duration::from_secs(30),
        },
    )
    .await
    .expect("chat runs");
    assert_clean(&report);
    assert_eq!(
        report.json["delivered"],
        chats * 2 * messages,
        "{}",
        report.json
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_clean_with_tiny_parameters() {
    let (target, database_url, stop) = spawn_server("auto").await;

    let chat = chat_clean(&target, 4, 5, Duration::ZERO).await;
    assert_eq!(chat.json["lost"], 0);

    // Open loop with a think time: the paced path.
    chat_clean(&target, 2, 3, Duration::from_millis(50)).await;

    let idle = scenarios::idle(
        &target,
        IdleParams {
            connections: 20,
            hold: Duration::from_secs(1),
        },
    )
    .await
    .expect("idle runs");
    assert_clean(&idle);
    assert_eq!(idle.json["open"], 20);

    let burst = scenarios::burst(
        &target,
        BurstParams {
            customers: 6,
            agents: 3,
            timeout: Duration::from_secs(30),
        },
    )
    .await
    .expect("burst runs");
    assert_clean(&burst);
    assert_eq!(burst.json["assigned"], 6);

    let resume = scenarios::resume(
        &target,
        ResumeParams {
            missed: vec![3, 12],
            repeats: 2,
            body_bytes: 100,
        },
    )
    .await
    .expect("resume runs");
    assert_clean(&resume);
    assert_eq!(resume.json["missed_12"]["caught_up"]["count"], 2);

    let baseline = scenarios::baseline(BaselineParams {
        database_url,
        connections: 4,
        rows: 200,
        body_bytes: 100,
    })
    .await
    .expect("baseline runs");
    assert_clean(&baseline);
    assert_eq!(baseline.json["rows"], 200);

    let _ = stop.send(());
}

/// Fair routing: agents receive offers and accept them at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_burst_accept_offers_under_fair_routing() {
    let (target, _db, stop) = spawn_server("fair").await;
    chat_clean(&target, 3, 4, Duration::ZERO).await;
    let burst = scenarios::burst(
        &target,
        BurstParams {
            customers: 4,
            agents: 2,
            timeout: Duration::from_secs(30),
        },
    )
    .await
    .expect("burst runs");
    assert_clean(&burst);
    assert_eq!(burst.json["assigned"], 4);
    let _ = stop.send(());
}

//! CI smoke: every scenario, with tiny parameters, against a real server
//! started in this process on a fresh Postgres database. Nothing here
//! asserts a timing: only that each scenario completes with no error and
//! no lost, duplicated or reordered message.

use std::time::Duration;

use switchboard_loadgen::scenarios::{
    self, BaselineParams, BurstParams, ChatParams, IdleParams, ResumeParams,
};
use switchboard_loadgen::{Report, Target};
use testkit::server::{spawn, Server};
use testkit::tokens;

/// A server configured as the benchmark runs it (bench.sh), on port 0, and
/// the load generator's view of it.
async fn spawn_server(routing: &str) -> (Server, Target) {
    let server = spawn(&[
        ("ROUTING_MODE", routing),
        ("IP_SESSION_RATE_PER_MIN", "10000000"),
        ("IP_SESSION_BURST", "10000000"),
        ("DB_POOL_SIZE", "8"),
    ])
    .await;
    let pid = std::process::id().to_string();
    let target = Target::new(&server.url(""), tokens::SECRET, Some(pid));
    (server, target)
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
    let (mut server, target) = spawn_server("auto").await;

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
        database_url: server.database_url.clone().expect("a Postgres database"),
        connections: 4,
        rows: 200,
        body_bytes: 100,
    })
    .await
    .expect("baseline runs");
    assert_clean(&baseline);
    assert_eq!(baseline.json["rows"], 200);

    server.stop();
}

/// Fair routing: agents receive offers and accept them at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_burst_accept_offers_under_fair_routing() {
    let (mut server, target) = spawn_server("fair").await;
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
    server.stop();
}

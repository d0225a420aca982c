//! `switchboard audit` as shipped: against a database with a clean
//! history it checks every decision and exits 0; after one decision row is
//! tampered with it names the violation and exits non-zero.

use std::process::Output;
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::json;
use switchboard::auth::{Claims, Role};
use testkit::db::fresh_database;
use testkit::server::{spawn_process, Options};
use testkit::tokens;

/// A customer token carrying the shop's priority claim.
fn customer(sub: &str, priority: &str) -> String {
    let now = Utc::now().timestamp();
    tokens::keys()
        .sign(&Claims {
            sub: sub.into(),
            role: Role::Customer.as_claim().into(),
            name: None,
            exp: now + 3600,
            iat: now,
            nbf: None,
            priority: Some(priority.into()),
        })
        .expect("token")
}

async fn audit(database_url: &str, from: &str, to: &str) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .args(["audit", "--from", from, "--to", to])
        .env("DATABASE_URL", database_url)
        .env("SKILL_WAIT_SECS", "30")
        .env(
            "DATA_DIR",
            std::env::temp_dir().join(format!("switchboard-audit-{}", uuid::Uuid::new_v4())),
        );
    tokio::task::spawn_blocking(move || command.output().expect("run switchboard audit"))
        .await
        .expect("audit task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_command_passes_a_clean_history_and_names_a_tampered_decision() {
    let db_url = fresh_database().await;
    let from = Utc::now() - chrono::Duration::seconds(5);
    let server = spawn_process(
        env!("CARGO_BIN_EXE_switchboard"),
        Options::from(&[
            ("ROUTING_MODE", "fair"),
            ("AGENT_CAPACITY", "1"),
            ("SKILL_WAIT_SECS", "30"),
        ])
        .database(&db_url),
    )
    .await;
    let admin = tokens::admin();
    let agents = ["ada", "bo"].map(tokens::agent);
    server.start_shift(&agents[0]).await;
    server.start_shift(&agents[1]).await;
    server
        .ok(
            &admin,
            "mutation { setAgentSkills(agentId: \"bo\", skills: [\"billing\"]) { id } }",
            json!({}),
        )
        .await;
    // More customers than slots, mixed priorities and skills: most wait.
    let mut open = Vec::new();
    for (i, priority) in ["LOW", "NORMAL", "URGENT", "HIGH", "NORMAL", "LOW"]
        .iter()
        .enumerate()
    {
        let token = customer(&format!("c{i}"), priority);
        let skills = if i % 3 == 0 {
            json!(["billing"])
        } else {
            json!([])
        };
        let data = server
            .ok(
                &token,
                "mutation($k: [String!]) { startSession(input: {skills: $k}) { id } }",
                json!({ "k": skills }),
            )
            .await;
        open.push(data["startSession"]["id"].as_str().unwrap().to_owned());
    }
    // The agents take what they are offered and end it, until all is done.
    let deadline = Instant::now() + Duration::from_secs(30);
    'serving: loop {
        assert!(Instant::now() < deadline, "sessions still open");
        let mut busy = false;
        for token in &agents {
            let data = server
                .ok(
                    token,
                    "{ mySessions(first: 50) { nodes { id status } } }",
                    json!({}),
                )
                .await;
            for s in data["mySessions"]["nodes"].as_array().unwrap() {
                let id = s["id"].as_str().unwrap();
                match s["status"].as_str().unwrap() {
                    "OFFERED" => {
                        server.accept(token, id).await;
                        busy = true;
                    }
                    "ACTIVE" => {
                        server.end(token, id).await;
                        busy = true;
                    }
                    _ => {}
                }
            }
        }
        let ended = server
            .ok(
                &admin,
                "{ mySessions(first: 50) { nodes { status } } }",
                json!({}),
            )
            .await["mySessions"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "ENDED")
            .count();
        if ended == open.len() {
            break 'serving;
        }
        if !busy {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(server);
    let to = Utc::now() + chrono::Duration::seconds(5);
    let (from, to) = (from.to_rfc3339(), to.to_rfc3339());

    let clean = audit(&db_url, &from, &to).await;
    let out = String::from_utf8_lossy(&clean.stdout);
    assert!(
        clean.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(
        out.contains(&format!("checked {} decisions, 0 violations", open.len())),
        "{out}"
    );

    // One decision claims the agent was already full.
    let db = Database::connect(&db_url).await.expect("connect");
    db.execute(Statement::from_string(
        db.get_database_backend(),
        "UPDATE routing_decisions SET agent_capacity = agent_held \
         WHERE id = (SELECT MIN(id) FROM routing_decisions)",
    ))
    .await
    .expect("tamper");
    let tampered = audit(&db_url, &from, &to).await;
    let out = String::from_utf8_lossy(&tampered.stdout);
    assert_eq!(tampered.status.code(), Some(3), "{out}");
    assert!(out.contains(" capacity session "), "{out}");
    assert!(!out.contains(" 0 violations"), "{out}");
}

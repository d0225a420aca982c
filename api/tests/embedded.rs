//! The binary on its embedded default (SQLite in DATA_DIR), as a newcomer
//! runs it: what it makes on disk, what it says, and that a second process
//! on the same folder is refused instead of silently missing events.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use testkit::server::{spawn_process, Options};

const SWITCHBOARD: &str = env!("CARGO_BIN_EXE_switchboard");

fn temp_dir(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "switchboard-{label}-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

/// The embedded database in `dir`.
fn embedded(dir: &Path) -> Options {
    Options::default()
        .database("")
        .set("DATA_DIR", dir.to_str().unwrap())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_second_process_on_the_same_data_folder_is_refused() {
    let dir = temp_dir("embedded");
    let data_dir = dir.to_str().unwrap();
    // DATABASE_URL empty: the embedded default, as on a fresh machine.
    let env = [
        ("DATABASE_URL", ""),
        ("DATA_DIR", data_dir),
        ("JWT_SECRET", ""),
    ];
    let first = spawn_process(SWITCHBOARD, &env).await;
    assert!(
        first
            .startup_log
            .iter()
            .any(|l| l.contains("generated a new token-signing secret")),
        "the server should say it generated a secret: {:#?}",
        first.startup_log
    );
    let second = Command::new(SWITCHBOARD)
        .env("DATABASE_URL", "")
        .env("DATA_DIR", data_dir)
        .env("JWT_SECRET", "")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run a second server");
    assert!(!second.status.success(), "a second process started");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another switchboard process is using the data folder"),
        "{stderr}"
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700, "data folder");
        assert_eq!(mode(&dir.join("switchboard.db")), 0o600, "database");
        assert_eq!(mode(&dir.join("jwt_secret")), 0o600, "secret");
    }
    drop(first);
    // Once the first is gone, the folder is free again.
    let again = spawn_process(SWITCHBOARD, &env).await;
    drop(again);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_start_log_says_where_graphiql_is() {
    let dir = temp_dir("graphiql-log");
    let server = spawn_process(SWITCHBOARD, embedded(&dir)).await;
    assert!(
        server
            .startup_log
            .iter()
            .any(|l| l.contains(&format!("GraphiQL: {}/", server.url))),
        "{:#?}",
        server.startup_log
    );
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn token_with_a_configured_secret_makes_no_data_folder() {
    let dir = temp_dir("token");
    let output = Command::new(SWITCHBOARD)
        .args(["token", "--role", "agent", "--sub", "ann"])
        .env("DATA_DIR", &dir)
        .env("JWT_SECRET", "a-configured-secret-0123456789")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run switchboard token");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).split('.').count(),
        3
    );
    assert!(!dir.exists(), "token made {}", dir.display());
}

/// Descriptors, not the per-address cap, used to be what refused clients:
/// the process raises its open-file limit to the hard limit at start.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit() {
    // Start it with a soft limit below the hard one (children inherit it):
    // many machines start processes that way; this one may not.
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let low = 512.min(hard);
    rlimit::setrlimit(rlimit::Resource::NOFILE, low, hard).unwrap();
    let dir = temp_dir("nofile");
    let server = spawn_process(SWITCHBOARD, embedded(&dir)).await;
    rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a limit on open files");
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        numbers[0], numbers[1],
        "soft limit below the hard one: {line}"
    );
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

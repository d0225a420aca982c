//! Databases for tests: a fresh one on the shared Postgres server per test,
//! and Postgres clusters of a test's own that it may stop and restart.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// Postgres server the tests create their databases on (`TEST_DATABASE_URL`).
fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

static CLEANUP: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Test databases are named sbtest_<unix secs>_<random>; ones older than an
/// hour are left over from earlier runs and are dropped once per run.
async fn drop_stale_databases(admin: &DatabaseConnection) {
    let now = chrono::Utc::now().timestamp();
    let rows = admin
        .query_all(Statement::from_string(
            admin.get_database_backend(),
            "SELECT datname FROM pg_database WHERE datname LIKE 'sbtest_%'",
        ))
        .await
        .unwrap_or_default();
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "datname") else {
            continue;
        };
        let stamp = name
            .split('_')
            .nth(1)
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(now);
        if now - stamp > 3600 {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

/// Creates an empty database on the shared test Postgres and returns its URL.
pub async fn fresh_database() -> String {
    let base = server_url();
    let admin = Database::connect(format!("{base}/postgres"))
        .await
        .unwrap_or_else(|e| {
            panic!("Postgres at {base} is unreachable ({e}); set TEST_DATABASE_URL")
        });
    CLEANUP.get_or_init(|| drop_stale_databases(&admin)).await;
    let name = format!(
        "sbtest_{}_{}",
        chrono::Utc::now().timestamp(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    let _ = admin.close().await;
    format!("{base}/{name}")
}

/// A Postgres 15 cluster of the test's own, in a temporary folder on a free
/// port, so that a test may stop and restart it without disturbing the
/// shared server other tests use. Stopped and deleted when dropped (also
/// when the test panics).
///
/// initdb and postgres refuse to run as root; as root (CI) they run as the
/// `postgres` OS user, which then owns the folder.
pub struct PgCluster {
    dir: PathBuf,
    pub port: u16,
    as_postgres_user: bool,
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let as_postgres_user = running_as_root();
        let dir =
            std::env::temp_dir().join(format!("switchboard-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create cluster folder");
        let cluster = PgCluster {
            port: free_port(),
            dir,
            as_postgres_user,
        };
        if as_postgres_user {
            let chown = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&cluster.dir)
                .status()
                .expect("run chown");
            assert!(chown.success(), "chown of the cluster folder failed");
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.start_again();
        cluster
    }

    /// Its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Starts the (stopped) cluster on its port and waits until it accepts.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the cluster the hard way (as a crash would: no goodbye to
    /// clients, recovery on the next start).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    fn command(&self, program: &str) -> Command {
        let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
        let program = Path::new(&bin).join(program);
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} (set PG_BIN?): {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Already stopped is fine; the point is that nothing outlives the test.
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

//! The real `switchboard` binary in a child process: started on a free
//! port, its log watched for trouble, signalled, and killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::ops::Deref;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Options;
use crate::graphql;

/// A child server process, killed when dropped.
pub struct Process {
    child: Child,
    /// Where it listens, as its log says: `http://ADDR`.
    pub url: String,
    pub addr: SocketAddr,
    /// Its client; also reached through `Deref`.
    pub api: graphql::Client,
    /// Log lines that say something went wrong (WARN, ERROR, panics).
    pub trouble: Arc<Mutex<Vec<String>>>,
    /// Its log up to the line saying where it listens.
    pub startup_log: Vec<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` (a test's `env!("CARGO_BIN_EXE_switchboard")`) with the
/// test settings and `options` in its environment, and waits until it
/// listens. A clock cannot be given to a child process.
pub async fn spawn_process(binary: &str, options: impl Into<Options>) -> Process {
    let options = options.into();
    assert!(
        options.clock.is_none(),
        "a child process reads the system clock; give a clock to spawn() instead"
    );
    let mut command = Command::new(binary);
    command
        // Its log is read below: plain lines, the one that says where it listens included.
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .envs(options.resolve(super::Defaults::Binary).await)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start switchboard");
    let trouble = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    drain(BufReader::new(stderr).lines(), trouble.clone());
    let stdout = child.stdout.take().expect("stdout");
    let (url, startup_log, lines) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut startup_log = Vec::new();
        loop {
            let Some(Ok(line)) = lines.next() else {
                return Err(startup_log);
            };
            startup_log.push(line.clone());
            if let Some(at) = line.find("listening on http://") {
                let rest = &line[at + "listening on ".len()..];
                let url: String = rest
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '\u{1b}')
                    .collect();
                return Ok((url, startup_log, lines));
            }
        }
    })
    .await
    .expect("reading the server's log")
    .unwrap_or_else(|log| panic!("the server exited before listening: {log:#?}"));
    // Keep draining the log so the child never blocks on a full pipe, and
    // show what went wrong in the server when something did.
    drain(lines, trouble.clone());
    let addr = url
        .trim_start_matches("http://")
        .parse()
        .expect("listen address");
    Process {
        child,
        url,
        addr,
        api: graphql::Client::new(addr),
        trouble,
        startup_log,
    }
}

fn drain(
    lines: impl Iterator<Item = std::io::Result<String>> + Send + 'static,
    trouble: Arc<Mutex<Vec<String>>>,
) {
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("WARN") || line.contains("ERROR") || line.contains("panicked") {
                eprintln!("server: {line}");
                if let Ok(mut t) = trouble.lock() {
                    t.push(line);
                }
            }
        }
    });
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `KILL`) with kill(1): the tests
    /// need no libc for it.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// The exit status, waiting at most `bound`; `None` if still running.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if started.elapsed() > bound {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Every warning and error so far, one a line, or "(none)".
    pub fn trouble_text(&self) -> String {
        let text = self
            .trouble
            .lock()
            .map(|t| t.join("\n"))
            .unwrap_or_default();
        if text.is_empty() {
            "(none)".to_owned()
        } else {
            text
        }
    }

    /// Log lines of panics seen so far.
    pub fn panics(&self) -> Vec<String> {
        self.trouble
            .lock()
            .map(|t| {
                t.iter()
                    .filter(|l| l.contains("panicked"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Deref for Process {
    type Target = graphql::Client;

    fn deref(&self) -> &graphql::Client {
        &self.api
    }
}

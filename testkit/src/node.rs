//! Running the project's Node.js (and other) programs from a test: the
//! tool's version or why it cannot run, `npm ci` from a checked-in lock
//! file when node_modules is missing or stale, and a child process bounded
//! in time with its output in one log.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `tests/<name>` of the workspace: where the project's scripts are.
pub fn tests_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .join("tests")
        .join(name)
}

/// `program --version`, or why the program cannot be used.
pub fn version(program: &str) -> Result<String, String> {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if text.is_empty() {
                // Python 2 printed its version on stderr.
                Ok(String::from_utf8_lossy(&out.stderr).trim().to_owned())
            } else {
                Ok(text)
            }
        }
        Ok(out) => Err(format!(
            "`{program} --version` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "{program} cannot be run ({e}): these tests need it installed (they never skip)"
        )),
    }
}

/// Held while installing into `dir`: tests run in parallel, and other
/// `cargo test` runs may install into the same folder.
pub fn install_lock(path: &Path) -> Result<File, String> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    file.lock()
        .map_err(|e| format!("lock {}: {e}", path.display()))?;
    Ok(file)
}

/// Runs an install step; its output on failure.
pub fn install_step(what: &str, command: &mut Command) -> Result<(), String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run it: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// `dir`/node_modules as `dir`/package-lock.json pins it: `npm ci` runs
/// when it is missing or older than the lock file (npm writes
/// node_modules/.package-lock.json last, so a half-done install counts as
/// missing). `lock` is the file held meanwhile.
pub fn npm_ci(dir: &Path, lock: &Path) -> Result<(), String> {
    let node = version("node")?;
    let npm = version("npm")?;
    let lock_file = dir.join("package-lock.json");
    let _lock = install_lock(lock)?;
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let wanted =
        modified(&lock_file).ok_or_else(|| format!("{} is missing", lock_file.display()))?;
    let installed = modified(&dir.join("node_modules").join(".package-lock.json"));
    if installed.is_some_and(|at| at >= wanted) {
        return Ok(());
    }
    eprintln!("npm ci in {} (node {node}, npm {npm})", dir.display());
    install_step(
        "npm ci",
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir),
    )
}

/// What a bounded run came to.
pub struct Run {
    /// Exit status, or None when it had to be stopped.
    pub status: Option<ExitStatus>,
    /// Its stdout and stderr, interleaved as written.
    pub output: String,
}

/// Runs `command` with its output into one file (`log`, removed after), for
/// at most `bound`.
pub fn run_bounded(mut command: Command, bound: Duration, log: &Path) -> Run {
    let file = File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone the log file"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if started.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", log.display()));
    let _ = std::fs::remove_file(log);
    Run { status, output }
}

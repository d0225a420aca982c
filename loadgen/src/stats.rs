//! Measurement helpers: process CPU and memory from /proc, latency
//! histograms, and the per-direction delivery tracker.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Linux reports process times in clock ticks; USER_HZ is 100 on every
/// mainstream architecture and is fixed in the kernel ABI.
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds (user + system) and resident memory of a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    pub cpu_secs: f64,
    pub rss_bytes: u64,
}

/// Reads `/proc/<pid>` (`self` for this process); `None` when it is gone.
pub fn proc_sample(pid: &str) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(ProcSample {
        cpu_secs: (utime + stime) / TICKS_PER_SEC,
        rss_bytes: rss_kib * 1024,
    })
}

/// CPU and memory of the server (when its pid is known) and of this
/// process over one measured interval.
pub struct ProcWatch {
    server_pid: Option<String>,
    started: Instant,
    server_start: Option<ProcSample>,
    own_start: Option<ProcSample>,
}

impl ProcWatch {
    pub fn start(server_pid: Option<&str>) -> Self {
        ProcWatch {
            server_pid: server_pid.map(str::to_owned),
            started: Instant::now(),
            server_start: server_pid.and_then(proc_sample),
            own_start: proc_sample("self"),
        }
    }

    pub fn server_now(&self) -> Option<ProcSample> {
        self.server_pid.as_deref().and_then(proc_sample)
    }

    /// `{server_cpu_pct, server_rss_mib, loadgen_cpu_pct}` since `start`;
    /// CPU in percent of one core.
    pub fn finish(&self) -> Value {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let pct = |a: Option<ProcSample>, b: Option<ProcSample>| match (a, b) {
            (Some(a), Some(b)) => json!(round1((b.cpu_secs - a.cpu_secs) / wall * 100.0)),
            _ => Value::Null,
        };
        let server_end = self.server_now();
        json!({
            "server_cpu_pct": pct(self.server_start, server_end),
            "server_rss_mib": server_end.map(|s| round1(s.rss_bytes as f64 / 1048576.0)),
            "loadgen_cpu_pct": pct(self.own_start, proc_sample("self")),
        })
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A latency histogram in microseconds, 1 µs to 10 minutes, 3 digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| {
        // The bounds above are constants that hdrhistogram accepts.
        unreachable!("valid histogram bounds")
    })
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// p50/p95/p99/max in milliseconds, and the count.
pub fn summary(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| ((us as f64) / 1000.0 * 100.0).round() / 100.0;
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p95_ms": ms(h.value_at_quantile(0.95)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
    })
}

/// Which of one sender's messages arrived at the other side, and how.
#[derive(Debug)]
pub struct Delivery {
    seen: Vec<bool>,
    highest: Option<usize>,
    pub received: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub foreign: u64,
}

impl Delivery {
    pub fn new(expected: usize) -> Self {
        Delivery {
            seen: vec![false; expected],
            highest: None,
            received: 0,
            duplicated: 0,
            reordered: 0,
            foreign: 0,
        }
    }

    /// Records message number `idx`.
    pub fn arrived(&mut self, idx: usize) {
        let Some(slot) = self.seen.get_mut(idx) else {
            self.foreign += 1;
            return;
        };
        if *slot {
            self.duplicated += 1;
            return;
        }
        *slot = true;
        self.received += 1;
        // Senders post in order, one after the other: an older message
        // arriving after a newer one means the feed reordered them.
        match self.highest {
            Some(h) if idx < h => self.reordered += 1,
            _ => self.highest = Some(idx),
        }
    }

    pub fn lost(&self) -> u64 {
        self.seen.iter().filter(|s| !**s).count() as u64
    }

    pub fn complete(&self) -> bool {
        self.received as usize == self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_counts_duplicates_reorders_and_losses() {
        let mut d = Delivery::new(5);
        for i in [0, 2, 1, 2, 4, 9] {
            d.arrived(i);
        }
        assert_eq!(d.received, 4);
        assert_eq!(d.duplicated, 1);
        assert_eq!(d.reordered, 1);
        assert_eq!(d.foreign, 1);
        assert_eq!(d.lost(), 1);
        assert!(!d.complete());
    }

    #[test]
    fn own_process_is_readable() {
        let s = proc_sample("self").expect("/proc/self");
        assert!(s.rss_bytes > 0);
    }
}

//! Operational metrics in the Prometheus text format, served at `/metrics`.
//! Counters and gauges are atomics; histograms have fixed buckets. Queue
//! figures are read from the database at scrape time, so they are the
//! same whichever process is scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use crate::events::QueueStats;

/// Bucket upper bounds, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const WAIT_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        if let Some(i) = self.bounds.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

pub struct Metrics {
    pub websocket_connections: AtomicI64,
    pub subscriptions: AtomicI64,
    pub messages: AtomicU64,
    /// Transactions that stored messages sent by users: sends share them
    /// under load (group commit).
    pub send_transactions: AtomicU64,
    /// Sessions that entered the queue, and the transactions they took:
    /// arrivals share them under load.
    pub queue_entries: AtomicU64,
    pub queue_entry_transactions: AtomicU64,
    /// Delivery marks (messages reached a recipient) and the statements
    /// that recorded them: marks of many sessions share one under load.
    pub delivery_marks: AtomicU64,
    pub delivery_writes: AtomicU64,
    pub offers: AtomicU64,
    pub lapses: AtomicU64,
    /// Frames sent on WebSockets, and the writes (flushes) that sent them:
    /// frames ready at once share one.
    pub websocket_frames: AtomicU64,
    pub websocket_writes: AtomicU64,
    /// WebSockets closed because the peer did not read what it was sent.
    pub slow_consumer_disconnects: AtomicU64,
    /// WebSocket upgrades and new sessions refused by a per-address limit.
    pub refused_by_ip_limit: AtomicU64,
    /// From entering the queue to being given to an agent.
    pub queue_wait: Histogram,
    /// From a message being stored to its push into a live subscription.
    pub delivery_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            websocket_connections: AtomicI64::new(0),
            subscriptions: AtomicI64::new(0),
            messages: AtomicU64::new(0),
            send_transactions: AtomicU64::new(0),
            queue_entries: AtomicU64::new(0),
            queue_entry_transactions: AtomicU64::new(0),
            delivery_marks: AtomicU64::new(0),
            delivery_writes: AtomicU64::new(0),
            offers: AtomicU64::new(0),
            lapses: AtomicU64::new(0),
            websocket_frames: AtomicU64::new(0),
            websocket_writes: AtomicU64::new(0),
            slow_consumer_disconnects: AtomicU64::new(0),
            refused_by_ip_limit: AtomicU64::new(0),
            queue_wait: Histogram::new(WAIT_BUCKETS),
            delivery_latency: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

/// Counts something open (a connection, a subscription) while it lives.
pub struct GaugeGuard {
    metrics: Arc<Metrics>,
    gauge: fn(&Metrics) -> &AtomicI64,
}

impl GaugeGuard {
    pub fn new(metrics: Arc<Metrics>, gauge: fn(&Metrics) -> &AtomicI64) -> Self {
        gauge(&metrics).fetch_add(1, Ordering::Relaxed);
        GaugeGuard { metrics, gauge }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        (self.gauge)(&self.metrics).fetch_sub(1, Ordering::Relaxed);
    }
}

fn line(out: &mut String, kind: &str, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

impl Metrics {
    pub fn render(&self, queue: &QueueStats) -> String {
        let mut out = String::new();
        let load = |g: &AtomicI64| g.load(Ordering::Relaxed);
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        line(
            &mut out,
            "gauge",
            "switchboard_websocket_connections",
            "Open WebSocket connections on this process.",
            load(&self.websocket_connections),
        );
        line(
            &mut out,
            "gauge",
            "switchboard_subscriptions",
            "Active GraphQL subscriptions on this process.",
            load(&self.subscriptions),
        );
        line(
            &mut out,
            "counter",
            "switchboard_messages_total",
            "Messages stored by this process.",
            count(&self.messages),
        );
        line(
            &mut out,
            "counter",
            "switchboard_send_transactions_total",
            "Transactions that stored sent messages; messages_total divided by this is the mean number of sends per commit.",
            count(&self.send_transactions),
        );
        line(
            &mut out,
            "counter",
            "switchboard_queue_entries_total",
            "Sessions that entered the queue through this process.",
            count(&self.queue_entries),
        );
        line(
            &mut out,
            "counter",
            "switchboard_queue_entry_transactions_total",
            "Transactions that queued new sessions; queue_entries_total divided by this is the mean number of arrivals per commit.",
            count(&self.queue_entry_transactions),
        );
        line(
            &mut out,
            "counter",
            "switchboard_delivery_marks_total",
            "Delivery marks recorded (messages that reached their recipient's connection or fetch).",
            count(&self.delivery_marks),
        );
        line(
            &mut out,
            "counter",
            "switchboard_delivery_writes_total",
            "Statements that recorded delivery marks; marks_total divided by this is the mean number per write.",
            count(&self.delivery_writes),
        );
        line(
            &mut out,
            "counter",
            "switchboard_websocket_frames_total",
            "GraphQL frames sent on WebSockets.",
            count(&self.websocket_frames),
        );
        line(
            &mut out,
            "counter",
            "switchboard_websocket_writes_total",
            "Writes that sent those frames; frames_total divided by this is the mean number per write.",
            count(&self.websocket_writes),
        );
        line(
            &mut out,
            "counter",
            "switchboard_slow_consumer_disconnects_total",
            "WebSockets closed because the peer did not read what it was sent.",
            count(&self.slow_consumer_disconnects),
        );
        line(
            &mut out,
            "counter",
            "switchboard_refused_by_ip_limit_total",
            "WebSocket connections and new sessions refused by a per-address limit.",
            count(&self.refused_by_ip_limit),
        );
        line(
            &mut out,
            "counter",
            "switchboard_offers_total",
            "Offers made by this process.",
            count(&self.offers),
        );
        line(
            &mut out,
            "counter",
            "switchboard_offer_lapses_total",
            "Offers lapsed by this process.",
            count(&self.lapses),
        );
        line(
            &mut out,
            "gauge",
            "switchboard_queue_waiting",
            "Sessions waiting in the queue.",
            queue.waiting,
        );
        line(
            &mut out,
            "gauge",
            "switchboard_queue_offered",
            "Sessions offered, not yet accepted.",
            queue.offered,
        );
        line(
            &mut out,
            "gauge",
            "switchboard_sessions_active",
            "Sessions with an agent.",
            queue.active,
        );
        line(
            &mut out,
            "gauge",
            "switchboard_agents_available",
            "Agents on shift and available.",
            queue.available_agents,
        );
        line(
            &mut out,
            "gauge",
            "switchboard_queue_longest_wait_seconds",
            "How long the head of the queue has waited.",
            queue.longest_wait_seconds,
        );
        self.queue_wait.render(
            "switchboard_queue_wait_seconds",
            "Time from entering the queue to being given to an agent.",
            &mut out,
        );
        self.delivery_latency.render(
            "switchboard_delivery_latency_seconds",
            "Time from a message being stored to its push into a live subscription.",
            &mut out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let mut out = String::new();
        h.render("x", "help", &mut out);
        assert!(out.contains("x_bucket{le=\"0.1\"} 1\n"));
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_count 3\n"));
    }

    #[test]
    fn gauges_follow_their_guards() {
        let m = Arc::new(Metrics::default());
        {
            let _a = GaugeGuard::new(m.clone(), |m| &m.subscriptions);
            let _b = GaugeGuard::new(m.clone(), |m| &m.subscriptions);
            assert_eq!(m.subscriptions.load(Ordering::Relaxed), 2);
        }
        assert_eq!(m.subscriptions.load(Ordering::Relaxed), 0);
    }
}

//! Per-key token buckets: how often one sender may post.
//!
//! Buckets live in this process; behind a load balancer a sender spread
//! over n processes may reach n times the rate. Sticky sessions or a shared
//! store would tighten that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Keys kept before idle (full) buckets are dropped.
const PRUNE_ABOVE: usize = 100_000;

pub struct TokenBuckets {
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBuckets {
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        TokenBuckets {
            rate_per_sec,
            burst: f64::from(burst),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key` at `now`; false when the bucket is empty.
    pub fn try_take(&self, key: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            let (rate, burst) = (self.rate_per_sec, self.burst);
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let refill =
            now.saturating_duration_since(bucket.updated).as_secs_f64() * self.rate_per_sec;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_the_steady_rate() {
        let limiter = TokenBuckets::new(5.0, 10);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(limiter.try_take("a", t0));
        }
        assert!(!limiter.try_take("a", t0), "the burst is spent");
        assert!(
            limiter.try_take("b", t0),
            "other senders have their own bucket"
        );
        assert!(
            !limiter.try_take("a", t0 + Duration::from_millis(100)),
            "half a token is not enough"
        );
        assert!(
            limiter.try_take("a", t0 + Duration::from_millis(200)),
            "one token per 200 ms at 5/s"
        );
        assert!(!limiter.try_take("a", t0 + Duration::from_millis(200)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..10 {
            assert!(limiter.try_take("a", later));
        }
        assert!(!limiter.try_take("a", later));
    }
}

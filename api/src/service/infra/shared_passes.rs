//! One pass at a time, shared by every trigger that arrives while one runs.
//!
//! A trigger returns once a pass that started after it has finished, so the
//! pass saw whatever the trigger's caller had committed. Triggers arriving
//! during a pass wait and share the next one: a burst costs a few passes,
//! not one each.
//!
//! The state sits behind one plain mutex and waiters register for the wake-up
//! before they look at it. An earlier version woke waiters while the finished
//! pass still held its lock; a waiter that looked in that instant found the
//! lock taken and went back to sleep with no pass left to wake it, which
//! stalled every agent's request in the two-process race.

use std::future::Future;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct SharedPasses {
    state: Mutex<State>,
    pass_over: Notify,
}

#[derive(Default)]
struct State {
    /// Triggers so far.
    requested: u64,
    /// Every trigger up to this one has had a pass that started after it.
    covered: u64,
    running: bool,
}

impl SharedPasses {
    /// Returns when a pass that started after this call is over: one this
    /// call ran itself, or one it shared.
    pub(crate) async fn trigger<F, Fut>(&self, pass: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ()>,
    {
        let wanted = {
            let mut s = self.state();
            s.requested += 1;
            s.requested
        };
        let covers = loop {
            let mut pass_over = pin!(self.pass_over.notified());
            // Registered before the state is read: a pass ending after the
            // read below wakes this waiter.
            pass_over.as_mut().enable();
            {
                let mut s = self.state();
                if s.covered >= wanted {
                    return;
                }
                if !s.running {
                    s.running = true;
                    break s.requested;
                }
            }
            pass_over.await;
        };
        let mut running = Running {
            passes: self,
            covers: None,
        };
        pass().await;
        running.covers = Some(covers);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is three plain counters, consistent after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Ends a pass however it ends: finished (`covers` set), failed by panic,
/// or dropped mid-way because its caller went away. In the last two cases
/// nothing is covered, and a waiter takes the next turn.
struct Running<'a> {
    passes: &'a SharedPasses,
    covers: Option<u64>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut s = self.passes.state();
        s.running = false;
        if let Some(covers) = self.covers {
            s.covered = s.covered.max(covers);
        }
        drop(s);
        self.passes.pass_over.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    /// Lets spawned tasks run until they block (current-thread runtime).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    /// A first trigger whose pass waits for `gate`, spawned and started.
    async fn blocked_pass(
        passes: &Arc<SharedPasses>,
        count: &Arc<AtomicU64>,
        gate: &Arc<Notify>,
    ) -> tokio::task::JoinHandle<()> {
        let (p, c, g) = (passes.clone(), count.clone(), gate.clone());
        let first = tokio::spawn(async move {
            p.trigger(|| async move {
                c.fetch_add(1, Ordering::SeqCst);
                g.notified().await;
            })
            .await
        });
        settle().await;
        assert_eq!(count.load(Ordering::SeqCst), 1, "the first pass runs");
        first
    }

    fn counting_trigger(
        passes: &Arc<SharedPasses>,
        count: &Arc<AtomicU64>,
    ) -> tokio::task::JoinHandle<()> {
        let (p, c) = (passes.clone(), count.clone());
        tokio::spawn(async move {
            p.trigger(|| async move {
                c.fetch_add(1, Ordering::SeqCst);
            })
            .await
        })
    }

    #[tokio::test]
    async fn triggers_during_a_pass_wait_for_and_share_the_next_one() {
        let passes = Arc::new(SharedPasses::default());
        let count = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Notify::new());
        let first = blocked_pass(&passes, &count, &gate).await;

        let waiters: Vec<_> = (0..10).map(|_| counting_trigger(&passes, &count)).collect();
        settle().await;
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "a pass that started before them does not cover them"
        );

        gate.notify_one();
        tokio::time::timeout(PATIENCE, first)
            .await
            .unwrap()
            .unwrap();
        for w in waiters {
            tokio::time::timeout(PATIENCE, w).await.unwrap().unwrap();
        }
        assert_eq!(
            count.load(Ordering::SeqCst),
            2,
            "ten waiters, one shared pass"
        );
    }

    #[tokio::test]
    async fn a_pass_abandoned_by_its_caller_hands_over_to_a_waiter() {
        let passes = Arc::new(SharedPasses::default());
        let count = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Notify::new());
        let first = blocked_pass(&passes, &count, &gate).await;
        let waiter = counting_trigger(&passes, &count);
        settle().await;

        // The client hung up mid-pass: axum drops the request's future.
        first.abort();
        tokio::time::timeout(PATIENCE, waiter)
            .await
            .expect("the waiter runs a pass of its own")
            .unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_trigger_after_a_pass_gets_a_new_one() {
        let passes = SharedPasses::default();
        let count = AtomicU64::new(0);
        for expected in 1..=3 {
            passes
                .trigger(|| async {
                    count.fetch_add(1, Ordering::SeqCst);
                })
                .await;
            assert_eq!(count.load(Ordering::SeqCst), expected);
        }
    }

    /// Many triggers on several threads, passes that yield mid-way: every
    /// trigger returns, and only after a pass that started after it ended.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_triggers_all_return_covered() {
        let passes = Arc::new(SharedPasses::default());
        let started = Arc::new(AtomicU64::new(0));
        let latest_finished = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..2_000u64)
            .map(|i| {
                let (p, s, f) = (passes.clone(), started.clone(), latest_finished.clone());
                tokio::spawn(async move {
                    if i % 3 == 0 {
                        tokio::task::yield_now().await;
                    }
                    let seen = s.load(Ordering::SeqCst);
                    let (s2, f2) = (s.clone(), f.clone());
                    p.trigger(|| async move {
                        let number = s2.fetch_add(1, Ordering::SeqCst) + 1;
                        tokio::task::yield_now().await;
                        f2.fetch_max(number, Ordering::SeqCst);
                    })
                    .await;
                    assert!(
                        f.load(Ordering::SeqCst) > seen,
                        "returned before a pass that started after it ended"
                    );
                })
            })
            .collect();
        for t in tasks {
            tokio::time::timeout(PATIENCE, t)
                .await
                .expect("a trigger never returned")
                .unwrap();
        }
        assert!(
            started.load(Ordering::SeqCst) < 2_000,
            "triggers shared passes"
        );
    }
}

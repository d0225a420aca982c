//! Time, from one place. Every reading of the time the server acts on goes
//! through a [`Clock`] handed down from startup: wall time ([`Clock::now`])
//! for what is stored and compared with tokens, monotonic time
//! ([`Clock::instant`]) for rate limits, and the timers built on it
//! ([`Clock::sleep`], [`Clock::interval`], [`Clock::timeout`]) for
//! presence heartbeats, the background loops and the WebSocket driver.
//!
//! [`Clock::system`] reads the operating system and sleeps on tokio's timer.
//! [`Clock::manual`] stands still until a test moves it with
//! [`ManualClock::advance`], which wakes the sleepers whose deadline it
//! passed: tests make time pass instead of waiting for it.
//!
//! Not on the clock: bounds on waits for real I/O that no rule depends on
//! (the database ping, the event relays' retries, hyper's header timeout,
//! the shutdown grace). The I/O they bound runs in real time.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Where the time comes from. Cheap to clone; on the system clock `now()`
/// is `Utc::now()` behind one match, with no lock.
#[derive(Clone)]
pub struct Clock(Source);

#[derive(Clone)]
enum Source {
    System,
    /// This machine's clock, off by the given amount (tests of skew
    /// between processes); timers run in real time.
    Skewed(chrono::TimeDelta),
    Manual(Arc<Manual>),
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Source::System => f.write_str("Clock::System"),
            Source::Skewed(by) => write!(f, "Clock::Skewed({by})"),
            Source::Manual(m) => write!(f, "Clock::Manual({})", m.now()),
        }
    }
}

/// The timeout of [`Clock::timeout`] passed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

/// Where a sleep too long for an instant to hold (a token that expires in
/// a million years) ends instead, as tokio's do.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `at + by`, or [`FAR_FUTURE`] from `at` where that would overflow.
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by).unwrap_or_else(|| at + FAR_FUTURE)
}

impl Clock {
    /// The operating system's time.
    pub fn system() -> Clock {
        Clock(Source::System)
    }

    /// The operating system's time off by `by`: one machine's wrong clock,
    /// for tests that processes agree whatever their clocks say.
    pub fn skewed(by: chrono::TimeDelta) -> Clock {
        Clock(Source::Skewed(by))
    }

    /// Whether this clock stands for time itself rather than for one
    /// machine's reading of it: a test's manual clock, which every process
    /// of the test shares. Times that several processes compare are then
    /// taken from it instead of the database's clock, so that a test moving
    /// it moves them too.
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Source::Manual(_))
    }

    /// A clock that reads `start` until [`ManualClock::advance`] moves it.
    pub fn manual(start: DateTime<Utc>) -> ManualClock {
        ManualClock(Arc::new(Manual {
            wall: start,
            origin: Instant::now(),
            state: Mutex::default(),
            rearmed: tokio::sync::Notify::new(),
        }))
    }

    /// Wall time.
    #[inline]
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Source::System => Utc::now(),
            Source::Skewed(by) => Utc::now() + *by,
            Source::Manual(m) => m.now(),
        }
    }

    /// Monotonic time, for durations and deadlines.
    #[inline]
    pub fn instant(&self) -> Instant {
        match &self.0 {
            Source::System | Source::Skewed(_) => Instant::now(),
            Source::Manual(m) => m.instant(),
        }
    }

    /// The instant `after` from now, for deadlines; a far one saturates
    /// rather than overflowing.
    pub fn deadline(&self, after: Duration) -> Instant {
        later(self.instant(), after)
    }

    /// Completes `duration` from now.
    pub fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(self.deadline(duration))
    }

    /// Completes at `deadline` (an [`Clock::instant`] of this clock).
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        self.sleeper(deadline, false)
    }

    fn sleeper(&self, deadline: Instant, periodic: bool) -> Sleep {
        let inner = match &self.0 {
            Source::System | Source::Skewed(_) => SleepInner::System {
                sleep: tokio::time::sleep_until(deadline.into()),
            },
            Source::Manual(m) => SleepInner::Manual {
                waiter: Waiter::new(m.clone(), deadline, periodic),
            },
        };
        Sleep { inner }
    }

    /// `future`'s output, unless `limit` passes first.
    pub async fn timeout<F: Future>(
        &self,
        limit: Duration,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        let sleep = self.sleep(limit);
        tokio::select! {
            biased;
            out = future => Ok(out),
            () = sleep => Err(Elapsed),
        }
    }

    /// Ticks at once, then every `period`. A late tick delays the next by
    /// a whole period (tokio's `MissedTickBehavior::Delay`): background
    /// work never runs twice to catch up.
    pub fn interval(&self, period: Duration) -> Interval {
        Interval {
            sleep: Box::pin(self.sleeper(self.instant(), true)),
            clock: self.clone(),
            period,
        }
    }
}

pin_project_lite::pin_project! {
    /// Completes at a deadline of its clock; see [`Clock::sleep`].
    pub struct Sleep {
        #[pin]
        inner: SleepInner,
    }
}

pin_project_lite::pin_project! {
    #[project = SleepProj]
    enum SleepInner {
        System { #[pin] sleep: tokio::time::Sleep },
        Manual { waiter: Waiter },
    }
}

impl Sleep {
    /// Moves the deadline, whether or not the sleep has completed.
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        match self.project().inner.project() {
            SleepProj::System { sleep } => sleep.reset(deadline.into()),
            SleepProj::Manual { waiter } => waiter.reset(deadline),
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.project().inner.project() {
            SleepProj::System { sleep } => sleep.poll(cx),
            SleepProj::Manual { waiter } => waiter.poll(cx),
        }
    }
}

/// Periodic ticks; see [`Clock::interval`].
pub struct Interval {
    sleep: Pin<Box<Sleep>>,
    clock: Clock,
    period: Duration,
}

impl Interval {
    /// Waits for the next tick. Cancel-safe: a tick is taken only when
    /// this returns.
    pub async fn tick(&mut self) {
        self.sleep.as_mut().await;
        self.reset();
    }

    /// The next tick comes a whole period from now.
    pub fn reset(&mut self) {
        let next = self.clock.deadline(self.period);
        self.sleep.as_mut().reset(next);
    }
}

/// A clock that tests move by hand; [`ManualClock::clock`] is the [`Clock`]
/// to give the server.
#[derive(Clone)]
pub struct ManualClock(Arc<Manual>);

/// How long [`ManualClock::advance`] waits for the periodic work it set off.
const SETTLE_PATIENCE: Duration = Duration::from_secs(30);

impl ManualClock {
    pub fn clock(&self) -> Clock {
        Clock(Source::Manual(self.0.clone()))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }

    /// Steps the wall time alone, as an operator or NTP may: monotonic time,
    /// and so every timer, stays where it is. For tests about dates (days
    /// later) that drive the background work themselves.
    pub fn step_wall(&self, by: chrono::TimeDelta) {
        let mut state = self.0.lock();
        state.wall_step += by;
    }

    /// Moves time forward by `by` and wakes every sleeper whose deadline
    /// that passes. Returns once the periodic timers ([`Interval`]s) it set
    /// off wait for their next tick again (or are gone): the work their
    /// owners do on a tick (a heartbeat written, a sweep run) is then done.
    ///
    /// What is already under way gets a turn first: on a current-thread
    /// runtime, tasks that are ready run, and input that has arrived (a
    /// client's answer to a ping) is read, before time moves.
    ///
    /// # Panics
    /// If that work is not done within 30 s (real time): its owner is stuck,
    /// maybe on a timer that needs the clock moved further.
    pub async fn advance(&self, by: Duration) {
        // Resumes after the runtime has run out of ready tasks and polled
        // its I/O driver.
        tokio::task::yield_now().await;
        let due = {
            let mut state = self.0.lock();
            state.elapsed += by;
            let now = later(self.0.origin, state.elapsed);
            let ManualState {
                sleepers, fired, ..
            } = &mut *state;
            let mut due = Vec::new();
            for (id, s) in sleepers.iter_mut().filter(|(_, s)| s.deadline <= now) {
                if s.periodic && s.polled {
                    fired.insert(*id);
                }
                due.extend(s.waker.take());
            }
            due
        };
        due.into_iter().for_each(Waker::wake);

        let patience = tokio::time::Instant::now() + SETTLE_PATIENCE;
        loop {
            let rearmed = self.0.rearmed.notified();
            let mut rearmed = std::pin::pin!(rearmed);
            rearmed.as_mut().enable();
            let pending = self.0.lock().fired.len();
            if pending == 0 {
                return;
            }
            if tokio::time::timeout_at(patience, rearmed).await.is_err() {
                panic!(
                    "ManualClock::advance: {pending} periodic timer(s) it set off did not \
                     wait for their next tick within {SETTLE_PATIENCE:?}"
                );
            }
        }
    }
}

struct Manual {
    /// The wall time at the start, and the instant that stands for it.
    wall: DateTime<Utc>,
    origin: Instant,
    state: Mutex<ManualState>,
    /// Told when a periodic timer in `fired` waits again or is dropped.
    rearmed: tokio::sync::Notify,
}

#[derive(Default)]
struct ManualState {
    elapsed: Duration,
    /// Wall time stepped apart from monotonic time (`step_wall`).
    wall_step: chrono::TimeDelta,
    next_id: u64,
    /// Every live sleeper of this clock, by id.
    sleepers: HashMap<u64, Sleeper>,
    /// Periodic timers that came due in an `advance` and have not waited
    /// for their next tick since. An interval is tracked once it has been
    /// waited on: one made and never ticked has no owner to wait for.
    fired: HashSet<u64>,
}

struct Sleeper {
    deadline: Instant,
    /// Set while its owner waits.
    waker: Option<Waker>,
    periodic: bool,
    polled: bool,
}

impl Manual {
    fn lock(&self) -> MutexGuard<'_, ManualState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn instant(&self) -> Instant {
        later(self.origin, self.lock().elapsed)
    }

    fn now(&self) -> DateTime<Utc> {
        let (elapsed, step) = {
            let state = self.lock();
            (state.elapsed, state.wall_step)
        };
        let elapsed = chrono::TimeDelta::from_std(elapsed).unwrap_or(chrono::TimeDelta::MAX);
        self.wall + elapsed + step
    }
}

/// One sleeper on a manual clock: its entry in the clock's state.
struct Waiter {
    clock: Arc<Manual>,
    id: u64,
}

impl Waiter {
    fn new(clock: Arc<Manual>, deadline: Instant, periodic: bool) -> Self {
        let id = {
            let mut state = clock.lock();
            state.next_id += 1;
            let id = state.next_id;
            state.sleepers.insert(
                id,
                Sleeper {
                    deadline,
                    waker: None,
                    periodic,
                    polled: false,
                },
            );
            id
        };
        Waiter { clock, id }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.clock.lock();
        let now = later(self.clock.origin, state.elapsed);
        let Some(sleeper) = state.sleepers.get_mut(&self.id) else {
            return Poll::Ready(());
        };
        sleeper.polled = true;
        if now >= sleeper.deadline {
            sleeper.waker = None;
            return Poll::Ready(());
        }
        match &mut sleeper.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        let rearmed = state.fired.remove(&self.id);
        drop(state);
        if rearmed {
            self.clock.rearmed.notify_waiters();
        }
        Poll::Pending
    }

    fn reset(&mut self, deadline: Instant) {
        let mut state = self.clock.lock();
        let now = later(self.clock.origin, state.elapsed);
        let Some(sleeper) = state.sleepers.get_mut(&self.id) else {
            return;
        };
        sleeper.deadline = deadline;
        if deadline <= now {
            // Already due: its owner polls it again to see so.
            if let Some(waker) = sleeper.waker.take() {
                drop(state);
                waker.wake();
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut state = self.clock.lock();
        state.sleepers.remove(&self.id);
        let rearmed = state.fired.remove(&self.id);
        drop(state);
        if rearmed {
            self.clock.rearmed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests;

use super::*;
use futures_util::FutureExt;

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

#[tokio::test]
async fn a_manual_clock_moves_only_when_advanced() {
    let hand = Clock::manual(start());
    let clock = hand.clock();
    let t0 = clock.instant();
    assert_eq!(clock.now(), start());
    hand.advance(Duration::from_millis(1500)).await;
    assert_eq!(clock.now(), start() + chrono::TimeDelta::milliseconds(1500));
    assert_eq!(clock.instant() - t0, Duration::from_millis(1500));
    hand.step_wall(chrono::TimeDelta::days(10));
    assert_eq!(
        clock.now(),
        start() + chrono::TimeDelta::milliseconds(1500) + chrono::TimeDelta::days(10)
    );
    assert_eq!(
        clock.instant() - t0,
        Duration::from_millis(1500),
        "timers stay"
    );
}

#[tokio::test]
async fn sleepers_wake_when_their_deadline_is_passed() {
    let hand = Clock::manual(start());
    let clock = hand.clock();
    let mut sleep = std::pin::pin!(clock.sleep(Duration::from_secs(2)));
    assert!(sleep.as_mut().now_or_never().is_none());
    hand.advance(Duration::from_secs(1)).await;
    assert!(sleep.as_mut().now_or_never().is_none(), "not due yet");
    hand.advance(Duration::from_secs(1)).await;
    assert!(sleep.as_mut().now_or_never().is_some(), "due");

    // A sleeper parked in a task is woken by the advance.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sleeping = clock.sleep(Duration::from_secs(5));
    tokio::spawn(async move {
        sleeping.await;
        let _ = tx.send(());
    });
    tokio::task::yield_now().await;
    hand.advance(Duration::from_secs(5)).await;
    tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .expect("woken")
        .unwrap();
}

#[tokio::test]
async fn a_reset_sleep_follows_its_new_deadline() {
    let hand = Clock::manual(start());
    let clock = hand.clock();
    let mut sleep = std::pin::pin!(clock.sleep(Duration::from_secs(1)));
    assert!(sleep.as_mut().now_or_never().is_none());
    sleep
        .as_mut()
        .reset(clock.instant() + Duration::from_secs(10));
    hand.advance(Duration::from_secs(5)).await;
    assert!(sleep.as_mut().now_or_never().is_none());
    hand.advance(Duration::from_secs(5)).await;
    assert!(sleep.as_mut().now_or_never().is_some());
}

#[tokio::test]
async fn timeouts_follow_the_clock() {
    let hand = Clock::manual(start());
    let clock = hand.clock();
    assert_eq!(
        clock.timeout(Duration::from_secs(1), async { 7 }).await,
        Ok(7)
    );
    let waiting = tokio::spawn({
        let clock = clock.clone();
        async move {
            clock
                .timeout(Duration::from_secs(1), std::future::pending::<()>())
                .await
        }
    });
    tokio::task::yield_now().await;
    hand.advance(Duration::from_secs(1)).await;
    assert_eq!(waiting.await.unwrap(), Err(Elapsed));
}

/// `advance` returns once an interval's owner has done its tick's work
/// and waits again: a test reads the result without sleeping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advance_returns_once_periodic_work_is_done() {
    let hand = Clock::manual(start());
    let clock = hand.clock();
    let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut interval = clock.interval(Duration::from_secs(1));
    let counted = ticks.clone();
    tokio::spawn(async move {
        loop {
            interval.tick().await;
            // Work that takes real time, as a database write does.
            tokio::time::sleep(Duration::from_millis(20)).await;
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    // The first tick is at once.
    while ticks.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    for n in 2..=4 {
        hand.advance(Duration::from_secs(1)).await;
        assert_eq!(ticks.load(std::sync::atomic::Ordering::SeqCst), n);
    }
    // Less than a period: no tick.
    hand.advance(Duration::from_millis(500)).await;
    assert_eq!(ticks.load(std::sync::atomic::Ordering::SeqCst), 4);
    // Several periods at once: one tick, and the next a period later.
    hand.advance(Duration::from_secs(10)).await;
    assert_eq!(ticks.load(std::sync::atomic::Ordering::SeqCst), 5);
}

#[tokio::test]
async fn the_system_clock_sleeps_in_real_time() {
    let clock = Clock::system();
    let before = clock.instant();
    clock.sleep(Duration::from_millis(20)).await;
    assert!(clock.instant() - before >= Duration::from_millis(20));
    let mut ticks = clock.interval(Duration::from_millis(10));
    ticks.tick().await;
    ticks.tick().await;
    assert!(clock.instant() - before >= Duration::from_millis(30));
}

//! Fault suite: the real `switchboard` binary while its database restarts,
//! while a process is killed with SIGKILL, and while one is stopped with
//! SIGTERM. In every case no acknowledged message is lost, and a client
//! that resumes with `afterSeq` gets every message once, in order.
//!
//! Run alone with `cargo test -p switchboard --test faults`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard::auth::Role;
use testkit::db::{fresh_database, PgCluster};
use testkit::graphql::{self, SendError};
use testkit::server::{spawn_process, Options, Process};
use testkit::tokens::token;
use testkit::ws::follow;

/// What the client reads while the database is away.
const UNAVAILABLE: &str = "the database is unavailable; retry shortly";
/// Guards against a hung test; nothing is timed against it.
const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until `check` holds, polling; fails the test after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < PATIENCE, "gave up waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The real binary on `database`, with manual routing (the tests accept
/// by hand) and no message rate limit (they race many sends).
async fn start_server(database: &str, options: Options) -> Process {
    let mut all = Options::default()
        .set("ROUTING_MODE", "manual")
        .set("MESSAGE_RATE_PER_SEC", "100000")
        .set("MESSAGE_BURST", "100000");
    for (name, value) in options.settings() {
        all = all.set(name, value);
    }
    spawn_process(env!("CARGO_BIN_EXE_switchboard"), all.database(database)).await
}

/// Two processes on one fresh database.
async fn two_servers() -> (Process, Process) {
    let db_url = fresh_database().await;
    (
        start_server(&db_url, Options::default()).await,
        start_server(&db_url, Options::default()).await,
    )
}

/// What a chatting client recorded: every send that returned data, and
/// every one that did not.
#[derive(Default)]
struct Sends {
    acked: Vec<(i64, String)>,
    failed: Vec<(String, SendError)>,
}

type Shared = Arc<Mutex<Sends>>;

fn record(sends: &Shared, id: String, sent: Result<i64, SendError>) {
    let mut s = sends.lock().expect("sends");
    match sent {
        Ok(seq) => s.acked.push((seq, id)),
        Err(e) => s.failed.push((id, e)),
    }
}

/// The record, once every sender is done with it.
fn into_sends(sends: Shared) -> Sends {
    Arc::try_unwrap(sends)
        .ok()
        .expect("one owner")
        .into_inner()
        .expect("sends")
}

fn acked(sends: &Shared) -> usize {
    sends.lock().expect("sends").acked.len()
}

/// Stored messages must be seqs 1..n, and hold every acknowledged send
/// under the seq it was acknowledged with.
fn assert_nothing_acknowledged_lost(transcript: &[(i64, String)], sends: &Sends) {
    let seqs: Vec<i64> = transcript.iter().map(|(s, _)| *s).collect();
    assert_one_to_n("transcript", &seqs);
    let stored: HashSet<&(i64, String)> = transcript.iter().collect();
    for ack in &sends.acked {
        assert!(stored.contains(ack), "acknowledged {ack:?} is not stored");
    }
    // System messages (e.g. the agent joining) carry no clientMessageId.
    let sent: Vec<&str> = transcript
        .iter()
        .map(|(_, c)| c.as_str())
        .filter(|c| !c.is_empty())
        .collect();
    let ids: HashSet<&str> = sent.iter().copied().collect();
    assert_eq!(ids.len(), sent.len(), "a message is stored twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_chat_loses_nothing_acknowledged() {
    let pg = PgCluster::start();
    let options = Options::default()
        // Long enough to outlast the outage; short enough that the customer's
        // feed writes presence during it.
        .set("RESUME_GRACE_SECS", "40")
        // Requests fail after 2 s instead of 10 while the database is away,
        // which only makes the test quicker.
        .set("DB_ACQUIRE_TIMEOUT_SECS", "2");
    let mut server = start_server(&pg.url(), options).await;
    let api = server.api.clone();
    let customer = token(Role::Customer, "pg-customer");
    let agent = token(Role::Agent, "pg-agent");
    let admin = token(Role::Admin, "pg-admin");
    let session = api.active_session(&customer, &agent).await;

    let until = Arc::new(AtomicI64::new(0));
    let customer_feed = follow(
        vec![server.addr],
        customer.clone(),
        session.clone(),
        until.clone(),
    );
    let agent_feed = follow(
        vec![server.addr],
        agent.clone(),
        session.clone(),
        until.clone(),
    );

    // Both sides chat throughout, the way a client does: one message after
    // another, moving on when one fails.
    let sends: Shared = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let chat = {
        let (api, session, sends, stop) =
            (api.clone(), session.clone(), sends.clone(), stop.clone());
        let (customer, agent) = (customer.clone(), agent.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let from = if i % 2 == 0 { &agent } else { &customer };
                let id = format!("m-{i}");
                let sent = api.try_send(from, &session, &id).await;
                record(&sends, id, sent);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    eventually("10 messages are acknowledged", || async {
        acked(&sends) >= 10
    })
    .await;

    pg.stop();
    eventually("/readyz says 503", || async {
        api.status("/readyz").await.ok() == Some(503)
    })
    .await;
    let failed_before = sends.lock().expect("sends").failed.len();
    eventually("3 sends fail while the database is down", || async {
        sends.lock().expect("sends").failed.len() >= failed_before + 3
    })
    .await;
    // The customer's open feed refreshes their presence every 10 s (a
    // quarter of RESUME_GRACE_SECS): that write fails and ends the feed.
    eventually(
        "the customer's feed fails while the database is down",
        || async { customer_feed.errors_so_far() > 0 },
    )
    .await;
    assert_eq!(api.status("/healthz").await.ok(), Some(200));
    // A read answers with the contract's code and a message the client can
    // act on, nothing from inside the server.
    let read = api
        .try_gql(
            Some(&customer),
            "query($id: ID!) { session(id: $id) { status } }",
            json!({ "id": session }),
        )
        .await
        .expect("the server answers while the database is down");
    assert_unavailable(&read);

    pg.start_again();
    eventually("/readyz says 200 again", || async {
        api.status("/readyz").await.ok() == Some(200)
    })
    .await;
    let at_recovery = acked(&sends);
    eventually("10 more messages are acknowledged", || async {
        acked(&sends) >= at_recovery + 10
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    chat.await.expect("chat task");
    assert!(server.running(), "the server process stayed up");
    assert_eq!(
        api.state(&session).await.0,
        "ACTIVE",
        "the outage did not end the chat"
    );

    let mut sends = into_sends(sends);
    assert!(!sends.failed.is_empty(), "the outage refused some sends");
    for (id, failure) in &sends.failed {
        match failure {
            SendError::Refused(body) => assert_unavailable(body),
            SendError::Transport(e) => panic!("{id}: no answer while the database was down: {e}"),
        }
    }
    // The client retries what was not acknowledged, with the same ids: a
    // send that was stored although its answer was lost is not stored again.
    for (id, _) in std::mem::take(&mut sends.failed) {
        let from = if id.trim_start_matches("m-").parse::<i64>().unwrap_or(1) % 2 == 0 {
            &agent
        } else {
            &customer
        };
        let seq = api
            .try_send(from, &session, &id)
            .await
            .unwrap_or_else(|e| panic!("retry of {id} failed: {e:?}"));
        sends.acked.push((seq, id));
    }
    let transcript = api.transcript(&admin, &session).await;
    assert_nothing_acknowledged_lost(&transcript, &sends);
    // Retried with their ids, every send is now acknowledged exactly once.
    let acked_set: HashSet<&(i64, String)> = sends.acked.iter().collect();
    let unexplained: Vec<_> = transcript
        .iter()
        .filter(|m| !m.1.is_empty() && !acked_set.contains(m))
        .collect();
    assert!(
        unexplained.is_empty(),
        "stored but never sent: {unexplained:?}; acked {:?}",
        sends.acked
    );

    until.store(transcript.len() as i64, Ordering::SeqCst);
    let log = customer_feed.finish(PATIENCE).await;
    let agent_log = agent_feed.finish(PATIENCE).await;
    eprintln!(
        "postgres restart: {} messages; customer subscriptions {:?}, {} errors; agent subscriptions {:?}",
        transcript.len(),
        log.subscriptions,
        log.errors.len(),
        agent_log.subscriptions,
    );
    // The customer resumed from the last seq it saw; the agent's feed
    // either lived through the outage or resumed the same way.
    assert!(
        log.subscriptions
            .iter()
            .skip(1)
            .any(|(_, after)| *after > 0),
        "{:?}",
        log.subscriptions
    );
    for feed in [&log, &agent_log] {
        for e in &feed.errors {
            assert_unavailable(e);
        }
    }
    assert_one_to_n("customer", &log.seqs);
    assert_one_to_n("agent", &agent_log.seqs);
    assert!(server.panics().is_empty(), "{:?}", server.panics());
}

/// Presence cannot be recorded while the database is away. An outage longer
/// than RESUME_GRACE_SECS must not end the chats of customers who come back
/// once it is over: the grace period restarts when the database does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_grace_period_ends_no_chat() {
    let pg = PgCluster::start();
    let options = Options::default()
        // Absence is looked for every 0.75 s and judged after 3 s.
        .set("RESUME_GRACE_SECS", "3")
        .set("DB_ACQUIRE_TIMEOUT_SECS", "1");
    let mut server = start_server(&pg.url(), options).await;
    let api = server.api.clone();
    let customer = token(Role::Customer, "away-customer");
    let agent = token(Role::Agent, "away-agent");
    let session = api.active_session(&customer, &agent).await;
    api.try_send(&customer, &session, "before")
        .await
        .expect("a message before the outage");

    pg.stop();
    eventually("/readyz says 503", || async {
        api.status("/readyz").await.ok() == Some(503)
    })
    .await;
    // Longer than the grace period and its slack.
    tokio::time::sleep(Duration::from_secs(5)).await;
    pg.start_again();
    eventually("/readyz says 200 again", || async {
        api.status("/readyz").await.ok() == Some(200)
    })
    .await;
    // Several absence sweeps run before the customer is back.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        api.state(&session).await.0,
        "ACTIVE",
        "the outage ended the chat"
    );
    api.try_send(&customer, &session, "after")
        .await
        .expect("the customer writes on after the outage");
    assert!(server.running(), "the server process stayed up");
}

/// A refusal because the database is away: INTERNAL, a message that says
/// so, and `retryable`.
fn assert_unavailable(body: &Value) {
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["code"], "INTERNAL", "{body}");
    assert_eq!(error["message"], UNAVAILABLE, "{body}");
    assert_eq!(error["extensions"]["retryable"], true, "{body}");
}

/// Sends messages from both sides until stopped: the customer through
/// whichever server is up (as a load balancer would pick), the agent
/// through `agent_api`. A send that gets no answer is retried with the
/// same clientMessageId on the next server, so it is stored at most once.
fn chat_across(
    customer_apis: Vec<graphql::Client>,
    agent_api: graphql::Client,
    customer: String,
    agent: String,
    session: String,
    sends: Shared,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0;
        let mut server = 0;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            let id = format!("m-{i}");
            let (api, from) = if i % 2 == 0 {
                (&agent_api, &agent)
            } else {
                (&customer_apis[server % customer_apis.len()], &customer)
            };
            let mut attempt = api.try_send(from, &session, &id).await;
            if matches!(attempt, Err(SendError::Transport(_))) && from == &customer {
                server += 1;
                let api = &customer_apis[server % customer_apis.len()];
                attempt = api.try_send(from, &session, &id).await;
            }
            record(&sends, id, attempt);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_process_mid_chat_loses_nothing() {
    let (mut a, b) = two_servers().await;
    let customer = token(Role::Customer, "kill-customer");
    let agent = token(Role::Agent, "kill-agent");
    let admin = token(Role::Admin, "kill-admin");
    let session = b.active_session(&customer, &agent).await;

    let until = Arc::new(AtomicI64::new(0));
    // The customer is on A, the agent on B.
    let customer_feed = follow(
        vec![a.addr, b.addr],
        customer.clone(),
        session.clone(),
        until.clone(),
    );
    let agent_feed = follow(vec![b.addr], agent.clone(), session.clone(), until.clone());
    let sends: Shared = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let chat = chat_across(
        vec![a.api.clone(), b.api.clone()],
        b.api.clone(),
        customer.clone(),
        agent.clone(),
        session.clone(),
        sends.clone(),
        stop.clone(),
    );
    eventually("10 messages are acknowledged", || async {
        acked(&sends) >= 10
    })
    .await;

    a.signal("KILL");
    assert!(a.wait_exit(PATIENCE).is_some(), "A is gone");
    let at_kill = acked(&sends);
    eventually("10 more messages are acknowledged", || async {
        acked(&sends) >= at_kill + 10
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    chat.await.expect("chat task");

    let sends = into_sends(sends);
    let transcript = b.transcript(&admin, &session).await;
    assert_nothing_acknowledged_lost(&transcript, &sends);
    assert_eq!(
        b.state(&session).await.0,
        "ACTIVE",
        "the kill did not end the chat"
    );

    until.store(transcript.len() as i64, Ordering::SeqCst);
    let customer_log = customer_feed.finish(PATIENCE).await;
    let agent_log = agent_feed.finish(PATIENCE).await;
    eprintln!(
        "sigkill: {} messages, customer subscriptions {:?}",
        transcript.len(),
        customer_log.subscriptions
    );
    assert_eq!(customer_log.subscriptions[0], (a.addr, 0));
    assert!(
        customer_log
            .subscriptions
            .iter()
            .any(|(addr, after)| *addr == b.addr && *after > 0),
        "the customer resumed on B from the last seq it saw: {:?}",
        customer_log.subscriptions
    );
    assert_one_to_n("customer", &customer_log.seqs);
    assert_one_to_n("agent", &agent_log.seqs);
    assert!(b.panics().is_empty(), "{:?}", b.panics());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_requests_closes_sockets_with_1012_and_exits_0() {
    let (mut a, b) = two_servers().await;
    let customer = token(Role::Customer, "term-customer");
    let agent = token(Role::Agent, "term-agent");
    let admin = token(Role::Admin, "term-admin");
    let session = a.active_session(&customer, &agent).await;

    let until = Arc::new(AtomicI64::new(0));
    let customer_feed = follow(
        vec![a.addr, b.addr],
        customer.clone(),
        session.clone(),
        until.clone(),
    );
    let agent_feed = follow(
        vec![a.addr, b.addr],
        agent.clone(),
        session.clone(),
        until.clone(),
    );

    // Several senders at once, as fast as answers come, so that requests are
    // in flight when the signal arrives. Each stops at its first failure.
    let sends: Shared = Default::default();
    let senders: Vec<_> = (0..8)
        .map(|n| {
            let (api, session, sends) = (a.api.clone(), session.clone(), sends.clone());
            let from = if n % 2 == 0 {
                customer.clone()
            } else {
                agent.clone()
            };
            tokio::spawn(async move {
                for i in 0.. {
                    let id = format!("s{n}-{i}");
                    let sent = api.try_send(&from, &session, &id).await;
                    let mut s = sends.lock().expect("sends");
                    match sent {
                        Ok(seq) => s.acked.push((seq, id)),
                        Err(e) => {
                            s.failed.push((id, e));
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    eventually("20 messages are acknowledged", || async {
        acked(&sends) >= 20
    })
    .await;

    let before_signal = acked(&sends);
    a.signal("TERM");
    let status = a
        .wait_exit(Duration::from_secs(30))
        .expect("A exits within 30 s of SIGTERM");
    assert!(status.success(), "A exits with status 0, got {status}");
    for s in senders {
        s.await.expect("sender task");
    }

    let sends = into_sends(sends);
    for (id, failure) in &sends.failed {
        // A request the server accepted is answered; refused ones get no
        // answer at all (the listener is closed), never a half-done one.
        if let SendError::Refused(body) = failure {
            panic!("{id} was answered with an error: {body}");
        }
    }
    let transcript = b.transcript(&admin, &session).await;
    assert_nothing_acknowledged_lost(&transcript, &sends);

    until.store(transcript.len() as i64, Ordering::SeqCst);
    let customer_log = customer_feed.finish(PATIENCE).await;
    let agent_log = agent_feed.finish(PATIENCE).await;
    eprintln!(
        "sigterm: {} messages, {} acknowledged ({} after the signal was sent), customer subscriptions {:?}, closes {:?}",
        transcript.len(),
        sends.acked.len(),
        sends.acked.len() - before_signal,
        customer_log.subscriptions,
        customer_log.closes,
    );
    for log in [&customer_log, &agent_log] {
        assert_eq!(log.subscriptions[0], (a.addr, 0));
        assert_eq!(log.closes.first(), Some(&Some(1012)), "{:?}", log.closes);
        assert!(
            log.subscriptions
                .iter()
                .any(|(addr, after)| *addr == b.addr && *after > 0),
            "resumed on B from the last seq seen: {:?}",
            log.subscriptions
        );
    }
    assert_one_to_n("customer", &customer_log.seqs);
    assert_one_to_n("agent", &agent_log.seqs);
    assert!(b.panics().is_empty(), "{:?}", b.panics());
}

/// Asserts that `seqs` is exactly 1, 2, …, n.
fn assert_one_to_n(what: &str, seqs: &[i64]) {
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(
        seqs,
        expected.as_slice(),
        "{what}: not 1..n in order without gap or duplicate"
    );
}

// Webhooks: the outbox under faults. Each event committed is delivered,
// whatever happens to the process that committed it or to the database.

mod webhooks {
    use super::*;
    use testkit::receiver::{Receiver, Reply};

    /// Settings for quick webhook faults: a second's timeout (so a lease
    /// lasts three), retries 100 ms apart for as long as a test needs.
    fn webhook_options() -> Options {
        Options::default()
            .set("WEBHOOK_ALLOW_PRIVATE", "true")
            .set("WEBHOOK_TIMEOUT_MS", "1000")
            .set("WEBHOOK_RETRY_SCHEDULE", &["100ms"; 20].join(","))
    }

    /// Registers the receiver for session starts, messages and ends; the
    /// endpoint's id.
    async fn subscribe(server: &Process, receiver: &Receiver) -> String {
        let data = server
            .as_admin(
                "mutation($url: String!) { createWebhookEndpoint(input: {url: $url, \
                   events: [SESSION_STARTED, MESSAGE_CREATED, SESSION_ENDED]}) { endpoint { id } } }",
                json!({ "url": receiver.url("/hooks") }),
            )
            .await;
        data["createWebhookEndpoint"]["endpoint"]["id"]
            .as_str()
            .expect("endpoint id")
            .to_owned()
    }

    /// `chats` chats of `messages` messages each, ended: 2 + messages
    /// events each.
    async fn chats(server: &Process, prefix: &str, chats: usize, messages: usize) {
        for c in 0..chats {
            let customer = token(Role::Customer, &format!("{prefix}-c{c}"));
            let agent = token(Role::Agent, &format!("{prefix}-a{c}"));
            let session = server.active_session(&customer, &agent).await;
            for m in 0..messages {
                let sent = server
                    .send(
                        &customer,
                        &session,
                        &format!("m{m}"),
                        &format!("{prefix}-{c}-{m}"),
                    )
                    .await;
                assert!(sent.get("errors").is_none(), "{sent}");
            }
            server.end(&customer, &session).await;
        }
    }

    /// The endpoint's deliveries as `server` lists them: (id, status).
    async fn deliveries(server: &Process, endpoint: &str) -> Vec<(String, String)> {
        let data = server
            .as_admin(
                "query($e: ID!) { webhookDeliveries(endpointId: $e, first: 500) { id status } }",
                json!({ "e": endpoint }),
            )
            .await;
        data["webhookDeliveries"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap_or_default().to_owned(),
                    d["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Waits until `expected` deliveries exist and all are DELIVERED;
    /// checks that each reached the receiver answered 200. Their ids.
    async fn all_delivered(
        server: &Process,
        endpoint: &str,
        receiver: &Receiver,
        expected: usize,
    ) -> Vec<String> {
        eventually(&format!("{expected} deliveries are DELIVERED"), || async {
            let listed = deliveries(server, endpoint).await;
            listed.len() == expected && listed.iter().all(|(_, s)| s == "DELIVERED")
        })
        .await;
        let ids: Vec<String> = deliveries(server, endpoint)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let answered: HashSet<String> = receiver
            .received()
            .iter()
            .filter(|r| r.answered == Some(200))
            .map(|r| r.id().to_owned())
            .collect();
        for id in &ids {
            assert!(answered.contains(id), "{id} was never answered 200");
        }
        ids
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_of_a_process_killed_before_delivering_them_are_delivered_by_another() {
        let db = fresh_database().await;
        let receiver = Receiver::start().await;
        // The first process's attempts hang: it dies in the middle of them,
        // with the rest committed and not yet sent.
        receiver.answer_with(Reply::Hold);
        let first = start_server(&db, webhook_options()).await;
        let endpoint = subscribe(&first, &receiver).await;
        chats(&first, "kill", 3, 4).await;
        let expected = 3 * (2 + 4);
        receiver
            .wait_until("the first attempt", PATIENCE, |r| !r.is_empty())
            .await;
        first.signal("KILL");
        drop(first);
        let held: HashSet<String> = receiver
            .received()
            .iter()
            .map(|r| r.id().to_owned())
            .collect();
        assert!(
            held.len() < expected,
            "all {} were attempted already",
            held.len()
        );

        receiver.answer_with(Reply::Status(200));
        let second = start_server(&db, webhook_options()).await;
        let ids = all_delivered(&second, &endpoint, &receiver, expected).await;
        assert_eq!(ids.len(), expected);
        // What the killed process had begun to send arrives again under the
        // same `webhook-id`, so the receiver can drop the duplicate.
        for id in &held {
            assert!(
                ids.contains(id),
                "{id} was attempted, then delivered under another id"
            );
        }
        assert!(second.panics().is_empty(), "{:?}", second.panics());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_processes_dispatching_one_outbox_send_each_event_once() {
        let db = fresh_database().await;
        let receiver = Receiver::start().await;
        // A default timeout: no lease expires while the receiver answers at once.
        let options = Options::default().set("WEBHOOK_ALLOW_PRIVATE", "true");
        let a = start_server(&db, options.clone()).await;
        let b = start_server(&db, options).await;
        let endpoint = subscribe(&a, &receiver).await;
        futures_util::future::join(chats(&a, "on-a", 4, 5), chats(&b, "on-b", 4, 5)).await;
        let expected = 8 * (2 + 5);
        all_delivered(&b, &endpoint, &receiver, expected).await;
        let received = receiver.received();
        let mut counts: std::collections::HashMap<&str, usize> = Default::default();
        for r in &received {
            *counts.entry(r.id()).or_default() += 1;
        }
        let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
        assert!(twice.is_empty(), "delivered more than once: {twice:?}");
        assert_eq!(received.len(), expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_restart_mid_dispatch_loses_no_event() {
        let pg = PgCluster::start();
        let receiver = Receiver::start().await;
        receiver.answer_with(Reply::Hold);
        let options = webhook_options().set("DB_ACQUIRE_TIMEOUT_SECS", "2");
        let server = start_server(&pg.url(), options).await;
        let endpoint = subscribe(&server, &receiver).await;
        chats(&server, "pg", 3, 3).await;
        let expected = 3 * (2 + 3);
        receiver
            .wait_until("attempts under way", PATIENCE, |r| !r.is_empty())
            .await;
        // The attempts in flight end (time out, or answered) while the
        // database is away: their outcome cannot be recorded.
        pg.stop();
        receiver.answer_with(Reply::Status(200));
        eventually("/readyz says 503", || async {
            server.status("/readyz").await.ok() == Some(503)
        })
        .await;
        pg.start_again();
        all_delivered(&server, &endpoint, &receiver, expected).await;
        assert!(server.panics().is_empty(), "{:?}", server.panics());
    }
}

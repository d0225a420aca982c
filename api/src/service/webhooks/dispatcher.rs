//! The dispatcher: every process runs one. It fans new outbox events out
//! into deliveries (one process at a time), making each one's first
//! attempt on the way, and writes them as those attempts left them; then
//! it leases due retries (rows another process holds are skipped), sends
//! them signed, and settles each attempt: DELIVERED, due again after the
//! schedule's next wait, or FAILED. A process that dies mid-delivery leaves
//! its events unfanned or its leases to expire; another process then sends
//! those again with the same `webhook-id`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use entity::{webhook_delivery, webhook_endpoint};
use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseBackend};
use uuid::Uuid;

use crate::config::WebhookSettings;
use crate::domain::webhooks::{
    check_url, delivery_id, is_internal_address, next_step, parse_retry_after, read_event_types,
    should_disable, AttemptResult, DeliveryStatus, NextStep, WebhookEvent, WebhookEventType,
};
use crate::domain::Message;
use crate::error::AppResult;
use crate::repo::{self, messages, outbox, webhooks};
use crate::service::{Core, Services};
use crate::signing::{self, WebhookSecret};

/// How often a dispatcher looks for work nobody woke it for: events other
/// processes wrote, retries come due, leases expired.
const POLL: Duration = Duration::from_secs(1);
/// Most events fanned out, and deliveries leased, at a time.
const FAN_OUT_BATCH: u64 = 1000;
/// Chains leased at a time (sent side by side), and deliveries in a chain
/// (one session's, for one endpoint, sent one after the other, in order).
const CHAINS: u64 = 64;
const CHAIN_LENGTH: usize = 32;
/// Longest error text kept with a delivery.
const MAX_ERROR_CHARS: usize = 300;
/// While chats carry more than `BUSY_MESSAGES` messages per `BUSY_PROBE`
/// (1,000 a second), deliveries wait, for at most `MAX_YIELD` at a time:
/// see [`yield_to_chats`].
const BUSY_PROBE: Duration = Duration::from_millis(50);
const BUSY_MESSAGES: u64 = 50;
const MAX_YIELD: Duration = Duration::from_secs(2);

/// The dispatcher's thread; it stops when this is stopped or dropped.
pub struct Dispatcher {
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Dispatcher {
    /// Stops the dispatcher (its thread ends on its own, in well under a
    /// second). Deliveries it was sending are sent again once their lease
    /// runs out.
    pub fn stop(self) {}
}

/// Starts the dispatcher on a thread of its own at the lowest scheduling
/// priority, with its own runtime: deliveries yield the CPU to chats. Sending an
/// event costs about what receiving a message does (a signed HTTP request
/// and its bookkeeping); under a burst of messages that fills the CPU the
/// deliveries wait in the outbox, and they catch up when the burst is over.
pub fn spawn(core: Services) -> std::io::Result<Dispatcher> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(move || {
            lower_this_threads_priority();
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the webhook dispatcher's runtime; webhooks are not delivered");
                    return;
                }
            };
            runtime.block_on(async move {
                tokio::select! {
                    _ = run(core) => {}
                    _ = stopped => {}
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        })?;
    Ok(Dispatcher { _stop: stop })
}

#[cfg(target_os = "linux")]
fn lower_this_threads_priority() {
    // On Linux a thread id names one thread for setpriority.
    let this_thread = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(this_thread), 19) {
        tracing::warn!(error = %e, "cannot lower the webhook dispatcher's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority() {}

/// Runs until aborted.
pub async fn run(core: Services) {
    let client = match client(&core.policy().webhooks) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are not delivered");
            return;
        }
    };
    let mut load = ChatLoad::now(&core);
    loop {
        yield_to_chats(&core, &mut load).await;
        let busy = match pass(&core, &client).await {
            Ok(busy) => busy,
            Err(e) => {
                tracing::warn!(error = %e, "webhook dispatch failed; retrying");
                false
            }
        };
        if busy {
            continue;
        }
        tokio::select! {
            _ = core.webhooks.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            // A driven clock moving past a retry's time.
            _ = core.clock().sleep(POLL) => {}
        }
    }
}

/// How many messages this process had stored, and when.
struct ChatLoad {
    messages: u64,
    at: tokio::time::Instant,
}

impl ChatLoad {
    fn now(core: &Arc<Core>) -> ChatLoad {
        ChatLoad {
            messages: core
                .metrics()
                .messages
                .load(std::sync::atomic::Ordering::Relaxed),
            at: tokio::time::Instant::now(),
        }
    }

    /// Whether more than `BUSY_MESSAGES` per `BUSY_PROBE` were stored
    /// since `self` (over at least one probe's time).
    fn busy_since(&self, now: &ChatLoad) -> bool {
        let elapsed = now.at.duration_since(self.at).max(BUSY_PROBE);
        let sent = now.messages.saturating_sub(self.messages) as f64;
        sent * BUSY_PROBE.as_secs_f64() > BUSY_MESSAGES as f64 * elapsed.as_secs_f64()
    }
}

/// Waits while this process's chats are busy, up to [`MAX_YIELD`]. The
/// thread's low priority gives the CPU to chats, but not the database:
/// each round's statements (fan-out, leases, settling) run in Postgres
/// beside the chats' own. During a peak the events wait in the outbox and
/// go out every couple of seconds, in larger rounds; a quiet server
/// delivers at once.
async fn yield_to_chats(core: &Arc<Core>, last: &mut ChatLoad) {
    let until = tokio::time::Instant::now() + MAX_YIELD;
    loop {
        let now = ChatLoad::now(core);
        let busy = last.busy_since(&now);
        *last = now;
        if !busy || tokio::time::Instant::now() >= until {
            return;
        }
        tokio::time::sleep(BUSY_PROBE).await;
    }
}

/// One round: fan out, then deliver what is due. Whether there was work
/// (then another round follows at once).
async fn pass(core: &Arc<Core>, client: &reqwest::Client) -> AppResult<bool> {
    // Nothing is wanted: no event is written and no delivery may go out
    // (they need an enabled endpoint), so the database is left alone.
    super::outbox::refresh_if_old(core, &core.db).await?;
    if super::outbox::subscribed(core, &core.db).await?.is_empty() {
        return Ok(false);
    }
    let fanned = fan_out(core, client).await?;
    let delivered = deliver_due(core, client).await?;
    Ok(fanned > 0 || delivered > 0)
}

/// Fans new events out into a delivery per enabled endpoint subscribed to
/// their type, and makes each delivery's first attempt on the way: a
/// delivery is written once, as it stands after that attempt (DELIVERED in
/// the common case), rather than written, leased, and settled. How many
/// events it fanned out.
///
/// On Postgres the transaction that holds the fan-out lock stays open
/// while the attempts go out (at most `3 × WEBHOOK_TIMEOUT_MS`), so one
/// process at a time fans out; a process that dies meanwhile leaves the
/// events unfanned, and the next sends them again under the same
/// `webhook-id` ([`delivery_id`]). SQLite has one writer and one process:
/// its attempts go out before the write transaction begins, so chats are
/// not held up behind them.
async fn fan_out(core: &Arc<Core>, client: &reqwest::Client) -> AppResult<usize> {
    let postgres = core.db.get_database_backend() == DatabaseBackend::Postgres;
    let held = if postgres {
        let txn = repo::begin_write(&core.db).await?;
        if !outbox::try_lock_fan_out(&txn).await? {
            return Ok(0);
        }
        Some(txn)
    } else {
        None
    };
    let round = match &held {
        Some(txn) => Round::read(txn).await?,
        None => Round::read(&core.db).await?,
    };
    let Some(round) = round else {
        return Ok(0);
    };
    let fanned = round.seqs.len();
    let deliveries = round.first_attempts(core, client).await;
    let health = Health::of(&deliveries);
    let rows = deliveries.into_iter().map(|d| d.row).collect();
    match held {
        Some(txn) => {
            outbox::fan_out(&txn, rows, &round.seqs).await?;
            txn.commit().await?;
        }
        None => {
            let txn = repo::begin_write(&core.db).await?;
            outbox::fan_out(&txn, rows, &round.seqs).await?;
            txn.commit().await?;
        }
    }
    for (endpoint, (delivered, failed)) in health.0 {
        if let Some(endpoint) = round.endpoints.iter().find(|e| e.id == endpoint) {
            if let Err(e) = record_health(core, endpoint, delivered, failed).await {
                tracing::warn!(error = %e, "could not record a webhook endpoint's failures");
            }
        }
    }
    Ok(fanned)
}

/// What one fan-out round sends: new events, the endpoints that want them,
/// and the pairs (endpoint, session) whose new events must wait behind a
/// delivery still pending.
struct Round {
    events: Vec<outbox::Unfanned>,
    /// Each event's body; none for a message event whose message is gone.
    bodies: HashMap<i64, String>,
    seqs: Vec<i64>,
    endpoints: Vec<webhook_endpoint::Model>,
    waiting: HashSet<(Uuid, Uuid)>,
}

/// A delivery fan-out made, with whether it was tried and how it went.
struct Made {
    row: outbox::NewDelivery,
    step: Option<NextStep>,
}

impl Round {
    async fn read<C: ConnectionTrait>(db: &C) -> AppResult<Option<Round>> {
        let events = outbox::unfanned(db, FAN_OUT_BATCH).await?;
        if events.is_empty() {
            return Ok(None);
        }
        let endpoints = outbox::enabled_endpoints(db).await?;
        let endpoint_ids: Vec<Uuid> = endpoints.iter().map(|e| e.id).collect();
        let mut sessions: Vec<Uuid> = events.iter().filter_map(|e| e.session_id).collect();
        sessions.sort_unstable();
        sessions.dedup();
        let waiting = outbox::pending_pairs(db, &endpoint_ids, &sessions).await?;
        let mut events = events;
        let bodies = event_bodies(
            db,
            events
                .iter_mut()
                .map(|e| (e.seq, e.message_id, std::mem::take(&mut e.payload))),
        )
        .await?;
        let seqs = events.iter().map(|e| e.seq).collect();
        Ok(Some(Round {
            events,
            bodies,
            seqs,
            endpoints,
            waiting,
        }))
    }

    /// The round's deliveries, each after its first attempt where it may be
    /// made now: in chains (one session's events for one endpoint, in
    /// order), side by side, each stopping at its first failure; the rest
    /// wait, due at once, for the retrying dispatcher to send in order.
    async fn first_attempts(&self, core: &Arc<Core>, client: &reqwest::Client) -> Vec<Made> {
        let settings = &core.policy().webhooks;
        let now = core.now();
        let send_until =
            tokio::time::Instant::now() + 3 * Duration::from_millis(settings.timeout_ms);
        let subscribed: Vec<(&webhook_endpoint::Model, Vec<WebhookEventType>)> = self
            .endpoints
            .iter()
            .map(|e| (e, read_event_types(&e.events).unwrap_or_default()))
            .collect();
        let mut made = Vec::new();
        // Chains by (endpoint, session); an event without a session is a
        // chain of its own.
        let mut chains: Vec<Vec<Leased>> = Vec::new();
        let mut chain_of: HashMap<(Uuid, Uuid), usize> = HashMap::new();
        for event in &self.events {
            let Ok(t) = event.event_type.parse::<WebhookEventType>() else {
                continue;
            };
            // A message event whose message is gone (purged) has nothing
            // left to announce.
            let Some(body) = self.bodies.get(&event.seq) else {
                continue;
            };
            for (endpoint, types) in &subscribed {
                if !types.contains(&t) {
                    continue;
                }
                let delivery = webhook_delivery::Model {
                    id: delivery_id(event.seq, endpoint.id),
                    event_seq: event.seq,
                    endpoint_id: endpoint.id,
                    event_type: event.event_type.clone(),
                    session_id: event.session_id,
                    status: DeliveryStatus::Pending.as_str().to_owned(),
                    attempts: 0,
                    last_status_code: None,
                    last_error: None,
                    next_attempt_at: Some(now),
                    lease_until: None,
                    lease_token: None,
                    created_at: now,
                    delivered_at: None,
                };
                let pair = event.session_id.map(|s| (endpoint.id, s));
                if pair.is_some_and(|p| self.waiting.contains(&p)) {
                    made.push(Made {
                        row: untried(&delivery),
                        step: None,
                    });
                    continue;
                }
                let leased = Leased {
                    delivery,
                    endpoint: (*endpoint).clone(),
                    body: body.clone(),
                };
                match pair.and_then(|p| chain_of.get(&p).copied()) {
                    Some(i) => chains[i].push(leased),
                    None => {
                        if let Some(p) = pair {
                            chain_of.insert(p, chains.len());
                        }
                        chains.push(vec![leased]);
                    }
                }
            }
        }
        let sent: Vec<(Vec<Leased>, Vec<Outcome>)> = futures_util::stream::iter(chains)
            .map(|chain| async move {
                let (outcomes, _) = attempt_chain(core, client, &chain, send_until).await;
                (chain, outcomes)
            })
            .buffer_unordered(CHAINS as usize)
            .collect()
            .await;
        for (chain, outcomes) in sent {
            let mut outcomes = outcomes.into_iter();
            for leased in &chain {
                made.push(match outcomes.next() {
                    Some(o) => Made {
                        row: outbox::NewDelivery {
                            id: leased.delivery.id,
                            event_seq: leased.delivery.event_seq,
                            endpoint_id: leased.delivery.endpoint_id,
                            event_type: leased.delivery.event_type.clone(),
                            session_id: leased.delivery.session_id,
                            created_at: leased.delivery.created_at,
                            settled: o.settled,
                        },
                        step: Some(o.step),
                    },
                    None => Made {
                        row: untried(&leased.delivery),
                        step: None,
                    },
                });
            }
        }
        made
    }
}

/// Each event's body, by seq, from `(seq, message, stored payload)`: the
/// stored one, or for a `message.created` event stored without one, built
/// from its message as stored (one read for all). An event whose message is
/// gone (purged) has none.
async fn event_bodies<C: ConnectionTrait>(
    db: &C,
    events: impl Iterator<Item = (i64, Option<Uuid>, String)>,
) -> AppResult<HashMap<i64, String>> {
    let mut bodies = HashMap::new();
    let mut wanted: Vec<(i64, Uuid)> = Vec::new();
    for (seq, message, payload) in events {
        match message {
            Some(m) if payload.is_empty() => wanted.push((seq, m)),
            _ => {
                bodies.insert(seq, payload);
            }
        }
    }
    if wanted.is_empty() {
        return Ok(bodies);
    }
    let found: HashMap<Uuid, Message> =
        messages::find_many(db, wanted.iter().map(|(_, m)| *m).collect())
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
    for (seq, id) in wanted {
        if let Some(m) = found.get(&id) {
            // A message's event carries the message's own time.
            let body = WebhookEvent::MessageCreated(m.clone()).body(m.created_at);
            bodies.insert(seq, body);
        }
    }
    Ok(bodies)
}

/// A delivery not tried yet: due at once.
fn untried(d: &webhook_delivery::Model) -> outbox::NewDelivery {
    outbox::NewDelivery {
        id: d.id,
        event_seq: d.event_seq,
        endpoint_id: d.endpoint_id,
        event_type: d.event_type.clone(),
        session_id: d.session_id,
        created_at: d.created_at,
        settled: outbox::Settled {
            status: DeliveryStatus::Pending,
            attempts: 0,
            status_code: None,
            error: None,
            next_attempt_at: Some(d.created_at),
            delivered_at: None,
        },
    }
}

/// Per endpoint: whether some attempt of a round delivered, and whether
/// some chain ended in a failure.
struct Health(HashMap<Uuid, (bool, bool)>);

impl Health {
    fn of(made: &[Made]) -> Health {
        let mut by_endpoint: HashMap<Uuid, (bool, bool)> = HashMap::new();
        for m in made {
            let Some(step) = m.step else { continue };
            let entry = by_endpoint.entry(m.row.endpoint_id).or_default();
            if step == NextStep::Delivered {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
        Health(by_endpoint)
    }
}

/// A delivery leased for one attempt, with what it needs.
struct Leased {
    delivery: webhook_delivery::Model,
    endpoint: webhook_endpoint::Model,
    body: String,
}

/// Leases due deliveries as chains (one session's events for one
/// endpoint, in order) and sends them: chains side by side, each one
/// after the other, stopping at the first that is not delivered (what
/// follows it must wait for it). How many were leased.
async fn deliver_due(core: &Arc<Core>, client: &reqwest::Client) -> AppResult<usize> {
    let settings = &core.policy().webhooks;
    let now = core.now();
    let token = Uuid::new_v4();
    let timeout = Duration::from_millis(settings.timeout_ms);
    // Long enough for a few attempts and their settling; a process that
    // dies holds its deliveries this long. A chain stops sending while
    // there is still time to record what it did.
    let lease = 4 * timeout + Duration::from_secs(1);
    let send_until = tokio::time::Instant::now() + 3 * timeout;
    let lease_until = now + chrono::Duration::from_std(lease).unwrap_or_default();
    let txn = repo::begin_write(&core.db).await?;
    let leased = outbox::lease_chains(&txn, now, lease_until, token, CHAINS, CHAIN_LENGTH).await?;
    txn.commit().await?;
    if leased.is_empty() {
        return Ok(0);
    }
    let count = leased.len();
    let mut seqs: Vec<i64> = leased.iter().map(|d| d.event_seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let mut endpoint_ids: Vec<Uuid> = leased.iter().map(|d| d.endpoint_id).collect();
    endpoint_ids.sort_unstable();
    endpoint_ids.dedup();
    let bodies = event_bodies(
        &core.db,
        outbox::events_by_seq(&core.db, seqs)
            .await?
            .into_iter()
            .map(|e| (e.seq, e.message_id, e.payload)),
    )
    .await?;
    let endpoints: HashMap<Uuid, webhook_endpoint::Model> =
        outbox::endpoints_by_id(&core.db, endpoint_ids)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
    // Leased in (endpoint, session, event) order: each run of one endpoint
    // and session is a chain.
    let mut chains: Vec<Vec<Leased>> = Vec::new();
    let mut unusable = Vec::new();
    for delivery in leased {
        let (Some(endpoint), Some(body)) = (
            endpoints.get(&delivery.endpoint_id),
            bodies.get(&delivery.event_seq),
        ) else {
            // Its endpoint or event went (deleted meanwhile): nothing to send.
            unusable.push(delivery.id);
            continue;
        };
        let same_chain = chains.last().and_then(|c| c.last()).is_some_and(|last| {
            last.delivery.endpoint_id == delivery.endpoint_id
                && last.delivery.session_id.is_some()
                && last.delivery.session_id == delivery.session_id
        });
        let leased = Leased {
            delivery,
            endpoint: endpoint.clone(),
            body: body.clone(),
        };
        match chains.last_mut() {
            Some(chain) if same_chain => chain.push(leased),
            _ => chains.push(vec![leased]),
        }
    }
    if let Err(e) = outbox::release(&core.db, token, unusable).await {
        tracing::warn!(error = %e, "could not give back webhook deliveries; their lease will run out");
    }
    let sent = chains
        .into_iter()
        .map(|chain| send_chain(core, client, chain, token, send_until));
    futures_util::future::join_all(sent).await;
    Ok(count)
}

/// Sends one chain in order and records it in one go: the attempts made,
/// and the deliveries not tried given back.
async fn send_chain(
    core: &Arc<Core>,
    client: &reqwest::Client,
    chain: Vec<Leased>,
    token: Uuid,
    send_until: tokio::time::Instant,
) {
    let (outcomes, untried) = attempt_chain(core, client, &chain, send_until).await;
    if let Some(first) = chain.first() {
        if let Err(e) = settle(core, &first.endpoint, outcomes, token).await {
            tracing::warn!(error = %e, "could not record webhook attempts; they will be sent again");
        }
    }
    if let Err(e) = outbox::release(&core.db, token, untried).await {
        tracing::warn!(error = %e, "could not give back webhook deliveries; their lease will run out");
    }
}

/// Sends a chain in order until one is not delivered or time is up: the
/// outcomes of the attempts made (a prefix of the chain), and the ids of
/// the deliveries not tried.
async fn attempt_chain(
    core: &Arc<Core>,
    client: &reqwest::Client,
    chain: &[Leased],
    send_until: tokio::time::Instant,
) -> (Vec<Outcome>, Vec<Uuid>) {
    let mut outcomes = Vec::with_capacity(chain.len());
    let mut stopped = false;
    let mut untried = Vec::new();
    for leased in chain {
        if stopped || tokio::time::Instant::now() >= send_until {
            untried.push(leased.delivery.id);
            continue;
        }
        let result = attempt(core, client, leased).await;
        // Stamped when this attempt ended, not when its chain began.
        let outcome = outcome(core, leased, result, core.now());
        stopped = outcome.step != NextStep::Delivered;
        outcomes.push(outcome);
    }
    (outcomes, untried)
}

/// Sends one delivery; how it went, and the error to keep if any.
async fn attempt(
    core: &Arc<Core>,
    client: &reqwest::Client,
    leased: &Leased,
) -> (AttemptResult, Option<String>) {
    let settings = &core.policy().webhooks;
    let url = &leased.endpoint.url;
    // A host given as an address never reaches the resolver: check it here.
    if !settings.allow_private {
        let literal = check_url(url)
            .ok()
            .and_then(|(host, _)| host.parse::<std::net::IpAddr>().ok());
        if literal.is_some_and(is_internal_address) {
            return refused(
                "the endpoint's address is in a private, loopback or link-local network",
            );
        }
    }
    let secret = match WebhookSecret::parse(&leased.endpoint.secret) {
        Ok(secret) => secret,
        Err(e) => return refused(&format!("the endpoint's stored secret is unusable: {e}")),
    };
    let id = leased.delivery.id.to_string();
    let timestamp = core.now().timestamp();
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(leased.body.clone());
    for (name, value) in signing::headers(&secret, &id, timestamp, leased.body.as_bytes()) {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) => {
            let code = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, core.now()));
            let error = (!response.status().is_success())
                .then(|| format!("the endpoint answered {}", response.status()));
            (AttemptResult::Status { code, retry_after }, error)
        }
        Err(e) => {
            let refused_address = is_refused(&e);
            let what = if e.is_timeout() {
                "no answer in time".to_owned()
            } else if refused_address {
                "the endpoint resolves only to private, loopback or link-local addresses".to_owned()
            } else if e.is_connect() {
                format!("cannot connect: {}", root_cause(&e))
            } else {
                format!("request failed: {}", root_cause(&e))
            };
            (
                AttemptResult::NoAnswer {
                    retryable: !refused_address,
                },
                Some(what),
            )
        }
    }
}

fn refused(why: &str) -> (AttemptResult, Option<String>) {
    (
        AttemptResult::NoAnswer { retryable: false },
        Some(why.to_owned()),
    )
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn is_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<InternalAddress>().is_some() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// An attempt's result as it is to be stored.
struct Outcome {
    id: Uuid,
    step: NextStep,
    settled: outbox::Settled,
}

fn outcome(
    core: &Arc<Core>,
    leased: &Leased,
    (result, error): (AttemptResult, Option<String>),
    now: chrono::DateTime<chrono::Utc>,
) -> Outcome {
    let settings = &core.policy().webhooks;
    let attempts = leased.delivery.attempts + 1;
    let step = next_step(&result, attempts, &settings.schedule, jitter());
    let status_code = match result {
        AttemptResult::Status { code, .. } => Some(i32::from(code)),
        AttemptResult::NoAnswer { .. } => None,
    };
    let error = error.map(|e| e.chars().take(MAX_ERROR_CHARS).collect::<String>());
    let settled = match step {
        NextStep::Delivered => outbox::Settled {
            status: DeliveryStatus::Delivered,
            attempts,
            status_code,
            error: None,
            next_attempt_at: None,
            delivered_at: Some(now),
        },
        NextStep::RetryAfter(wait) => outbox::Settled {
            status: DeliveryStatus::Pending,
            attempts,
            status_code,
            error,
            next_attempt_at: Some(now + chrono::Duration::from_std(wait).unwrap_or_default()),
            delivered_at: None,
        },
        NextStep::Failed => outbox::Settled {
            status: DeliveryStatus::Failed,
            attempts,
            status_code,
            error,
            next_attempt_at: None,
            delivered_at: None,
        },
    };
    Outcome {
        id: leased.delivery.id,
        step,
        settled,
    }
}

/// Stores a chain's attempts (one statement), and what they say about its
/// endpoint.
async fn settle(
    core: &Arc<Core>,
    endpoint: &webhook_endpoint::Model,
    outcomes: Vec<Outcome>,
    token: Uuid,
) -> AppResult<()> {
    let steps: HashMap<Uuid, NextStep> = outcomes.iter().map(|o| (o.id, o.step)).collect();
    let rows = outcomes.into_iter().map(|o| (o.id, o.settled)).collect();
    // Only the attempts still ours count: once our lease ran out and
    // another dispatcher took a delivery over, its attempt does.
    let recorded = outbox::settle_many(&core.db, token, rows).await?;
    let delivered = recorded
        .iter()
        .any(|id| steps.get(id) == Some(&NextStep::Delivered));
    // A chain stops at its first failure: the last attempt says how the
    // endpoint is now.
    let failed = recorded
        .iter()
        .any(|id| steps.get(id).is_some_and(|s| *s != NextStep::Delivered));
    record_health(core, endpoint, delivered, failed).await
}

/// What a round's attempts say about their endpoint: a failure starts (or
/// continues) its run of failures, which disables it once long enough; a
/// success alone ends the run.
async fn record_health(
    core: &Arc<Core>,
    endpoint: &webhook_endpoint::Model,
    delivered: bool,
    failed: bool,
) -> AppResult<()> {
    let settings = &core.policy().webhooks;
    let now = core.now();
    match (delivered, failed, endpoint.failing_since) {
        (_, false, None) | (false, false, _) => Ok(()),
        (true, false, Some(_)) => {
            outbox::set_failing_since(&core.db, endpoint.id, None).await?;
            Ok(())
        }
        // Failing from now: for the first time, or again after a success.
        (_, true, None) | (true, true, Some(_)) => {
            outbox::set_failing_since(&core.db, endpoint.id, Some(now)).await?;
            Ok(())
        }
        (false, true, Some(since)) => {
            let after = chrono::Duration::seconds(settings.disable_after_secs);
            if endpoint.enabled && should_disable(Some(since), now, after) {
                webhooks::disable_endpoint(&core.db, endpoint.id).await?;
                core.bus.publish_webhooks_changed();
                tracing::warn!(
                    endpoint = %endpoint.id,
                    url = %endpoint.url,
                    failing_since = %since,
                    "webhook endpoint disabled: every attempt has failed for too long; \
                     enable it again with updateWebhookEndpoint once it is fixed"
                );
            }
            Ok(())
        }
    }
}

/// A number in [0, 1) from the system's randomness (a v4 UUID's bits).
fn jitter() -> f64 {
    (Uuid::new_v4().as_u128() >> 68) as f64 / (1u64 << 60) as f64
}

/// The HTTP client for endpoints: no redirects followed (a redirect could
/// lead anywhere), a bound on each attempt, and names resolved only to
/// addresses endpoints may reach.
fn client(settings: &WebhookSettings) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(settings.timeout_ms))
        .connect_timeout(Duration::from_millis(settings.timeout_ms))
        .user_agent(concat!("Switchboard-Webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(GuardedResolver {
            allow_private: settings.allow_private,
        }))
        .build()
}

/// A name that resolves only to addresses webhooks may not reach.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to private, loopback or link-local addresses")]
struct InternalAddress(String);

/// Resolves with the system, then keeps only the addresses endpoints may
/// reach, so the connection goes to an address that was checked: a name
/// cannot be checked once and then resolve elsewhere (DNS rebinding).
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allow_private || !is_internal_address(a.ip()))
                .collect();
            if allowed.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(InternalAddress(host));
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    #[tokio::test]
    async fn names_of_this_host_are_refused_at_delivery_unless_allowed() {
        let guarded = GuardedResolver {
            allow_private: false,
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = match guarded.resolve(name).await {
            Err(e) => e,
            Ok(_) => panic!("localhost resolved"),
        };
        assert!(err.to_string().contains("private, loopback"), "{err}");
        let open = GuardedResolver {
            allow_private: true,
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(open.resolve(name).await.is_ok());
    }

    #[tokio::test]
    async fn a_refused_name_is_not_retried() {
        let settings = WebhookSettings {
            timeout_ms: 2000,
            retry_schedule: String::new(),
            schedule: Vec::new(),
            disable_after_secs: 1,
            allow_private: false,
        };
        let client = client(&settings).unwrap();
        let err = client
            .post("http://localhost:9/")
            .send()
            .await
            .expect_err("refused");
        assert!(is_refused(&err), "{err:?}");
    }

    #[test]
    fn jitter_is_a_fraction() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn chats_are_busy_above_a_thousand_messages_a_second() {
        use super::{ChatLoad, BUSY_PROBE};
        let start = tokio::time::Instant::now();
        let at = |ms: u64, messages: u64| ChatLoad {
            messages,
            at: start + std::time::Duration::from_millis(ms),
        };
        // Over one probe: 50 messages in 50 ms is the bound.
        assert!(!at(0, 0).busy_since(&at(50, 50)));
        assert!(at(0, 0).busy_since(&at(50, 51)));
        // Over a long quiet time, a burst does not count as busy.
        assert!(!at(0, 0).busy_since(&at(10_000, 5_000)));
        assert!(at(0, 0).busy_since(&at(10_000, 10_001)));
        // A check sooner than a probe is measured over a whole probe.
        assert!(!at(0, 0).busy_since(&at(1, 40)));
        assert_eq!(BUSY_PROBE.as_millis(), 50);
    }
}

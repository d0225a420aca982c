//! Group commit: requests waiting at one moment share one transaction.
//!
//! Written alone, each sendMessage was four statements and a commit (a WAL
//! flush), and each queue entry took the routing lock for five; under load
//! that, not the server, limits how many get through. Such requests queue
//! here instead, and a writer takes every request queued so far (up to a
//! cap) into one transaction. At most a set number of writers run at once;
//! a request that finds one free starts it, so a quiet server writes each
//! request at once, as before, and a busy one writes many per commit.
//! Writers are spawned tasks: a caller that goes away (its client hung up)
//! does not strand the requests it was carrying.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use sea_orm::{DbErr, RuntimeErr};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::domain::{ChatSession, MessageView, Party};
use crate::error::{AppError, AppResult};
use crate::service::Core;

/// A request waiting for its transaction, and where its answer goes.
pub(crate) struct Pending<R, A> {
    pub request: R,
    pub reply: oneshot::Sender<AppResult<A>>,
}

/// One sendMessage, validated.
pub(crate) struct SendRequest {
    pub viewer: Viewer,
    pub session_id: Uuid,
    pub body: String,
    pub client_message_id: String,
    pub at: DateTime<Utc>,
    /// A file's attachment or an article's link; None for text.
    pub payload: Option<crate::domain::MessagePayload>,
}

pub(crate) type PendingSend = Pending<SendRequest, MessageView>;

/// One startSession that found no open session of its customer.
pub(crate) struct ArrivalRequest {
    pub customer_id: String,
    pub subject: Option<String>,
    pub priority: crate::domain::Priority,
    pub required_skills: crate::domain::Skills,
    pub customer_name: Option<String>,
    pub at: DateTime<Utc>,
}

pub(crate) type PendingArrival = Pending<ArrivalRequest, ChatSession>;

/// A recipient's side has had messages up to `seq` delivered.
pub(crate) struct DeliveryMark {
    pub session_id: Uuid,
    pub party: Party,
    pub seq: i32,
}

pub(crate) type PendingDelivery = Pending<DeliveryMark, ()>;

/// The requests not yet taken by a writer, and the writers' permits.
pub(crate) struct BatchQueue<T> {
    pending: Mutex<VecDeque<T>>,
    writers: Arc<Semaphore>,
    max_batch: usize,
}

impl<T> BatchQueue<T> {
    pub fn new(writers: usize, max_batch: usize) -> Self {
        BatchQueue {
            pending: Mutex::new(VecDeque::new()),
            writers: Arc::new(Semaphore::new(writers.max(1))),
            max_batch: max_batch.max(1),
        }
    }

    /// Queues a request. Returns a writer's permit when a writer is free:
    /// the caller must then start one, which owns the permit.
    pub fn push(&self, request: T) -> Option<OwnedSemaphorePermit> {
        self.lock().push_back(request);
        // After the push: a writer that found the queue empty gave its
        // permit back while holding the queue lock, so either it saw this
        // request or its permit is free here.
        Arc::clone(&self.writers).try_acquire_owned().ok()
    }

    /// The next batch for the writer holding `permit`, oldest first; `None`
    /// when nothing is queued, and then the permit is given back.
    pub fn next_batch(
        &self,
        permit: OwnedSemaphorePermit,
    ) -> Option<(Vec<T>, OwnedSemaphorePermit)> {
        let mut pending = self.lock();
        if pending.is_empty() {
            // Released under the queue lock: see `push`.
            drop(permit);
            return None;
        }
        let take = pending.len().min(self.max_batch);
        Some((pending.drain(..take).collect(), permit))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<T>> {
        // The queue is a plain list: a panic elsewhere cannot leave it half
        // changed, so a poisoned lock is still sound to use.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes a batch with `write` (one transaction for all the requests) and
/// answers each request. When the transaction fails, each request is
/// written again on its own, concurrently, so that one bad request cannot
/// fail the others and each gets its own error.
async fn write_or_split<'a, R, A, F, Fut>(
    requests: &'a [R],
    replies: Vec<oneshot::Sender<AppResult<A>>>,
    what: &str,
    write: F,
) where
    F: Fn(&'a [R]) -> Fut,
    Fut: Future<Output = AppResult<Vec<AppResult<A>>>> + 'a,
{
    let failure = match write(requests).await {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                // The caller may have gone; what it asked for is done anyway.
                let _ = reply.send(outcome);
            }
            return;
        }
        Err(failure) => failure,
    };
    if let [_only] = requests {
        if let Some(reply) = replies.into_iter().next() {
            let _ = reply.send(Err(failure));
        }
        return;
    }
    if failure.retryable() {
        // The database could not be reached: one by one, each request
        // would wait out the pool's acquire timeout again and crowd the
        // pool. Every caller hears at once that a retry is worth it; the
        // idempotency keys make retrying safe even if the commit landed.
        tracing::warn!(error = %failure, requests = requests.len(), "a batch of {what} could not reach the database");
        let reason = failure.to_string();
        for reply in replies {
            let unreachable = DbErr::Conn(RuntimeErr::Internal(reason.clone()));
            let _ = reply.send(Err(AppError::Database(unreachable)));
        }
        return;
    }
    tracing::warn!(error = %failure, requests = requests.len(), "a batch of {what} failed; writing them one by one");
    let write = &write;
    let alone = requests
        .chunks(1)
        .zip(replies)
        .map(|(one, reply)| async move {
            let outcome = write(one).await.and_then(|mut outcomes| {
                outcomes.pop().unwrap_or_else(|| {
                    Err(AppError::Internal(format!(
                        "one of a batch of {what} got no answer"
                    )))
                })
            });
            let _ = reply.send(outcome);
        });
    futures_util::future::join_all(alone).await;
}

/// A kind of request written in batches: where it queues and how a batch
/// of it is written (one transaction, one answer per request, in order).
pub(crate) trait Batched: Sized + Send + Sync + 'static {
    type Answer: Send + 'static;
    /// What the requests are, for logs and errors.
    const WHAT: &'static str;
    fn queue(core: &Core) -> &BatchQueue<Pending<Self, Self::Answer>>;
    fn write<'a>(
        core: &'a Arc<Core>,
        batch: &'a [Self],
    ) -> impl Future<Output = AppResult<Vec<AppResult<Self::Answer>>>> + Send + 'a;
}

/// Queues `request` and waits for its answer, starting a writer when one
/// is free.
pub(crate) async fn submit<R: Batched>(core: &Arc<Core>, request: R) -> AppResult<R::Answer> {
    let (reply, answer) = oneshot::channel();
    if let Some(permit) = R::queue(core).push(Pending { request, reply }) {
        let core = Arc::clone(core);
        tokio::spawn(async move { write_queued::<R>(&core, permit).await });
    }
    answer
        .await
        .map_err(|_| AppError::Internal(format!("the writer of {} stopped", R::WHAT)))?
}

/// A writer: writes batches until none is left.
async fn write_queued<R: Batched>(core: &Arc<Core>, permit: OwnedSemaphorePermit) {
    let mut permit = permit;
    while let Some((batch, held)) = R::queue(core).next_batch(permit) {
        permit = held;
        let (requests, replies): (Vec<R>, Vec<_>) =
            batch.into_iter().map(|p| (p.request, p.reply)).unzip();
        write_or_split(&requests, replies, R::WHAT, |batch| R::write(core, batch)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    type Queue = BatchQueue<PendingSend>;

    fn send(n: usize) -> (PendingSend, oneshot::Receiver<AppResult<MessageView>>) {
        let (reply, rx) = oneshot::channel();
        let send = PendingSend {
            request: SendRequest {
                viewer: Viewer {
                    id: format!("c{n}"),
                    role: Role::Customer,
                    name: None,
                    expires_at: 0,
                    priority: None,
                },
                session_id: Uuid::nil(),
                body: n.to_string(),
                client_message_id: n.to_string(),
                at: Utc::now(),
                payload: None,
            },
            reply,
        };
        (send, rx)
    }

    fn bodies(batch: &[PendingSend]) -> Vec<String> {
        batch.iter().map(|s| s.request.body.clone()).collect()
    }

    /// Runs `write_or_split` over three requests with a writer that fails
    /// every batch of more than one with `failure`; returns how many times
    /// it was called and the answers.
    async fn split_after(failure: fn() -> AppError) -> (usize, Vec<AppResult<()>>) {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let requests = [1, 2, 3];
        let (replies, answers): (Vec<_>, Vec<_>) =
            (0..3).map(|_| oneshot::channel::<AppResult<()>>()).unzip();
        write_or_split(&requests, replies, "tests", |batch: &[i32]| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let n = batch.len();
            async move {
                if n > 1 {
                    Err(failure())
                } else {
                    Ok(vec![Ok(())])
                }
            }
        })
        .await;
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await.expect("every request is answered"));
        }
        (calls.into_inner(), outcomes)
    }

    #[tokio::test]
    async fn a_batch_refused_by_the_database_is_retried_one_by_one() {
        let (calls, outcomes) =
            split_after(|| AppError::Database(DbErr::Custom("constraint".into()))).await;
        assert_eq!(calls, 4, "the batch, then each request alone");
        assert!(outcomes.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn a_batch_that_cannot_reach_the_database_is_not_split() {
        let (calls, outcomes) = split_after(|| {
            AppError::Database(DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout))
        })
        .await;
        assert_eq!(calls, 1, "no request waits out the pool again");
        for outcome in outcomes {
            let err = outcome.expect_err("unreachable");
            assert!(err.retryable(), "{err}");
        }
    }

    #[test]
    fn the_first_send_starts_a_writer_and_later_ones_join_its_next_batch() {
        let queue = Queue::new(1, 10);
        let permit = queue.push(send(1).0).expect("a free writer");
        assert!(queue.push(send(2).0).is_none(), "the only writer is busy");
        assert!(queue.push(send(3).0).is_none());
        let (batch, permit) = queue.next_batch(permit).expect("queued sends");
        assert_eq!(bodies(&batch), ["1", "2", "3"]);
        assert!(queue.next_batch(permit).is_none(), "nothing left");
        assert!(
            queue.push(send(4).0).is_some(),
            "the permit came back when the queue ran dry"
        );
    }

    #[test]
    fn batches_are_capped_and_keep_arrival_order() {
        let queue = Queue::new(1, 2);
        let mut permit = queue.push(send(0).0);
        for n in 1..5 {
            assert!(queue.push(send(n).0).is_none());
        }
        let mut seen = Vec::new();
        while let Some((batch, p)) = queue.next_batch(permit.take().expect("held")) {
            assert!(batch.len() <= 2);
            seen.extend(bodies(&batch));
            permit = Some(p);
        }
        assert_eq!(seen, ["0", "1", "2", "3", "4"]);
    }

    #[test]
    fn at_most_the_configured_number_of_writers_run() {
        let queue = Queue::new(2, 10);
        let first = queue.push(send(1).0);
        let second = queue.push(send(2).0);
        let third = queue.push(send(3).0);
        assert!(first.is_some() && second.is_some());
        assert!(third.is_none());
    }

    #[test]
    fn a_send_queued_while_every_writer_is_busy_is_never_stranded() {
        // Many threads push while one writer drains and hands its permit
        // back whenever it finds the queue empty: every send must end up
        // in some batch, taken by the writer or by a pusher that got the
        // permit back.
        let queue = Arc::new(Queue::new(1, 3));
        let total = 2_000;
        let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let queue = Arc::clone(&queue);
                let taken = Arc::clone(&taken);
                std::thread::spawn(move || {
                    for n in 0..total / 4 {
                        if let Some(mut permit) = queue.push(send(t * total + n).0) {
                            while let Some((batch, p)) = queue.next_batch(permit) {
                                taken.fetch_add(batch.len(), std::sync::atomic::Ordering::SeqCst);
                                permit = p;
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("pusher");
        }
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), total);
        assert!(queue.lock().is_empty());
    }
}

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use tokio::sync::broadcast::error::RecvError;

/// A map from key to the subscribers of that key, created on first
/// subscription and removed when its last subscriber goes, so idle
/// sessions cost nothing.
///
/// Each subscriber has a queue of its own that holds at most `capacity`
/// events; one further behind is told it lagged (as a tokio broadcast
/// receiver is) and goes on from the oldest event still queued. The queues
/// grow only while events wait: a tokio broadcast channel allocates all its
/// slots up front, 2 KiB per topic at 64 slots, which every connected agent
/// and followed session paid while idle. Events are `Arc`s, shared by all
/// the subscribers of a topic.
///
/// A std `Mutex` is right here: the locks are held only for map and queue
/// operations, never across an `.await`. The map's lock is taken before a
/// queue's, never the other way.
pub struct Topics<K, E> {
    topics: Arc<Subscribers<K, E>>,
    capacity: usize,
}

/// Every topic's subscribers, shared by the topics and their receivers.
type Subscribers<K, E> = Mutex<HashMap<K, Vec<Arc<Mailbox<E>>>>>;

/// One subscriber's queue.
struct Mailbox<E> {
    state: Mutex<MailboxState<E>>,
    capacity: usize,
}

struct MailboxState<E> {
    queue: VecDeque<Arc<E>>,
    /// Events dropped from the front since the subscriber last looked.
    skipped: u64,
    waiting: Option<Waker>,
}

/// A panic while holding one of these locks cannot leave the data
/// inconsistent (every operation is a single insert, push, pop or remove),
/// so recover.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<E> Mailbox<E> {
    fn push(&self, event: Arc<E>) {
        let mut state = lock(&self.state);
        if state.queue.len() >= self.capacity {
            state.queue.pop_front();
            state.skipped += 1;
        }
        state.queue.push_back(event);
        if let Some(waker) = state.waiting.take() {
            waker.wake();
        }
    }
}

impl<K: Eq + Hash + Clone, E: Clone> Topics<K, E> {
    pub fn new(capacity: usize) -> Self {
        Topics {
            topics: Arc::new(Mutex::new(HashMap::new())),
            capacity: capacity.max(1),
        }
    }

    pub fn subscribe(&self, key: K) -> TopicReceiver<K, E> {
        let mailbox = Arc::new(Mailbox {
            state: Mutex::new(MailboxState {
                queue: VecDeque::new(),
                skipped: 0,
                waiting: None,
            }),
            capacity: self.capacity,
        });
        lock(&self.topics)
            .entry(key.clone())
            .or_default()
            .push(Arc::clone(&mailbox));
        TopicReceiver {
            mailbox: Some(mailbox),
            key,
            topics: Arc::clone(&self.topics),
        }
    }

    pub fn publish<Q>(&self, key: &Q, event: E)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(subscribers) = lock(&self.topics).get(key) {
            let event = Arc::new(event);
            for mailbox in subscribers {
                mailbox.push(Arc::clone(&event));
            }
        }
    }

    /// Sends `event` to every topic.
    pub fn publish_all(&self, event: E) {
        let event = Arc::new(event);
        for mailbox in lock(&self.topics).values().flatten() {
            mailbox.push(Arc::clone(&event));
        }
    }

    pub fn len(&self) -> usize {
        lock(&self.topics).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A subscription to one topic; dropping the last one removes the topic.
pub struct TopicReceiver<K: Eq + Hash, E> {
    mailbox: Option<Arc<Mailbox<E>>>,
    key: K,
    topics: Arc<Subscribers<K, E>>,
}

impl<K: Eq + Hash, E: Clone> TopicReceiver<K, E> {
    /// The next event; `Lagged(n)` when `n` were dropped because this
    /// subscriber fell more than the topic's capacity behind. Cancel-safe.
    pub async fn recv(&mut self) -> Result<E, RecvError> {
        let Some(mailbox) = self.mailbox.as_ref() else {
            return Err(RecvError::Closed);
        };
        poll_fn(|cx| {
            let mut state = lock(&mailbox.state);
            if state.skipped > 0 {
                return Poll::Ready(Err(RecvError::Lagged(std::mem::take(&mut state.skipped))));
            }
            match state.queue.pop_front() {
                Some(event) => Poll::Ready(Ok(E::clone(&event))),
                None => {
                    state.waiting = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

impl<K: Eq + Hash, E> Drop for TopicReceiver<K, E> {
    fn drop(&mut self) {
        let Some(mailbox) = self.mailbox.take() else {
            return;
        };
        let mut topics = lock(&self.topics);
        if let Some(subscribers) = topics.get_mut(&self.key) {
            subscribers.retain(|m| !Arc::ptr_eq(m, &mailbox));
            if subscribers.is_empty() {
                topics.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_receive_what_is_published_on_their_topic_only() {
        let topics: Topics<u32, &'static str> = Topics::new(8);
        let mut one = topics.subscribe(1);
        let mut two = topics.subscribe(2);
        topics.publish(&1, "for one");
        topics.publish(&2, "for two");
        assert_eq!(one.recv().await.unwrap(), "for one");
        assert_eq!(two.recv().await.unwrap(), "for two");
    }

    #[tokio::test]
    async fn topics_disappear_with_their_last_subscriber() {
        let topics: Topics<u32, u8> = Topics::new(8);
        let a = topics.subscribe(7);
        let b = topics.subscribe(7);
        assert_eq!(topics.len(), 1);
        drop(a);
        assert_eq!(topics.len(), 1);
        drop(b);
        assert!(topics.is_empty());
        // Publishing to a topic nobody listens to is a no-op.
        topics.publish(&7, 1);
        assert!(topics.is_empty());
    }

    #[tokio::test]
    async fn slow_subscribers_are_told_they_lagged_then_get_the_newest() {
        let topics: Topics<u32, u32> = Topics::new(2);
        let mut rx = topics.subscribe(1);
        for i in 0..5 {
            topics.publish(&1, i);
        }
        assert!(matches!(rx.recv().await, Err(RecvError::Lagged(3))));
        assert_eq!(rx.recv().await.unwrap(), 3);
        assert_eq!(rx.recv().await.unwrap(), 4);
    }

    #[tokio::test]
    async fn every_subscriber_of_a_topic_gets_every_event() {
        let topics: Topics<u32, u32> = Topics::new(8);
        let mut a = topics.subscribe(1);
        let mut b = topics.subscribe(1);
        topics.publish(&1, 10);
        topics.publish_all(11);
        for rx in [&mut a, &mut b] {
            assert_eq!(rx.recv().await.unwrap(), 10);
            assert_eq!(rx.recv().await.unwrap(), 11);
        }
    }

    #[tokio::test]
    async fn a_waiting_subscriber_wakes_on_publish() {
        let topics: Topics<u32, u32> = Topics::new(8);
        let mut rx = topics.subscribe(1);
        let waiting = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        topics.publish(&1, 5);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(got.unwrap(), 5);
    }
}

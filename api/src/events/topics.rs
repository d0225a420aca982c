use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

/// A map from key to broadcast channel, created on first subscription and
/// removed when its last subscriber goes, so idle sessions cost nothing.
///
/// A broadcast channel allocates all its slots when it is created, and a
/// slot holds the event itself: with events the size of a session, every
/// topic cost tens of KiB, per connected agent and per followed session.
/// The channels carry `Arc`s instead, so a slot is a pointer.
///
/// A std `Mutex` is right here: it is held only for map operations, never
/// across an `.await`.
pub struct Topics<K, E> {
    channels: Arc<Mutex<HashMap<K, broadcast::Sender<Arc<E>>>>>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, E: Clone> Topics<K, E> {
    pub fn new(capacity: usize) -> Self {
        Topics {
            channels: Arc::new(Mutex::new(HashMap::new())),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, broadcast::Sender<Arc<E>>>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation is a single insert, get or remove), so recover.
        self.channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn subscribe(&self, key: K) -> TopicReceiver<K, E> {
        let rx = self
            .lock()
            .entry(key.clone())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe();
        TopicReceiver {
            rx: Some(rx),
            key,
            channels: Arc::clone(&self.channels),
        }
    }

    pub fn publish<Q>(&self, key: &Q, event: E)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(tx) = self.lock().get(key) {
            let _ = tx.send(Arc::new(event));
        }
    }

    /// Sends `event` to every topic.
    pub fn publish_all(&self, event: E) {
        let event = Arc::new(event);
        for tx in self.lock().values() {
            let _ = tx.send(Arc::clone(&event));
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A subscription to one topic; dropping the last one removes the topic.
pub struct TopicReceiver<K: Eq + Hash, E> {
    rx: Option<broadcast::Receiver<Arc<E>>>,
    key: K,
    channels: Arc<Mutex<HashMap<K, broadcast::Sender<Arc<E>>>>>,
}

impl<K: Eq + Hash, E: Clone> TopicReceiver<K, E> {
    pub async fn recv(&mut self) -> Result<E, broadcast::error::RecvError> {
        match self.rx.as_mut() {
            Some(rx) => rx.recv().await.map(|event| E::clone(&event)),
            None => Err(broadcast::error::RecvError::Closed),
        }
    }
}

impl<K: Eq + Hash, E> Drop for TopicReceiver<K, E> {
    fn drop(&mut self) {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        // Drop our receiver under the lock so that a concurrent subscribe
        // either sees the channel before removal or creates a fresh one.
        self.rx.take();
        if map
            .get(&self.key)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            map.remove(&self.key);
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
    async fn slow_subscribers_are_told_they_lagged() {
        let topics: Topics<u32, u32> = Topics::new(2);
        let mut rx = topics.subscribe(1);
        for i in 0..5 {
            topics.publish(&1, i);
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }
}

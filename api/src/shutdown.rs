//! Telling long-lived connections that the server is stopping, and waiting
//! for them to go.
//!
//! axum's graceful shutdown finishes in-flight HTTP requests, but an
//! upgraded WebSocket is no longer a request it tracks: without this, a
//! stopping process would cut every socket without a close frame, and
//! clients could not tell a restart from a network fault.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// The server's side: starts the shutdown and waits for connections.
#[derive(Clone)]
pub struct Shutdown {
    started: Arc<watch::Sender<bool>>,
}

/// A connection's side: resolves when the server begins to stop. Holding
/// one keeps [`Shutdown::drained`] waiting.
pub struct ShutdownWatch {
    started: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            started: Arc::new(watch::channel(false).0),
        }
    }
}

impl Shutdown {
    pub fn watch(&self) -> ShutdownWatch {
        ShutdownWatch {
            started: self.started.subscribe(),
        }
    }

    pub fn begin(&self) {
        self.started.send_replace(true);
    }

    /// Waits until every [`ShutdownWatch`] is gone, at most `grace`;
    /// returns how many were still open then.
    pub async fn drained(&self, grace: Duration) -> usize {
        let _ = tokio::time::timeout(grace, self.started.closed()).await;
        self.started.receiver_count()
    }
}

impl ShutdownWatch {
    /// Resolves once the server is stopping (at once if it already is).
    pub async fn started(&mut self) {
        // An error means the server side is gone, which is a stop too.
        let _ = self.started.wait_for(|stopping| *stopping).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watchers_hear_the_stop_and_drain_waits_for_them() {
        let shutdown = Shutdown::default();
        let mut early = shutdown.watch();
        let connection = tokio::spawn(async move {
            early.started().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        });
        shutdown.begin();
        // A connection arriving after the stop hears it at once.
        let mut late = shutdown.watch();
        tokio::time::timeout(Duration::from_secs(1), late.started())
            .await
            .expect("a late watcher hears the stop");
        drop(late);
        assert_eq!(shutdown.drained(Duration::from_secs(5)).await, 0);
        connection.await.unwrap();
    }

    #[tokio::test]
    async fn drain_gives_up_after_the_grace_period() {
        let shutdown = Shutdown::default();
        let _stuck = shutdown.watch();
        shutdown.begin();
        assert_eq!(shutdown.drained(Duration::from_millis(20)).await, 1);
    }
}

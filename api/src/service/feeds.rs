//! The staff feeds: an agent's own events and the queue, built here as the
//! session feed is (live.rs), each counted in the subscriptions gauge for as
//! long as it runs. The transport only maps their items to its types.

use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::ChatService;
use crate::auth::Viewer;
use crate::error::AppResult;
use crate::events::{AgentEvent, QueueChanged};
use crate::metrics::GaugeGuard;

impl ChatService {
    /// Agent: offers, assignments and status changes of the caller.
    pub fn agent_feed(
        &self,
        viewer: &Viewer,
    ) -> AppResult<impl Stream<Item = AgentEvent> + Send + 'static> {
        let agent_id = viewer.require_agent()?;
        let mut events = self.bus().subscribe_agent(agent_id);
        let subscribed = GaugeGuard::new(self.metrics(), |m| &m.subscriptions);
        Ok(async_stream::stream! {
            let _subscribed = subscribed;
            loop {
                match events.recv().await {
                    Ok(event) => yield event,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }

    /// Agent or admin: the queue as it changes. A watcher that lags skips
    /// what it missed; the next event carries fresh figures.
    pub fn queue_feed(
        &self,
        viewer: &Viewer,
    ) -> AppResult<impl Stream<Item = QueueChanged> + Send + 'static> {
        viewer.require_staff()?;
        let mut events = self.bus().subscribe_queue();
        let subscribed = GaugeGuard::new(self.metrics(), |m| &m.subscriptions);
        Ok(async_stream::stream! {
            let _subscribed = subscribed;
            loop {
                match events.recv().await {
                    Ok(event) => yield event,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }
}

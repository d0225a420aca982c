//! The live feed of one session: replay from storage, then live events,
//! with no gap and no duplicate.

use futures_util::Stream;
use std::future::Future;

use tokio::sync::broadcast::{self, error::RecvError};

use super::core::Core;
use super::sessions::parse_session_id;
use super::workspace::NoteFeed;
use crate::auth::Viewer;
use crate::domain::{
    access, ChatSession, Message, MessageStatus, MessageView, Party, SessionStatus,
};
use crate::error::{AppError, AppResult};
use crate::events::{AgentEvent, QueueChanged, SessionEvent, SessionSignal, TopicReceiver};
use crate::metrics::GaugeGuard;
use crate::repo::{messages, sessions};

/// Messages read from storage per round trip while replaying.
const REPLAY_PAGE: u64 = 500;
/// How long a delivered mark waits for the next pushes to share its write.
/// A busy chat would otherwise cost a database write (and a receipt event
/// to both sides) for every message pushed, and hold up the next push.
const RECEIPT_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

/// Messages pushed to the recipient and not yet marked delivered. Recorded
/// when the window closes, or when the feed ends first (the messages did
/// reach the recipient's connection).
struct PendingReceipt {
    core: std::sync::Arc<Core>,
    session_id: uuid::Uuid,
    party: Party,
    up_to: Option<i32>,
}

impl PendingReceipt {
    async fn flush(&mut self) -> AppResult<()> {
        match self.up_to.take() {
            Some(seq) => {
                self.core
                    .messages()
                    .mark_delivered(self.session_id, self.party, seq)
                    .await
            }
            None => Ok(()),
        }
    }
}

impl Drop for PendingReceipt {
    fn drop(&mut self) {
        // Without a runtime (the process is ending) there is nobody to write.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some(seq) = self.up_to.take() {
            let (core, id, party) = (self.core.clone(), self.session_id, self.party);
            runtime.spawn(async move {
                if let Err(e) = core.messages().mark_delivered(id, party, seq).await {
                    tracing::warn!(error = %e, "could not record a delivery");
                }
            });
        }
    }
}

/// What woke a live feed. Lives on the stack for one turn of the loop.
#[allow(clippy::large_enum_variant)]
enum Wake {
    Live(Result<SessionSignal, RecvError>),
    Heartbeat,
    ReceiptDue,
    /// The queue changed somewhere: a waiting customer's place may have.
    QueueMoved,
    PlaceDue,
}

/// How long a waiting customer's feed lets queue changes gather before it
/// looks at its place again: a burst of assignments costs one look.
const PLACE_WINDOW: std::time::Duration = std::time::Duration::from_millis(250);

/// A waiting customer's place and estimated wait, as last pushed to them.
struct Place {
    queue: broadcast::Receiver<QueueChanged>,
    pushed: Option<(Option<i32>, Option<i32>)>,
    due: bool,
}

/// One item of a session's live feed.
#[derive(Clone, Debug)]
pub enum LiveItem {
    Message(MessageView),
    /// Sent once, after the replay and before anything live.
    CaughtUp {
        seq: i32,
    },
    Event(SessionEvent),
}

/// How `party` (the subscriber's side, if any) sees a message pushed to them
/// now: what reaches its recipient's live connection is delivered.
fn pushed_view(m: Message, session: &ChatSession, party: Option<Party>) -> MessageView {
    let to_subscriber = Some(m.sender.recipient()) == party;
    let mut view = MessageView::from_cursors(m, session);
    if to_subscriber && view.status == MessageStatus::Sent {
        view.status = MessageStatus::Delivered;
    }
    view
}

/// The subscription feeds: a session's, an agent's, the queue.
pub struct Live<'a> {
    pub(super) core: &'a std::sync::Arc<Core>,
}

impl Live<'_> {
    /// Every message with seq > `after_seq` from storage in order, one
    /// `CaughtUp`, then live events.
    ///
    /// The live feed is attached *before* storage is read, and live messages
    /// are then filtered by seq: a message committed during the replay is
    /// either read from storage (and its live copy skipped) or arrives live.
    /// A jump in seq (events from concurrent senders can be published out of
    /// commit order) or a lagging receiver is repaired from storage.
    pub async fn session_events(
        &self,
        viewer: &Viewer,
        session_id: &str,
        after_seq: i32,
    ) -> AppResult<impl Stream<Item = AppResult<LiveItem>> + Send + 'static> {
        if after_seq < 0 {
            return Err(AppError::BadUserInput(
                "afterSeq must not be negative".into(),
            ));
        }
        let id = parse_session_id(session_id)?;
        let mut live = self.core.bus.subscribe_session(id);
        let session = sessions::find(&self.core.db, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        if !access::may_follow(viewer, &session) {
            return Err(AppError::Forbidden(
                "only the session's customer, its agent and admins follow it".into(),
            ));
        }
        if after_seq > session.last_seq {
            return Err(AppError::BadUserInput(format!(
                "afterSeq {after_seq} is beyond the newest message ({})",
                session.last_seq
            )));
        }
        let party = session.party_of(viewer.role, &viewer.id);
        // Staff get the notes too; a customer's feed has none.
        let mut notes = NoteFeed::start(self.core, viewer, id, after_seq).await?;
        let viewer = viewer.clone();
        let core = std::sync::Arc::clone(self.core);

        let follows_as_customer = party == Some(Party::Customer);
        // A waiting customer is told their place and estimated wait as the
        // queue moves (SessionChanged), until an agent takes the session.
        let mut place =
            (follows_as_customer && session.status == SessionStatus::Waiting).then(|| Place {
                queue: self.core.bus.subscribe_queue(),
                pushed: None,
                due: false,
            });
        let mut heartbeat = self
            .core
            .clock
            .interval(self.core.presence().presence_heartbeat());

        let subscribed = GaugeGuard::new(self.core.metrics(), |m| &m.subscriptions);

        Ok(async_stream::try_stream! {
            let _subscribed = subscribed;
            let mut sent = after_seq;
            loop {
                let page = messages::range(&core.db, id, sent, None, REPLAY_PAGE).await?;
                let full = page.len() as u64 == REPLAY_PAGE;
                for m in page {
                    sent = m.seq;
                    yield LiveItem::Message(pushed_view(m, &session, party));
                }
                if !full {
                    break;
                }
            }
            // Notes have no seq: those written since the replay's start
            // follow its messages.
            if let Some(feed) = notes.as_mut() {
                for n in feed.catch_up(&core).await? {
                    yield LiveItem::Event(SessionEvent::NoteAdded(n));
                }
            }
            // Recorded before CaughtUp, so that whatever the client does
            // once caught up sees the replay as delivered.
            if let Some(p) = party {
                core.messages().mark_delivered(id, p, sent).await?;
            }
            yield LiveItem::CaughtUp { seq: sent };

            let mut receipt = party.map(|party| PendingReceipt {
                core: core.clone(),
                session_id: id,
                party,
                up_to: None,
            });
            let receipt_timer = core.clock.sleep(RECEIPT_WINDOW);
            tokio::pin!(receipt_timer);
            let place_timer = core.clock.sleep(PLACE_WINDOW);
            tokio::pin!(place_timer);
            loop {
                // What to read from storage before going on, and a live
                // message (from this process) to send after it.
                let mut missed_events = false;
                let receipt_pending = receipt.as_ref().is_some_and(|r| r.up_to.is_some());
                let place_due = place.as_ref().is_some_and(|p| p.due);
                let queue_moved = async {
                    match place.as_mut() {
                        Some(p) => p.queue.recv().await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                };
                let wake = tokio::select! {
                    r = live.recv() => Wake::Live(r),
                    _ = heartbeat.tick(), if follows_as_customer => Wake::Heartbeat,
                    _ = &mut receipt_timer, if receipt_pending => Wake::ReceiptDue,
                    moved = queue_moved => match moved {
                        Err(RecvError::Closed) => { place = None; continue; }
                        // Lagged or not, the place is worth a look.
                        _ => Wake::QueueMoved,
                    },
                    _ = &mut place_timer, if place_due => Wake::PlaceDue,
                };
                let received = match wake {
                    Wake::Live(received) => received,
                    Wake::Heartbeat => {
                        // The open feed is the customer's presence.
                        core.presence().customer_seen(id).await?;
                        continue;
                    }
                    Wake::ReceiptDue => {
                        if let Some(r) = receipt.as_mut() {
                            r.flush().await?;
                        }
                        continue;
                    }
                    Wake::QueueMoved => {
                        if let Some(p) = place.as_mut() {
                            if !p.due {
                                p.due = true;
                                place_timer.as_mut().reset(core.clock.deadline(PLACE_WINDOW));
                            }
                        }
                        continue;
                    }
                    Wake::PlaceDue => {
                        let Some(p) = place.as_mut() else { continue };
                        p.due = false;
                        let now = sessions::find(&core.db, id).await?.ok_or_else(AppError::session_not_found)?;
                        if now.status != SessionStatus::Waiting {
                            // Its own SessionChanged tells the rest.
                            place = None;
                            continue;
                        }
                        let queue = core.queue();
                        let seen = (
                            queue.queue_position(&now).await?,
                            queue.estimated_wait_seconds(&now).await?,
                        );
                        if p.pushed != Some(seen) {
                            p.pushed = Some(seen);
                            yield LiveItem::Event(SessionEvent::SessionChanged(now));
                        }
                        continue;
                    }
                };
                let (catch_up, live_message): (Option<Option<i32>>, Option<Message>) = match received {
                    Err(RecvError::Closed) => break,
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::debug!(%id, skipped, "session subscriber lagged; catching up from storage");
                        missed_events = true;
                        (Some(None), None)
                    }
                    Ok(SessionSignal::Resync) => {
                        missed_events = true;
                        (Some(None), None)
                    }
                    Ok(SessionSignal::StoredUpTo(seq)) if seq > sent => (Some(Some(seq)), None),
                    Ok(SessionSignal::StoredUpTo(_)) => continue,
                    Ok(SessionSignal::Event(SessionEvent::MessagePosted(m))) => {
                        if m.seq <= sent {
                            continue;
                        }
                        // Published out of commit order: the missing ones are stored.
                        let gap = (m.seq > sent + 1).then_some(Some(m.seq - 1));
                        (gap, Some(m))
                    }
                    Ok(SessionSignal::Event(SessionEvent::SessionChanged(changed))) => {
                        // Handing a session on (transfer, decline, lapse)
                        // ends the old agent's view of it.
                        if !access::may_follow(&viewer, &changed) {
                            Err(AppError::Forbidden("you no longer have access to this session".into()))?;
                        }
                        match (changed.status == SessionStatus::Waiting, place.is_some()) {
                            (false, _) => place = None,
                            // Back in the queue (declined, lapsed, sent back).
                            (true, false) if follows_as_customer => {
                                place = Some(Place {
                                    queue: core.bus.subscribe_queue(),
                                    pushed: None,
                                    due: false,
                                });
                            }
                            _ => {}
                        }
                        yield LiveItem::Event(SessionEvent::SessionChanged(changed));
                        continue;
                    }
                    Ok(SessionSignal::Event(SessionEvent::NoteAdded(n))) => {
                        if let Some(feed) = notes.as_mut() {
                            if feed.first_time(&n) {
                                yield LiveItem::Event(SessionEvent::NoteAdded(n));
                            }
                        }
                        continue;
                    }
                    Ok(SessionSignal::NoteStored(note_id)) => {
                        if let Some(feed) = notes.as_mut() {
                            if let Some(n) = feed.stored(&core, note_id).await? {
                                yield LiveItem::Event(SessionEvent::NoteAdded(n));
                            }
                        }
                        continue;
                    }
                    Ok(SessionSignal::Event(other)) => {
                        yield LiveItem::Event(other);
                        continue;
                    }
                };
                // Whether anything addressed to the subscriber went out.
                let mut reached_recipient = false;
                if let Some(up_to) = catch_up {
                    loop {
                        let page = messages::range(&core.db, id, sent, up_to, REPLAY_PAGE).await?;
                        let full = page.len() as u64 == REPLAY_PAGE;
                        for m in page {
                            sent = m.seq;
                            reached_recipient |= Some(m.sender.recipient()) == party;
                            yield LiveItem::Message(pushed_view(m, &session, party));
                        }
                        if !full {
                            break;
                        }
                    }
                }
                if let Some(m) = live_message {
                    let latency = (core.clock.now() - m.created_at).num_microseconds().unwrap_or(0) as f64 / 1e6;
                    core.metrics.delivery_latency.observe(latency);
                    if m.seq > sent {
                        sent = m.seq;
                        reached_recipient |= Some(m.sender.recipient()) == party;
                        yield LiveItem::Message(pushed_view(m, &session, party));
                    }
                }
                if let (Some(r), true) = (receipt.as_mut(), reached_recipient) {
                    if r.up_to.is_none() {
                        receipt_timer.as_mut().reset(core.clock.deadline(RECEIPT_WINDOW));
                    }
                    r.up_to = Some(sent);
                }
                if missed_events {
                    // A status change may have been among what was missed.
                    let fresh = sessions::find(&core.db, id).await?.ok_or_else(AppError::session_not_found)?;
                    if !access::may_follow(&viewer, &fresh) {
                        Err(AppError::Forbidden("you no longer have access to this session".into()))?;
                    }
                    yield LiveItem::Event(SessionEvent::SessionChanged(fresh));
                    if let Some(feed) = notes.as_mut() {
                        for n in feed.catch_up(&core).await? {
                            yield LiveItem::Event(SessionEvent::NoteAdded(n));
                        }
                    }
                }
            }
        })
    }

    /// Agent: offers, assignments and status changes of the caller.
    pub fn agent_feed(
        &self,
        viewer: &Viewer,
    ) -> AppResult<impl Stream<Item = AgentEvent> + Send + 'static> {
        let agent_id = viewer.require_agent()?;
        let events = self.core.bus().subscribe_agent(agent_id);
        Ok(skipping_lag(events, self.subscribed()))
    }

    /// Agent or admin: the queue as it changes. A watcher that lags skips
    /// what it missed; the next event carries fresh figures.
    pub fn queue_feed(
        &self,
        viewer: &Viewer,
    ) -> AppResult<impl Stream<Item = QueueChanged> + Send + 'static> {
        viewer.require_staff()?;
        let events = self.core.bus().subscribe_queue();
        Ok(skipping_lag(events, self.subscribed()))
    }

    /// Counts a feed in the subscriptions gauge for as long as it is held.
    fn subscribed(&self) -> GaugeGuard {
        GaugeGuard::new(self.core.metrics(), |m| &m.subscriptions)
    }
}

/// Where a staff feed's events come from: the bus's per-agent topic or its
/// queue broadcast.
trait EventSource: Send + 'static {
    type Event: Send + 'static;
    fn next(&mut self) -> impl Future<Output = Result<Self::Event, RecvError>> + Send;
}

impl<E: Clone + Send + Sync + 'static> EventSource for TopicReceiver<String, E> {
    type Event = E;
    fn next(&mut self) -> impl Future<Output = Result<E, RecvError>> + Send {
        self.recv()
    }
}

impl<E: Clone + Send + Sync + 'static> EventSource for broadcast::Receiver<E> {
    type Event = E;
    fn next(&mut self) -> impl Future<Output = Result<E, RecvError>> + Send {
        self.recv()
    }
}

/// A staff feed: every event as it comes. One that lags skips what it
/// missed (the next event carries fresh state); it ends with the bus.
fn skipping_lag<S: EventSource>(
    mut source: S,
    subscribed: GaugeGuard,
) -> impl Stream<Item = S::Event> + Send + 'static {
    async_stream::stream! {
        let _subscribed = subscribed;
        loop {
            match source.next().await {
                Ok(event) => yield event,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    }
}

//! The live feed of one session: replay from storage, then live events,
//! with no gap and no duplicate.

use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::sessions::parse_session_id;
use super::ChatService;
use crate::auth::Viewer;
use crate::domain::{ChatSession, Message, MessageStatus, MessageView, Party};
use crate::error::{AppError, AppResult};
use crate::events::SessionEvent;
use crate::repo::messages;

/// Messages read from storage per round trip while replaying.
const REPLAY_PAGE: u64 = 500;

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

impl ChatService {
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
        let mut live = self.bus.subscribe_session(id);
        let session = self.visible_session(viewer, session_id).await?;
        let party = session.party_of(viewer.role, &viewer.id);
        let svc = self.clone();

        Ok(async_stream::try_stream! {
            let mut sent = after_seq;
            loop {
                let page = messages::range(&svc.db, id, sent, None, REPLAY_PAGE).await?;
                let full = page.len() as u64 == REPLAY_PAGE;
                for m in page {
                    sent = m.seq;
                    yield LiveItem::Message(pushed_view(m, &session, party));
                }
                if !full {
                    break;
                }
            }
            yield LiveItem::CaughtUp { seq: sent };
            if let Some(p) = party {
                svc.mark_delivered(id, p, sent).await?;
            }

            loop {
                let event = match live.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Closed) => break,
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::debug!(%id, skipped, "session subscriber lagged; catching up from storage");
                        loop {
                            let page = messages::range(&svc.db, id, sent, None, REPLAY_PAGE).await?;
                            let full = page.len() as u64 == REPLAY_PAGE;
                            for m in page {
                                sent = m.seq;
                                yield LiveItem::Message(pushed_view(m, &session, party));
                            }
                            if !full {
                                break;
                            }
                        }
                        if let Some(p) = party {
                            svc.mark_delivered(id, p, sent).await?;
                        }
                        continue;
                    }
                };
                match event {
                    SessionEvent::MessagePosted(m) => {
                        if m.seq <= sent {
                            continue;
                        }
                        if m.seq > sent + 1 {
                            // Published out of commit order: the missing ones are stored.
                            for missing in messages::range(&svc.db, id, sent, Some(m.seq - 1), (m.seq - 1 - sent) as u64).await? {
                                yield LiveItem::Message(pushed_view(missing, &session, party));
                            }
                        }
                        sent = m.seq;
                        let to_subscriber = Some(m.sender.recipient()) == party;
                        yield LiveItem::Message(pushed_view(m, &session, party));
                        if let (true, Some(p)) = (to_subscriber, party) {
                            svc.mark_delivered(id, p, sent).await?;
                        }
                    }
                    other => yield LiveItem::Event(other),
                }
            }
        })
    }
}

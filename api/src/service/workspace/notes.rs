//! Internal notes: writing them, listing them, and the part of a session
//! feed that carries them to staff (never to the customer).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Workspace;
use crate::auth::{Role, Viewer};
use crate::domain::{access, validate_body, ChatSession, Note};
use crate::error::{AppError, AppResult};
use crate::events::SessionEvent;
use crate::repo::{messages, notes, sessions};
use crate::service::sessions::parse_session_id;

impl Workspace<'_> {
    /// Adds a note: the session's agent, an agent who held it, or an admin.
    /// One insert; published to the session's staff followers after it.
    pub async fn add_note(&self, viewer: &Viewer, session_id: &str, body: &str) -> AppResult<Note> {
        let id = parse_session_id(session_id)?;
        let db = &self.core.db;
        let s = sessions::find(db, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        let held_before = viewer.role == Role::Agent
            && s.agent_id.as_deref() != Some(viewer.id.as_str())
            && sessions::held_before(db, id, &viewer.id).await?;
        access::may_note(viewer, &s, held_before)?;
        let body = validate_body(body, self.core.policy.max_message_chars)
            .map_err(AppError::BadUserInput)?;
        let note = Note {
            id: Uuid::new_v4(),
            session_id: id,
            author_id: viewer.id.clone(),
            body: body.to_owned(),
            created_at: self.core.now(),
        };
        notes::insert(db, &note).await?;
        self.core
            .bus
            .publish_session(id, SessionEvent::NoteAdded(note.clone()));
        Ok(note)
    }

    /// The session's notes, oldest first; none for customers. The caller
    /// has already been allowed to see the session.
    pub async fn notes(&self, viewer: &Viewer, s: &ChatSession) -> AppResult<Vec<Note>> {
        if !access::may_read_notes(viewer) {
            return Ok(Vec::new());
        }
        Ok(notes::for_session(&self.core.db, s.id, None).await?)
    }
}

/// The notes part of one staff member's session feed: the notes written
/// after the message the feed replays from, then live ones, each once.
pub(crate) struct NoteFeed {
    session_id: Uuid,
    /// Notes from this time on are still to be sent (None: all).
    since: Option<DateTime<Utc>>,
    sent: HashSet<Uuid>,
}

impl NoteFeed {
    /// A feed for `viewer`, or None when they may not read notes. Replaying
    /// from `after_seq` > 0, the notes written since that message.
    pub async fn start(
        core: &crate::service::Core,
        viewer: &Viewer,
        session_id: Uuid,
        after_seq: i32,
    ) -> AppResult<Option<NoteFeed>> {
        if !access::may_read_notes(viewer) {
            return Ok(None);
        }
        let since = if after_seq > 0 {
            messages::range(&core.db, session_id, after_seq - 1, Some(after_seq), 1)
                .await?
                .first()
                .map(|m| m.created_at)
        } else {
            None
        };
        Ok(Some(NoteFeed {
            session_id,
            since,
            sent: HashSet::new(),
        }))
    }

    /// Stored notes not sent yet, oldest first: the replay, and again after
    /// the feed may have missed events.
    pub async fn catch_up(&mut self, core: &crate::service::Core) -> AppResult<Vec<Note>> {
        let stored = notes::for_session(&core.db, self.session_id, self.since).await?;
        Ok(stored.into_iter().filter(|n| self.first_time(n)).collect())
    }

    /// Whether a live note is new to this feed (it may have been replayed).
    pub fn first_time(&mut self, note: &Note) -> bool {
        if !self.sent.insert(note.id) {
            return false;
        }
        self.since = Some(
            self.since
                .map_or(note.created_at, |s| s.max(note.created_at)),
        );
        true
    }

    /// A note another process stored, read back, if new to this feed.
    pub async fn stored(
        &mut self,
        core: &crate::service::Core,
        id: Uuid,
    ) -> AppResult<Option<Note>> {
        if self.sent.contains(&id) {
            return Ok(None);
        }
        Ok(notes::find(&core.db, id)
            .await?
            .filter(|n| n.session_id == self.session_id && self.first_time(n)))
    }
}

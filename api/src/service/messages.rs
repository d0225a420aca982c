//! Messages, receipts and typing.

use std::collections::HashMap;

use uuid::Uuid;

use super::core::Core;
use super::infra::batch_queue::{self, BatchQueue, Batched, DeliveryMark, Pending, SendRequest};
use super::pagination::{page_size, Page, PageArgs};
use super::sessions::parse_session_id;
use super::webhooks::outbox as webhook_outbox;
use crate::auth::{Role, Viewer};
use crate::domain::webhooks::WebhookEventType;
use crate::domain::{
    access, validate_body, validate_client_message_id, ChatSession, Message, MessagePayload,
    MessageView, Party, SenderRole,
};
use crate::error::{AppError, AppResult};
use crate::events::SessionEvent;
use crate::repo::{self, messages, sessions};

/// Largest page of a transcript.
const MAX_MESSAGE_PAGE: u64 = 500;

/// The role `viewer`'s messages are stored under. Only customers and
/// agents write ([`access::writer`] refuses admins, whatever this says), so
/// it follows from the role before the session is read.
fn sender_role_of(viewer: &Viewer) -> SenderRole {
    match viewer.role {
        Role::Customer => SenderRole::Customer,
        Role::Agent | Role::Admin => SenderRole::Agent,
    }
}

/// Messages, receipts and typing.
pub struct Messages<'a> {
    pub(super) core: &'a std::sync::Arc<Core>,
}

impl Messages<'_> {
    /// Stores a message with the session's next seq. Sending the same
    /// clientMessageId again returns the first message and stores nothing.
    pub async fn send_message(
        &self,
        viewer: &Viewer,
        session_id: &str,
        body: &str,
        client_message_id: &str,
    ) -> AppResult<MessageView> {
        let id = parse_session_id(session_id)?;
        let body = validate_body(body, self.core.policy.max_message_chars)
            .map_err(AppError::BadUserInput)?;
        let client_message_id =
            validate_client_message_id(client_message_id).map_err(AppError::BadUserInput)?;
        self.take_send_slot(viewer)?;
        self.submit(viewer, id, body, client_message_id, None).await
    }

    /// One of the sender's messages per second (MESSAGE_RATE_PER_SEC), or
    /// RATE_LIMITED. Every kind of message counts.
    pub(super) fn take_send_slot(&self, viewer: &Viewer) -> AppResult<()> {
        if !self
            .core
            .message_limiter
            .try_take(&viewer.key(), self.core.clock.instant())
        {
            return Err(AppError::RateLimited(format!(
                "slow down: at most {} messages per second, bursts of {}",
                self.core.policy.message_rate_per_sec, self.core.policy.message_burst
            )));
        }
        Ok(())
    }

    /// Queues a validated send for the next send transaction (see
    /// [`Self::write_sends`]): every kind of message takes its seq, its
    /// idempotency and its live delivery from there.
    pub(super) async fn submit(
        &self,
        viewer: &Viewer,
        session_id: Uuid,
        body: &str,
        client_message_id: &str,
        payload: Option<MessagePayload>,
    ) -> AppResult<MessageView> {
        batch_queue::submit(
            self.core,
            SendRequest {
                viewer: viewer.clone(),
                session_id,
                body: body.to_owned(),
                client_message_id: client_message_id.to_owned(),
                at: self.core.now(),
                payload,
            },
        )
        .await
    }

    /// Stores the sends in one transaction: lock their sessions (in id
    /// order), look up earlier sends with the same clientMessageIds, take
    /// each session's seqs for its new messages at once, insert them all,
    /// commit, then publish. Six statements however many sends (seven while a webhook endpoint wants messages: their outbox rows, in one insert). A refused send uses no seq; a send seen before is answered
    /// with the first message, even if the session has moved on since
    /// (ended, transferred): that send did happen.
    async fn write_sends(&self, sends: &[SendRequest]) -> AppResult<Vec<AppResult<MessageView>>> {
        let mut ids: Vec<Uuid> = sends.iter().map(|s| s.session_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let txn = repo::begin_write(&self.core.db).await?;
        let mut sessions: HashMap<Uuid, ChatSession> = sessions::lock_many(&txn, &ids)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        let keys: Vec<messages::SendKey> = sends
            .iter()
            .map(|s| messages::SendKey {
                session_id: s.session_id,
                sender_id: &s.viewer.id,
                client_message_id: &s.client_message_id,
                sender: sender_role_of(&s.viewer),
            })
            .collect();
        let earlier: HashMap<(Uuid, SenderRole, String, String), Message> =
            messages::find_by_client_ids(&txn, &keys)
                .await?
                .into_iter()
                .filter_map(|m| {
                    let key = (
                        m.session_id,
                        m.sender,
                        m.sender_id.clone()?,
                        m.client_message_id.clone()?,
                    );
                    Some((key, m))
                })
                .collect();

        enum Decision {
            Refused(AppError),
            Earlier(Message),
            New(usize),
        }
        /// A send to store: its side, and its place among its session's
        /// new messages in this batch (1-based), which gives its seq.
        struct Fresh<'a> {
            send: &'a SendRequest,
            party: Party,
            nth: i32,
        }
        let mut fresh: Vec<Fresh> = Vec::new();
        let mut in_batch: HashMap<(Uuid, SenderRole, String, String), usize> = HashMap::new();
        let mut takes: HashMap<Uuid, sessions::SeqTake> = HashMap::new();
        let decisions: Vec<Decision> = sends
            .iter()
            .map(|send| {
                let key = (
                    send.session_id,
                    sender_role_of(&send.viewer),
                    send.viewer.id.clone(),
                    send.client_message_id.clone(),
                );
                if let Some(first) = earlier.get(&key) {
                    return Decision::Earlier(first.clone());
                }
                // The same send twice in one batch (a quick retry) is
                // answered with the first.
                if let Some(&first) = in_batch.get(&key) {
                    return Decision::New(first);
                }
                let Some(session) = sessions.get(&send.session_id) else {
                    return Decision::Refused(AppError::session_not_found());
                };
                let party = match access::writer(&send.viewer, session) {
                    Ok(party) => party,
                    Err(refusal) => return Decision::Refused(refusal.into()),
                };
                let take = takes.entry(session.id).or_insert(sessions::SeqTake {
                    id: session.id,
                    count: 0,
                    customer_seen: None,
                });
                take.count += 1;
                if party == Party::Customer {
                    take.customer_seen = Some(send.at);
                }
                fresh.push(Fresh {
                    send,
                    party,
                    nth: take.count,
                });
                in_batch.insert(key, fresh.len() - 1);
                Decision::New(fresh.len() - 1)
            })
            .collect();

        let takes: Vec<sessions::SeqTake> = takes.into_values().collect();
        let last_seqs = sessions::take_seqs(&txn, &takes).await?;
        let counts: HashMap<Uuid, i32> = takes.iter().map(|t| (t.id, t.count)).collect();
        let fresh: Vec<Message> = fresh
            .iter()
            .map(|f| {
                let session_id = f.send.session_id;
                let (Some(last), Some(count)) =
                    (last_seqs.get(&session_id), counts.get(&session_id))
                else {
                    return Err(AppError::session_not_found());
                };
                let mut message = messages::prepare(messages::NewMessage {
                    session_id,
                    seq: last - count + f.nth,
                    sender: SenderRole::from(f.party),
                    sender_id: Some(&f.send.viewer.id),
                    body: &f.send.body,
                    client_message_id: Some(&f.send.client_message_id),
                    created_at: f.send.at,
                });
                message.payload = f.send.payload.clone();
                Ok(message)
            })
            .collect::<AppResult<_>>()?;
        // While an endpoint wants messages, their outbox rows go in with
        // them (the same statement on Postgres).
        if !fresh.is_empty()
            && webhook_outbox::wants(self.core, &txn, WebhookEventType::MessageCreated).await?
        {
            messages::insert_many_announced(&txn, &fresh).await?;
            webhook_outbox::recorded(self.core);
        } else {
            messages::insert_many(&txn, &fresh).await?;
        }
        txn.commit().await?;
        self.core.webhooks.wake_if_recorded();
        // The sessions as they are now, for the answers' receipt status.
        for take in &takes {
            if let Some(s) = sessions.get_mut(&take.id) {
                s.last_seq = last_seqs.get(&take.id).copied().unwrap_or(s.last_seq);
                if take.customer_seen.is_some() {
                    s.customer_seen_at = take.customer_seen;
                }
            }
        }
        if !fresh.is_empty() {
            use std::sync::atomic::Ordering::Relaxed;
            self.core
                .metrics
                .messages
                .fetch_add(fresh.len() as u64, Relaxed);
            self.core.metrics.send_transactions.fetch_add(1, Relaxed);
        }
        for message in &fresh {
            self.core.bus.publish_session(
                message.session_id,
                SessionEvent::MessagePosted(message.clone()),
            );
        }

        Ok(decisions
            .into_iter()
            .map(|decision| {
                let message = match decision {
                    Decision::Refused(refusal) => return Err(refusal),
                    Decision::Earlier(first) => first,
                    Decision::New(index) => fresh[index].clone(),
                };
                let session = sessions
                    .get(&message.session_id)
                    .ok_or_else(AppError::session_not_found)?;
                Ok(MessageView::from_cursors(message, session))
            })
            .collect())
    }

    /// Moves the reader's read cursor (and delivered with it) up to `seq`;
    /// never backwards.
    pub async fn mark_read(
        &self,
        viewer: &Viewer,
        session_id: &str,
        seq: i32,
    ) -> AppResult<ChatSession> {
        let id = parse_session_id(session_id)?;
        if seq < 0 {
            return Err(AppError::BadUserInput("seq must not be negative".into()));
        }
        let txn = repo::begin_write(&self.core.db).await?;
        let session = sessions::lock(&txn, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        let party = access::reader(viewer, &session)?;
        if seq > session.last_seq {
            return Err(AppError::BadUserInput(format!(
                "seq {seq} is beyond the newest message ({})",
                session.last_seq
            )));
        }
        let (delivered, read) = session.cursors(party);
        let read_after = read.max(seq);
        let delivered_after = delivered.max(read_after);
        if (delivered_after, read_after) == (delivered, read) {
            txn.commit().await?;
            return Ok(session);
        }
        sessions::set_cursors(&txn, id, party, delivered_after, read_after).await?;
        let updated = sessions::find(&txn, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        txn.commit().await?;
        self.core.bus.publish_session(
            id,
            SessionEvent::ReceiptUpdated {
                session_id: id,
                reader: party,
                delivered_seq: delivered_after,
                read_seq: read_after,
            },
        );
        Ok(updated)
    }

    /// Moves the delivered cursor after messages reached a live connection
    /// or a fetch of the recipient; tells both sides when it moved. Marks
    /// of many sessions share one statement under load.
    pub(crate) async fn mark_delivered(
        &self,
        session_id: uuid::Uuid,
        party: Party,
        seq: i32,
    ) -> AppResult<()> {
        if seq <= 0 {
            return Ok(());
        }
        batch_queue::submit(
            self.core,
            DeliveryMark {
                session_id,
                party,
                seq,
            },
        )
        .await
    }

    /// Moves every marked cursor forward in one statement (never back, never
    /// past the newest message), then publishes the receipts that moved.
    async fn write_deliveries(&self, marks: &[DeliveryMark]) -> AppResult<Vec<AppResult<()>>> {
        // The furthest mark per session and side.
        let mut furthest: HashMap<(Uuid, Party), i32> = HashMap::new();
        for m in marks {
            let seq = furthest.entry((m.session_id, m.party)).or_insert(m.seq);
            *seq = (*seq).max(m.seq);
        }
        let wanted: Vec<sessions::DeliveredMark> = furthest
            .iter()
            .map(|(&(session_id, party), &seq)| sessions::DeliveredMark {
                session_id,
                party,
                seq,
            })
            .collect();
        let moved = sessions::advance_delivered(&self.core.db, &wanted).await?;
        {
            use std::sync::atomic::Ordering::Relaxed;
            self.core
                .metrics
                .delivery_marks
                .fetch_add(marks.len() as u64, Relaxed);
            self.core.metrics.delivery_writes.fetch_add(1, Relaxed);
        }
        for s in moved {
            for party in [Party::Customer, Party::Agent] {
                let (delivered_seq, read_seq) = s.cursors(party);
                // The row comes back when any of its marks moved; a side
                // whose cursor is not at its mark did not. (A side that was
                // already exactly at its mark is announced again: harmless,
                // a receipt is state, not a delta.)
                if furthest.get(&(s.id, party)) == Some(&delivered_seq) {
                    self.core.bus.publish_session(
                        s.id,
                        SessionEvent::ReceiptUpdated {
                            session_id: s.id,
                            reader: party,
                            delivered_seq,
                            read_seq,
                        },
                    );
                }
            }
        }
        Ok(marks.iter().map(|_| Ok(())).collect())
    }

    /// Tells the other side that the caller is or stopped typing.
    pub async fn set_typing(
        &self,
        viewer: &Viewer,
        session_id: &str,
        typing: bool,
    ) -> AppResult<bool> {
        let id = parse_session_id(session_id)?;
        let session = sessions::find(&self.core.db, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        let party = access::writer(viewer, &session)?;
        self.core.bus.publish_session(
            id,
            SessionEvent::TypingChanged {
                session_id: id,
                sender: party,
                typing,
            },
        );
        Ok(true)
    }

    /// A page of the transcript of a session the viewer can see; cursors are
    /// seqs. Fetching marks the fetched messages DELIVERED for the recipient.
    pub async fn messages(
        &self,
        viewer: &Viewer,
        session: &ChatSession,
        args: &PageArgs,
    ) -> AppResult<Page<MessageView>> {
        // The caller may hold a stale copy (from an event, say): decide on
        // the session as it is now.
        let session = &sessions::find(&self.core.db, session.id)
            .await?
            .filter(|s| access::may_view(viewer, s))
            .ok_or_else(|| AppError::Forbidden("not your session".into()))?;

        let parse_cursor = |name: &str, c: &Option<String>| -> AppResult<Option<i32>> {
            c.as_deref()
                .map(|raw| {
                    raw.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                        AppError::BadUserInput(format!("{name} must be a message seq, got {raw:?}"))
                    })
                })
                .transpose()
        };
        let after = parse_cursor("after", &args.after)?;
        let before = parse_cursor("before", &args.before)?;
        if args.first.is_some() && args.last.is_some() {
            return Err(AppError::BadUserInput(
                "pass first or last, not both".into(),
            ));
        }

        let (rows, has_previous_page, has_next_page) =
            if args.last.is_some() || (before.is_some() && args.first.is_none()) {
                let limit = page_size("last", args.last, 50, MAX_MESSAGE_PAGE)?;
                let mut rows =
                    messages::last_before(&self.core.db, session.id, before, limit + 1).await?;
                let has_previous = rows.len() as u64 > limit;
                if has_previous {
                    rows.remove(0);
                }
                let has_next = before.is_some_and(|b| b <= session.last_seq);
                (rows, has_previous, has_next)
            } else {
                let limit = page_size("first", args.first, 50, MAX_MESSAGE_PAGE)?;
                let after = after.unwrap_or(0);
                let mut rows = messages::range(
                    &self.core.db,
                    session.id,
                    after,
                    before.map(|b| b - 1),
                    limit + 1,
                )
                .await?;
                let has_next = rows.len() as u64 > limit;
                rows.truncate(limit as usize);
                (rows, after > 0, has_next)
            };

        let mut seen = session.clone();
        if let (Some(party), Some(newest)) =
            (session.reader_of(viewer.role, &viewer.id), rows.last())
        {
            self.mark_delivered(session.id, party, newest.seq).await?;
            let cursor = match party {
                Party::Customer => &mut seen.customer_delivered_seq,
                Party::Agent => &mut seen.agent_delivered_seq,
            };
            *cursor = (*cursor).max(newest.seq);
        }
        Ok(Page {
            items: rows
                .into_iter()
                .map(|m| (m.seq.to_string(), MessageView::from_cursors(m, &seen)))
                .collect(),
            has_previous_page,
            has_next_page,
        })
    }
}

impl Batched for SendRequest {
    type Answer = MessageView;
    const WHAT: &'static str = "sends";
    fn queue(core: &Core) -> &BatchQueue<Pending<Self, MessageView>> {
        &core.sends
    }
    async fn write(
        core: &std::sync::Arc<Core>,
        batch: &[Self],
    ) -> AppResult<Vec<AppResult<MessageView>>> {
        Messages { core }.write_sends(batch).await
    }
}

impl Batched for DeliveryMark {
    type Answer = ();
    const WHAT: &'static str = "delivery marks";
    fn queue(core: &Core) -> &BatchQueue<Pending<Self, ()>> {
        &core.deliveries
    }
    async fn write(core: &std::sync::Arc<Core>, batch: &[Self]) -> AppResult<Vec<AppResult<()>>> {
        Messages { core }.write_deliveries(batch).await
    }
}

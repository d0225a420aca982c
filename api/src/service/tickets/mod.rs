//! Tickets: an agent who holds or held a chat (or an admin) hands its
//! transcript to the configured ticket system, once.
//!
//! Once means once across every call and process: a caller takes the
//! session's claim in the database (`repo::tickets`) before it calls out;
//! the others wait for its ticket. A claim whose holder fails is released
//! with nothing stored, so a later call may try again; one whose holder
//! died runs out after the longest the call could take. Every attempt for
//! a session is signed with the same message id, so a ticket system that
//! honours Standard Webhooks ids never makes two tickets of one chat, even
//! when a holder died after the system had answered.

mod client;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::core::Core;
use super::webhooks::outbox as webhook_outbox;
use crate::auth::{Role, Viewer};
use crate::config::TicketSettings;
use crate::domain::webhooks::WebhookEvent;
use crate::domain::{access, backoff, ChatSession, Message, Rating, Ticket};
use crate::error::{AppError, AppResult};
use crate::events::SessionEvent;
use crate::repo::tickets::{self, TicketState};
use crate::repo::{self, history, messages, ratings, search_documents, sessions};

/// How often a caller waiting for another's claim looks again.
const WAIT_POLL: Duration = Duration::from_millis(100);
/// Slack on a claim beyond the longest its holder's calls can take.
const CLAIM_MARGIN: Duration = Duration::from_secs(10);
/// Messages read per query while building a transcript.
const TRANSCRIPT_PAGE: u64 = 500;

pub struct Tickets<'a> {
    pub(super) core: &'a Arc<Core>,
}

/// How long a claim lasts: every attempt timing out, the pauses between
/// them, and a margin for the database work around them.
fn claim_length(settings: &TicketSettings) -> Duration {
    let pauses: Duration = (1..settings.attempts).map(backoff).sum();
    settings.timeout * settings.attempts + pauses + CLAIM_MARGIN
}

impl Tickets<'_> {
    /// The session's ticket, for its staff (agents who may see the session,
    /// admins); customers do not see the ticket system's links.
    pub async fn ticket_of(&self, viewer: &Viewer, s: &ChatSession) -> AppResult<Option<Ticket>> {
        if viewer.role == Role::Customer {
            return Ok(None);
        }
        Ok(tickets::find(&self.core.db, s.id).await?)
    }

    /// Hands the chat to the ticket system, or returns it with the ticket
    /// it already has.
    pub async fn convert_to_ticket(
        &self,
        viewer: &Viewer,
        session_id: &str,
    ) -> AppResult<ChatSession> {
        let id = Uuid::parse_str(session_id).map_err(|_| AppError::session_not_found())?;
        let s = sessions::find(&self.core.db, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        let holds_now = s.agent_id.as_deref() == Some(viewer.id.as_str())
            && s.status != crate::domain::SessionStatus::Offered;
        let held_before = viewer.role == Role::Agent
            && !holds_now
            && history::ever_held(&self.core.db, id, &viewer.id).await?;
        if !access::may_view(viewer, &s) && !held_before {
            return Err(AppError::session_not_found());
        }
        access::may_ticket(viewer, &s, held_before)?;
        let Some(settings) = self.core.policy.tickets.as_ref() else {
            return Err(AppError::BadUserInput(
                "no ticket system is configured on this server (set TICKET_URL and TICKET_SECRET)"
                    .into(),
            ));
        };
        let length = claim_length(settings);
        let give_up = tokio::time::Instant::now() + length;
        // Whether this call saw another caller's claim: if that one then
        // fails, so does this (one call to a failing system, not one each).
        let mut waited = false;
        loop {
            let now = self.core.shared_now(&self.core.db).await?;
            match tickets::state(&self.core.db, id).await? {
                TicketState::Created(_) => return self.core.reload(&self.core.db, id).await,
                TicketState::Claimed { until, .. } if until >= now => {
                    waited = true;
                    if tokio::time::Instant::now() >= give_up {
                        return Err(AppError::Conflict(
                            "a ticket for this chat is still being created; try again shortly"
                                .into(),
                        ));
                    }
                    tokio::time::sleep(WAIT_POLL).await;
                    continue;
                }
                TicketState::Released { last_error } if waited => {
                    tracing::warn!(session = %id, error = ?last_error, "ticket creation failed meanwhile");
                    return Err(AppError::Upstream(
                        "the ticket system could not take the chat; no ticket was stored, so \
                         trying again is safe"
                            .into(),
                    ));
                }
                _ => {}
            }
            let claim = Uuid::new_v4();
            let until = now
                + chrono::Duration::from_std(length)
                    .map_err(|e| AppError::Internal(format!("claim length: {e}")))?;
            if tickets::claim(&self.core.db, id, claim, now, until).await? {
                return self.create(settings, &s, claim).await;
            }
            // Another caller took it between the read and the claim.
        }
    }

    /// With the claim held: builds the transcript, calls the ticket system,
    /// and stores the ticket with its SYSTEM line, or releases the claim.
    async fn create(
        &self,
        settings: &TicketSettings,
        s: &ChatSession,
        claim: Uuid,
    ) -> AppResult<ChatSession> {
        let id = s.id;
        let body = match self.transcript(s).await {
            Ok(body) => body,
            Err(e) => {
                tickets::release(&self.core.db, id, claim, "could not read the transcript").await?;
                return Err(e);
            }
        };
        let message_id = format!("msg_ticket_{}", id.simple());
        match client::post(settings, &self.core.clock, &message_id, body).await {
            Ok((external_id, url)) => self.store(id, claim, external_id, url).await,
            Err(failure) => {
                tracing::warn!(session = %id, error = %failure, "ticket not created");
                tickets::release(&self.core.db, id, claim, &failure.to_string()).await?;
                Err(AppError::Upstream(failure.for_client()))
            }
        }
    }

    async fn store(
        &self,
        id: Uuid,
        claim: Uuid,
        external_id: String,
        url: Option<String>,
    ) -> AppResult<ChatSession> {
        let txn = repo::begin_write(&self.core.db).await?;
        sessions::lock(&txn, id)
            .await?
            .ok_or_else(AppError::session_not_found)?;
        let now = self.core.shared_now(&txn).await?;
        let line = format!("Ticket #{external_id} created");
        let ticket = Ticket {
            external_id,
            url,
            created_at: now,
        };
        if !tickets::complete(&txn, id, claim, &ticket).await? {
            // Our claim ran out and another caller took it; theirs stands.
            txn.rollback().await?;
            tracing::warn!(session = %id, ticket = %ticket.external_id, "ticket claim lost before storing");
            return self.core.reload(&self.core.db, id).await;
        }
        let posted = self
            .core
            .transitions()
            .append_system_message(&txn, id, &line, now)
            .await?;
        let after = self.core.reload(&txn, id).await?;
        if !after.status.is_open() {
            // An ended session's search document holds every line.
            search_documents::refresh(&txn, id).await?;
        }
        webhook_outbox::record(
            self.core,
            &txn,
            now,
            WebhookEvent::TicketRequested {
                session: after.clone(),
                ticket: serde_json::json!({
                    "externalId": ticket.external_id,
                    "url": ticket.url,
                    "createdAt": ticket.created_at,
                }),
            },
        )
        .await?;
        txn.commit().await?;
        self.core.webhooks.wake_if_recorded();
        self.core
            .bus
            .publish_session(id, SessionEvent::MessagePosted(posted));
        Ok(after)
    }

    /// The JSON the ticket system receives (a Standard Webhooks payload:
    /// `type`, `timestamp`, `data`).
    async fn transcript(&self, s: &ChatSession) -> AppResult<Vec<u8>> {
        let mut lines = Vec::new();
        let mut after = 0;
        loop {
            let page = messages::range(&self.core.db, s.id, after, None, TRANSCRIPT_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            lines.extend(page.iter().map(TranscriptLine::from));
            if (page.len() as u64) < TRANSCRIPT_PAGE {
                break;
            }
        }
        let rating = ratings::find(&self.core.db, s.id).await?;
        let payload = Payload {
            kind: "chat.ticket",
            timestamp: self.core.now(),
            data: TranscriptData {
                session_id: s.id,
                subject: s.subject.as_deref(),
                customer_id: &s.customer_id,
                agent_id: s.agent_id.as_deref(),
                status: s.status.as_str(),
                created_at: s.created_at,
                ended_at: s.ended_at,
                messages: lines,
                notes: self.transcript_notes(s).await?,
                rating: rating.as_ref().map(TranscriptRating::from),
            },
        };
        serde_json::to_vec(&payload)
            .map_err(|e| AppError::Internal(format!("could not write the transcript: {e}")))
    }

    /// The session's internal notes, oldest first: the ticket is for
    /// staff, like the notes.
    async fn transcript_notes(&self, s: &ChatSession) -> AppResult<Vec<TranscriptNote>> {
        Ok(crate::repo::notes::for_session(&self.core.db, s.id, None)
            .await?
            .into_iter()
            .map(|n| TranscriptNote {
                author_id: n.author_id,
                body: n.body,
                created_at: n.created_at,
            })
            .collect())
    }
}

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: DateTime<Utc>,
    data: TranscriptData<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TranscriptData<'a> {
    session_id: Uuid,
    subject: Option<&'a str>,
    customer_id: &'a str,
    agent_id: Option<&'a str>,
    status: &'static str,
    created_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    messages: Vec<TranscriptLine>,
    notes: Vec<TranscriptNote>,
    rating: Option<TranscriptRating>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TranscriptLine {
    seq: i32,
    /// CUSTOMER, AGENT or SYSTEM.
    sender: &'static str,
    sender_id: Option<String>,
    body: String,
    created_at: DateTime<Utc>,
}

impl From<&Message> for TranscriptLine {
    fn from(m: &Message) -> Self {
        TranscriptLine {
            seq: m.seq,
            sender: m.sender.as_str(),
            sender_id: m.sender_id.clone(),
            body: m.body.clone(),
            created_at: m.created_at,
        }
    }
}

/// One internal note, as the ticket receives it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TranscriptNote {
    pub author_id: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TranscriptRating {
    score: i32,
    comment: Option<String>,
    agent_id: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<&Rating> for TranscriptRating {
    fn from(r: &Rating) -> Self {
        TranscriptRating {
            score: r.score,
            comment: r.comment.clone(),
            agent_id: r.agent_id.clone(),
            created_at: r.created_at,
        }
    }
}

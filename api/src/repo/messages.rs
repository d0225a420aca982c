use chrono::{DateTime, Utc};
use entity::message::{self, Column};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};
use uuid::Uuid;

use super::{json_batch, outbox, parse, pg_time, uses_json_batches};
use crate::domain::webhooks::WebhookEventType;
use crate::domain::{Message, MessagePayload, SenderRole};

fn to_domain(m: message::Model) -> Result<Message, DbErr> {
    Ok(Message {
        sender: parse(&m.sender)?,
        id: m.id,
        session_id: m.session_id,
        seq: m.seq,
        sender_id: m.sender_id,
        body: m.body,
        client_message_id: m.client_message_id,
        created_at: m.created_at,
        payload: m.payload.as_deref().map(read_payload).transpose()?,
    })
}

fn read_payload(json: &str) -> Result<MessagePayload, DbErr> {
    serde_json::from_str(json).map_err(|e| DbErr::Type(format!("message payload: {e}")))
}

/// The payload column's text: JSON, null for text messages.
fn payload_json(msg: &Message) -> Option<String> {
    msg.payload.as_ref().map(|p| {
        // A payload is plain strings and numbers: it always serializes.
        serde_json::to_string(p).unwrap_or_default()
    })
}

fn all_to_domain(rows: Vec<message::Model>) -> Result<Vec<Message>, DbErr> {
    rows.into_iter().map(to_domain).collect()
}

/// [`find_by_client_ids`] on Postgres. One index lookup per key, however
/// small the table: Postgres guesses 100 rows for any json_to_recordset,
/// and while messages is small (a new deployment) a plain join would read
/// all of it, inside the send transaction, while it holds session locks.
pub const EARLIER_SENDS_SQL: &str = "SELECT m.* FROM json_to_recordset($1::json) \
    AS k(session_id uuid, sender_id text, client_message_id text, sender text) \
    CROSS JOIN LATERAL (SELECT * FROM messages \
      WHERE session_id = k.session_id AND sender_id = k.sender_id \
        AND client_message_id = k.client_message_id AND sender = k.sender LIMIT 1) m";

/// One earlier send to look for: a sender is a role and an id.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct SendKey<'a> {
    pub session_id: Uuid,
    pub sender_id: &'a str,
    pub client_message_id: &'a str,
    #[serde(serialize_with = "sender_name")]
    pub sender: SenderRole,
}

fn sender_name<S: serde::Serializer>(sender: &SenderRole, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(sender.as_str())
}

/// Which of `keys` were sent before: one lookup for a batch of sends.
pub async fn find_by_client_ids<C: ConnectionTrait>(
    db: &C,
    keys: &[SendKey<'_>],
) -> Result<Vec<Message>, DbErr> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    if uses_json_batches(db) {
        let statement = json_batch(EARLIER_SENDS_SQL, &keys)?;
        return all_to_domain(
            message::Entity::find()
                .from_raw_sql(statement)
                .all(db)
                .await?,
        );
    }
    let any = keys.iter().fold(Condition::any(), |any, key| {
        any.add(
            Condition::all()
                .add(Column::SessionId.eq(key.session_id))
                .add(Column::SenderId.eq(key.sender_id))
                .add(Column::ClientMessageId.eq(key.client_message_id))
                .add(Column::Sender.eq(key.sender.as_str())),
        )
    });
    all_to_domain(message::Entity::find().filter(any).all(db).await?)
}

pub struct NewMessage<'a> {
    pub session_id: Uuid,
    pub seq: i32,
    pub sender: SenderRole,
    pub sender_id: Option<&'a str>,
    pub body: &'a str,
    pub client_message_id: Option<&'a str>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert<C: ConnectionTrait>(db: &C, new: NewMessage<'_>) -> Result<Message, DbErr> {
    let msg = to_message(new);
    message::Entity::insert(active_model(&msg))
        .exec_without_returning(db)
        .await?;
    Ok(msg)
}

/// Inserts messages built by [`prepare`] in one statement.
pub async fn insert_many<C: ConnectionTrait>(db: &C, msgs: &[Message]) -> Result<(), DbErr> {
    if msgs.is_empty() {
        return Ok(());
    }
    if uses_json_batches(db) {
        db.execute(insert_statement(msgs, false)?).await?;
        return Ok(());
    }
    message::Entity::insert_many(msgs.iter().map(active_model))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Inserts messages as [`insert_many`] does, with their `message.created`
/// outbox rows: on Postgres in the same statement, so that a webhook
/// endpoint adds no round trip to a send while it holds its sessions.
pub async fn insert_many_announced<C: ConnectionTrait>(
    db: &C,
    msgs: &[Message],
) -> Result<(), DbErr> {
    if msgs.is_empty() {
        return Ok(());
    }
    if uses_json_batches(db) {
        db.execute(insert_statement(msgs, true)?).await?;
        return Ok(());
    }
    insert_many(db, msgs).await?;
    let events: Vec<outbox::NewEvent> =
        msgs.iter().map(outbox::NewEvent::message_created).collect();
    outbox::insert_events(db, &events).await
}

/// The batch insert of `msgs` (Postgres), and when `announced` their
/// `message.created` outbox rows in the same statement.
fn insert_statement(msgs: &[Message], announced: bool) -> Result<Statement, DbErr> {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        id: Uuid,
        session_id: Uuid,
        seq: i32,
        sender: &'a str,
        sender_id: Option<&'a str>,
        body: &'a str,
        client_message_id: Option<&'a str>,
        #[serde(serialize_with = "pg_time::at")]
        created_at: DateTime<Utc>,
        // Left out for text, which json_to_recordset reads as null: a
        // text message's row is as long as before files existed.
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
    }
    let rows: Vec<Row> = msgs
        .iter()
        .map(|m| Row {
            id: m.id,
            session_id: m.session_id,
            seq: m.seq,
            sender: m.sender.as_str(),
            sender_id: m.sender_id.as_deref(),
            body: &m.body,
            client_message_id: m.client_message_id.as_deref(),
            created_at: m.created_at,
            payload: payload_json(m),
        })
        .collect();
    let insert = "INSERT INTO messages \
           (id, session_id, seq, sender, sender_id, body, client_message_id, created_at, \
            payload) \
         SELECT id, session_id, seq, sender, sender_id, body, client_message_id, created_at, \
           payload \
         FROM json_to_recordset($1::json) AS m(id uuid, session_id uuid, seq int, \
           sender text, sender_id text, body text, client_message_id text, \
           created_at timestamptz, payload text)";
    if !announced {
        return json_batch(insert, &rows);
    }
    let json = serde_json::to_string(&rows).map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        // The rows `outbox::NewEvent::message_created` describes, each
        // session's in the order of its messages.
        format!(
            "WITH inserted AS ({insert} RETURNING id, session_id, seq, created_at) \
             INSERT INTO webhook_events \
               (event_type, session_id, payload, message_id, fanned_out, created_at) \
             SELECT $2, m.session_id, '', m.id, false, m.created_at FROM inserted m \
             ORDER BY m.session_id, m.seq"
        ),
        [
            json.into(),
            WebhookEventType::MessageCreated.as_str().into(),
        ],
    ))
}

/// The message `new` describes, with a fresh id, not yet stored.
pub fn prepare(new: NewMessage<'_>) -> Message {
    to_message(new)
}

fn to_message(new: NewMessage<'_>) -> Message {
    Message {
        id: Uuid::new_v4(),
        session_id: new.session_id,
        seq: new.seq,
        sender: new.sender,
        sender_id: new.sender_id.map(str::to_owned),
        body: new.body.to_owned(),
        client_message_id: new.client_message_id.map(str::to_owned),
        created_at: new.created_at,
        payload: None,
    }
}

fn active_model(msg: &Message) -> message::ActiveModel {
    message::ActiveModel {
        id: Set(msg.id),
        session_id: Set(msg.session_id),
        seq: Set(msg.seq),
        sender: Set(msg.sender.as_str().to_owned()),
        sender_id: Set(msg.sender_id.clone()),
        body: Set(msg.body.clone()),
        client_message_id: Set(msg.client_message_id.clone()),
        created_at: Set(msg.created_at),
        payload: Set(payload_json(msg)),
    }
}

/// Messages with after < seq <= up_to, oldest first, at most `limit`.
pub async fn range<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    after: i32,
    up_to: Option<i32>,
    limit: u64,
) -> Result<Vec<Message>, DbErr> {
    let mut q = message::Entity::find()
        .filter(Column::SessionId.eq(session_id))
        .filter(Column::Seq.gt(after));
    if let Some(up_to) = up_to {
        q = q.filter(Column::Seq.lte(up_to));
    }
    all_to_domain(q.order_by_asc(Column::Seq).limit(limit).all(db).await?)
}

/// The newest `limit` messages with seq < before, oldest first.
pub async fn last_before<C: ConnectionTrait>(
    db: &C,
    session_id: Uuid,
    before: Option<i32>,
    limit: u64,
) -> Result<Vec<Message>, DbErr> {
    let mut q = message::Entity::find().filter(Column::SessionId.eq(session_id));
    if let Some(before) = before {
        q = q.filter(Column::Seq.lt(before));
    }
    let mut rows = all_to_domain(q.order_by_desc(Column::Seq).limit(limit).all(db).await?)?;
    rows.reverse();
    Ok(rows)
}

/// Deletes every message of these sessions (retention, before the sessions
/// themselves go).
pub async fn delete_for_sessions<C: ConnectionTrait>(
    db: &C,
    session_ids: &[Uuid],
) -> Result<(), DbErr> {
    message::Entity::delete_many()
        .filter(Column::SessionId.is_in(session_ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(())
}

/// One message by its id.
pub async fn find<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<Option<Message>, DbErr> {
    message::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
}

/// The messages with these ids that exist (in no particular order).
pub async fn find_many<C: ConnectionTrait>(db: &C, ids: Vec<Uuid>) -> Result<Vec<Message>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut select = message::Entity::find();
    select = if uses_json_batches(db) {
        // One array parameter however many.
        select.filter(sea_orm::sea_query::Expr::cust_with_values(
            "messages.id = ANY($1)",
            [ids],
        ))
    } else {
        select.filter(Column::Id.is_in(ids))
    };
    select.all(db).await?.into_iter().map(to_domain).collect()
}

/// The store keys of the files sent in these sessions (retention deletes
/// them with the sessions).
pub async fn file_keys_for_sessions<C: ConnectionTrait>(
    db: &C,
    session_ids: &[Uuid],
) -> Result<Vec<String>, DbErr> {
    let rows: Vec<(Uuid, Option<String>)> = message::Entity::find()
        .select_only()
        .column(Column::SessionId)
        .column(Column::Payload)
        .filter(Column::SessionId.is_in(session_ids.iter().copied()))
        .filter(Column::Payload.is_not_null())
        .into_tuple()
        .all(db)
        .await?;
    let mut keys = Vec::new();
    for (session_id, payload) in rows {
        if let Some(MessagePayload::File(file)) =
            payload.as_deref().map(read_payload).transpose()?
        {
            keys.push(file.storage_key(session_id));
        }
    }
    Ok(keys)
}

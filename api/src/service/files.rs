//! Files and articles in chats: `sendFile` (sniff, store, then send as a
//! FILE message through the one send path), `shareArticle`, the signed
//! download links of `Attachment.url`, and the downloads they open.

use std::io::{Read, Seek};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::core::Core;
use super::sessions::parse_session_id;
use crate::auth::{Role, Viewer};
use crate::domain::files::{
    content_type_allowed, sanitize_filename, sniff, validate_article, validate_caption, LinkSigner,
    SNIFF_BYTES,
};
use crate::domain::{
    access, validate_client_message_id, Attachment, ChatSession, Message, MessagePayload,
    MessageView, SenderRole,
};
use crate::error::{AppError, AppResult};
use crate::repo::{messages, sessions};
use crate::storage::{ByteStream, Storage, StorageError};

/// How files are kept and handed out, from the settings.
#[derive(Clone)]
pub struct FilePolicy {
    pub storage: Arc<dyn Storage>,
    pub signer: LinkSigner,
    /// How long a download link works.
    pub link_ttl: chrono::Duration,
    /// Where clients reach the server, for absolute links; relative without.
    pub public_url: Option<String>,
    /// Sniffed content types an upload may have.
    pub content_types: Vec<String>,
    pub max_upload_bytes: u64,
    /// Origins articles may be shared from; none turns sharing off.
    pub article_origins: Vec<String>,
}

impl std::fmt::Debug for FilePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilePolicy")
            .field("storage", &self.storage.describe())
            .field("link_ttl", &self.link_ttl)
            .field("public_url", &self.public_url)
            .field("content_types", &self.content_types)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("article_origins", &self.article_origins)
            .finish_non_exhaustive()
    }
}

/// A file as the multipart request delivered it: spooled to an anonymous
/// temporary file, which goes when this is dropped.
pub struct Upload {
    pub filename: String,
    pub file: std::fs::File,
}

/// A download link and when it stops working.
pub struct DownloadLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// What a download link opens.
pub struct Download {
    pub attachment: Attachment,
    pub bytes: ByteStream,
}

/// Why a download is refused, as the HTTP layer answers it.
#[derive(Debug, PartialEq, Eq)]
pub enum DownloadRefusal {
    /// The signature does not match (403).
    Tampered,
    /// The link is older than DOWNLOAD_LINK_TTL_SECS (403).
    Expired,
    /// No such file, or no longer (404).
    Gone,
}

/// Files and articles.
pub struct Files<'a> {
    pub(super) core: &'a Arc<Core>,
}

impl Files<'_> {
    fn policy(&self) -> &FilePolicy {
        &self.core.policy.files
    }

    /// Sends `upload` as a FILE message: the customer of the session or its
    /// accepted agent, as for any message. The type is sniffed from the
    /// bytes and must be allowed; the file is stored before the message is
    /// written and removed again if the message is refused or is a repeat
    /// of an earlier send (same clientMessageId), so a refusal leaves
    /// nothing behind.
    pub async fn send_file(
        &self,
        viewer: &Viewer,
        session_id: &str,
        upload: Upload,
        caption: Option<&str>,
        client_message_id: &str,
    ) -> AppResult<MessageView> {
        let id = parse_session_id(session_id)?;
        let caption = validate_caption(caption, self.core.policy.max_message_chars)
            .map_err(AppError::BadUserInput)?;
        let client_message_id =
            validate_client_message_id(client_message_id).map_err(AppError::BadUserInput)?;
        // Refused sends store nothing: ask before writing to the store.
        access::writer(viewer, &self.visible_session(viewer, id).await?)?;
        let filename = sanitize_filename(&upload.filename);
        let (head, size, file) = read_head(upload.file).await?;
        let content_type = sniff(&head);
        if size == 0 {
            return Err(AppError::BadUserInput("the file is empty".into()));
        }
        if size > self.policy().max_upload_bytes {
            return Err(AppError::BadUserInput(format!(
                "the file is larger than {} bytes (MAX_UPLOAD_BYTES)",
                self.policy().max_upload_bytes
            )));
        }
        if !content_type_allowed(content_type, &self.policy().content_types) {
            return Err(AppError::BadUserInput(format!(
                "files of type {content_type} (as its content shows, whatever its name) \
                 are not accepted here; allowed: {}",
                self.policy().content_types.join(", ")
            )));
        }
        self.core.messages().take_send_slot(viewer)?;
        let attachment = Attachment {
            id: Uuid::new_v4(),
            filename,
            content_type: content_type.to_owned(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
        };
        // Stored, sent and cleaned up in a task of its own: a client that
        // hangs up half-way must not leave a file without its message.
        let core = self.core.clone();
        let viewer = viewer.clone();
        let client_message_id = client_message_id.to_owned();
        tokio::spawn(async move {
            core.files()
                .store_and_send(&viewer, id, file, attachment, &caption, &client_message_id)
                .await
        })
        .await
        .map_err(|e| AppError::Internal(format!("file send task: {e}")))?
    }

    async fn store_and_send(
        &self,
        viewer: &Viewer,
        session_id: Uuid,
        file: std::fs::File,
        attachment: Attachment,
        caption: &str,
        client_message_id: &str,
    ) -> AppResult<MessageView> {
        let key = attachment.storage_key(session_id);
        let storage = &self.policy().storage;
        storage
            .put(&key, file)
            .await
            .map_err(|e| AppError::Internal(format!("storing {key}: {e}")))?;
        let attachment_id = attachment.id;
        let sent = self
            .core
            .messages()
            .submit(
                viewer,
                session_id,
                caption,
                client_message_id,
                Some(MessagePayload::File(attachment)),
            )
            .await;
        let kept = matches!(&sent, Ok(view)
            if matches!(&view.message.payload, Some(MessagePayload::File(a)) if a.id == attachment_id));
        if !kept {
            // Refused, or answered with the first send of this key.
            if let Err(e) = storage.delete(&key).await {
                tracing::warn!(error = %e, %key, "could not remove a file whose message was not stored");
            }
        }
        sent
    }

    /// Shares a help-centre article as an ARTICLE message: the agent of an
    /// ACTIVE session, with an https link on one of ARTICLE_ORIGINS.
    pub async fn share_article(
        &self,
        viewer: &Viewer,
        session_id: &str,
        url: &str,
        title: &str,
        client_message_id: &str,
    ) -> AppResult<MessageView> {
        let id = parse_session_id(session_id)?;
        let article = validate_article(url, title, &self.policy().article_origins)
            .map_err(AppError::BadUserInput)?;
        let client_message_id =
            validate_client_message_id(client_message_id).map_err(AppError::BadUserInput)?;
        access::may_share_article(viewer, &self.visible_session(viewer, id).await?)?;
        self.core.messages().take_send_slot(viewer)?;
        // The send transaction asks again (access::writer), on the session
        // as it is then.
        let body = article.title.clone();
        self.core
            .messages()
            .submit(
                viewer,
                id,
                &body,
                client_message_id,
                Some(MessagePayload::Article(article)),
            )
            .await
    }

    /// The session, or NOT_FOUND to whoever may not see it (so ids cannot
    /// be probed).
    async fn visible_session(&self, viewer: &Viewer, id: Uuid) -> AppResult<ChatSession> {
        sessions::find(&self.core.db, id)
            .await?
            .filter(|s| access::may_view(viewer, s))
            .ok_or_else(AppError::session_not_found)
    }

    /// A download link for `attachment` of the message, for whoever may
    /// have one (`access::may_download`); None for anyone else. `message`
    /// and `session` are the message's ids.
    pub async fn link_for(
        &self,
        viewer: &Viewer,
        message: Uuid,
        session: Uuid,
        sender: SenderRole,
        sender_id: Option<&str>,
        attachment: &Attachment,
    ) -> AppResult<Option<DownloadLink>> {
        // Admins, and a customer reading their own file, need no lookup: a
        // customer's message is always in that customer's session.
        let own_upload = viewer.role == Role::Customer
            && sender == SenderRole::Customer
            && sender_id == Some(viewer.id.as_str());
        let allowed = viewer.role == Role::Admin
            || own_upload
            || sessions::find(&self.core.db, session)
                .await?
                .is_some_and(|s| access::may_download(viewer, &s));
        Ok(allowed.then(|| self.sign(message, attachment.id)))
    }

    fn sign(&self, message: Uuid, attachment: Uuid) -> DownloadLink {
        let policy = self.policy();
        let expires_at = self.core.now() + policy.link_ttl;
        let expires = expires_at.timestamp();
        let sig = policy.signer.sign(message, attachment, expires);
        let base = policy.public_url.as_deref().unwrap_or_default();
        DownloadLink {
            url: format!("{base}/files/{message}/{attachment}?expires={expires}&sig={sig}"),
            expires_at: DateTime::from_timestamp(expires, 0).unwrap_or(expires_at),
        }
    }

    /// Opens what a download link names, if its signature holds and it has
    /// not expired.
    pub async fn download(
        &self,
        message: Uuid,
        attachment: Uuid,
        expires: i64,
        signature: &str,
    ) -> Result<Download, DownloadFailure> {
        let policy = self.policy();
        if !policy
            .signer
            .verify(message, attachment, expires, signature)
        {
            return Err(DownloadRefusal::Tampered.into());
        }
        if self.core.now().timestamp() > expires {
            return Err(DownloadRefusal::Expired.into());
        }
        let found = messages::find(&self.core.db, message)
            .await
            .map_err(AppError::from)?
            .and_then(|m| file_of(m, attachment));
        let Some((session_id, file)) = found else {
            return Err(DownloadRefusal::Gone.into());
        };
        match policy.storage.get(&file.storage_key(session_id)).await {
            Ok(bytes) => Ok(Download {
                attachment: file,
                bytes,
            }),
            Err(StorageError::NotFound) => Err(DownloadRefusal::Gone.into()),
            Err(e) => Err(AppError::Internal(e.to_string()).into()),
        }
    }

    /// Removes stored files (retention, after their sessions went).
    pub(super) async fn delete_stored(&self, keys: &[String]) {
        for key in keys {
            if let Err(e) = self.policy().storage.delete(key).await {
                tracing::warn!(error = %e, %key, "could not remove a purged session's file");
            }
        }
    }

    /// Every key in the store (for checks; it lists the whole store).
    pub async fn stored_keys(&self) -> AppResult<Vec<String>> {
        self.policy()
            .storage
            .list()
            .await
            .map_err(|e| AppError::Internal(e.to_string()))
    }
}

/// A download that could not be served: refused, or failed.
#[derive(Debug)]
pub enum DownloadFailure {
    Refused(DownloadRefusal),
    Failed(AppError),
}

impl From<DownloadRefusal> for DownloadFailure {
    fn from(r: DownloadRefusal) -> Self {
        DownloadFailure::Refused(r)
    }
}

impl From<AppError> for DownloadFailure {
    fn from(e: AppError) -> Self {
        DownloadFailure::Failed(e)
    }
}

/// The message's file, if it is the one named.
fn file_of(message: Message, attachment: Uuid) -> Option<(Uuid, Attachment)> {
    match message.payload {
        Some(MessagePayload::File(file)) if file.id == attachment => {
            Some((message.session_id, file))
        }
        _ => None,
    }
}

/// The first bytes of the spooled upload (to sniff), its size, and the file
/// rewound for storing. Blocking reads, off the async threads.
async fn read_head(file: std::fs::File) -> AppResult<(Vec<u8>, u64, std::fs::File)> {
    tokio::task::spawn_blocking(move || {
        let mut file = file;
        let size = file.metadata()?.len();
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        (&mut file)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut head)?;
        file.rewind()?;
        Ok::<_, std::io::Error>((head, size, file))
    })
    .await
    .map_err(|e| AppError::Internal(format!("reading an upload: {e}")))?
    .map_err(|e| AppError::BadUserInput(format!("the file could not be read: {e}")))
}

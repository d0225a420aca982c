//! What FILE and ARTICLE messages carry (`Message.kind`, `attachment`,
//! `article`), and the inputs of `sendFile` and `shareArticle`.

use async_graphql::{ComplexObject, Context, Enum, InputObject, SimpleObject, Upload, ID};
use chrono::{DateTime, Utc};

use super::{MessageGql, SenderRoleGql};
use crate::domain::{self, MessagePayload};
use crate::graphql::context::caller_and_service;
use crate::graphql::error::GqlResultExt;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "MessageKind")]
pub enum MessageKindGql {
    Text,
    /// Carries one attachment; body is its caption (may be empty).
    File,
    /// A link card to a help-centre article.
    Article,
    System,
}

impl From<domain::MessageKind> for MessageKindGql {
    fn from(k: domain::MessageKind) -> Self {
        use domain::MessageKind as K;
        match k {
            K::Text => MessageKindGql::Text,
            K::File => MessageKindGql::File,
            K::Article => MessageKindGql::Article,
            K::System => MessageKindGql::System,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Attachment")]
pub struct AttachmentGql {
    pub id: ID,
    pub filename: String,
    /// As sniffed from the content, not as the uploader claimed.
    pub content_type: String,
    pub size: i32,
    /// A short-lived signed address to download it; only the session's parties get one.
    pub url: String,
    pub url_expires_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
#[graphql(name = "ArticleLink")]
pub struct ArticleLinkGql {
    pub url: String,
    pub title: String,
}

#[ComplexObject]
impl MessageGql {
    async fn kind(&self) -> MessageKindGql {
        self.kind.into()
    }

    /// The file of a FILE message, with a fresh download link. Null for other
    /// kinds, and for callers who may see the message but not its files (an
    /// agent looking at a queued session that is not theirs).
    async fn attachment(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<AttachmentGql>> {
        let Some(MessagePayload::File(file)) = &self.payload else {
            return Ok(None);
        };
        let (viewer, svc) = caller_and_service(ctx)?;
        let (Ok(message), Ok(session)) = (
            uuid::Uuid::parse_str(&self.id),
            uuid::Uuid::parse_str(&self.session_id),
        ) else {
            return Ok(None);
        };
        let sender = match self.sender {
            SenderRoleGql::Customer => domain::SenderRole::Customer,
            SenderRoleGql::Agent => domain::SenderRole::Agent,
            SenderRoleGql::System => domain::SenderRole::System,
        };
        let link = svc
            .files()
            .link_for(
                viewer,
                message,
                session,
                sender,
                self.sender_id.as_ref().map(|id| id.as_str()),
                file,
            )
            .await
            .gql()?;
        Ok(link.map(|link| AttachmentGql {
            id: ID(file.id.to_string()),
            filename: file.filename.clone(),
            content_type: file.content_type.clone(),
            size: i32::try_from(file.size).unwrap_or(i32::MAX),
            url: link.url,
            url_expires_at: link.expires_at,
        }))
    }

    /// The link card of an ARTICLE message.
    async fn article(&self) -> Option<ArticleLinkGql> {
        match &self.payload {
            Some(MessagePayload::Article(a)) => Some(ArticleLinkGql {
                url: a.url.clone(),
                title: a.title.clone(),
            }),
            _ => None,
        }
    }
}

#[derive(InputObject)]
pub struct SendFileInput {
    pub session_id: ID,
    pub file: Upload,
    pub caption: Option<String>,
    pub client_message_id: String,
}

#[derive(InputObject)]
pub struct ShareArticleInput {
    pub session_id: ID,
    /// Must be on one of the configured article origins.
    pub url: String,
    pub title: String,
    pub client_message_id: String,
}

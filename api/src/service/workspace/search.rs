//! Finding sessions: filters, words, newest first, a page at a time.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Workspace;
use crate::auth::Viewer;
use crate::domain::{access, ChatSession, SessionStatus};
use crate::error::{AppError, AppResult};
use crate::repo::sessions::{self, SearchFilter};
use crate::service::pagination::{
    decode_time_cursor, encode_time_cursor, page_size, Page, PageArgs,
};

/// Most words one search may hold, and the longest word.
const MAX_WORDS: usize = 10;
const MAX_WORD_CHARS: usize = 100;

/// A search as asked.
#[derive(Clone, Debug, Default)]
pub struct SessionSearch {
    pub statuses: Vec<SessionStatus>,
    pub agent_id: Option<String>,
    pub customer_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub text: Option<String>,
}

/// The distinct lowercase words of `text`.
fn words(text: Option<&str>) -> AppResult<Vec<String>> {
    let mut words: Vec<String> = Vec::new();
    for w in text.unwrap_or_default().split_whitespace() {
        let w = w.to_lowercase();
        if w.chars().count() > MAX_WORD_CHARS {
            return Err(AppError::BadUserInput(format!(
                "search words are at most {MAX_WORD_CHARS} characters"
            )));
        }
        if !words.contains(&w) {
            words.push(w);
        }
    }
    if words.len() > MAX_WORDS {
        return Err(AppError::BadUserInput(format!(
            "a search holds at most {MAX_WORDS} words"
        )));
    }
    Ok(words)
}

impl Workspace<'_> {
    /// Agents: the sessions offered to or held by them, or that they held
    /// before; admins: every session kept. Newest first.
    pub async fn search_sessions(
        &self,
        viewer: &Viewer,
        search: SessionSearch,
        args: &PageArgs,
    ) -> AppResult<Page<ChatSession>> {
        let scope = access::search_scope(viewer)?;
        let limit = page_size("first", args.first, 20, 100)?;
        let after = args
            .after
            .as_deref()
            .map(decode_time_cursor::<Uuid>)
            .transpose()?;
        let filter = SearchFilter {
            words: words(search.text.as_deref())?,
            statuses: search.statuses,
            agent_id: search.agent_id,
            customer_id: search.customer_id,
            from: search.from,
            to: search.to,
        };
        let mut rows = sessions::search(&self.core.db, &scope, &filter, after, limit + 1).await?;
        let has_next_page = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        Ok(Page {
            items: rows
                .into_iter()
                .map(|s| (encode_time_cursor(s.created_at, s.id), s))
                .collect(),
            has_previous_page: after.is_some(),
            has_next_page,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn words_are_distinct_lowercase_and_bounded() {
        assert_eq!(
            super::words(Some("  Refund REFUND  late\tÄrger ")).unwrap(),
            ["refund", "late", "ärger"]
        );
        assert!(super::words(None).unwrap().is_empty());
        assert!(super::words(Some(&"w ".repeat(10))).is_ok());
        let eleven: String = (0..11).map(|i| format!("w{i} ")).collect();
        assert!(super::words(Some(&eleven)).is_err());
        assert!(super::words(Some(&"x".repeat(101))).is_err());
    }
}

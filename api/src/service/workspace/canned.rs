//! Canned responses: PERSONAL ones an agent keeps for themselves, TEAM ones
//! admins keep for every agent; listing, and rendering one for a session.

use sea_orm::SqlErr;
use serde_json::Value;
use uuid::Uuid;

use super::Workspace;
use crate::auth::{Role, Viewer};
use crate::domain::access;
use crate::domain::canned::{self, CannedResponse, CannedScope, Rendered};
use crate::error::{AppError, AppResult};
use crate::repo::{agents, canned as repo, sessions};
use crate::service::sessions::parse_session_id;

/// What a create or update carries.
pub struct CannedInput<'a> {
    pub short_code: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub scope: CannedScope,
}

fn parse_id(raw: &str) -> AppResult<Uuid> {
    Uuid::parse_str(raw)
        .map_err(|_| AppError::BadUserInput(format!("{raw:?} is not a canned response id")))
}

fn not_found() -> AppError {
    AppError::NotFound("no such canned response".into())
}

/// The scope the caller keeps responses in: agents their own PERSONAL
/// ones, admins the TEAM's.
fn own_scope(viewer: &Viewer) -> AppResult<CannedScope> {
    match viewer.role {
        Role::Agent => Ok(CannedScope::Personal),
        Role::Admin => Ok(CannedScope::Team),
        Role::Customer => Err(AppError::Forbidden(
            "only agents and admins have canned responses".into(),
        )),
    }
}

/// Whether the caller sees the response: TEAM ones are every agent's and
/// admin's, PERSONAL ones their owner's only.
fn visible_to(viewer: &Viewer, r: &CannedResponse) -> bool {
    match (viewer.role, r.scope) {
        (Role::Customer, _) => false,
        (_, CannedScope::Team) => true,
        (Role::Agent, CannedScope::Personal) => r.owner_id.as_deref() == Some(viewer.id.as_str()),
        (Role::Admin, CannedScope::Personal) => false,
    }
}

/// A taken short code is the client's to change.
fn conflict_on_taken(e: sea_orm::DbErr, code: &str) -> AppError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            AppError::Conflict(format!("the short code {code:?} is taken"))
        }
        _ => e.into(),
    }
}

/// A context value as text in a template: strings as they are, numbers
/// and booleans written out, other JSON as JSON; null is no value.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl Workspace<'_> {
    /// The input's short code, title and body, checked (BAD_USER_INPUT).
    fn checked<'i>(&self, input: &CannedInput<'i>) -> AppResult<(&'i str, &'i str, &'i str)> {
        canned::validate_fields(
            input.short_code,
            input.title,
            input.body,
            self.core.policy.max_message_chars,
        )
        .map_err(AppError::BadUserInput)
    }

    pub async fn create_canned(
        &self,
        viewer: &Viewer,
        input: CannedInput<'_>,
    ) -> AppResult<CannedResponse> {
        let scope = own_scope(viewer)?;
        if input.scope != scope {
            return Err(AppError::Forbidden(
                match scope {
                    CannedScope::Personal => {
                        "agents keep PERSONAL responses; admins keep TEAM ones"
                    }
                    CannedScope::Team => "admins keep TEAM responses only",
                }
                .into(),
            ));
        }
        let (code, title, body) = self.checked(&input)?;
        let now = self.core.now();
        let r = CannedResponse {
            id: Uuid::new_v4(),
            scope,
            owner_id: (scope == CannedScope::Personal).then(|| viewer.id.clone()),
            short_code: code.to_owned(),
            title: title.to_owned(),
            body: body.to_owned(),
            updated_at: now,
        };
        repo::insert(&self.core.db, &r, now)
            .await
            .map_err(|e| conflict_on_taken(e, code))?;
        Ok(r)
    }

    /// The response the caller may change: NOT_FOUND when they cannot see
    /// it, FORBIDDEN when they see it but it is not theirs to change.
    async fn changeable(&self, viewer: &Viewer, id: &str) -> AppResult<CannedResponse> {
        let scope = own_scope(viewer)?;
        let r = repo::find(&self.core.db, parse_id(id)?)
            .await?
            .filter(|r| visible_to(viewer, r))
            .ok_or_else(not_found)?;
        if r.scope != scope {
            return Err(AppError::Forbidden(
                "TEAM responses are changed by admins".into(),
            ));
        }
        Ok(r)
    }

    pub async fn update_canned(
        &self,
        viewer: &Viewer,
        id: &str,
        input: CannedInput<'_>,
    ) -> AppResult<CannedResponse> {
        let mut r = self.changeable(viewer, id).await?;
        if input.scope != r.scope {
            return Err(AppError::BadUserInput(
                "a response keeps its scope; create a new one instead".into(),
            ));
        }
        let (code, title, body) = self.checked(&input)?;
        r.short_code = code.to_owned();
        r.title = title.to_owned();
        r.body = body.to_owned();
        r.updated_at = self.core.now();
        repo::update(&self.core.db, &r)
            .await
            .map_err(|e| conflict_on_taken(e, code))?;
        Ok(r)
    }

    pub async fn delete_canned(&self, viewer: &Viewer, id: &str) -> AppResult<bool> {
        let r = self.changeable(viewer, id).await?;
        Ok(repo::delete(&self.core.db, r.id).await?)
    }

    /// Agents: their PERSONAL and every TEAM response; admins: TEAM ones.
    /// Ranked by `search` (see [`canned::rank`]).
    pub async fn canned_responses(
        &self,
        viewer: &Viewer,
        search: Option<&str>,
    ) -> AppResult<Vec<CannedResponse>> {
        let owner = match own_scope(viewer)? {
            CannedScope::Personal => Some(viewer.id.as_str()),
            CannedScope::Team => None,
        };
        let all = repo::visible(&self.core.db, owner).await?;
        Ok(canned::rank(all, search))
    }

    /// The response's body filled in for the session, for the agent
    /// holding it or an admin. Nothing is sent.
    pub async fn render_canned(
        &self,
        viewer: &Viewer,
        id: &str,
        session_id: &str,
    ) -> AppResult<Rendered> {
        let db = &self.core.db;
        let sid = parse_session_id(session_id)?;
        let s = sessions::find(db, sid)
            .await?
            .filter(|s| access::may_view(viewer, s))
            .ok_or_else(AppError::session_not_found)?;
        access::may_assist(viewer, &s)?;
        let r = repo::find(db, parse_id(id)?)
            .await?
            .filter(|r| visible_to(viewer, r))
            .ok_or_else(not_found)?;

        let used = canned::render(&r.body, |_| None).unresolved;
        let wants = |name: &str| used.iter().any(|u| u == name);
        let customer_name = if wants("customer.name") {
            sessions::customer_name(db, sid).await?
        } else {
            None
        };
        let agent_name = if wants("agent.name") {
            match s.agent_id.as_deref() {
                Some(a) => agents::find(db, a).await?.map(|a| a.name),
                None => None,
            }
            .or_else(|| viewer.name.clone())
        } else {
            None
        };
        // The provider is asked only when the body uses a key of its answer.
        let context = if used
            .iter()
            .any(|u| u.starts_with("customer.") && u != "customer.id" && u != "customer.name")
        {
            self.context_of(&s.customer_id).await.data
        } else {
            None
        };
        let session_id = s.id.to_string();
        Ok(canned::render(&r.body, |name| match name {
            "customer.id" => Some(s.customer_id.clone()),
            "customer.name" => customer_name.clone(),
            "agent.name" => agent_name.clone(),
            "session.subject" => s.subject.clone(),
            "session.id" => Some(session_id.clone()),
            other => other
                .strip_prefix("customer.")
                .and_then(|key| context.as_ref()?.get(key))
                .and_then(as_text),
        }))
    }
}

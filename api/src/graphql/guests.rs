//! Guest visitors: `guestChallenge` and `createGuest`, the two operations
//! that need no token.

use async_graphql::{Context, Object};

use super::context::service;
use super::error::GqlResultExt;
use super::types::{GuestChallengeGql, GuestTokenGql};
use crate::http::client_ip::ClientIp;
use crate::service::Answer;

#[derive(Default)]
pub struct GuestQuery;

#[Object]
impl GuestQuery {
    /// Anyone: a proof-of-work challenge to solve before createGuest; null when this server asks none (GUEST_CHALLENGE_BITS=0).
    async fn guest_challenge(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<GuestChallengeGql>> {
        let svc = service(ctx)?;
        Ok(svc.guests().challenge().gql()?.map(Into::into))
    }
}

#[derive(Default)]
pub struct GuestMutation;

#[Object]
impl GuestMutation {
    /// Anyone, no token needed: a short-lived customer token for a visitor who is not signed in. Limited per client address. When the server asks for it (guestChallenge not null), pass the challenge and its solution.
    async fn create_guest(
        &self,
        ctx: &Context<'_>,
        challenge: Option<String>,
        solution: Option<String>,
    ) -> async_graphql::Result<GuestTokenGql> {
        let svc = service(ctx)?;
        let from = ctx.data_opt::<ClientIp>().map(|c| c.0);
        let answer = match (&challenge, &solution) {
            (Some(challenge), Some(solution)) => Some(Answer {
                challenge,
                solution,
            }),
            _ => None,
        };
        Ok(svc.guests().create_guest(from, answer).await.gql()?.into())
    }
}

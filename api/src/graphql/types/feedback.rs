//! What becomes of a chat after it: the customer's rating, the figures
//! over many ratings, and the ticket it was handed over as.

use async_graphql::{SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::domain;

#[derive(SimpleObject)]
#[graphql(name = "SessionRating")]
pub struct SessionRatingGql {
    /// 1 (very unhappy) to 5 (very happy).
    pub score: i32,
    pub comment: Option<String>,
    /// The agent who held the session when it ended.
    pub agent_id: Option<ID>,
    pub created_at: DateTime<Utc>,
}

impl From<domain::Rating> for SessionRatingGql {
    fn from(r: domain::Rating) -> Self {
        SessionRatingGql {
            score: r.score,
            comment: r.comment,
            agent_id: r.agent_id.map(ID),
            created_at: r.created_at,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "RatingStats")]
pub struct RatingStatsGql {
    pub count: i32,
    /// Mean score; null when count is 0.
    pub average: Option<f64>,
    /// Share of 4 and 5 scores, 0 to 1 (the usual CSAT figure); null when count is 0.
    pub satisfied: Option<f64>,
}

impl From<domain::RatingStats> for RatingStatsGql {
    fn from(s: domain::RatingStats) -> Self {
        RatingStatsGql {
            count: i32::try_from(s.count).unwrap_or(i32::MAX),
            average: s.average,
            satisfied: s.satisfied,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Ticket")]
pub struct TicketGql {
    /// The ticket system's own id.
    pub external_id: String,
    pub url: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<domain::Ticket> for TicketGql {
    fn from(t: domain::Ticket) -> Self {
        TicketGql {
            external_id: t.external_id,
            url: t.url,
            created_at: t.created_at,
        }
    }
}

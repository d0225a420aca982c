//! Routing's vocabulary: a session's priority, the skills sessions require
//! and agents have, and the record of each routing decision.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::named_enum;

/// How WAITING sessions reach agents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RoutingMode {
    /// The engine offers the head of the queue to the next agent, who
    /// accepts or declines; unanswered offers lapse.
    #[default]
    Fair,
    /// The engine assigns straight away, in the same order.
    Auto,
    /// Agents pick any WAITING session with `acceptSession`; the first taker wins.
    Manual,
}

impl fmt::Display for RoutingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoutingMode::Fair => "fair",
            RoutingMode::Auto => "auto",
            RoutingMode::Manual => "manual",
        })
    }
}

impl FromStr for RoutingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fair" => Ok(RoutingMode::Fair),
            "auto" => Ok(RoutingMode::Auto),
            "manual" => Ok(RoutingMode::Manual),
            other => Err(format!(
                "unknown routing mode {other:?}; use fair, auto or manual"
            )),
        }
    }
}

/// How urgently a session is served: the queue goes by priority, then by
/// `queued_at`. From the shop's signed token claim, or set by the agent
/// holding it or an admin; never by the customer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}
named_enum!(Priority, "priority", {
    Low => "LOW", Normal => "NORMAL", High => "HIGH", Urgent => "URGENT",
});

impl Priority {
    /// As stored: LOW 0 … URGENT 3, so that SQL sorts on it.
    pub fn rank(self) -> i16 {
        match self {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
            Priority::Urgent => 3,
        }
    }

    pub fn from_rank(rank: i16) -> Option<Priority> {
        [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Urgent,
        ]
        .into_iter()
        .find(|p| p.rank() == rank)
    }
}

/// Longest skill name, and most skills one session or agent may list.
pub const MAX_SKILL_CHARS: usize = 32;
pub const MAX_SKILLS: usize = 20;

/// A set of skills (topics such as `billing`): lowercase names of
/// `[a-z0-9_-]`, sorted, without repeats.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Skills(Vec<String>);

impl Skills {
    /// Skills as a client gives them: trimmed and lowercased; a name that is
    /// empty, too long or holds other characters is refused, as are more
    /// than [`MAX_SKILLS`].
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Skills, String> {
        let mut skills = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref().trim().to_ascii_lowercase();
            let valid = !name.is_empty()
                && name.len() <= MAX_SKILL_CHARS
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid {
                return Err(format!(
                    "{name:?} is not a skill: use 1 to {MAX_SKILL_CHARS} of a-z, 0-9, - and _"
                ));
            }
            skills.push(name);
        }
        skills.sort();
        skills.dedup();
        if skills.len() > MAX_SKILLS {
            return Err(format!("at most {MAX_SKILLS} skills"));
        }
        Ok(Skills(skills))
    }

    /// As stored: comma-joined (a comma never occurs in a name).
    pub fn from_stored(joined: &str) -> Skills {
        let mut skills: Vec<String> = joined
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        skills.sort();
        skills.dedup();
        Skills(skills)
    }

    pub fn to_stored(&self) -> String {
        self.0.join(",")
    }

    /// Whether these skills include every one of `required`.
    pub fn covers(&self, required: &Skills) -> bool {
        required.0.iter().all(|r| self.0.binary_search(r).is_ok())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }
}

/// How a session reached its agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecisionKind {
    /// Fair routing offered it; the agent may accept or decline.
    Offered,
    /// Auto routing gave it straight away.
    Assigned,
    /// Manual routing: the agent picked it from the queue.
    Accepted,
    /// An admin gave it by hand.
    AdminAssigned,
    Transferred,
}
named_enum!(DecisionKind, "routing decision kind", {
    Offered => "OFFERED", Assigned => "ASSIGNED", Accepted => "ACCEPTED",
    AdminAssigned => "ADMIN_ASSIGNED", Transferred => "TRANSFERRED",
});

impl DecisionKind {
    /// Whether the routing rules chose the agent (and so an audit can hold
    /// the choice to them), rather than a person.
    pub fn by_the_rules(self) -> bool {
        matches!(self, DecisionKind::Offered | DecisionKind::Assigned)
    }
}

/// One routing decision, with what the rule saw when it was made. Written
/// in the transaction that made it; `at` is taken once every lock is held,
/// on the clock all processes share, so decisions sort in the order they
/// took effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingDecision {
    pub session_id: Uuid,
    pub agent_id: String,
    pub kind: DecisionKind,
    pub priority: Priority,
    pub queued_at: DateTime<Utc>,
    /// The agent's `idle_since` when chosen.
    pub agent_idle_since: Option<DateTime<Utc>>,
    /// Sessions the agent held just before, and their capacity then.
    pub agent_held: i32,
    pub agent_capacity: i32,
    /// Eligible agents in the order the rule ranks them, the chosen first.
    pub candidates: Vec<String>,
    pub required_skills: Skills,
    /// The skill requirement was waived because the session waited long.
    pub skills_relaxed: bool,
    pub at: DateTime<Utc>,
    /// The agents the matcher pass chose from, as it read them; the same
    /// on every decision of one pass, empty where a person decided.
    pub pass_agents: Vec<PassAgent>,
}

/// An agent as a matcher pass saw them: AVAILABLE with a free slot, read
/// under the pass's locks. Kept with its decisions because an agent's
/// status, idle time and skills are stored only as they are now, and an
/// audit must rebuild the idle line the rule chose from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassAgent {
    pub id: String,
    /// Their place in the idle line when the pass began.
    pub idle_since: Option<DateTime<Utc>>,
    /// Sessions held (OFFERED + ACTIVE) when the pass began, and capacity.
    pub held: i32,
    pub capacity: i32,
    pub skills: Skills,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_case_insensitively() {
        assert_eq!("Manual".parse::<RoutingMode>(), Ok(RoutingMode::Manual));
        assert_eq!(" fair ".parse::<RoutingMode>(), Ok(RoutingMode::Fair));
        assert_eq!("AUTO".parse::<RoutingMode>(), Ok(RoutingMode::Auto));
        assert!("lottery".parse::<RoutingMode>().is_err());
        assert_eq!(RoutingMode::default(), RoutingMode::Fair);
    }

    #[test]
    fn priorities_order_and_round_trip() {
        assert!(Priority::Low < Priority::Normal);
        assert!(Priority::High < Priority::Urgent);
        for p in [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Urgent,
        ] {
            assert_eq!(Priority::from_rank(p.rank()), Some(p));
            assert_eq!(p.as_str().parse::<Priority>().unwrap(), p);
        }
        assert_eq!(Priority::from_rank(4), None);
        assert!("high".parse::<Priority>().is_err());
        assert_eq!(Priority::default(), Priority::Normal);
    }

    #[test]
    fn skills_are_normalised_and_bounded() {
        let s = Skills::parse(&[" Billing", "returns", "billing"]).unwrap();
        assert_eq!(s.names(), ["billing", "returns"]);
        assert_eq!(Skills::from_stored(&s.to_stored()), s);
        assert_eq!(Skills::from_stored(""), Skills::default());
        for bad in ["", "a,b", "über", "with space", &"x".repeat(33)] {
            assert!(Skills::parse(&[bad]).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..21).map(|i| format!("s{i}")).collect();
        assert!(Skills::parse(&many).is_err());
    }

    #[test]
    fn an_agent_covers_a_session_with_every_skill_it_needs() {
        let agent = Skills::parse(&["billing", "returns", "de"]).unwrap();
        assert!(agent.covers(&Skills::default()));
        assert!(agent.covers(&Skills::parse(&["billing"]).unwrap()));
        assert!(agent.covers(&Skills::parse(&["de", "returns"]).unwrap()));
        assert!(!agent.covers(&Skills::parse(&["billing", "fr"]).unwrap()));
        assert!(!Skills::default().covers(&Skills::parse(&["billing"]).unwrap()));
    }
}

//! Routing: who is served next. This module holds the policy only; the
//! service layer loads the queue and agents, asks it, and persists the answer.

use std::fmt;
use std::str::FromStr;

/// How WAITING sessions reach agents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RoutingMode {
    /// Agents pick any WAITING session with `acceptSession`; the first taker wins.
    #[default]
    Manual,
}

impl fmt::Display for RoutingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoutingMode::Manual => "manual",
        })
    }
}

impl FromStr for RoutingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "manual" => Ok(RoutingMode::Manual),
            other => Err(format!(
                "unknown routing mode {other:?}; this build supports: manual"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_case_insensitively() {
        assert_eq!("Manual".parse::<RoutingMode>(), Ok(RoutingMode::Manual));
        assert!("lottery".parse::<RoutingMode>().is_err());
    }
}

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Datelike, Utc};

use crate::error::AppError;

/// Relay-style arguments, validated.
#[derive(Clone, Debug, Default)]
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<(String, T)>,
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

impl<T> Page<T> {
    pub fn start_cursor(&self) -> Option<&str> {
        self.items.first().map(|(c, _)| c.as_str())
    }
    pub fn end_cursor(&self) -> Option<&str> {
        self.items.last().map(|(c, _)| c.as_str())
    }
}

/// A cursor of a list ordered by a time, ties broken by `key`: opaque to
/// clients.
pub fn encode_time_cursor(at: DateTime<Utc>, key: impl std::fmt::Display) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{key}", at.timestamp_micros()))
}

/// The time and key of a cursor from [`encode_time_cursor`]; anything else
/// is BAD_USER_INPUT.
pub fn decode_time_cursor<K: std::str::FromStr>(
    cursor: &str,
) -> Result<(DateTime<Utc>, K), AppError> {
    let bad = || AppError::BadUserInput(format!("{cursor:?} is not a cursor from this list"));
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (micros, key) = raw.split_once('|').ok_or_else(bad)?;
    // Every real cursor holds a stored time; the bounds keep forged ones
    // inside what Postgres's timestamptz can compare (4713 BC to 294276 AD).
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .filter(|at| (0..=9999).contains(&at.year()))
        .ok_or_else(bad)?;
    Ok((at, key.parse().map_err(|_| bad())?))
}

/// Checks a page size argument: absent means `default`, else 0..=max.
pub fn page_size(name: &str, value: Option<i32>, default: u64, max: u64) -> Result<u64, AppError> {
    match value {
        None => Ok(default),
        Some(n) if n >= 0 && (n as u64) <= max => Ok(n as u64),
        Some(n) => Err(AppError::BadUserInput(format!(
            "{name} must be between 0 and {max}, got {n}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size("first", None, 20, 100).unwrap(), 20);
        assert_eq!(page_size("first", Some(0), 20, 100).unwrap(), 0);
        assert!(page_size("first", Some(-1), 20, 100).is_err());
        assert!(page_size("first", Some(101), 20, 100).is_err());
    }
}

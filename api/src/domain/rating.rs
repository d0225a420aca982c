//! Satisfaction ratings: what a rating may say, until when it may be given,
//! and the figures over many (count, mean, CSAT share).

use chrono::{DateTime, Duration, Utc};

use super::message::{has_bidi_controls, looks_blank};
use super::Refusal;

pub const MIN_SCORE: i32 = 1;
pub const MAX_SCORE: i32 = 5;
pub const MAX_COMMENT_CHARS: usize = 1_000;
/// Scores that count as satisfied in the CSAT share.
pub const SATISFIED_FROM: i32 = 4;

/// A customer's rating of one chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rating {
    pub score: i32,
    pub comment: Option<String>,
    /// The agent who held the session when it ended.
    pub agent_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The score and comment as given, checked: 1 to 5, and a comment of at
/// most 1,000 characters with no control or bidirectional override
/// characters (line breaks allowed). A blank comment is none.
pub fn validate_rating(score: i32, comment: Option<&str>) -> Result<Option<String>, String> {
    if !(MIN_SCORE..=MAX_SCORE).contains(&score) {
        return Err(format!(
            "score must be {MIN_SCORE} to {MAX_SCORE}, not {score}"
        ));
    }
    let Some(comment) = comment.map(str::trim).filter(|c| !looks_blank(c)) else {
        return Ok(None);
    };
    if comment
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("comment must not contain control characters".into());
    }
    if has_bidi_controls(comment) {
        return Err("comment must not contain bidirectional override characters".into());
    }
    let chars = comment.chars().count();
    if chars > MAX_COMMENT_CHARS {
        return Err(format!(
            "comment has {chars} characters; the limit is {MAX_COMMENT_CHARS}"
        ));
    }
    Ok(Some(comment.to_owned()))
}

/// Whether a chat that ended at `ended_at` may still be rated at `now`:
/// within `window` of its end (the end itself included).
pub fn rating_window_open(
    ended_at: DateTime<Utc>,
    now: DateTime<Utc>,
    window: Duration,
) -> Result<(), Refusal> {
    if now - ended_at <= window {
        Ok(())
    } else {
        Err(Refusal::Conflict(format!(
            "this chat can no longer be rated: ratings are taken for {} days after a chat ends",
            window.num_days()
        )))
    }
}

/// Count, mean and the share of satisfied scores over a set of ratings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatingStats {
    pub count: u64,
    /// None when there is no rating.
    pub average: Option<f64>,
    /// Share of scores of 4 and 5, 0 to 1; None when there is no rating.
    pub satisfied: Option<f64>,
}

impl RatingStats {
    /// From how many ratings gave each score. Scores outside 1 to 5 (which
    /// the rules never store) are left out rather than skewing the figures.
    pub fn from_counts(counts: &[(i32, u64)]) -> RatingStats {
        let valid = counts
            .iter()
            .filter(|(score, _)| (MIN_SCORE..=MAX_SCORE).contains(score));
        let (mut count, mut sum, mut satisfied) = (0u64, 0u64, 0u64);
        for &(score, n) in valid {
            count += n;
            sum += score as u64 * n;
            if score >= SATISFIED_FROM {
                satisfied += n;
            }
        }
        if count == 0 {
            return RatingStats {
                count,
                average: None,
                satisfied: None,
            };
        }
        RatingStats {
            count,
            average: Some(sum as f64 / count as f64),
            satisfied: Some(satisfied as f64 / count as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The comment kept, or a piece of the refusal's message.
    type Expected<'a> = Result<Option<&'a str>, &'a str>;

    #[test]
    fn scores_and_comments() {
        let long = "é".repeat(MAX_COMMENT_CHARS);
        let too_long = "é".repeat(MAX_COMMENT_CHARS + 1);
        #[rustfmt::skip]
        let table: [(i32, Option<&str>, Expected); 12] = [
            (1, None, Ok(None)),
            (5, None, Ok(None)),
            (0, None, Err("score must be 1 to 5")),
            (6, None, Err("score must be 1 to 5")),
            (-3, Some("x"), Err("score must be 1 to 5")),
            (4, Some("  great help  "), Ok(Some("great help"))),
            (4, Some("  \u{200B} "), Ok(None)),
            (4, Some("line one\nline two"), Ok(Some("line one\nline two"))),
            (3, Some("bad\u{0}byte"), Err("control characters")),
            (3, Some("a \u{202E}txt.exe"), Err("bidirectional")),
            (2, Some(&long), Ok(Some(&long))),
            (2, Some(&too_long), Err("the limit is 1000")),
        ];
        for (score, comment, expected) in table {
            let got = validate_rating(score, comment);
            match (got, expected) {
                (Ok(got), Ok(want)) => assert_eq!(got.as_deref(), want, "{score} {comment:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{got} vs {want}"),
                (got, want) => panic!("{score} {comment:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_window_runs_from_the_end() {
        let end = Utc::now();
        let week = Duration::days(7);
        assert!(rating_window_open(end, end, week).is_ok());
        assert!(rating_window_open(end, end + week, week).is_ok());
        assert!(matches!(
            rating_window_open(end, end + week + Duration::seconds(1), week),
            Err(Refusal::Conflict(_))
        ));
    }

    #[test]
    fn stats_from_counts() {
        let none = RatingStats::from_counts(&[]);
        assert_eq!(
            none,
            RatingStats {
                count: 0,
                average: None,
                satisfied: None
            }
        );
        // 5, 5, 4, 2, 1: mean 3.4, three of five satisfied.
        let s = RatingStats::from_counts(&[(5, 2), (4, 1), (2, 1), (1, 1), (9, 7)]);
        assert_eq!(s.count, 5);
        assert!((s.average.unwrap() - 3.4).abs() < 1e-9);
        assert!((s.satisfied.unwrap() - 0.6).abs() < 1e-9);
        let all_three = RatingStats::from_counts(&[(3, 4)]);
        assert_eq!(all_three.average, Some(3.0));
        assert_eq!(all_three.satisfied, Some(0.0));
    }
}

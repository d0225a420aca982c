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

//! Relay-style page information, shared by every connection type.

use async_graphql::SimpleObject;

use crate::service::Page;

#[derive(SimpleObject)]
#[graphql(name = "PageInfo")]
pub struct PageInfo {
    pub has_previous_page: bool,
    pub has_next_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

impl<T> From<&Page<T>> for PageInfo {
    fn from(p: &Page<T>) -> Self {
        PageInfo {
            has_previous_page: p.has_previous_page,
            has_next_page: p.has_next_page,
            start_cursor: p.start_cursor().map(str::to_owned),
            end_cursor: p.end_cursor().map(str::to_owned),
        }
    }
}

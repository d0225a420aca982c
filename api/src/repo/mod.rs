//! Persistence: the only code that touches SeaORM entities and query
//! builders. Functions take any connection or transaction, so the service
//! layer decides transaction boundaries.

pub mod agents;
pub mod history;
pub mod messages;
pub mod sessions;

use crate::domain::UnknownName;
use sea_orm::DbErr;

/// A stored name this code does not know is a corrupt row, not a user error.
fn parse<T: std::str::FromStr<Err = UnknownName>>(s: &str) -> Result<T, DbErr> {
    s.parse()
        .map_err(|e: UnknownName| DbErr::Type(e.to_string()))
}

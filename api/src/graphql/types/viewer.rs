//! Who is asking: the caller's role and record, and a customer as others see them.

use async_graphql::{Enum, SimpleObject, ID};

use super::AgentGql;
use crate::auth::Role;

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "Role")]
pub enum RoleGql {
    Customer,
    Agent,
    Admin,
}

impl From<Role> for RoleGql {
    fn from(r: Role) -> Self {
        match r {
            Role::Customer => RoleGql::Customer,
            Role::Agent => RoleGql::Agent,
            Role::Admin => RoleGql::Admin,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "Viewer")]
pub struct ViewerGql {
    pub id: ID,
    pub role: RoleGql,
    /// The caller's agent record, when the caller is an agent.
    pub agent: Option<AgentGql>,
}

#[derive(SimpleObject)]
#[graphql(name = "Customer")]
pub struct CustomerGql {
    /// The opaque subject of the customer's token. No other personal data is stored.
    pub id: ID,
}

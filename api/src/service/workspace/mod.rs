//! The agent's workspace: what an agent needs beside the chat itself.
//!
//! - `notes`: internal notes, never shown to the customer, and their part
//!   of a staff member's session feed;
//! - `canned`: canned responses and rendering them for a session;
//! - `context`: the customer's context from the shop's own provider
//!   (a signed call, a per-customer cache, one call for concurrent asks);
//! - `search`: finding sessions by filters and words;
//! - `workload`: what each agent holds, with the figures routing uses;
//! - `page`: what a page of sessions loads once for all its rows (agents,
//!   queue places), so a page costs a fixed number of statements.

mod canned;
mod context;
mod notes;
mod page;
mod search;
mod workload;

pub use canned::CannedInput;
pub use context::{
    verify_call, ContextCallClaims, ContextError, ContextPolicy, ContextProvider, CustomerContext,
    MAX_CONTEXT_BYTES,
};
pub(super) use notes::NoteFeed;
pub use page::SessionPage;
pub use search::SessionSearch;
pub use workload::AgentWorkload;

use super::core::Core;

/// The workspace use cases; see the module's list.
pub struct Workspace<'a> {
    pub(super) core: &'a std::sync::Arc<Core>,
}

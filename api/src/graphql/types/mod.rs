//! Output and input types of the API. They are defined here rather than
//! derived on domain types or entities, so that no internal change can
//! silently change the public schema.
//!
//! One file per area; everything is re-exported here, so resolvers name
//! `types::X` whatever file `X` lives in.

mod agents;
mod feedback;
mod files;
mod guests;
mod history;
mod messages;
mod page;
mod queue;
mod routing;
mod session_events;
mod sessions;
mod viewer;
mod webhooks;
mod workspace;

// Globs: each file's public types are this module's, whichever the
// resolvers happen to name today.
pub use agents::*;
pub use feedback::*;
pub use files::*;
pub use guests::*;
pub use history::*;
pub use messages::*;
pub use page::*;
pub use queue::*;
pub use routing::*;
pub use session_events::*;
pub use sessions::*;
pub use viewer::*;
pub use webhooks::*;
pub use workspace::*;

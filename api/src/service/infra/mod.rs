//! The machinery under the services: requests written in shared batches,
//! matcher passes shared by the triggers that wait for them, token-bucket
//! rate limits, the buffer of events published after a commit, and this
//! process's count of live agent connections.

pub(super) mod batch_queue;
pub(super) mod limiter;
pub(super) mod live_connections;
pub(super) mod outbox;
pub(super) mod shared_passes;

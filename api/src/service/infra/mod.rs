//! The machinery under the services: requests written in shared batches,
//! matcher passes shared by the triggers that wait for them, token-bucket
//! rate limits, and the buffer of events published after a commit.

pub(super) mod batch_queue;
pub(super) mod limiter;
pub(super) mod outbox;
pub(super) mod shared_passes;

//! The queue between the socket and the engine.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures_util::Stream;

/// Client messages on their way to the engine. The driver pushes and the
/// engine pulls, both in the connection's task; a channel would cost a
/// preallocated block per connection, which idle connections pay for.
#[derive(Clone, Default)]
pub(super) struct Inbox(Arc<Mutex<InboxState>>);

#[derive(Default)]
struct InboxState {
    queue: VecDeque<Vec<u8>>,
    waiting: Option<Waker>,
}

impl Inbox {
    fn state(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn len(&self) -> usize {
        self.state().queue.len()
    }

    pub(super) fn push(&self, message: Vec<u8>) {
        let mut state = self.state();
        state.queue.push_back(message);
        if let Some(waker) = state.waiting.take() {
            waker.wake();
        }
    }
}

impl Stream for Inbox {
    type Item = Vec<u8>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
        let mut state = self.state();
        match state.queue.pop_front() {
            Some(message) => Poll::Ready(Some(message)),
            None => {
                state.waiting = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

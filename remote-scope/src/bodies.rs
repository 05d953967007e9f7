//! The bodies a connection runs for its peer. The reader queues them, those of one read at
//! once; the connection's server task polls each once and spawns only those that wait. Most
//! bodies finish at that first poll, so they cost no task, no abort handle and no table entry
//! of their own; and however long a body computes before it first waits, it holds up the
//! server task, never the reader, so the connection keeps reading (results of this node's own
//! calls included) meanwhile.
//!
//! A `Cancel` finds its body wherever it is: queued or in the batch being polled (it is then
//! dropped before its first poll, or instead of being spawned), or spawned (it is aborted). All
//! of it lives under one lock, so a cancel cannot slip between the states, and finding a body
//! costs a hash lookup, however many are queued.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::AbortHandle;
use futures::task::AtomicWaker;

use crate::connection::StopBodies;
use crate::hash::FastSet;
use crate::serve::Served;
use crate::sync::lock;

/// A body started for the peer, not yet polled.
pub(crate) struct Queued {
    pub(crate) id: u64,
    pub(crate) work: Served,
    /// How long the caller waits; the body is stopped after that.
    pub(crate) deadline: Duration,
    pub(crate) span: tracing::Span,
}

#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
    server: AtomicWaker,
    /// Set when a body waiting for its first poll was cancelled, or the connection closed: only
    /// then does the server task take the lock before each first poll.
    skip: AtomicBool,
}

#[derive(Default)]
struct State {
    queued: Vec<Queued>,
    /// The ids in `queued`. The request ids of one connection are distinct (see `seen`), and
    /// always within a window of 4 096, so they spread over a table's buckets.
    queued_ids: FastSet<u64>,
    /// The ids of the batch the server task is polling now.
    polling_ids: FastSet<u64>,
    /// Those of `queued_ids` and `polling_ids` whose caller cancelled.
    cancelled: FastSet<u64>,
    closed: bool,
    /// Bodies that waited at their first poll and run in a task of their own.
    spawned: HashMap<u64, AbortHandle>,
}

impl Queue {
    /// Queues `bodies` (and leaves the vector empty) for the server task, with one lock and
    /// one wake-up for them all: the reader hands over what it read in one go.
    pub(crate) fn push(&self, bodies: &mut Vec<Queued>) {
        if bodies.is_empty() {
            return;
        }
        {
            let mut state = lock(&self.state);
            if state.closed {
                bodies.clear();
                return;
            }
            let State {
                queued, queued_ids, ..
            } = &mut *state;
            queued_ids.extend(bodies.iter().map(|body| body.id));
            if queued.is_empty() {
                // Swapped, not moved body by body: the server task usually took the last
                // batch already, and a queued body is large. The reader keeps the empty vector.
                std::mem::swap(queued, bodies);
            } else {
                queued.append(bodies);
            }
        }
        self.server.wake();
    }

    /// Stops body `id`, wherever it is; false if it is not here (it finished already).
    pub(crate) fn cancel(&self, id: u64) -> bool {
        let mut state = lock(&self.state);
        if let Some(handle) = state.spawned.remove(&id) {
            handle.abort();
            return true;
        }
        if state.queued_ids.contains(&id) || state.polling_ids.contains(&id) {
            state.cancelled.insert(id);
            self.skip.store(true, Ordering::Release);
            return true;
        }
        false
    }

    /// Drops what is queued, aborts what is spawned, and ends the server task; the rest of the
    /// batch being polled is not polled.
    pub(crate) fn close(&self) {
        let (queued, spawned) = {
            let mut state = lock(&self.state);
            state.closed = true;
            state.queued_ids.clear();
            (
                std::mem::take(&mut state.queued),
                std::mem::take(&mut state.spawned),
            )
        };
        self.skip.store(true, Ordering::Release);
        drop(queued);
        for handle in spawned.into_values() {
            handle.abort();
        }
        self.server.wake();
    }

    /// Moves everything queued into `batch`; `Ready(false)` once closed.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, batch: &mut Vec<Queued>) -> Poll<bool> {
        self.server.register(cx.waker());
        let mut state = lock(&self.state);
        if state.closed {
            return Poll::Ready(false);
        }
        state.polling_ids.clear();
        if state.queued.is_empty() {
            state.cancelled.clear();
            self.skip.store(false, Ordering::Release);
            return Poll::Pending;
        }
        std::mem::swap(&mut state.queued, batch);
        let State {
            queued_ids,
            polling_ids,
            cancelled,
            ..
        } = &mut *state;
        std::mem::swap(queued_ids, polling_ids);
        // Cancels of bodies already over are forgotten; those of the new batch stay.
        cancelled.retain(|id| polling_ids.contains(id));
        self.skip.store(!cancelled.is_empty(), Ordering::Release);
        Poll::Ready(true)
    }

    /// Whether body `id` of the batch must not be polled: its caller cancelled, or the
    /// connection closed.
    pub(crate) fn skipped(&self, id: u64) -> bool {
        if !self.skip.load(Ordering::Acquire) {
            return false;
        }
        let state = lock(&self.state);
        state.closed || state.cancelled.contains(&id)
    }

    /// A body of the batch waited at its first poll: unless it was cancelled meanwhile (or the
    /// connection closed), it becomes a spawned body, stopped by `handle`.
    pub(crate) fn keep(&self, id: u64, handle: AbortHandle) -> bool {
        let mut state = lock(&self.state);
        if state.closed || state.cancelled.contains(&id) {
            return false;
        }
        state.spawned.insert(id, handle);
        true
    }

    /// A spawned body is over.
    pub(crate) fn forget(&self, id: u64) {
        lock(&self.state).spawned.remove(&id);
    }
}

impl StopBodies for Queue {
    fn stop(&self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(id: u64) -> Queued {
        Queued {
            id,
            work: Served::Done(None),
            deadline: Duration::from_secs(1),
            span: tracing::Span::none(),
        }
    }

    fn take(queue: &Queue) -> Vec<Queued> {
        let waker = futures::task::noop_waker();
        let mut batch = Vec::new();
        assert_eq!(
            queue.poll_take(&mut Context::from_waker(&waker), &mut batch),
            Poll::Ready(true)
        );
        batch
    }

    #[test]
    fn a_cancel_finds_its_body_queued_being_polled_or_spawned() {
        let queue = Queue::default();
        // Into an empty queue and behind queued bodies: both leave the reader's vector empty.
        let mut read = vec![queued(1), queued(2)];
        queue.push(&mut read);
        assert!(read.is_empty());
        read.push(queued(3));
        queue.push(&mut read);
        assert!(read.is_empty());
        // 1 is cancelled while queued: it is skipped at its first poll.
        assert!(queue.cancel(1));
        let batch = take(&queue);
        let ids: Vec<u64> = batch.iter().map(|body| body.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert!(queue.skipped(1));
        // 2 is cancelled while its batch is being polled: not polled, or not kept.
        assert!(queue.cancel(2));
        assert!(queue.skipped(2));
        let (handle, registration) = AbortHandle::new_pair();
        assert!(!queue.keep(2, handle));
        assert!(!registration.handle().is_aborted());
        // 3 is kept, then cancelled in its task.
        assert!(!queue.skipped(3));
        let (handle, registration_3) = AbortHandle::new_pair();
        assert!(queue.keep(3, handle));
        assert!(queue.cancel(3));
        assert!(registration_3.handle().is_aborted());
        // Once the batch is over, its ids are unknown.
        let waker = futures::task::noop_waker();
        let mut next = Vec::new();
        assert!(queue
            .poll_take(&mut Context::from_waker(&waker), &mut next)
            .is_pending());
        assert!(!queue.cancel(2));
        assert!(!queue.cancel(4));
        assert!(!queue.skip.load(Ordering::Acquire));
    }

    #[test]
    fn closing_drops_the_queued_aborts_the_spawned_and_skips_the_rest_of_the_batch() {
        let queue = Queue::default();
        queue.push(&mut vec![queued(1), queued(2)]);
        let _batch = take(&queue);
        let (handle, registration) = AbortHandle::new_pair();
        assert!(queue.keep(1, handle));
        queue.push(&mut vec![queued(3)]);
        queue.close();
        let mut late = vec![queued(4)];
        queue.push(&mut late);
        assert!(late.is_empty(), "what comes after close is dropped");
        assert!(registration.handle().is_aborted());
        assert!(queue.skipped(2), "the rest of the batch is not polled");
        assert!(lock(&queue.state).queued.is_empty());
        let waker = futures::task::noop_waker();
        let mut batch = Vec::new();
        assert_eq!(
            queue.poll_take(&mut Context::from_waker(&waker), &mut batch),
            Poll::Ready(false)
        );
        let (handle, _registration) = AbortHandle::new_pair();
        assert!(!queue.keep(4, handle), "nothing is kept after close");
    }
}

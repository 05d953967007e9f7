//! A connection's outbound queue: many senders, one writer that takes everything queued at once.
//!
//! A channel allocates per message; this keeps two vectors that trade places, so a busy
//! connection queues frames without allocating, and the writer sends each batch with one flush.
//!
//! The bytes queued and not yet written are counted and bounded: a peer that stops reading
//! cannot make this node hold an unbounded backlog for it.

use std::sync::Mutex;
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

use crate::connection::lock;
use crate::middleware::Outgoing;

#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    writer: AtomicWaker,
    limit: usize,
}

#[derive(Debug, Default)]
struct State {
    queue: Vec<Outgoing>,
    closed: bool,
    /// Bytes pushed and not yet written (queued, or in the writer's batch).
    unsent: usize,
}

/// Why a frame was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The connection is gone.
    Closed,
    /// The unsent bytes are at the limit: the peer reads too slowly.
    Full,
}

impl Outbox {
    /// An outbox that holds at most `limit` unsent bytes (one frame of any size is let
    /// through when nothing is unsent, so the limit never blocks a frame for good).
    pub(crate) fn new(limit: usize) -> Outbox {
        Outbox {
            state: Mutex::default(),
            writer: AtomicWaker::new(),
            limit,
        }
    }

    pub(crate) fn push(&self, item: Outgoing) -> Result<(), Refused> {
        {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(Refused::Closed);
            }
            let size = item.size();
            if state.unsent > 0 && state.unsent.saturating_add(size) > self.limit {
                return Err(Refused::Full);
            }
            state.unsent += size;
            state.queue.push(item);
        }
        self.writer.wake();
        Ok(())
    }

    /// The most unsent bytes it holds.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The writer has written `bytes` of what it took.
    pub(crate) fn written(&self, bytes: usize) {
        let mut state = lock(&self.state);
        state.unsent = state.unsent.saturating_sub(bytes);
    }

    /// Refuses further frames; the writer sends what is queued and then finishes.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.writer.wake();
    }

    /// Closes the outbox and drops whatever is still queued: the writer has stopped.
    pub(crate) fn discard(&self) {
        let dropped = {
            let mut state = lock(&self.state);
            state.closed = true;
            state.unsent = 0;
            std::mem::take(&mut state.queue)
        };
        drop(dropped);
    }

    /// Moves everything queued into `batch` (which must be empty). `Ready(false)` once the
    /// outbox is closed and empty.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, batch: &mut Vec<Outgoing>) -> Poll<bool> {
        self.writer.register(cx.waker());
        let mut state = lock(&self.state);
        if !state.queue.is_empty() {
            std::mem::swap(&mut state.queue, batch);
            Poll::Ready(true)
        } else if state.closed {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_arrive_whole_and_in_order_then_close_ends_them() {
        let outbox = Outbox::new(usize::MAX);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut batch = Vec::new();
        assert!(outbox.poll_take(&mut cx, &mut batch).is_pending());
        for n in 0..3_u8 {
            outbox
                .push(Outgoing::Encoded(bytes::Bytes::from(vec![n])))
                .expect("open");
        }
        assert_eq!(outbox.poll_take(&mut cx, &mut batch), Poll::Ready(true));
        let got: Vec<u8> = batch
            .drain(..)
            .map(|o| match o {
                Outgoing::Encoded(b) => b[0],
                Outgoing::Frame(_) => 255,
            })
            .collect();
        assert_eq!(got, [0, 1, 2]);
        outbox.close();
        assert!(outbox.push(Outgoing::Encoded(bytes::Bytes::new())).is_err());
        assert_eq!(outbox.poll_take(&mut cx, &mut batch), Poll::Ready(false));
    }

    #[test]
    fn discard_drops_what_is_queued_and_refuses_more() {
        let outbox = Outbox::new(usize::MAX);
        outbox
            .push(Outgoing::Encoded(bytes::Bytes::from(vec![1; 1000])))
            .expect("open");
        outbox.discard();
        assert!(lock(&outbox.state).queue.is_empty());
        assert!(outbox.push(Outgoing::Encoded(bytes::Bytes::new())).is_err());
    }

    #[test]
    fn unsent_bytes_are_bounded_until_the_writer_writes_them() {
        let outbox = Outbox::new(100);
        let frame = |n| Outgoing::Encoded(bytes::Bytes::from(vec![0; n]));
        // A frame larger than the limit passes when nothing else is unsent...
        assert_eq!(outbox.push(frame(150)), Ok(()));
        // ...but nothing more until it is written.
        assert_eq!(outbox.push(frame(1)), Err(Refused::Full));
        let waker = futures::task::noop_waker();
        let mut batch = Vec::new();
        assert!(outbox
            .poll_take(&mut Context::from_waker(&waker), &mut batch)
            .is_ready());
        assert_eq!(
            outbox.push(frame(1)),
            Err(Refused::Full),
            "taken is not written"
        );
        outbox.written(150);
        assert_eq!(outbox.push(frame(60)), Ok(()));
        assert_eq!(outbox.push(frame(40)), Ok(()));
        assert_eq!(outbox.push(frame(1)), Err(Refused::Full));
        outbox.close();
        assert_eq!(outbox.push(frame(1)), Err(Refused::Closed));
    }
}

//! A connection's outbound queue: many senders, one writer that takes everything queued at once.
//!
//! A channel allocates per message; this keeps two vectors that trade places, so a busy
//! connection queues frames without allocating, and the writer sends each batch with one flush.

use std::sync::Mutex;
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

use crate::connection::lock;
use crate::middleware::Outgoing;

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    writer: AtomicWaker,
}

#[derive(Debug, Default)]
struct State {
    queue: Vec<Outgoing>,
    closed: bool,
}

/// The outbox was closed: the connection is gone.
#[derive(Debug)]
pub(crate) struct Closed;

impl Outbox {
    pub(crate) fn push(&self, item: Outgoing) -> Result<(), Closed> {
        {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(Closed);
            }
            state.queue.push(item);
        }
        self.writer.wake();
        Ok(())
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
        let outbox = Outbox::default();
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
        let outbox = Outbox::default();
        outbox
            .push(Outgoing::Encoded(bytes::Bytes::from(vec![1; 1000])))
            .expect("open");
        outbox.discard();
        assert!(lock(&outbox.state).queue.is_empty());
        assert!(outbox.push(Outgoing::Encoded(bytes::Bytes::new())).is_err());
    }
}

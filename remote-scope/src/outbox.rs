//! A connection's outbound queue: many senders, one writer that takes everything queued at once.
//!
//! A channel allocates per message; this keeps two vectors that trade places, so a busy
//! connection queues frames without allocating, and the writer sends each batch with one flush.
//!
//! The bytes queued and not yet written are counted and bounded, per connection and for the
//! whole node: a peer that stops reading cannot make this node hold an unbounded backlog for
//! it, and many such peers cannot add up to more than the node's limit. Each frame counts what
//! it occupies, its queue slot with its bytes, so a backlog of tiny frames (pongs, say) is
//! bounded as truly as one of large results.
//!
//! Small frames are cut from a buffer the encoder shares between connections (see
//! `protocol::arena`), and a frame keeps its whole buffer alive, which the count above does not
//! see. So only the first few frames of a batch are queued as they are; later ones are copied
//! into a buffer of this connection's own. However slowly the peer reads, its backlog then keeps
//! alive only buffers holding its own frames.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::task::AtomicWaker;

use crate::buffers::{OWN_CHUNK, SHARED_PER_BATCH};
use crate::protocol::Frame;
use crate::sync::lock;

/// What waits in a connection's outbound queue.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A frame for the outbound middleware, encoded by the writer.
    Frame(Frame),
    /// A frame already encoded, when there is no middleware to show it to.
    Encoded(bytes::Bytes),
}

/// What a queued frame occupies besides the bytes it holds.
const SLOT: usize = std::mem::size_of::<Outgoing>();

impl Outgoing {
    /// The bytes this frame occupies while queued: its slot in the queue, and the bytes it
    /// holds (exact once encoded; a frame to encode counts its payloads).
    #[inline]
    pub(crate) fn size(&self) -> usize {
        use crate::protocol::{Failure, Outcome};
        SLOT + match self {
            Outgoing::Encoded(bytes) => bytes.len(),
            Outgoing::Frame(
                Frame::Invoke(invoke)
                | Frame::InvokeOnce(crate::protocol::InvokeOnce { invoke, .. }),
            ) => invoke.captures.len() + invoke.body.len(),
            Outgoing::Frame(Frame::InvokeTraced(traced)) => {
                traced.invoke.captures.len()
                    + traced.invoke.body.len()
                    + traced.trace.state.as_ref().map_or(0, String::len)
            }
            Outgoing::Frame(Frame::Result(result)) => match &result.outcome {
                Outcome::Value(value) => value.len(),
                Outcome::Failure(
                    Failure::Panicked { message: text }
                    | Failure::DecodeCaptures { reason: text }
                    | Failure::EncodeResult { reason: text },
                ) => text.len(),
                Outcome::Failure(_) => 0,
            },
            Outgoing::Frame(Frame::Message(bytes)) => bytes.len(),
            Outgoing::Frame(_) => 0,
        }
    }
}

/// The bytes a node's outboxes hold together, against the node's limit.
#[derive(Debug)]
pub(crate) struct NodeQueue {
    limit: usize,
    unsent: AtomicUsize,
}

impl NodeQueue {
    pub(crate) fn new(limit: usize) -> Arc<NodeQueue> {
        Arc::new(NodeQueue {
            limit,
            unsent: AtomicUsize::new(0),
        })
    }

    /// Bytes queued and not yet written on all the node's connections.
    pub(crate) fn unsent(&self) -> usize {
        self.unsent.load(Ordering::Relaxed)
    }

    /// Counts `size` more bytes unless that passes the limit. Checked and added in one step,
    /// so two connections cannot both take the last room.
    fn take(&self, size: usize) -> bool {
        self.unsent
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |unsent| {
                unsent
                    .checked_add(size)
                    .filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, size: usize) {
        self.unsent.fetch_sub(size, Ordering::AcqRel);
    }
}

#[derive(Debug)]
pub(crate) struct Outbox {
    state: Mutex<State>,
    writer: AtomicWaker,
    limit: usize,
    node: Arc<NodeQueue>,
    /// See [`SHARED_PER_BATCH`].
    shared_per_batch: usize,
}

#[derive(Debug, Default)]
struct State {
    queue: Vec<Outgoing>,
    /// Frames in `queue` that share their buffer with other connections' frames.
    shared: usize,
    /// Where frames are copied once `shared` is at its limit.
    own: BytesMut,
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
    /// An outbox that holds at most `limit` unsent bytes, and takes part in `node`'s limit (one
    /// frame of any size is let through when nothing is unsent, so the limits never block a
    /// frame for good).
    pub(crate) fn new(limit: usize, node: Arc<NodeQueue>) -> Outbox {
        let (fewest, most) = SHARED_PER_BATCH;
        Outbox {
            state: Mutex::default(),
            writer: AtomicWaker::new(),
            limit,
            node,
            shared_per_batch: (limit / (2 * crate::buffers::ENCODE_CHUNK)).clamp(fewest, most),
        }
    }

    pub(crate) fn push(&self, item: Outgoing) -> Result<(), Refused> {
        // Only the frame that finds the queue empty wakes the writer: one that finds frames
        // queued comes after a push that wakes it, and the writer takes the whole queue, after
        // it registers, under the lock. One wake-up per batch instead of one per frame.
        let first = {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(Refused::Closed);
            }
            let size = item.size();
            if state.unsent > 0 {
                if state.unsent.saturating_add(size) > self.limit || !self.node.take(size) {
                    return Err(Refused::Full);
                }
            } else {
                self.node.unsent.fetch_add(size, Ordering::AcqRel);
            }
            state.unsent += size;
            let item = match item {
                Outgoing::Encoded(frame) if !frame.is_unique() => {
                    Outgoing::Encoded(state.own_or_copied(frame, self.shared_per_batch))
                }
                other => other,
            };
            state.queue.push(item);
            state.queue.len() == 1
        };
        if first {
            self.writer.wake();
        }
        Ok(())
    }

    /// The most unsent bytes it holds.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The writer has written `bytes` of what it took.
    pub(crate) fn written(&self, bytes: usize) {
        let mut state = lock(&self.state);
        let bytes = bytes.min(state.unsent);
        state.unsent -= bytes;
        self.node.give_back(bytes);
        if state.queue.is_empty() {
            state.own = BytesMut::new();
        }
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
            self.node.give_back(std::mem::take(&mut state.unsent));
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
            state.shared = 0;
            Poll::Ready(true)
        } else if state.closed {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    }
}

impl State {
    /// `frame` as it is while the batch holds fewer than `most` shared frames, else copied
    /// into this connection's own buffer.
    fn own_or_copied(&mut self, frame: Bytes, most: usize) -> Bytes {
        if self.shared < most {
            self.shared += 1;
            return frame;
        }
        if self.own.capacity() < frame.len() {
            self.own.reserve(frame.len().max(OWN_CHUNK));
        }
        self.own.extend_from_slice(&frame);
        self.own.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_arrive_whole_and_in_order_then_close_ends_them() {
        let outbox = Outbox::new(usize::MAX, NodeQueue::new(usize::MAX));
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
        let outbox = Outbox::new(usize::MAX, NodeQueue::new(usize::MAX));
        outbox
            .push(Outgoing::Encoded(bytes::Bytes::from(vec![1; 1000])))
            .expect("open");
        outbox.discard();
        assert!(lock(&outbox.state).queue.is_empty());
        assert!(outbox.push(Outgoing::Encoded(bytes::Bytes::new())).is_err());
    }

    #[test]
    fn a_batch_holds_few_frames_that_share_a_buffer_and_copies_the_rest() {
        // A small limit: the fewest shared frames.
        let outbox = Outbox::new(64 << 10, NodeQueue::new(usize::MAX));
        let held = SHARED_PER_BATCH.0;
        assert_eq!(outbox.shared_per_batch, held);
        let shared = bytes::Bytes::from(vec![7; 1024]);
        let inside = |p: *const u8| shared.as_ptr_range().contains(&p);
        let frame = |n: usize| shared.slice(n * 8..n * 8 + 8);
        for n in 0..held + 2 {
            outbox.push(Outgoing::Encoded(frame(n))).expect("open");
        }
        let alone = bytes::Bytes::from(vec![9; 64]);
        let alone_at = alone.as_ptr();
        outbox.push(Outgoing::Encoded(alone)).expect("open");
        let waker = futures::task::noop_waker();
        let mut batch = Vec::new();
        assert!(outbox
            .poll_take(&mut Context::from_waker(&waker), &mut batch)
            .is_ready());
        let at: Vec<*const u8> = batch
            .iter()
            .map(|o| match o {
                Outgoing::Encoded(b) => b.as_ptr(),
                Outgoing::Frame(_) => std::ptr::null(),
            })
            .collect();
        assert!(at[..held].iter().all(|&p| inside(p)));
        assert!(at[held..held + 2].iter().all(|&p| !inside(p)));
        assert_eq!(at[held + 2], alone_at, "a frame alone in its buffer");
        assert!(batch.iter().take(held + 2).all(|o| matches!(o,
            Outgoing::Encoded(b) if b[..] == [7; 8])));
        // A new batch may hold shared frames again.
        outbox.push(Outgoing::Encoded(frame(100))).expect("open");
        let queue = &lock(&outbox.state).queue;
        assert!(matches!(&queue[0], Outgoing::Encoded(b) if inside(b.as_ptr())));
    }

    #[test]
    fn the_connections_own_buffer_goes_once_everything_is_written() {
        let outbox = Outbox::new(64 << 10, NodeQueue::new(usize::MAX));
        let shared = bytes::Bytes::from(vec![7; 1024]);
        for n in 0..=outbox.shared_per_batch {
            outbox
                .push(Outgoing::Encoded(shared.slice(n..n + 1)))
                .expect("open");
        }
        let waker = futures::task::noop_waker();
        let mut batch = Vec::new();
        assert!(outbox
            .poll_take(&mut Context::from_waker(&waker), &mut batch)
            .is_ready());
        let Some(Outgoing::Encoded(copied)) = batch.pop() else {
            panic!("the last frame is queued encoded")
        };
        assert!(!copied.is_unique(), "the outbox's buffer holds it too");
        let each = Outgoing::Encoded(shared.slice(0..1)).size();
        outbox.written((outbox.shared_per_batch + 1) * each);
        assert!(copied.is_unique(), "an idle connection keeps no buffer");
    }

    #[test]
    fn unsent_bytes_are_bounded_until_the_writer_writes_them() {
        // Each frame counts its queue slot too.
        let slot = Outgoing::Encoded(bytes::Bytes::new()).size();
        assert_eq!(slot, std::mem::size_of::<Outgoing>());
        let outbox = Outbox::new(100 + 2 * slot, NodeQueue::new(usize::MAX));
        let frame = |n| Outgoing::Encoded(bytes::Bytes::from(vec![0; n]));
        // A frame larger than the limit passes when nothing else is unsent...
        assert_eq!(outbox.push(frame(150 + 2 * slot)), Ok(()));
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
        outbox.written(150 + 3 * slot);
        assert_eq!(outbox.push(frame(60)), Ok(()));
        assert_eq!(outbox.push(frame(40)), Ok(()));
        assert_eq!(
            outbox.push(frame(0)),
            Err(Refused::Full),
            "a slot is not free"
        );
        outbox.close();
        assert_eq!(outbox.push(frame(1)), Err(Refused::Closed));
    }

    #[test]
    fn many_outboxes_together_stay_within_the_nodes_limit() {
        let slot = std::mem::size_of::<Outgoing>();
        let node = NodeQueue::new(10 * slot);
        let outboxes: Vec<Outbox> = (0..4)
            .map(|_| Outbox::new(usize::MAX, Arc::clone(&node)))
            .collect();
        let pong = || Outgoing::Frame(crate::protocol::Frame::Pong);
        // Each outbox may take a first frame whatever the node holds...
        for outbox in &outboxes {
            assert_eq!(outbox.push(pong()), Ok(()));
        }
        // ...and more only while the node's total is within its limit.
        let mut more = 0;
        while outboxes[more % 4].push(pong()).is_ok() {
            more += 1;
        }
        assert_eq!(more, 6);
        assert_eq!(node.unsent(), 10 * slot);
        assert_eq!(outboxes[1].push(pong()), Err(Refused::Full));
        // What one writes (or discards) makes room for the others.
        outboxes[0].written(2 * slot);
        outboxes[1].discard();
        assert_eq!(node.unsent(), 10 * slot - 2 * slot - 3 * slot);
        for _ in 0..5 {
            assert_eq!(outboxes[2].push(pong()), Ok(()));
        }
        assert_eq!(outboxes[3].push(pong()), Err(Refused::Full));
    }

    #[test]
    fn the_first_frame_after_each_take_wakes_the_writer() {
        let (count, waker) = crate::testing::counting_waker();
        let wakes = || count.wakes();
        let outbox = Outbox::new(usize::MAX, NodeQueue::new(usize::MAX));
        let mut batch = Vec::new();
        let take =
            |batch: &mut Vec<Outgoing>| outbox.poll_take(&mut Context::from_waker(&waker), batch);
        assert!(take(&mut batch).is_pending());
        for n in 0..3_u8 {
            outbox
                .push(Outgoing::Encoded(bytes::Bytes::from(vec![n])))
                .expect("open");
        }
        assert_eq!(wakes(), 1);
        assert_eq!(take(&mut batch), Poll::Ready(true));
        assert_eq!(batch.len(), 3);
        batch.clear();
        // Taken, so the next frame finds the queue empty and wakes the writer again.
        outbox
            .push(Outgoing::Encoded(bytes::Bytes::from(vec![3])))
            .expect("open");
        assert_eq!(wakes(), 2);
        assert_eq!(take(&mut batch), Poll::Ready(true));
        assert_eq!(batch.len(), 1);
    }
}

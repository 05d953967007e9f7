//! The consumer's side of a stream: a bounded queue of items, and the body through which the
//! producing peer delivers them.
//!
//! Items reach the consumer as calls of [`delivery`], a body every peer serves, made by the
//! body that produces the stream, back to the peer that called it. A delivery carries at most
//! as many items as the consumer has room for, and its answer is how many more it has room for
//! now: the credit for the next one. When there is no room, the answer waits until the consumer
//! has taken an item, so the producer runs at most a window ahead of the consumer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::task::AtomicWaker;

use crate::call::Call;
use crate::error::Error;
use crate::peer_id::PeerId;
use crate::sync::lock;

/// How long a delivery waits for room: long, because a consumer may read slowly for as long
/// as it likes; a consumer that drops its stream, or goes away, ends the wait at once.
pub(super) const DELIVERY_WAIT: Duration = Duration::from_secs(24 * 3600);

/// The items of one stream that arrived and were not taken yet.
pub(super) struct Queue {
    state: Mutex<State>,
    /// The consumer, woken by an item, or by the end.
    pub(super) consumer: AtomicWaker,
    /// The delivery waiting for room, woken when the consumer takes an item or drops.
    producer: AtomicWaker,
}

struct State {
    items: VecDeque<Bytes>,
    window: usize,
    /// The peer that may deliver (`None`: any; a call to a pool does not know its member).
    from: Option<PeerId>,
    /// The consumer dropped its stream, or the producer broke the protocol.
    closed: bool,
    /// Why the stream failed on the consumer's side.
    failed: Option<Error>,
}

impl Queue {
    pub(super) fn new(window: usize, from: Option<PeerId>) -> Arc<Queue> {
        Arc::new(Queue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                window: window.max(1),
                from,
                closed: false,
                failed: None,
            }),
            consumer: AtomicWaker::new(),
            producer: AtomicWaker::new(),
        })
    }

    pub(super) fn set_window(&self, window: usize) {
        lock(&self.state).window = window.max(1);
    }

    /// The next item, if one is there; frees a place for the producer.
    pub(super) fn pop(&self) -> Option<Bytes> {
        let item = lock(&self.state).items.pop_front();
        if item.is_some() {
            self.producer.wake();
        }
        item
    }

    pub(super) fn has_items(&self) -> bool {
        !lock(&self.state).items.is_empty()
    }

    /// Why the producer's deliveries were refused, if they were.
    pub(super) fn take_failure(&self) -> Option<Error> {
        lock(&self.state).failed.take()
    }

    /// The consumer is gone: deliveries get no more room.
    pub(super) fn close(&self) {
        lock(&self.state).closed = true;
        self.producer.wake();
    }

    /// Takes `items` from `from`; the room left, once there is some (0: the stream is over).
    async fn deliver(&self, from: Option<PeerId>, items: Vec<Bytes>) -> u32 {
        {
            let mut state = lock(&self.state);
            if state.closed {
                return 0;
            }
            let room = state.window.saturating_sub(state.items.len());
            let stranger =
                matches!((&state.from, &from), (Some(expected), Some(from)) if expected != from);
            if stranger || items.len() > room {
                // Only a peer that does not follow the protocol sends more than it was given
                // room for, or delivers to a stream it does not produce.
                state.closed = true;
                state.failed = Some(Error::protocol(format!(
                    "a stream's producer delivered {} items where it had room for {room}{}",
                    items.len(),
                    if stranger { ", from another peer" } else { "" }
                )));
                drop(state);
                self.consumer.wake();
                return 0;
            }
            state.items.extend(items);
        }
        self.consumer.wake();
        futures::future::poll_fn(|cx| self.poll_room(cx)).await
    }

    fn poll_room(&self, cx: &mut Context<'_>) -> Poll<u32> {
        if let Some(room) = self.room() {
            return Poll::Ready(room);
        }
        self.producer.register(cx.waker());
        match self.room() {
            Some(room) => Poll::Ready(room),
            None => Poll::Pending,
        }
    }

    /// The room for items now (0 once closed), or `None` when the queue is full.
    fn room(&self) -> Option<u32> {
        let state = lock(&self.state);
        if state.closed {
            return Some(0);
        }
        match state.window.saturating_sub(state.items.len()) {
            0 => None,
            room => Some(u32::try_from(room).unwrap_or(u32::MAX)),
        }
    }
}

/// The streams this process consumes, by id. Ids are random, so a peer cannot guess another
/// stream's; the queue also checks who delivers.
fn table() -> &'static Mutex<HashMap<u64, Weak<Queue>>> {
    static TABLE: OnceLock<Mutex<HashMap<u64, Weak<Queue>>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

pub(super) fn register(id: u64, queue: &Arc<Queue>) {
    lock(table()).insert(id, Arc::downgrade(queue));
}

pub(super) fn unregister(id: u64) {
    lock(table()).remove(&id);
}

fn find(id: u64) -> Option<Arc<Queue>> {
    lock(table()).get(&id).and_then(Weak::upgrade)
}

/// A delivery of `items` of stream `stream` to the peer `consumer`, which answers with the
/// room it has for more (0: the stream is over there).
pub(super) fn delivery(consumer: &PeerId, stream: u64, items: Vec<Bytes>) -> Call<u32> {
    crate::remote!(consumer, [stream: u64, items: Vec<Bytes>], {
        match find(stream) {
            Some(queue) => queue.deliver(crate::context::caller(), items).await,
            None => 0,
        }
    })
    .timeout(DELIVERY_WAIT)
}

/// The name of the delivery body, which every peer that connects holds on to (see the
/// handshake).
pub(crate) fn delivery_body() -> &'static str {
    delivery(&PeerId::new(""), 0, Vec::new()).body_name()
}

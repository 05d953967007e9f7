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
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures::task::AtomicWaker;

use crate::call::Call;
use crate::error::Error;
use crate::peer_id::PeerId;
use crate::streams::sink::DELIVERIES;
use crate::sync::lock;

/// How long a delivery waits for room: long, because a consumer may read slowly for as long
/// as it likes; a consumer that drops its stream, or goes away, ends the wait at once.
pub(super) const DELIVERY_WAIT: Duration = Duration::from_secs(24 * 3600);

/// The items of one stream that arrived and were not taken yet.
pub(super) struct Queue {
    state: Mutex<State>,
    /// The consumer, woken by an item, or by the end.
    pub(super) consumer: AtomicWaker,
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
    /// The number of the delivery whose items come next.
    next: u64,
    /// Deliveries waiting for their turn or for room, woken when either may have come.
    waiting: Vec<Waker>,
}

impl State {
    fn wake_deliveries(&mut self) {
        for waker in self.waiting.drain(..) {
            waker.wake();
        }
    }

    /// Refuses the producer's deliveries from now on, for breaking the protocol.
    fn refuse(&mut self, reason: String) {
        self.closed = true;
        self.failed = Some(Error::protocol(reason));
        self.wake_deliveries();
    }
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
                next: 0,
                waiting: Vec::new(),
            }),
            consumer: AtomicWaker::new(),
        })
    }

    pub(super) fn set_window(&self, window: usize) {
        lock(&self.state).window = window.max(1);
    }

    /// The next item, if one is there; frees a place for the producer.
    pub(super) fn pop(&self) -> Option<Bytes> {
        let mut state = lock(&self.state);
        let item = state.items.pop_front();
        if item.is_some() {
            state.wake_deliveries();
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
        let mut state = lock(&self.state);
        state.closed = true;
        state.wake_deliveries();
    }

    /// Takes delivery `number` of `items` from `from`, in its turn; the room left, once there
    /// is some (0: the stream is over).
    async fn deliver(&self, from: Option<PeerId>, number: u64, items: Vec<Bytes>) -> u32 {
        let mut items = Some(items);
        let room = futures::future::poll_fn(|cx| {
            let mut state = lock(&self.state);
            if state.closed {
                return Poll::Ready(0);
            }
            if let Some(batch) = items.take() {
                let stranger = matches!((&state.from, &from), (Some(expected), Some(from)) if expected != from);
                let ahead = number.saturating_sub(state.next);
                let room = state.window.saturating_sub(state.items.len());
                if stranger || number < state.next || ahead >= DELIVERIES as u64 {
                    // Only a peer that does not follow the protocol delivers to a stream it
                    // does not produce, or out of the order it numbered its deliveries in.
                    let due = state.next;
                    state.refuse(format!(
                        "a stream's producer sent delivery {number} where {due} was due{}",
                        if stranger { ", from another peer" } else { "" }
                    ));
                    drop(state);
                    self.consumer.wake();
                    return Poll::Ready(0);
                }
                if ahead > 0 {
                    // An earlier delivery is still to come: wait for it.
                    items = Some(batch);
                    state.waiting.push(cx.waker().clone());
                    return Poll::Pending;
                }
                if batch.len() > room {
                    state.refuse(format!(
                        "a stream's producer delivered {} items where it had room for {room}",
                        batch.len()
                    ));
                    drop(state);
                    self.consumer.wake();
                    return Poll::Ready(0);
                }
                state.items.extend(batch);
                state.next += 1;
                state.wake_deliveries();
                drop(state);
                self.consumer.wake();
                state = lock(&self.state);
            }
            match state.window.saturating_sub(state.items.len()) {
                0 => {
                    state.waiting.push(cx.waker().clone());
                    Poll::Pending
                }
                room => Poll::Ready(u32::try_from(room).unwrap_or(u32::MAX)),
            }
        });
        room.await
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
pub(super) fn delivery(
    consumer: &PeerId,
    stream: u64,
    number: u64,
    items: Vec<Bytes>,
) -> Call<u32> {
    crate::remote!(consumer, [stream: u64, number: u64, items: Vec<Bytes>], {
        match find(stream) {
            Some(queue) => queue.deliver(crate::context::caller(), number, items).await,
            None => 0,
        }
    })
    .timeout(DELIVERY_WAIT)
}

/// The name of the body through which a stream's items reach the peer that consumes it, for
/// an [`Allowlist`](crate::Allowlist): a consumer whose policy lets a producer run only some
/// bodies must allow this one for its streams to work. (Every peer that connects serves it.)
///
/// ```
/// let name = remote_scope::streams::delivery_body();
/// assert!(name.starts_with("remote_scope::streams::queue::"));
/// ```
pub fn delivery_body() -> &'static str {
    delivery(&PeerId::new(""), 0, 0, Vec::new()).body_name()
}

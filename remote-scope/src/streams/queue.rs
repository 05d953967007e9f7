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
use crate::sync::lock;

/// Deliveries a producer has under way at once: while one is answered, the next is on its way.
/// The consumer refuses a delivery further ahead than that.
pub(super) const DELIVERIES: usize = 2;

/// How long a delivery waits for room: as long as a stream may last (a consumer may read as
/// slowly as it likes within its stream's timeout); a consumer that drops its stream, or goes
/// away, ends the wait at once.
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
    /// The delivery that came before its turn and waits for it (one at most).
    early: Option<u64>,
    /// Deliveries waiting for their turn or for room, woken when either may have come.
    waiting: Vec<Waker>,
}

impl State {
    fn wake_deliveries(&mut self) {
        for waker in self.waiting.drain(..) {
            waker.wake();
        }
    }

    /// What is wrong with delivery `number` of `items` items from `from`, if anything: it
    /// comes from another peer than the stream's, out of the order of the deliveries, as a
    /// second one before its turn (one may wait for its turn, `parked` once it does), or with
    /// more items than the window, or than the room there is in its turn. What a producer can
    /// make this node hold is so bounded before its turn too.
    fn misdelivered(
        &self,
        from: Option<&PeerId>,
        number: u64,
        items: usize,
        parked: bool,
    ) -> Option<String> {
        let stranger =
            matches!((&self.from, from), (Some(expected), Some(from)) if expected != from);
        let ahead = number.saturating_sub(self.next);
        let room = self.window.saturating_sub(self.items.len());
        if stranger {
            return Some("a stream's items came from another peer than its producer".to_owned());
        }
        if number < self.next
            || ahead >= DELIVERIES as u64
            || (ahead > 0 && !parked && self.early.is_some())
        {
            return Some(format!(
                "a stream's producer sent delivery {number} where {} was due",
                self.next
            ));
        }
        if items > self.window || (ahead == 0 && items > room) {
            return Some(format!(
                "a stream's producer delivered {items} items where it had room for {room}"
            ));
        }
        None
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
                early: None,
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

    pub(super) fn has_failed(&self) -> bool {
        lock(&self.state).failed.is_some()
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
        // Whether this delivery came before its turn and waits for it.
        let mut parked = false;
        let room = futures::future::poll_fn(|cx| {
            let mut state = lock(&self.state);
            if state.closed {
                return Poll::Ready(0);
            }
            if let Some(batch) = items.take() {
                if let Some(wrong) = state.misdelivered(from.as_ref(), number, batch.len(), parked)
                {
                    // Only a peer that does not follow the protocol gets here.
                    state.refuse(wrong);
                    drop(state);
                    self.consumer.wake();
                    return Poll::Ready(0);
                }
                if number > state.next {
                    // An earlier delivery is still to come: wait for it.
                    state.early = Some(number);
                    parked = true;
                    items = Some(batch);
                    state.waiting.push(cx.waker().clone());
                    return Poll::Pending;
                }
                state.items.extend(batch);
                state.next += 1;
                if parked {
                    state.early = None;
                }
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

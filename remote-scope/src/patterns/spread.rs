//! The items of a collection spread over a set of peers, each to the one with the least of
//! this spread's work in flight.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::Error;
use crate::patterns::gather::{gather, FailFast, Gather};
use crate::patterns::health::Health;
use crate::peer_id::PeerId;

/// Runs `make(peer, item)` for every item, on the peer among `peers` with the fewest of this
/// spread's calls in flight (relative to its [weight](Spread::weighted); ties go round in
/// turn), at most [`in_flight`](Spread::in_flight) at a time, and gives the results in the
/// order of the items. A peer that answers sooner gets more items.
///
/// For a [`Pool`](crate::Pool), [`gather`] calls to the pool itself: the node picks the least
/// busy member of each call and sends a call a member could not take to another. `spread`
/// is for a set of peers of your choosing.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::{patterns, remote, Node};
///
/// let node = Node::builder().build()?;
/// let peers = vec![node.id().clone()];
/// let chunks: Vec<Vec<u64>> = vec![vec![1, 2], vec![3, 4, 5]];
/// let sums = node
///     .run(patterns::spread(peers, chunks, |peer, chunk| {
///         remote!(peer, [chunk: Vec<u64>], { chunk.iter().sum::<u64>() })
///     }).fail_fast())
///     .await?;
/// assert_eq!(sums, [3, 12]);
/// # Ok(()) }
/// ```
pub fn spread<P, I, F, Fut, T>(peers: P, items: I, make: F) -> Spread<Assign<I::IntoIter, F>>
where
    P: IntoIterator<Item = PeerId>,
    I: IntoIterator,
    F: FnMut(&PeerId, I::Item) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let peers: Vec<PeerId> = peers.into_iter().collect();
    let counts: Vec<AtomicUsize> = peers.iter().map(|_| AtomicUsize::new(0)).collect();
    Spread {
        gather: gather(Assign {
            items: items.into_iter(),
            make,
            weights: vec![1.0; peers.len()],
            peers,
            counts: counts.into(),
            turn: 0,
        }),
    }
}

/// The calls of [`spread`] in flight; await it for each item's result, in order.
#[must_use = "the calls are sent when the spread is awaited"]
pub struct Spread<C>
where
    C: Iterator,
    C::Item: Future,
{
    gather: Gather<C>,
}

impl<I, F, Fut, T> Spread<Assign<I, F>>
where
    I: Iterator,
    F: FnMut(&PeerId, I::Item) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    /// At most `calls` in flight at once, over all the peers (1 024 unless set).
    pub fn in_flight(mut self, calls: usize) -> Self {
        self.gather = self.gather.in_flight(calls);
        self
    }

    /// Weighs each peer by its [`Health::weight`], so a peer busier when it was measured gets
    /// proportionally less of the work; a peer without a health here keeps weight 1.
    pub fn weighted(mut self, health: &[Health]) -> Self {
        if let Some(assign) = self.gather.calls.as_mut() {
            for (peer, weight) in assign.peers.iter().zip(assign.weights.iter_mut()) {
                if let Some(h) = health.iter().find(|h| &h.peer == peer) {
                    *weight = h.weight().max(f64::MIN_POSITIVE);
                }
            }
        }
        self
    }

    /// Ends at the first failure and cancels the calls still in flight: every value in the
    /// order of the items, or the first failure.
    pub fn fail_fast(self) -> FailFast<Assign<I, F>> {
        self.gather.fail_fast()
    }
}

impl<C, T> Future for Spread<C>
where
    C: Iterator,
    C::Item: Future<Output = Result<T, Error>>,
{
    type Output = Vec<Result<T, Error>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.gather).poll(cx)
    }
}

impl<C> std::fmt::Debug for Spread<C>
where
    C: Iterator,
    C::Item: Future,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spread")
            .field("gather", &self.gather)
            .finish()
    }
}

/// Gives each item to a peer as [`spread`] asks for the next call.
pub struct Assign<I, F> {
    items: I,
    make: F,
    peers: Vec<PeerId>,
    weights: Vec<f64>,
    /// This spread's calls in flight to each peer.
    counts: Arc<[AtomicUsize]>,
    /// Where the search for the least busy peer starts, so that ties go round.
    turn: usize,
}

impl<I, F, Fut, T> Iterator for Assign<I, F>
where
    I: Iterator,
    F: FnMut(&PeerId, I::Item) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    type Item = Counted<Fut>;

    fn next(&mut self) -> Option<Counted<Fut>> {
        let item = self.items.next()?;
        let n = self.peers.len();
        if n == 0 {
            return Some(Counted {
                call: None,
                slot: None,
            });
        }
        let load = |i: usize| (self.counts[i].load(Ordering::Relaxed) + 1) as f64 / self.weights[i];
        let chosen = (0..n)
            .map(|k| (self.turn + k) % n)
            .min_by(|&a, &b| load(a).total_cmp(&load(b)))
            .unwrap_or(0);
        self.turn = (chosen + 1) % n;
        self.counts[chosen].fetch_add(1, Ordering::Relaxed);
        Some(Counted {
            call: Some((self.make)(&self.peers[chosen], item)),
            slot: Some(Slot {
                counts: self.counts.clone(),
                peer: chosen,
            }),
        })
    }
}

impl<I, F> std::fmt::Debug for Assign<I, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assign")
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// A peer's count of calls in flight, given back when its call ends or is dropped.
struct Slot {
    counts: Arc<[AtomicUsize]>,
    peer: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counts[self.peer].fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A call of a [`spread`], counted against its peer while it is in flight.
    pub struct Counted<F> {
        #[pin]
        call: Option<F>,
        // `None`: the spread has no peers, and the item fails.
        slot: Option<Slot>,
    }
}

impl<F, T> Future for Counted<F>
where
    F: Future<Output = Result<T, Error>>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().call.as_pin_mut() {
            Some(call) => call.poll(cx),
            None => Poll::Ready(Err(Error::NoPeers {
                pattern: "spread".to_owned(),
            })),
        }
    }
}

//! Many calls at once, with a bound on how many are in flight, gathered in order.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::error::Error;
use crate::peer_id::PeerId;

/// Calls in flight at once unless [`Gather::in_flight`] says otherwise: far below a node's
/// 4 096 bodies per connection, and enough to keep a handful of peers busy.
const IN_FLIGHT: usize = 1024;

/// Runs `calls`, at most [`in_flight`](Gather::in_flight) at a time, and gives every result
/// in the order of the calls. The calls are taken from the iterator only as slots free up, so
/// a lazy iterator (`items.into_iter().map(|item| remote!(..))`) encodes each item's captures
/// just before it is sent.
///
/// A call is usually a [`Call`](crate::Call); any future will do (a call with work around
/// it, in an `async` block).
///
/// Awaited as it is, a `Gather` waits for every call and reports each one's result in its
/// place; [`fail_fast`](Gather::fail_fast) ends at the first failure and cancels the calls
/// still running (their bodies stop on their peers). Dropping it cancels every call in
/// flight.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::{patterns, remote, Node, Pool};
///
/// let worker = Node::builder().pool("squares").build()?;
/// let listener = worker.listen("127.0.0.1:0").await?;
/// let node = Node::builder().build()?;
/// node.connect(&listener.url()).await?;
/// let pool = Pool::new("squares");
///
/// let squares: Vec<u64> = node
///     .run(async {
///         let calls = (1..=5_u64).map(|n| remote!(pool, [n: u64], { n * n }));
///         patterns::gather(calls).in_flight(2).fail_fast().await
///     })
///     .await?;
/// assert_eq!(squares, [1, 4, 9, 16, 25]);
/// # Ok(()) }
/// ```
pub fn gather<C>(calls: C) -> Gather<C::IntoIter>
where
    C: IntoIterator,
    C::Item: Future,
{
    Gather {
        calls: Some(calls.into_iter()),
        running: FuturesUnordered::new(),
        results: Vec::new(),
        in_flight: IN_FLIGHT,
        stop_at_error: false,
        stopped: None,
        done: false,
    }
}

/// The calls of [`gather`] in flight; await it for one result per call, in order.
#[must_use = "the calls are sent when the gather is awaited"]
pub struct Gather<C>
where
    C: Iterator,
    C::Item: Future,
{
    /// The calls not taken yet; `None` once the iterator is done.
    pub(super) calls: Option<C>,
    running: FuturesUnordered<Numbered<C::Item>>,
    results: Vec<Option<<C::Item as Future>::Output>>,
    in_flight: usize,
    /// Stop at the first `Err` (set by [`Gather::fail_fast`]).
    stop_at_error: bool,
    /// The result that stopped the gather.
    stopped: Option<<C::Item as Future>::Output>,
    /// It gave its output.
    done: bool,
}

impl<C> Gather<C>
where
    C: Iterator,
    C::Item: Future,
{
    /// At most `calls` in flight at once (1 024 unless set; 0 counts as 1).
    pub fn in_flight(mut self, calls: usize) -> Self {
        self.in_flight = calls.max(1);
        self
    }

    /// Ends at the first failure (the failure is the result) and cancels the calls still in
    /// flight; calls not sent yet are never sent. Otherwise every call runs and each result
    /// stands in its place.
    pub fn fail_fast<T, E>(mut self) -> FailFast<C>
    where
        C::Item: Future<Output = Result<T, E>>,
    {
        self.stop_at_error = true;
        FailFast(self)
    }

    /// Sends calls until `in_flight` are out, and takes the results of those that ended.
    /// `Ready` once every call ended (or one failed, when stopping at errors).
    fn poll_calls(
        &mut self,
        cx: &mut Context<'_>,
        failed: fn(&<C::Item as Future>::Output) -> bool,
    ) -> Poll<()> {
        loop {
            while self.running.len() < self.in_flight {
                let Some(call) = self.calls.as_mut().and_then(Iterator::next) else {
                    self.calls = None;
                    break;
                };
                let index = self.results.len();
                self.results.push(None);
                self.running.push(Numbered { index, call });
            }
            match self.running.poll_next_unpin(cx) {
                Poll::Ready(Some((index, result))) => {
                    if self.stop_at_error && failed(&result) {
                        self.stopped = Some(result);
                        // Dropping the calls still in flight cancels them on their peers.
                        self.running = FuturesUnordered::new();
                        self.calls = None;
                        return Poll::Ready(());
                    }
                    self.results[index] = Some(result);
                }
                Poll::Ready(None) if self.calls.is_none() => return Poll::Ready(()),
                // Nothing in flight and the iterator not known to be done: take more.
                Poll::Ready(None) => {}
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The results, in the order of the calls (each one is there once the gather is done).
    fn take_results(&mut self) -> impl Iterator<Item = <C::Item as Future>::Output> {
        std::mem::take(&mut self.results).into_iter().flatten()
    }
}

/// Nothing in a gather is pinned in place: the calls in flight are pinned where
/// `FuturesUnordered` keeps them, and the iterator is only ever used by `&mut`.
impl<C> Unpin for Gather<C>
where
    C: Iterator,
    C::Item: Future,
{
}

impl<C> Future for Gather<C>
where
    C: Iterator,
    C::Item: Future,
{
    type Output = Vec<<C::Item as Future>::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.poll_calls(cx, |_| false) {
            Poll::Ready(()) => Poll::Ready(this.take_results().collect()),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<C> std::fmt::Debug for Gather<C>
where
    C: Iterator,
    C::Item: Future,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gather")
            .field("sent", &self.results.len())
            .field("in_flight", &self.running.len())
            .finish_non_exhaustive()
    }
}

/// A [`Gather`] that ends at its first failure: every value in order, or that failure.
#[must_use = "the calls are sent when the gather is awaited"]
pub struct FailFast<C>(Gather<C>)
where
    C: Iterator,
    C::Item: Future;

impl<C, T, E> Future for FailFast<C>
where
    C: Iterator,
    C::Item: Future<Output = Result<T, E>>,
{
    type Output = Result<Vec<T>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let gather = &mut self.0;
        // As std's futures do: polling after completion is a bug in the caller.
        assert!(!gather.done, "a gather was polled after it completed");
        match gather.poll_calls(cx, Result::is_err) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                gather.done = true;
                match gather.stopped.take() {
                    Some(Err(e)) => Poll::Ready(Err(e)),
                    _ => Poll::Ready(gather.take_results().collect()),
                }
            }
        }
    }
}

impl<C> std::fmt::Debug for FailFast<C>
where
    C: Iterator,
    C::Item: Future,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FailFast").field(&self.0).finish()
    }
}

/// Runs one body on each of `peers`, at most [`in_flight`](FanOut::in_flight) at a time:
/// `make` gives the call for a peer (`|peer| remote!(peer, [..], { .. })`). The result is
/// each peer with its own result, in the order of `peers`, so a failure is reported for the
/// peer it happened on.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::{patterns, remote, Node};
///
/// let node = Node::builder().id("here").build()?;
/// let peers = vec![node.id().clone()];
/// let answers = node
///     .run(patterns::fan_out(peers, |peer| {
///         remote!(peer, [], { remote_scope::current_peer().map(|p| p.to_string()) })
///     }))
///     .await;
/// let (peer, answer) = &answers[0];
/// assert_eq!(peer.as_str(), "here");
/// assert_eq!(answer.as_ref().ok().cloned().flatten().as_deref(), Some("here"));
/// # Ok(()) }
/// ```
pub fn fan_out<P, F, Fut, T>(peers: P, mut make: F) -> FanOut<impl Iterator<Item = Fut>>
where
    P: IntoIterator<Item = PeerId>,
    F: FnMut(&PeerId) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let peers: Vec<PeerId> = peers.into_iter().collect();
    let calls = peers.clone().into_iter().map(move |peer| make(&peer));
    FanOut {
        peers,
        gather: gather(calls),
    }
}

/// The calls of [`fan_out`] in flight; await it for each peer's result, in order.
#[must_use = "the calls are sent when the fan-out is awaited"]
pub struct FanOut<C>
where
    C: Iterator,
    C::Item: Future,
{
    peers: Vec<PeerId>,
    gather: Gather<C>,
}

impl<C> FanOut<C>
where
    C: Iterator,
    C::Item: Future,
{
    /// At most `calls` in flight at once (1 024 unless set).
    pub fn in_flight(mut self, calls: usize) -> Self {
        self.gather = self.gather.in_flight(calls);
        self
    }

    /// Ends at the first failure and cancels the calls still in flight: every peer's value in
    /// the order of the peers, or the first failure (a failure of a call names its peer:
    /// [`Error::peer`]).
    pub fn fail_fast<T>(self) -> FailFast<C>
    where
        C::Item: Future<Output = Result<T, Error>>,
    {
        self.gather.fail_fast()
    }
}

impl<C> Future for FanOut<C>
where
    C: Iterator,
    C::Item: Future,
{
    type Output = Vec<(PeerId, <C::Item as Future>::Output)>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.gather.poll_calls(cx, |_| false) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                let results = this.gather.take_results();
                let peers = std::mem::take(&mut this.peers);
                Poll::Ready(peers.into_iter().zip(results).collect())
            }
        }
    }
}

impl<C> std::fmt::Debug for FanOut<C>
where
    C: Iterator,
    C::Item: Future,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanOut")
            .field("peers", &self.peers)
            .field("gather", &self.gather)
            .finish()
    }
}

pin_project_lite::pin_project! {
    /// A call with its place among the gathered results.
    struct Numbered<F> {
        index: usize,
        #[pin]
        call: F,
    }
}

impl<F: Future> Future for Numbered<F> {
    type Output = (usize, F::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let index = *this.index;
        this.call.poll(cx).map(|result| (index, result))
    }
}

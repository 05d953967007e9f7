//! Redundant execution: the same body on several peers, the first success wins.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use crate::context;
use crate::error::Error;
use crate::peer_id::PeerId;
use crate::runtime::BoxFuture;

/// Runs one body on each of `peers` (`make` gives the call for a peer) and gives the first
/// value a peer returns, with that peer. The calls still running are cancelled then: their
/// bodies stop on their peers. If every peer fails, the error is [`Error::AllFailed`] with
/// each failure; with no peers, [`Error::NoPeers`].
///
/// By default every call starts at once. [`hedge`](FirstSuccess::hedge) starts them one at a
/// time instead, the next one when the last has not answered within a delay or has failed:
/// the tail latency of redundancy at a fraction of its cost.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use std::time::Duration;
/// use remote_scope::{patterns, remote, Node};
///
/// let fast = Node::builder().id("fast").build()?;
/// let listener = fast.listen("127.0.0.1:0").await?;
/// let node = Node::builder().id("here").build()?;
/// let fast_id = node.connect(&listener.url()).await?;
/// let peers = vec![node.id().clone(), fast_id];
///
/// let (winner, answer) = node
///     .run(patterns::first_success(peers, |peer| {
///         remote!(peer, [], {
///             // This node is slow to answer; `fast` is not.
///             if remote_scope::current_peer().is_some_and(|me| me.as_str() == "here") {
///                 tokio::time::sleep(Duration::from_secs(10)).await;
///             }
///             42_u64
///         })
///     }))
///     .await?;
/// assert_eq!((winner.as_str(), answer), ("fast", 42));
/// # Ok(()) }
/// ```
pub fn first_success<P, F, Fut, T>(peers: P, make: F) -> FirstSuccess<F, Fut>
where
    P: IntoIterator<Item = PeerId>,
    F: FnMut(&PeerId) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut peers: Vec<PeerId> = peers.into_iter().collect();
    peers.reverse();
    FirstSuccess {
        waiting: peers,
        make,
        running: FuturesUnordered::new(),
        errors: Vec::new(),
        hedge: None,
        timer: None,
        done: false,
    }
}

/// The calls of [`first_success`] in flight; await it for the first value and its peer.
#[must_use = "the calls are sent when it is awaited"]
pub struct FirstSuccess<F, Fut> {
    /// The peers not called yet, last first.
    waiting: Vec<PeerId>,
    make: F,
    running: FuturesUnordered<Labelled<Fut>>,
    errors: Vec<Error>,
    hedge: Option<Duration>,
    /// When hedging: ends when the next peer is due.
    timer: Option<BoxFuture<'static, ()>>,
    done: bool,
}

impl<F, Fut, T> FirstSuccess<F, Fut>
where
    F: FnMut(&PeerId) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    /// Starts one call at a time, in the order of the peers: the next when the calls out
    /// have not answered within `delay`, or at once when one fails. The delay runs on the
    /// current node's clock, so a hedge needs one (inside [`Node::run`](crate::Node::run) or a
    /// body).
    pub fn hedge(mut self, delay: Duration) -> Self {
        self.hedge = Some(delay);
        self
    }

    fn start_next(&mut self) -> Result<(), Error> {
        if let Some(peer) = self.waiting.pop() {
            let call = (self.make)(&peer);
            self.running.push(Labelled { peer, call });
            if let Some(delay) = self.hedge {
                let node = context::calling_node()?;
                self.timer = Some(node.runtime().sleep(delay));
            }
        }
        Ok(())
    }
}

/// Nothing of it is pinned in place: its calls are pinned where `FuturesUnordered` keeps them.
impl<F, Fut> Unpin for FirstSuccess<F, Fut> {}

impl<F, Fut, T> Future for FirstSuccess<F, Fut>
where
    F: FnMut(&PeerId) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    type Output = Result<(PeerId, T), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // As std's futures do: polling after completion is a bug in the caller.
        assert!(!this.done, "a first_success was polled after it completed");
        let result = this.poll_first(cx);
        this.done = result.is_ready();
        result
    }
}

impl<F, Fut, T> FirstSuccess<F, Fut>
where
    F: FnMut(&PeerId) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    fn poll_first(&mut self, cx: &mut Context<'_>) -> Poll<Result<(PeerId, T), Error>> {
        let this = self;
        if this.running.is_empty() && this.errors.is_empty() {
            if this.waiting.is_empty() {
                return Poll::Ready(Err(Error::NoPeers {
                    pattern: "first_success".to_owned(),
                }));
            }
            // Started: all at once, or the first of a hedge.
            let first = if this.hedge.is_some() {
                1
            } else {
                this.waiting.len()
            };
            for _ in 0..first {
                if let Err(e) = this.start_next() {
                    return Poll::Ready(Err(e));
                }
            }
        }
        loop {
            match this.running.poll_next_unpin(cx) {
                Poll::Ready(Some((peer, Ok(value)))) => {
                    // The others are dropped with `self`, which cancels them.
                    this.running = FuturesUnordered::new();
                    return Poll::Ready(Ok((peer, value)));
                }
                Poll::Ready(Some((_, Err(e)))) => {
                    tracing::debug!(error = %e, "a redundant call failed");
                    this.errors.push(e);
                    if let Err(e) = this.start_next() {
                        return Poll::Ready(Err(e));
                    }
                }
                Poll::Ready(None) => {
                    if this.waiting.is_empty() {
                        let errors = std::mem::take(&mut this.errors);
                        return Poll::Ready(Err(Error::AllFailed { errors }));
                    }
                    if let Err(e) = this.start_next() {
                        return Poll::Ready(Err(e));
                    }
                }
                Poll::Pending => break,
            }
        }
        // A hedge's next peer is due.
        while let Some(timer) = this.timer.as_mut() {
            if timer.as_mut().poll(cx).is_pending() {
                break;
            }
            this.timer = None;
            if this.waiting.is_empty() {
                break;
            }
            if let Err(e) = this.start_next() {
                return Poll::Ready(Err(e));
            }
            // The new call has not been polled yet.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl<F, Fut> std::fmt::Debug for FirstSuccess<F, Fut> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstSuccess")
            .field("not_started", &self.waiting)
            .field("running", &self.running.len())
            .field("failed", &self.errors.len())
            .finish_non_exhaustive()
    }
}

pin_project_lite::pin_project! {
    /// A call with the peer it went to.
    pub(super) struct Labelled<F> {
        pub(super) peer: PeerId,
        #[pin]
        pub(super) call: F,
    }
}

impl<F: Future> Future for Labelled<F> {
    type Output = (PeerId, F::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.call.poll(cx) {
            Poll::Ready(result) => Poll::Ready((this.peer.clone(), result)),
            Poll::Pending => Poll::Pending,
        }
    }
}

//! Retries elsewhere: a call that failed without running goes to the next peer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::call::Call;
use crate::context;
use crate::error::Error;
use crate::node::Node;
use crate::peer_id::PeerId;
use crate::runtime::BoxFuture;

/// Calls `make(peer)` on the first of `peers`, and on a failure that says the body did not run
/// there (the peer is not connected, busy, shutting down, lacks the body, ...) on the next,
/// going round the peers for up to [`attempts`](Retry::attempts) attempts, waiting a
/// [`Backoff`] between them, all within a total [`deadline`](Retry::deadline).
///
/// A failure after which the body may have run ([`Error::body_may_have_run`]: the peer was
/// lost mid-call, or did not answer in time) ends the retries with that failure, unless the
/// call is [`idempotent`](Retry::idempotent). A body's own error or panic is never retried.
/// When no attempt is left, the error is [`Error::AllFailed`] with every failure; with no
/// peers, [`Error::NoPeers`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use std::time::Duration;
/// use remote_scope::{patterns, remote, Node, PeerId};
///
/// let node = Node::builder().build()?;
/// // The first peer is not there; the call goes to the second.
/// let peers = vec![PeerId::new("gone"), node.id().clone()];
/// let n = node
///     .run(
///         patterns::retry(peers, |peer| remote!(peer, [], { 7_u64 }))
///             .deadline(Duration::from_secs(5)),
///     )
///     .await?;
/// assert_eq!(n, 7);
/// # Ok(()) }
/// ```
pub fn retry<P, F, T>(peers: P, make: F) -> Retry<F, T>
where
    P: IntoIterator<Item = PeerId>,
    F: FnMut(&PeerId) -> Call<T>,
{
    let peers: Vec<PeerId> = peers.into_iter().collect();
    Retry {
        attempts: peers.len(),
        peers,
        make,
        backoff: Backoff::default(),
        deadline: None,
        idempotent: false,
        errors: Vec::new(),
        step: Step::Idle,
        clock: None,
    }
}

/// The waits between attempts of a [`retry`]: the first, doubled after each attempt up to a
/// most, each drawn at random from its upper half so that callers retrying at once spread
/// out. The default waits up to 10 ms, then 20, 40, ... up to 1 s.
///
/// ```
/// use std::time::Duration;
/// use remote_scope::patterns::Backoff;
///
/// let backoff = Backoff::exponential(Duration::from_millis(50), Duration::from_secs(2));
/// assert!(backoff.wait(1) <= Duration::from_millis(50));
/// assert!(backoff.wait(3) >= Duration::from_millis(100));
/// assert_eq!(Backoff::none().wait(5), Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    most: Duration,
}

impl Backoff {
    /// Waits up to `first` after the first failed attempt (at least half of it), doubling up to
    /// `most`.
    pub fn exponential(first: Duration, most: Duration) -> Backoff {
        Backoff { first, most }
    }

    /// No wait between attempts.
    pub fn none() -> Backoff {
        Backoff {
            first: Duration::ZERO,
            most: Duration::ZERO,
        }
    }

    /// The wait after `failed` attempts (1 for the first failure).
    pub fn wait(&self, failed: usize) -> Duration {
        let doublings = u32::try_from(failed.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(32);
        let full = self
            .first
            .saturating_mul(1_u32 << doublings.min(31))
            .min(self.most);
        // Anywhere in the upper half of the full wait.
        let half = full / 2;
        let spread = (full - half).as_nanos();
        let jitter = u128::from(crate::random::random_u64()) % (spread + 1);
        // Below 2^64: it is less than a u64.
        half.saturating_add(Duration::from_nanos(
            u64::try_from(jitter).unwrap_or(u64::MAX),
        ))
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// A [`retry`] under way; await it for the value of the attempt that succeeded.
#[must_use = "nothing is sent until it is awaited"]
pub struct Retry<F, T> {
    peers: Vec<PeerId>,
    make: F,
    attempts: usize,
    backoff: Backoff,
    deadline: Option<Duration>,
    idempotent: bool,
    errors: Vec<Error>,
    step: Step<T>,
    /// The node whose clock the deadline runs on, and when the first attempt began.
    clock: Option<(Node, Duration)>,
}

enum Step<T> {
    /// Between attempts: the next one starts at the next poll.
    Idle,
    Calling(Call<T>),
    Waiting(BoxFuture<'static, ()>),
    /// It gave its output.
    Done,
}

impl<F, T> Retry<F, T>
where
    F: FnMut(&PeerId) -> Call<T>,
{
    /// At most `attempts` calls in all, going round the peers (as many as there are peers
    /// unless set; 0 counts as 1).
    pub fn attempts(mut self, attempts: usize) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The waits between attempts ([`Backoff::default`] unless set).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Gives up `total` after the first attempt began: each attempt's own timeout is cut to
    /// the time left, and no attempt starts after it.
    pub fn deadline(mut self, total: Duration) -> Self {
        self.deadline = Some(total);
        self
    }

    /// Running the body twice is harmless: a call lost mid-run or unanswered in time is
    /// retried too.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    fn worth_retrying(&self, error: &Error) -> bool {
        let elsewhere = !error.body_may_have_run()
            && (error.peer().is_some() || matches!(error, Error::NoMembers { .. }));
        let lost = matches!(error, Error::Disconnected { .. } | Error::Timeout { .. });
        elsewhere || (self.idempotent && lost)
    }

    /// Time left before the deadline, if there is one.
    fn time_left(&self) -> Option<Duration> {
        let (node, started) = self.clock.as_ref()?;
        let total = self.deadline?;
        Some(total.saturating_sub(node.runtime().now().saturating_sub(*started)))
    }

    fn give_up(&mut self) -> Error {
        Error::AllFailed {
            errors: std::mem::take(&mut self.errors),
        }
    }
}

/// Nothing of it is pinned in place: a `Call` is `Unpin`, and the wait is boxed.
impl<F, T> Unpin for Retry<F, T> {}

impl<F, T> Future for Retry<F, T>
where
    F: FnMut(&PeerId) -> Call<T>,
{
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.peers.is_empty() {
            return Poll::Ready(Err(Error::NoPeers {
                pattern: "retry".to_owned(),
            }));
        }
        loop {
            match &mut this.step {
                Step::Idle => {
                    let left = this.time_left();
                    if this.errors.len() >= this.attempts || left == Some(Duration::ZERO) {
                        this.step = Step::Done;
                        return Poll::Ready(Err(this.give_up()));
                    }
                    let peer = &this.peers[this.errors.len() % this.peers.len()];
                    let mut call = (this.make)(peer);
                    if this.clock.is_none() {
                        // The deadline runs on the clock of the node that calls.
                        let node = match call.node().cloned() {
                            Some(node) => node,
                            None => match context::calling_node() {
                                Ok(node) => node,
                                Err(e) => {
                                    this.step = Step::Done;
                                    return Poll::Ready(Err(e));
                                }
                            },
                        };
                        let now = node.runtime().now();
                        this.clock = Some((node, now));
                    }
                    if let (Some(left), Some((node, _))) = (this.time_left(), &this.clock) {
                        call = call.timeout_at_most(left, node.config().default_timeout);
                    }
                    this.step = Step::Calling(call);
                }
                Step::Calling(call) => match Pin::new(call).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(value)) => {
                        this.step = Step::Done;
                        return Poll::Ready(Ok(value));
                    }
                    Poll::Ready(Err(e)) => {
                        this.step = Step::Idle;
                        if !this.worth_retrying(&e) {
                            this.step = Step::Done;
                            return Poll::Ready(Err(e));
                        }
                        tracing::debug!(error = %e, "retrying on the next peer");
                        this.errors.push(e);
                        if this.errors.len() >= this.attempts {
                            this.step = Step::Done;
                            return Poll::Ready(Err(this.give_up()));
                        }
                        let mut wait = this.backoff.wait(this.errors.len());
                        if let Some(left) = this.time_left() {
                            wait = wait.min(left);
                        }
                        if let (false, Some((node, _))) = (wait.is_zero(), &this.clock) {
                            this.step = Step::Waiting(node.runtime().sleep(wait));
                        }
                    }
                },
                Step::Waiting(wait) => match wait.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => this.step = Step::Idle,
                },
                // As std's futures do: polling after completion is a bug in the caller.
                Step::Done => panic!("a retry was polled after it completed"),
            }
        }
    }
}

impl<F, T> std::fmt::Debug for Retry<F, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retry")
            .field("peers", &self.peers)
            .field("attempts", &self.attempts)
            .field("failed", &self.errors.len())
            .field("backoff", &self.backoff)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

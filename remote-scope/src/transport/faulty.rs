//! An in-memory link that misbehaves on purpose, for tests: it drops, delays, reorders and
//! duplicates messages, and can be cut, all decided by a seeded generator so that a failing run
//! can be repeated.
//!
//! Faults are applied where messages are received, each direction with its own generator
//! stream drawn from the seed. The draws for a message depend only on the seed and the
//! message's position in its direction, so the same seed and the same messages sent give the
//! same drops, duplicates and delays whatever the timing. Order is the one thing timing can
//! change: a held-back message (see [`Faults::reorder`]) goes out as soon as the receiver finds
//! nothing else waiting, so that a request and its reply never wait on each other forever. When
//! the sender keeps ahead of the receiver (every message sent before the first read, say), the
//! delivered sequence is exactly the same from run to run.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), remote_scope::Error> {
//! use remote_scope::runtime;
//! use futures::{SinkExt, StreamExt};
//! use remote_scope::transport::{faulty::{self, Faults}, Bytes};
//!
//! let (mut a, mut b, _control) = faulty::pair(Faults::new(3).reorder(1.0), runtime::current()?);
//! a.send(Bytes::from_static(b"first")).await?;
//! a.send(Bytes::from_static(b"second")).await?;
//! assert_eq!(b.next().await.transpose()?.as_deref(), Some(&b"second"[..]));
//! assert_eq!(b.next().await.transpose()?.as_deref(), Some(&b"first"[..]));
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::task::AtomicWaker;
use futures::{Sink, Stream};

use crate::error::Error;
use crate::runtime::{BoxFuture, Runtime};
use crate::sync::lock;

/// What to inject, per message and independently in each direction. Probabilities are clamped
/// to [0, 1]; NaN counts as 0.
///
/// ```
/// use std::time::Duration;
/// use remote_scope::transport::faulty::Faults;
///
/// // After the first two messages each way (a handshake), lose one message in a hundred,
/// // repeat one in fifty, hold one in twenty for 3 ms, and cut the link after a thousand.
/// let faults = Faults::new(7)
///     .after(2)
///     .drop(0.01)
///     .duplicate(0.02)
///     .delay(0.05, Duration::from_millis(3))
///     .cut_after(1000);
/// # let _ = faults;
/// ```
#[derive(Clone, Debug)]
pub struct Faults {
    seed: u64,
    after: u64,
    drop: f64,
    duplicate: f64,
    reorder: f64,
    delay: f64,
    delay_by: Duration,
    cut_after: Option<u64>,
}

impl Faults {
    /// No faults yet; `seed` decides which messages the ones added later hit.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use futures::{SinkExt, StreamExt};
    /// use remote_scope::runtime;
    /// use remote_scope::transport::{faulty::{self, Faults}, Bytes};
    ///
    /// // Behaves like `memory::pair` until faults are added.
    /// let (mut a, mut b, _control) = faulty::pair(Faults::new(42), runtime::current()?);
    /// a.send(Bytes::from_static(b"hi")).await?;
    /// assert_eq!(b.next().await.transpose()?.as_deref(), Some(&b"hi"[..]));
    /// # Ok(()) }
    /// ```
    pub fn new(seed: u64) -> Self {
        Faults {
            seed,
            after: 0,
            drop: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            delay: 0.0,
            delay_by: Duration::ZERO,
            cut_after: None,
        }
    }

    /// Spares the first `messages` of each direction (a handshake, say) from every fault but
    /// the cut.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use futures::{SinkExt, StreamExt};
    /// use remote_scope::runtime;
    /// use remote_scope::transport::{faulty::{self, Faults}, Bytes};
    ///
    /// let faults = Faults::new(1).drop(1.0).after(1);
    /// let (mut a, mut b, _control) = faulty::pair(faults, runtime::current()?);
    /// a.send(Bytes::from_static(b"hello")).await?;
    /// a.send(Bytes::from_static(b"lost")).await?;
    /// a.close().await?;
    /// assert_eq!(b.next().await.transpose()?.as_deref(), Some(&b"hello"[..]));
    /// assert!(b.next().await.is_none());
    /// # Ok(()) }
    /// ```
    pub fn after(mut self, messages: u64) -> Self {
        self.after = messages;
        self
    }

    /// A message vanishes with probability `p`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use futures::{SinkExt, StreamExt};
    /// use remote_scope::runtime;
    /// use remote_scope::transport::{faulty::{self, Faults}, Bytes};
    ///
    /// let (mut a, mut b, control) = faulty::pair(Faults::new(1).drop(1.0), runtime::current()?);
    /// a.send(Bytes::from_static(b"lost")).await?;
    /// a.close().await?;
    /// assert!(b.next().await.is_none());
    /// assert_eq!(control.stats().dropped, 1);
    /// # Ok(()) }
    /// ```
    pub fn drop(mut self, p: f64) -> Self {
        self.drop = p.clamp(0.0, 1.0);
        self
    }

    /// A message is delivered twice in a row with probability `p`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use futures::{SinkExt, StreamExt};
    /// use remote_scope::runtime;
    /// use remote_scope::transport::{faulty::{self, Faults}, Bytes};
    ///
    /// let faults = Faults::new(1).duplicate(1.0);
    /// let (mut a, mut b, _control) = faulty::pair(faults, runtime::current()?);
    /// a.send(Bytes::from_static(b"twice")).await?;
    /// assert_eq!(b.next().await.transpose()?.as_deref(), Some(&b"twice"[..]));
    /// assert_eq!(b.next().await.transpose()?.as_deref(), Some(&b"twice"[..]));
    /// # Ok(()) }
    /// ```
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p.clamp(0.0, 1.0);
        self
    }

    /// A message is held back with probability `p` and delivered right after the next one.
    ///
    /// One message is held at a time, so with `p = 1` pairs swap: `0 1 2 3 4` arrives as
    /// `1 0 3 2 4`. A held message is not delivered late forever: if the receiver finds
    /// nothing else waiting, or the stream ends, it is delivered then (a reordering link
    /// still delivers); only a cut loses it. A held message is not also duplicated or
    /// delayed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use futures::{SinkExt, StreamExt};
    /// use remote_scope::runtime;
    /// use remote_scope::transport::{faulty::{self, Faults}, Bytes};
    ///
    /// let (mut a, mut b, _control) = faulty::pair(Faults::new(1).reorder(1.0), runtime::current()?);
    /// a.send(Bytes::from_static(b"alone")).await?;
    /// // Nothing to pass it: it comes out anyway.
    /// assert_eq!(b.next().await.transpose()?.as_deref(), Some(&b"alone"[..]));
    /// # Ok(()) }
    /// ```
    pub fn reorder(mut self, p: f64) -> Self {
        self.reorder = p.clamp(0.0, 1.0);
        self
    }

    /// A message waits `by` before it is delivered with probability `p`; the messages behind it
    /// wait with it, so order is kept.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use std::time::Duration;
    /// use futures::{SinkExt, StreamExt};
    /// use remote_scope::runtime;
    /// use remote_scope::transport::{faulty::{self, Faults}, Bytes};
    ///
    /// let faults = Faults::new(1).delay(1.0, Duration::from_millis(5));
    /// let (mut a, mut b, _control) = faulty::pair(faults, runtime::current()?);
    /// let start = std::time::Instant::now();
    /// a.send(Bytes::from_static(b"late")).await?;
    /// assert_eq!(b.next().await.transpose()?.as_deref(), Some(&b"late"[..]));
    /// assert!(start.elapsed() >= Duration::from_millis(5));
    /// # Ok(()) }
    /// ```
    pub fn delay(mut self, p: f64, by: Duration) -> Self {
        self.delay = p.clamp(0.0, 1.0);
        self.delay_by = by;
        self
    }

    /// Cuts the link once this many messages, both directions together, have been delivered,
    /// as [`Control::cut`] would; `0` cuts it before anything is.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use futures::{SinkExt, StreamExt};
    /// use remote_scope::runtime;
    /// use remote_scope::transport::{faulty::{self, Faults}, Bytes};
    ///
    /// let faults = Faults::new(1).cut_after(1);
    /// let (mut a, mut b, control) = faulty::pair(faults, runtime::current()?);
    /// a.send(Bytes::from_static(b"one")).await?;
    /// a.send(Bytes::from_static(b"two")).await?;
    /// assert_eq!(b.next().await.transpose()?.as_deref(), Some(&b"one"[..]));
    /// assert!(b.next().await.is_none());
    /// assert!(control.is_cut());
    /// # Ok(()) }
    /// ```
    pub fn cut_after(mut self, messages: u64) -> Self {
        self.cut_after = Some(messages);
        self
    }
}

/// What a link did so far, from [`Control::stats`]. Counts both directions together.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use futures::{SinkExt, StreamExt};
/// use remote_scope::runtime;
/// use remote_scope::transport::{faulty::{self, FaultStats, Faults}, Bytes};
///
/// let (mut a, mut b, control) = faulty::pair(Faults::new(1).duplicate(1.0), runtime::current()?);
/// assert_eq!(control.stats(), FaultStats::default());
/// a.send(Bytes::from_static(b"x")).await?;
/// b.next().await;
/// b.next().await;
/// let stats = control.stats();
/// assert_eq!((stats.delivered, stats.duplicated, stats.dropped), (2, 1, 0));
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Messages handed to a receiver (a duplicated one counts twice).
    pub delivered: u64,
    /// Messages that vanished.
    pub dropped: u64,
    /// Messages delivered a second time.
    pub duplicated: u64,
    /// Messages delivered after one sent behind them (held back and then passed; one released
    /// because nothing came to pass it is not counted).
    pub reordered: u64,
    /// Messages held back for the delay.
    pub delayed: u64,
}

/// State both ends and the [`Control`] share.
struct Shared {
    faults: Faults,
    cut: AtomicBool,
    stats: Mutex<FaultStats>,
    /// The readers of the two ends, woken by a cut.
    readers: [AtomicWaker; 2],
}

impl Shared {
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.wake_readers();
    }

    fn wake_readers(&self) {
        for reader in &self.readers {
            reader.wake();
        }
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }
}

/// Cuts a [`pair`]'s link and tells what it did. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::runtime;
/// use remote_scope::transport::faulty::{self, Faults};
///
/// let (_a, _b, control) = faulty::pair(Faults::new(1), runtime::current()?);
/// let for_later = control.clone();
/// control.cut();
/// assert!(for_later.is_cut());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("cut", &self.is_cut())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Control {
    /// Cuts the link now: neither end receives anything more (its stream ends, messages still
    /// on the way are lost) and sending on either fails with [`Error::Transport`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use futures::{SinkExt, StreamExt};
    /// use remote_scope::runtime;
    /// use remote_scope::transport::{faulty::{self, Faults}, Bytes};
    /// use remote_scope::Error;
    ///
    /// let (mut a, mut b, control) = faulty::pair(Faults::new(1), runtime::current()?);
    /// a.send(Bytes::from_static(b"never read")).await?;
    /// control.cut();
    /// assert!(b.next().await.is_none());
    /// assert!(matches!(b.send(Bytes::new()).await, Err(Error::Transport { .. })));
    /// # Ok(()) }
    /// ```
    pub fn cut(&self) {
        self.shared.cut();
    }

    /// Whether the link is cut, by [`Control::cut`] or [`Faults::cut_after`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use remote_scope::runtime;
    /// use remote_scope::transport::faulty::{self, Faults};
    ///
    /// let (_a, _b, control) = faulty::pair(Faults::new(1), runtime::current()?);
    /// assert!(!control.is_cut());
    /// control.cut();
    /// assert!(control.is_cut());
    /// # Ok(()) }
    /// ```
    pub fn is_cut(&self) -> bool {
        self.shared.is_cut()
    }

    /// What the link did so far.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use futures::{SinkExt, StreamExt};
    /// use remote_scope::runtime;
    /// use remote_scope::transport::{faulty::{self, Faults}, Bytes};
    ///
    /// let (mut a, mut b, control) = faulty::pair(Faults::new(1), runtime::current()?);
    /// a.send(Bytes::from_static(b"x")).await?;
    /// b.next().await;
    /// assert_eq!(control.stats().delivered, 1);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> FaultStats {
        *lock(&self.shared.stats)
    }
}

/// One end of a faulty link; a [`Transport`](super::Transport), made by [`pair`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::runtime;
/// use remote_scope::transport::{faulty::{self, Faults}, Transport};
///
/// fn takes(_: impl Transport) {}
/// let (a, b, _control) = faulty::pair(Faults::new(1), runtime::current()?);
/// takes(a);
/// takes(b);
/// # Ok(()) }
/// ```
pub struct FaultyTransport {
    tx: mpsc::UnboundedSender<Bytes>,
    rx: mpsc::UnboundedReceiver<Bytes>,
    shared: Arc<Shared>,
    runtime: Arc<dyn Runtime>,
    /// Which end this is: 0 or 1.
    end: usize,
    /// The generator deciding the faults of the messages this end receives.
    rng: u64,
    /// Messages received from the channel so far.
    seen: u64,
    /// Decided and waiting to be delivered, in order.
    ready: VecDeque<Bytes>,
    /// Held back to be delivered after the next message.
    held: Option<Bytes>,
    /// The delay the front of `ready` waits for.
    delay: Option<BoxFuture<'static, ()>>,
}

impl std::fmt::Debug for FaultyTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyTransport")
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

/// Two connected ends that misbehave as `faults` says, and the link's [`Control`]. What one end
/// sends, the other receives; closing or dropping one end ends the other's stream (after what
/// was sent before). `runtime` provides the timers of delays.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use futures::{SinkExt, StreamExt};
/// use remote_scope::runtime;
/// use remote_scope::transport::{faulty, Bytes};
///
/// let faults = faulty::Faults::new(1).duplicate(1.0);
/// let (mut a, mut b, control) = faulty::pair(faults, runtime::current()?);
/// a.send(Bytes::from_static(b"hi")).await?;
/// assert_eq!(b.next().await.transpose()?, Some(Bytes::from_static(b"hi")));
/// assert_eq!(b.next().await.transpose()?, Some(Bytes::from_static(b"hi")));
/// control.cut();
/// assert!(b.next().await.is_none());
/// assert!(a.send(Bytes::from_static(b"lost")).await.is_err());
/// assert_eq!(control.stats().duplicated, 1);
/// # Ok(()) }
/// ```
pub fn pair(
    faults: Faults,
    runtime: Arc<dyn Runtime>,
) -> (FaultyTransport, FaultyTransport, Control) {
    // Each direction's generator starts from an output of a generator on the seed, not from
    // the seed plus a constant: splitmix64 steps its state by a fixed amount, so two states
    // a multiple of it apart would give one stream, shifted.
    let mut seeder = faults.seed;
    let rngs = [next(&mut seeder), next(&mut seeder)];
    let shared = Arc::new(Shared {
        cut: AtomicBool::new(faults.cut_after == Some(0)),
        faults,
        stats: Mutex::new(FaultStats::default()),
        readers: [AtomicWaker::new(), AtomicWaker::new()],
    });
    let (a_tx, b_rx) = mpsc::unbounded();
    let (b_tx, a_rx) = mpsc::unbounded();
    let end = |end: usize, tx, rx| FaultyTransport {
        tx,
        rx,
        shared: Arc::clone(&shared),
        runtime: Arc::clone(&runtime),
        end,
        rng: rngs[end],
        seen: 0,
        ready: VecDeque::new(),
        held: None,
        delay: None,
    };
    let control = Control {
        shared: Arc::clone(&shared),
    };
    (end(0, a_tx, a_rx), end(1, b_tx, b_rx), control)
}

/// splitmix64: small, fast, and good enough to pick faults.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl FaultyTransport {
    /// A draw in [0, 1).
    fn chance(&mut self) -> f64 {
        (next(&mut self.rng) >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// Decides what happens to a message just received from the channel.
    fn decide(&mut self, message: Bytes) {
        self.seen += 1;
        let faults = self.shared.faults.clone();
        if self.seen <= faults.after {
            self.ready.push_back(message);
            return;
        }
        // Every draw is made for every message, so that one fault's setting does not shift
        // which messages the others hit.
        let (drop, duplicate, reorder, delay) =
            (self.chance(), self.chance(), self.chance(), self.chance());
        let mut stats = lock(&self.shared.stats);
        if drop < faults.drop {
            stats.dropped += 1;
            return;
        }
        if reorder < faults.reorder && self.held.is_none() {
            self.held = Some(message);
            return;
        }
        if delay < faults.delay && !faults.delay_by.is_zero() {
            stats.delayed += 1;
            self.delay = Some(self.runtime.sleep(faults.delay_by));
        }
        if duplicate < faults.duplicate {
            stats.duplicated += 1;
            self.ready.push_back(message.clone());
        }
        self.ready.push_back(message);
        if let Some(held) = self.held.take() {
            stats.reordered += 1;
            self.ready.push_back(held);
        }
    }

    /// Takes one delivery from what `cut_after` allows, cutting the link at the last one;
    /// false if the link is already cut.
    fn may_deliver(&self) -> bool {
        let last = {
            // Checked and counted under one lock: the two ends deliver from their own tasks,
            // and neither may slip a message past the limit between the other's count and cut.
            let mut stats = lock(&self.shared.stats);
            if self.shared.is_cut() {
                return false;
            }
            stats.delivered += 1;
            let last = self
                .shared
                .faults
                .cut_after
                .is_some_and(|n| stats.delivered >= n);
            if last {
                self.shared.cut.store(true, Ordering::SeqCst);
            }
            last
        };
        if last {
            // Outside the lock; the cut itself was stored under it.
            self.shared.wake_readers();
        }
        true
    }

    fn cut_error() -> Error {
        Error::transport("the link was cut")
    }
}

impl Stream for FaultyTransport {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        this.shared.readers[this.end].register(cx.waker());
        loop {
            if this.shared.is_cut() {
                return Poll::Ready(None);
            }
            if let Some(delay) = &mut this.delay {
                match delay.as_mut().poll(cx) {
                    Poll::Ready(()) => this.delay = None,
                    Poll::Pending => return Poll::Pending,
                }
            }
            if let Some(message) = this.ready.pop_front() {
                if !this.may_deliver() {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Ok(message)));
            }
            match Pin::new(&mut this.rx).poll_next(cx) {
                Poll::Ready(Some(message)) => this.decide(message),
                // Nothing to pass the held message now: holding it longer could leave a
                // request waiting for the reply it is itself holding up.
                Poll::Pending => match this.held.take() {
                    Some(held) => this.ready.push_back(held),
                    None => return Poll::Pending,
                },
                Poll::Ready(None) => match this.held.take() {
                    Some(held) => this.ready.push_back(held),
                    None => return Poll::Ready(None),
                },
            }
        }
    }
}

impl Sink<Bytes> for FaultyTransport {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.shared.is_cut() {
            return Poll::Ready(Err(Self::cut_error()));
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Bytes) -> Result<(), Error> {
        if self.shared.is_cut() {
            return Err(Self::cut_error());
        }
        self.tx
            .unbounded_send(item)
            .map_err(|_| Error::transport("the other end of the faulty link is gone"))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.tx.close_channel();
        Poll::Ready(Ok(()))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use futures::{SinkExt, StreamExt};

    use super::*;

    fn tokio() -> Arc<dyn Runtime> {
        crate::runtime::current().expect("inside a tokio runtime")
    }

    fn is_transport(_: impl crate::transport::Transport) {}

    fn message(i: u16) -> Bytes {
        Bytes::copy_from_slice(&i.to_be_bytes())
    }

    /// Sends `0..n` (each as two bytes) from one end, closes it, and returns what the other
    /// end received, in order.
    async fn run(faults: Faults, n: u16) -> (Vec<u16>, FaultStats) {
        let (mut a, mut b, control) = pair(faults, tokio());
        for i in 0..n {
            a.send(message(i)).await.expect("send");
        }
        a.close().await.expect("close");
        let mut got = Vec::new();
        while let Some(received) = b.next().await {
            let received = received.expect("receive");
            got.push(u16::from_be_bytes([received[0], received[1]]));
        }
        (got, control.stats())
    }

    #[tokio::test]
    async fn both_ends_are_transports() {
        let (a, b, _control) = pair(Faults::new(1), tokio());
        is_transport(a);
        is_transport(b);
    }

    #[tokio::test]
    async fn without_faults_every_message_arrives_whole_and_in_order() {
        let (got, stats) = run(Faults::new(1), 1000).await;
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(
            stats,
            FaultStats {
                delivered: 1000,
                ..FaultStats::default()
            }
        );
    }

    #[tokio::test]
    async fn the_same_seed_gives_the_same_deliveries() {
        let faults = |seed| Faults::new(seed).drop(0.1).duplicate(0.1).reorder(0.1);
        let (first, stats) = run(faults(42), 1000).await;
        let (again, stats_again) = run(faults(42), 1000).await;
        let (other, _) = run(faults(43), 1000).await;
        assert_eq!(first, again);
        assert_eq!(stats, stats_again);
        assert_ne!(first, other);
        assert_eq!(stats.delivered, first.len() as u64);
        assert!(
            stats.dropped > 50 && stats.duplicated > 50 && stats.reordered > 50,
            "{stats:?}"
        );
        assert_eq!(
            first.len() as u64,
            1000 - stats.dropped + stats.duplicated,
            "{stats:?}"
        );
        let out_of_order = first.windows(2).filter(|w| w[0] > w[1]).count() as u64;
        assert_eq!(
            out_of_order, stats.reordered,
            "each pass shows as one step back"
        );
    }

    #[tokio::test]
    async fn the_two_directions_draw_differently() {
        let (mut a, mut b, _control) = pair(Faults::new(0).drop(0.5), tokio());
        for i in 0..64 {
            a.send(message(i)).await.expect("send");
            b.send(message(i)).await.expect("send");
        }
        a.close().await.expect("close");
        b.close().await.expect("close");
        let (at_a, at_b): (Vec<_>, Vec<_>) = futures::join!(a.collect(), b.collect());
        let ok = |v: Vec<Result<Bytes, Error>>| v.into_iter().map(|m| m.expect("receive"));
        assert_ne!(ok(at_a).collect::<Vec<_>>(), ok(at_b).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn each_fault_on_its_own_does_what_it_says() {
        let (got, stats) = run(Faults::new(1).drop(1.0), 10).await;
        assert_eq!((got, stats.dropped, stats.delivered), (vec![], 10, 0));

        let (got, stats) = run(Faults::new(1).duplicate(1.0), 3).await;
        assert_eq!(got, [0, 0, 1, 1, 2, 2]);
        assert_eq!((stats.duplicated, stats.delivered), (3, 6));

        // One message is held at a time and goes out right after the next one: pairs swap,
        // and the last one, with nothing behind it, comes out as the stream ends.
        let (got, stats) = run(Faults::new(1).reorder(1.0), 5).await;
        assert_eq!(got, [1, 0, 3, 2, 4]);
        assert_eq!((stats.reordered, stats.delivered), (2, 5));

        let (got, _) = run(Faults::new(1).drop(1.0).after(2), 5).await;
        assert_eq!(got, [0, 1]);
    }

    #[tokio::test]
    async fn a_held_message_goes_out_when_nothing_else_is_waiting() {
        let (mut a, mut b, control) = pair(Faults::new(1).reorder(1.0), tokio());
        a.send(message(7)).await.expect("send");
        assert_eq!(b.next().await.transpose().expect("ok"), Some(message(7)));
        assert_eq!(control.stats().reordered, 0);
    }

    #[tokio::test]
    async fn a_delayed_message_holds_those_behind_it() {
        let faults = Faults::new(1).delay(1.0, Duration::from_millis(30));
        let (mut a, mut b, control) = pair(faults, tokio());
        let start = std::time::Instant::now();
        a.send(message(1)).await.expect("send");
        a.send(message(2)).await.expect("send");
        assert_eq!(b.next().await.transpose().expect("ok"), Some(message(1)));
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(b.next().await.transpose().expect("ok"), Some(message(2)));
        assert!(start.elapsed() >= Duration::from_millis(60));
        assert_eq!(control.stats().delayed, 2);
    }

    fn is_cut_error(result: Result<(), Error>) -> bool {
        matches!(result, Err(Error::Transport { reason, .. }) if reason == "the link was cut")
    }

    #[tokio::test]
    async fn a_cut_ends_both_streams_and_fails_sends() {
        let (mut a, mut b, control) = pair(Faults::new(1), tokio());
        a.send(message(1)).await.expect("send");
        b.send(message(2)).await.expect("send");
        let reader = tokio::spawn(async move {
            // Reads what was sent before the cut, then waits for more.
            let first = b.next().await.transpose().expect("ok");
            (first, b.next().await.is_none(), b)
        });
        tokio::task::yield_now().await;
        control.cut();
        let (first, ended, mut b) = reader.await.expect("reader");
        assert_eq!(first, Some(message(1)));
        assert!(ended, "a waiting reader sees the end");
        assert!(control.is_cut());
        assert!(a.next().await.is_none(), "undelivered messages are lost");
        assert!(is_cut_error(a.send(message(3)).await));
        assert!(is_cut_error(b.send(message(4)).await));
        assert_eq!(control.stats().delivered, 1);
    }

    #[tokio::test]
    async fn dropping_one_end_ends_the_other_s_stream() {
        let (mut a, b, _control) = pair(Faults::new(1), tokio());
        drop(b);
        assert!(a.next().await.is_none());
        assert!(matches!(
            a.send(message(1)).await,
            Err(Error::Transport { .. })
        ));
    }

    #[tokio::test]
    async fn cut_after_delivers_exactly_that_many() {
        let (got, stats) = run(Faults::new(1).cut_after(5), 20).await;
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert_eq!(stats.delivered, 5);

        // Nothing may be delivered, so the link is cut from the start.
        let (mut a, mut b, control) = pair(Faults::new(1).cut_after(0), tokio());
        assert!(control.is_cut());
        assert!(is_cut_error(a.send(message(1)).await));
        assert!(b.next().await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cut_after_counts_both_directions_together() {
        for seed in 0..20 {
            let (mut a, mut b, control) = pair(Faults::new(seed).cut_after(5), tokio());
            for i in 0..100 {
                a.send(message(i)).await.expect("send");
                b.send(message(i)).await.expect("send");
            }
            let count = |end: FaultyTransport| tokio::spawn(end.count());
            let (at_a, at_b) = (count(a), count(b));
            let total = at_a.await.expect("reader") + at_b.await.expect("reader");
            assert_eq!(total, 5);
            assert_eq!(control.stats().delivered, 5);
        }
    }
}

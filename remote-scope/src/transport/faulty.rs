//! An in-memory link that misbehaves on purpose, for tests: it drops, delays, reorders and
//! duplicates messages, and can be cut, all decided by a seeded generator so that a failing run
//! can be repeated exactly.
//!
//! Each direction decides per message, from its own stream of the seed: the same seed and the
//! same messages sent give the same faults, whatever the timing (and, when the messages are
//! all waiting before the receiver reads, the same deliveries in the same order).

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

use crate::connection::lock;
use crate::runtime::{BoxFuture, Runtime};
use crate::Error;

/// What to inject, per message and independently in each direction. Probabilities are clamped
/// to [0, 1].
///
/// ```
/// use std::time::Duration;
/// use remote_scope::transport::faulty::Faults;
///
/// // After the first two messages each way (a handshake), lose one message in a hundred,
/// // repeat one in fifty, and cut the link after a thousand.
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
    pub fn after(mut self, messages: u64) -> Self {
        self.after = messages;
        self
    }

    /// A message vanishes with probability `p`.
    pub fn drop(mut self, p: f64) -> Self {
        self.drop = p.clamp(0.0, 1.0);
        self
    }

    /// A message is delivered twice in a row with probability `p`.
    pub fn duplicate(mut self, p: f64) -> Self {
        self.duplicate = p.clamp(0.0, 1.0);
        self
    }

    /// A message is held back and delivered right after the next one with probability `p`; if
    /// no next one is waiting when the receiver asks, it is delivered then (a reordering link
    /// still delivers).
    pub fn reorder(mut self, p: f64) -> Self {
        self.reorder = p.clamp(0.0, 1.0);
        self
    }

    /// A message waits `by` before it is delivered with probability `p`; the messages behind it
    /// wait with it, so order is kept.
    pub fn delay(mut self, p: f64, by: Duration) -> Self {
        self.delay = p.clamp(0.0, 1.0);
        self.delay_by = by;
        self
    }

    /// Cuts the link once this many messages, both directions together, have been delivered.
    pub fn cut_after(mut self, messages: u64) -> Self {
        self.cut_after = Some(messages);
        self
    }
}

/// What a link did so far, from [`Control::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Messages handed to a receiver (a duplicate counts twice).
    pub delivered: u64,
    /// Messages that vanished.
    pub dropped: u64,
    /// Messages delivered a second time.
    pub duplicated: u64,
    /// Messages delivered after the one sent behind them.
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
        for reader in &self.readers {
            reader.wake();
        }
    }
}

/// Cuts a [`pair`]'s link and tells what it did. Cheap to clone.
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
    /// Cuts the link now: neither end receives anything more (its stream ends) and sending
    /// on either fails with [`Error::Transport`].
    pub fn cut(&self) {
        self.shared.cut();
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// What the link did so far.
    pub fn stats(&self) -> FaultStats {
        *lock(&self.shared.stats)
    }
}

/// One end of a faulty link; a [`Transport`](super::Transport).
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

/// Two connected ends that misbehave as `faults` says, and the link's [`Control`].
/// `runtime` provides the timers of delays.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use futures::{SinkExt, StreamExt};
/// use remote_scope::runtime::{BoxFuture, Runtime};
/// use remote_scope::transport::{faulty, Bytes};
///
/// struct Tokio;
/// impl Runtime for Tokio {
///     fn spawn(&self, task: BoxFuture<'static, ()>) {
///         tokio::spawn(task);
///     }
///     fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
///         Box::pin(tokio::time::sleep(d))
///     }
/// }
///
/// let faults = faulty::Faults::new(1).duplicate(1.0);
/// let (mut a, mut b, control) = faulty::pair(faults, Arc::new(Tokio));
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
    let seed = faults.seed;
    let shared = Arc::new(Shared {
        faults,
        cut: AtomicBool::new(false),
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
        // Distinct streams per direction from one seed.
        rng: seed ^ (0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(end as u64 + 1)),
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
        // Every draw is made for every message, so one fault's setting does not shift which
        // messages the others hit.
        let (drop, duplicate, reorder, delay) =
            (self.chance(), self.chance(), self.chance(), self.chance());
        let mut stats = lock(&self.shared.stats);
        if drop < faults.drop {
            stats.dropped += 1;
            return;
        }
        if reorder < faults.reorder && self.held.is_none() {
            stats.reordered += 1;
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
            self.ready.push_back(held);
        }
    }

    /// Counts a delivery, and cuts the link when it reaches `cut_after`.
    fn delivered(&self) {
        let total = {
            let mut stats = lock(&self.shared.stats);
            stats.delivered += 1;
            stats.delivered
        };
        if self.shared.faults.cut_after.is_some_and(|n| total >= n) {
            self.shared.cut();
        }
    }

    fn cut_error() -> Error {
        Error::Transport {
            reason: "the link was cut".into(),
        }
    }
}

impl Stream for FaultyTransport {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        this.shared.readers[this.end].register(cx.waker());
        loop {
            if this.shared.cut.load(Ordering::SeqCst) {
                return Poll::Ready(None);
            }
            if let Some(delay) = &mut this.delay {
                match delay.as_mut().poll(cx) {
                    Poll::Ready(()) => this.delay = None,
                    Poll::Pending => return Poll::Pending,
                }
            }
            if let Some(message) = this.ready.pop_front() {
                this.delivered();
                return Poll::Ready(Some(Ok(message)));
            }
            match Pin::new(&mut this.rx).poll_next(cx) {
                Poll::Pending => match this.held.take() {
                    Some(held) => this.ready.push_back(held),
                    None => return Poll::Pending,
                },
                Poll::Ready(Some(message)) => this.decide(message),
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
        if self.shared.cut.load(Ordering::SeqCst) {
            return Poll::Ready(Err(Self::cut_error()));
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Bytes) -> Result<(), Error> {
        if self.shared.cut.load(Ordering::SeqCst) {
            return Err(Self::cut_error());
        }
        self.tx.unbounded_send(item).map_err(|_| Error::Transport {
            reason: "the other end of the faulty link is gone".into(),
        })
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

    struct Tokio;

    impl Runtime for Tokio {
        fn spawn(&self, task: BoxFuture<'static, ()>) {
            tokio::spawn(task);
        }
        fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
            Box::pin(tokio::time::sleep(duration))
        }
    }

    fn is_transport<T: crate::transport::Transport>(_: &T) {}

    /// Sends `0..n` (one byte each, as u16 big-endian) from one end, closes it, and returns
    /// what the other end received.
    async fn run(faults: Faults, n: u16) -> (Vec<u16>, FaultStats) {
        let (mut a, mut b, control) = pair(faults, Arc::new(Tokio));
        is_transport(&a);
        for i in 0..n {
            a.send(Bytes::copy_from_slice(&i.to_be_bytes()))
                .await
                .expect("send");
        }
        a.close().await.expect("close");
        let mut got = Vec::new();
        while let Some(message) = b.next().await {
            let message = message.expect("receive");
            got.push(u16::from_be_bytes([message[0], message[1]]));
        }
        (got, control.stats())
    }

    #[tokio::test]
    async fn without_faults_every_message_arrives_in_order() {
        let (got, stats) = run(Faults::new(1), 1000).await;
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(stats.delivered, 1000);
    }

    #[tokio::test]
    async fn the_same_seed_gives_the_same_deliveries() {
        let faults = |seed| Faults::new(seed).drop(0.1).duplicate(0.1).reorder(0.1);
        let (first, stats) = run(faults(42), 1000).await;
        let (again, _) = run(faults(42), 1000).await;
        let (other, _) = run(faults(43), 1000).await;
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert_eq!(stats.delivered, first.len() as u64);
        assert!(stats.dropped > 50 && stats.duplicated > 50 && stats.reordered > 50);
        assert_eq!(
            first.len() as u64,
            1000 - stats.dropped + stats.duplicated,
            "{stats:?}"
        );
    }

    #[tokio::test]
    async fn each_fault_on_its_own_does_what_it_says() {
        assert_eq!(run(Faults::new(1).drop(1.0), 10).await.0, Vec::<u16>::new());
        assert_eq!(
            run(Faults::new(1).duplicate(1.0), 3).await.0,
            [0, 0, 1, 1, 2, 2]
        );
        // Each message is held until the next one passes it: pairs swap, the last one comes
        // out as the stream ends.
        assert_eq!(run(Faults::new(1).reorder(1.0), 5).await.0, [1, 0, 3, 2, 4]);
        assert_eq!(run(Faults::new(1).drop(1.0).after(2), 5).await.0, [0, 1]);
    }

    #[tokio::test]
    async fn a_delayed_message_holds_those_behind_it() {
        let faults = Faults::new(1).delay(1.0, Duration::from_millis(30));
        let (mut a, mut b, control) = pair(faults, Arc::new(Tokio));
        let start = std::time::Instant::now();
        a.send(Bytes::from_static(b"1")).await.expect("send");
        a.send(Bytes::from_static(b"2")).await.expect("send");
        assert_eq!(
            b.next().await.transpose().expect("ok").as_deref(),
            Some(&b"1"[..])
        );
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(
            b.next().await.transpose().expect("ok").as_deref(),
            Some(&b"2"[..])
        );
        assert!(start.elapsed() >= Duration::from_millis(60));
        assert_eq!(control.stats().delayed, 2);
    }

    #[tokio::test]
    async fn a_cut_ends_both_streams_and_fails_sends() {
        let (mut a, mut b, control) = pair(Faults::new(1), Arc::new(Tokio));
        let reader = tokio::spawn(async move { b.next().await.is_none() });
        tokio::task::yield_now().await;
        control.cut();
        assert!(
            reader.await.expect("reader"),
            "a waiting reader sees the end"
        );
        assert!(control.is_cut());
        assert!(matches!(
            a.send(Bytes::from_static(b"x")).await,
            Err(Error::Transport { .. })
        ));
        assert!(a.next().await.is_none());

        let (got, stats) = run(Faults::new(1).cut_after(5), 20).await;
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert_eq!(stats.delivered, 5);
    }
}

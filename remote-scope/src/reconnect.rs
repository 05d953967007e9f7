//! Client peers that stay connected: the node dials until the peer is there, with exponential
//! backoff, and again whenever the connection is lost; calls made meanwhile wait for the
//! connection (up to their deadlines) instead of failing at once.

use std::future::Future;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{AbortHandle, Abortable};

use crate::error::Error;
use crate::node::{Kept, Node};
use crate::peer_id::PeerId;
use crate::runtime::MaybeSend;
use crate::sync::lock;
use crate::transport::Transport;

/// How a peer kept with [`Node::keep_connected`] is dialled again after a loss: after `initial`,
/// then twice as long each time up to `max`, each wait shortened by a random part of up to a
/// quarter so that many clients of one server do not all come back at once.
///
/// ```
/// use std::time::Duration;
/// use remote_scope::Reconnect;
///
/// let policy = Reconnect::default()
///     .initial(Duration::from_millis(50))
///     .max(Duration::from_secs(2));
/// assert!(policy.delay(0) <= Duration::from_millis(50));
/// assert!(policy.delay(30) >= Duration::from_millis(1500));
/// ```
#[derive(Clone, Debug)]
pub struct Reconnect {
    initial: Duration,
    max: Duration,
    peer: Option<PeerId>,
}

impl Default for Reconnect {
    /// 100 ms, doubling up to 10 s.
    fn default() -> Self {
        Reconnect {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            peer: None,
        }
    }
}

impl Reconnect {
    /// The wait before the first attempt.
    pub fn initial(mut self, delay: Duration) -> Self {
        self.initial = delay;
        self
    }

    /// The longest wait between attempts.
    pub fn max(mut self, delay: Duration) -> Self {
        self.max = delay;
        self
    }

    /// The id of the peer to keep, known in advance (a server's fixed id, say): then
    /// [`Node::keep_connected`] returns it at once and dials in the background, and calls to it
    /// made before the first connection wait for it, as they do after a loss. Without it, the
    /// id is learnt from the first connection, which `keep_connected` waits for.
    pub fn peer(mut self, peer: impl Into<PeerId>) -> Self {
        self.peer = Some(peer.into());
        self
    }

    /// The wait before attempt `attempt` (counting from 0).
    pub fn delay(&self, attempt: u32) -> Duration {
        let full = self
            .initial
            .saturating_mul(1_u32 << attempt.min(20))
            .min(self.max);
        // Up to a quarter less, at random.
        let jitter = full.mul_f64((crate::random::random_u64() % 1024) as f64 / 4096.0);
        full.saturating_sub(jitter)
    }
}

impl Node {
    /// Connects over the transports `dial` makes, and keeps the connection: the node dials until
    /// the peer is there (a client may start before its server), and when the connection is
    /// lost (the peer went away, the link broke, keep-alive found it silent) it dials again and
    /// again, waiting as `policy` says between attempts, until it is back. A call to the peer
    /// made while it is away waits for the connection until its deadline and then fails with
    /// [`Error::NotConnected`]; calls in flight when the connection broke fail with
    /// [`Error::Disconnected`] and are not repeated, so no body runs twice.
    ///
    /// Returns the peer's id once the first connection is made, or at once when `policy` names
    /// the peer ([`Reconnect::peer`]). A refusal that dialling again cannot change (a bad URL, a
    /// wrong token, another protocol version, bodies one side requires) is returned instead of
    /// retried; with the peer named in advance it is logged and retried at the longest wait, as
    /// the other side may be redeployed. [`Node::disconnect`] and [`Node::shutdown`] end the
    /// dialling. [`Node::connect_with_reconnect`] does this for a WebSocket URL.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use std::time::Duration;
    /// use remote_scope::{remote, transport::memory, Node, Reconnect};
    ///
    /// let server = Node::builder().id("server").build()?;
    /// let client = Node::builder().id("client").build()?;
    /// let dial = {
    ///     let server = server.clone();
    ///     move || {
    ///         let (ours, theirs) = memory::pair();
    ///         let server = server.clone();
    ///         tokio::spawn(async move { server.accept_transport(theirs).await });
    ///         async move { Ok(ours) }
    ///     }
    /// };
    /// let policy = Reconnect::default().initial(Duration::from_millis(10));
    /// let id = client.keep_connected(policy, dial).await?;
    ///
    /// server.disconnect(client.id()); // the link breaks
    /// while client.is_connected(&id) {
    ///     client.sleep(Duration::from_millis(1)).await;
    /// }
    /// // A call made while the server is away waits for the redial.
    /// let n = client.run(remote!(id, [], { 6 * 7 })).await?;
    /// assert_eq!(n, 42);
    /// # Ok(()) }
    /// ```
    pub async fn keep_connected<D, F, T>(&self, policy: Reconnect, dial: D) -> Result<PeerId, Error>
    where
        D: Fn() -> F + MaybeSend + 'static,
        F: Future<Output = Result<T, Error>> + MaybeSend + 'static,
        T: Transport,
    {
        let peer = match policy.peer.clone() {
            Some(peer) => peer,
            None => first_connection(self, &policy, &dial).await?,
        };
        let (supervisor, registration) = AbortHandle::new_pair();
        let previous = lock(self.kept()).insert(
            peer.clone(),
            Kept {
                waiters: Vec::new(),
                supervisor,
            },
        );
        if let Some(previous) = previous {
            previous.supervisor.abort();
        }
        let task = supervise(self.internal(), peer.clone(), policy, dial);
        self.runtime().spawn(Box::pin(async move {
            let _ = Abortable::new(task, registration).await;
        }));
        Ok(peer)
    }

    /// Ends the redialling of `peer` (if the node keeps it): waiting calls fail with
    /// [`Error::NotConnected`].
    pub(crate) fn stop_keeping(&self, peer: &PeerId) {
        if let Some(kept) = lock(self.kept()).remove(peer) {
            kept.supervisor.abort();
        }
    }

    /// A future that completes when `peer` is connected again, or `None` if this node does
    /// not keep `peer` (so there is nothing to wait for). The future fails if the node stops
    /// keeping it.
    pub(crate) fn reconnected(
        &self,
        peer: &PeerId,
    ) -> Option<oneshot::Receiver<Result<PeerId, Error>>> {
        let mut kept = lock(self.kept());
        let entry = kept.get_mut(peer)?;
        let (tx, rx) = oneshot::channel();
        // Checked under the lock that `connected` takes too: either the connection is already
        // back, or `connected` will see this waiter.
        if self.is_connected(peer) {
            let _ = tx.send(Ok(peer.clone()));
        } else {
            entry.waiters.push(tx);
        }
        Some(rx)
    }

    /// Wakes the calls waiting for `peer`.
    pub(crate) fn connected(&self, peer: &PeerId) {
        let waiters = match lock(self.kept()).get_mut(peer) {
            Some(kept) => std::mem::take(&mut kept.waiters),
            None => return,
        };
        for waiter in waiters {
            let _ = waiter.send(Ok(peer.clone()));
        }
    }
}

/// Whether dialling again may end otherwise than `error` did: not after a refusal that only
/// a change of this node, its URL or the other peer's build can undo.
fn worth_redialling(error: &Error) -> bool {
    !matches!(
        error,
        Error::BadUrl { .. }
            | Error::NotAuthenticated { .. }
            | Error::ProtocolVersion { .. }
            | Error::MissingBodies { .. }
            | Error::RequiredBodies { .. }
            | Error::Setup { .. }
            | Error::DuplicateBody { .. }
    )
}

/// A dial and, if it reaches the peer, the handshake over it.
async fn dial_once<F, T>(node: &Node, dialled: F) -> Result<PeerId, Error>
where
    F: Future<Output = Result<T, Error>>,
    T: Transport,
{
    node.connect_transport(dialled.await?).await
}

/// Dials until a connection is made, as `policy` says; returns the peer's id, or a refusal
/// that dialling again cannot change.
async fn first_connection<D, F, T>(
    node: &Node,
    policy: &Reconnect,
    dial: &D,
) -> Result<PeerId, Error>
where
    D: Fn() -> F,
    F: Future<Output = Result<T, Error>>,
    T: Transport,
{
    let mut attempt = 0_u32;
    loop {
        let connected = dial_once(node, dial()).await;
        match connected {
            Ok(peer) => return Ok(peer),
            Err(e) if worth_redialling(&e) => {
                tracing::info!(attempt, error = %e, "the peer is not there yet; dialling again");
            }
            Err(e) => return Err(e),
        }
        node.runtime().sleep(policy.delay(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Dials until `peer` is connected (unless it is already), waits for the connection to end,
/// and again.
async fn supervise<D, F, T>(node: Node, peer: PeerId, policy: Reconnect, dial: D)
where
    D: Fn() -> F,
    F: Future<Output = Result<T, Error>>,
    T: Transport,
{
    // A peer named in advance is dialled at once; after a loss the first wait comes first.
    let mut at_once = !node.is_connected(&peer);
    loop {
        if let Ok(conn) = node.connection(&peer) {
            conn.closed().await;
            tracing::info!(%peer, "connection lost; reconnecting");
        }
        let mut attempt = 0_u32;
        loop {
            if !std::mem::take(&mut at_once) {
                node.runtime().sleep(policy.delay(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
            let connected = dial_once(&node, dial()).await;
            match connected {
                Ok(back) if back == peer => break,
                Ok(other) => {
                    tracing::warn!(expected = %peer, got = %other, "reconnected to another peer; dropping it");
                    node.disconnect(&other);
                }
                Err(Error::DuplicatePeer { .. }) if node.is_connected(&peer) => break,
                Err(e) if worth_redialling(&e) => {
                    tracing::debug!(%peer, attempt, error = %e, "reconnect failed")
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "refused; dialling again at the longest wait");
                    attempt = 32;
                }
            }
        }
        tracing::info!(%peer, attempts = attempt, "reconnected");
    }
}

impl Node {
    /// Connects to a server peer at `url` and keeps the connection: when it is lost, the node
    /// dials again as `policy` says, and calls made meanwhile wait for it (see
    /// [`Node::keep_connected`]). The same call natively and in a browser.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use remote_scope::{Node, Reconnect};
    ///
    /// let server = Node::builder().id("server").build()?;
    /// let listener = server.listen("127.0.0.1:0").await?;
    /// let client = Node::builder().build()?;
    /// let id = client.connect_with_reconnect(&listener.url(), Reconnect::default()).await?;
    /// assert_eq!(id, *server.id());
    /// # Ok(()) }
    /// ```
    pub async fn connect_with_reconnect(
        &self,
        url: &str,
        policy: Reconnect,
    ) -> Result<PeerId, Error> {
        self.keep_connected(policy, crate::transport::dialer(self, url))
            .await
    }
}

//! The node: this peer. It owns the connections, serves the registered bodies and is the
//! current node of the calls made from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::future::AbortHandle;

use crate::auth::{Authenticate, Authorize};
use crate::config::{Config, MessageHandler};
use crate::connection::Connection;
use crate::error::Error;
use crate::middleware::Middleware;
use crate::outbox::NodeQueue;
use crate::peer_id::PeerId;
use crate::pool::Pool;
use crate::registry::Registry;
use crate::runtime::{BoxFuture, Runtime};
use crate::sync::lock;

/// A snapshot of what a node holds, from [`Node::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Peers connected now.
    pub connections: usize,
    /// Calls this node made whose end their callers have not taken yet: waiting for their
    /// answer, or answered (or timed out) and not yet polled.
    pub calls_waiting: usize,
    /// Bodies this node runs for its peers.
    pub bodies_running: usize,
    /// Peers kept with [`Node::keep_connected`], connected or not.
    pub kept: usize,
    /// Bytes queued for all peers and not yet written, as
    /// [`NodeBuilder::max_queued_bytes_total`](crate::NodeBuilder::max_queued_bytes_total) counts them.
    pub bytes_queued: usize,
}

/// A peer this node keeps connected.
pub(crate) struct Kept {
    /// Calls waiting for the connection to come back.
    pub(crate) waiters: Vec<oneshot::Sender<Result<PeerId, Error>>>,
    /// The task that redials.
    pub(crate) supervisor: AbortHandle,
}

/// The peers a node keeps connected.
pub(crate) type KeptPeers = std::sync::Mutex<std::collections::HashMap<PeerId, Kept>>;

/// A change in the peers a node sees, from [`Node::events`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// The peer is there: connected, or seen on the NATS cluster. `pools` are the pools it
    /// said it is a member of.
    Up {
        /// The peer.
        peer: PeerId,
        /// Its pools.
        pools: Vec<Pool>,
    },
    /// The peer is gone: no connection to it is left and the cluster no longer sees it.
    Down {
        /// The peer.
        peer: PeerId,
    },
}

/// Why a node counts a peer as up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// A connection (over any transport) has finished its handshake.
    Connected = 1,
    /// Its heartbeats arrive on the NATS cluster.
    #[cfg_attr(
        not(all(feature = "nats", not(target_arch = "wasm32"))),
        allow(dead_code)
    )]
    OnCluster = 2,
}

/// The peers a node counts as up, why, and who listens.
#[derive(Default)]
pub(crate) struct Membership {
    pub(crate) up: HashMap<PeerId, (u8, Vec<Pool>)>,
    pub(crate) listeners: Vec<mpsc::UnboundedSender<PeerEvent>>,
}

pub(crate) type MembershipState = std::sync::Mutex<Membership>;

impl Membership {
    pub(crate) fn tell(&mut self, event: &PeerEvent) {
        self.listeners
            .retain(|listener| listener.unbounded_send(event.clone()).is_ok());
    }
}

/// Something that connects this node to a peer given only the peer's id.
pub(crate) trait Directory: Send + Sync + 'static {
    /// Dials `peer` and runs the handshake; the connection is in the node's table when it
    /// returns `Ok`.
    fn dial(&self, node: &Node, peer: &PeerId) -> BoxFuture<'static, Result<PeerId, Error>>;

    /// The members of `pool` the directory knows of.
    fn members(&self, pool: &Pool) -> Vec<PeerId>;

    /// Asks the directory for one member of `pool`, other than those in `tried` where it can
    /// tell; fails with [`Error::NoMembers`] when the pool has none.
    fn pick(
        &self,
        node: &Node,
        pool: &Pool,
        tried: &[PeerId],
    ) -> BoxFuture<'static, Result<PeerId, Error>>;
}

/// The node's directory, if it has joined one, and the calls waiting for a dial under way.
#[derive(Default)]
pub(crate) struct Dialing {
    pub(crate) directory: Option<Arc<dyn Directory>>,
    /// One dial per peer at a time; every call to it waits for that one.
    pub(crate) waiting: HashMap<PeerId, Vec<oneshot::Sender<Result<PeerId, Error>>>>,
}

/// The state a node keeps for dialling on demand.
pub(crate) type DialingState = std::sync::Mutex<Dialing>;

/// What a [`Node`] is made of, as its builder gathered it.
pub(crate) struct Setup {
    pub(crate) id: PeerId,
    pub(crate) registry: &'static Registry,
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) config: Config,
    pub(crate) middleware: Vec<Arc<dyn Middleware>>,
    pub(crate) on_message: Option<Arc<MessageHandler>>,
    pub(crate) authenticate: Option<Arc<Authenticate>>,
    pub(crate) authorize: Option<Arc<dyn Authorize>>,
}

/// This peer: serves the bodies compiled into the binary and calls those of its peers.
///
/// Cheap to clone; clones are the same node. Connections stay up until the peer goes away,
/// [`disconnect`](Node::disconnect) or [`shutdown`](Node::shutdown), or until the last handle
/// of the node is dropped: the node's own tasks hold none, so dropping every `Node` (and every
/// [`Server`](crate::Server), which holds one) shuts it down.
///
/// ```
/// use remote_scope::{remote, Node, PeerId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// let server = Node::builder().id("server").build()?;
/// let listener = server.listen("127.0.0.1:0").await?;
///
/// let client = Node::builder().id("client").build()?;
/// let server_id: PeerId = client.connect(&listener.url()).await?;
///
/// let total = client
///     .run(async {
///         let (a, b) = (1_u64, vec![2_u64, 3]);
///         remote!(server_id, [a: u64, b: Vec<u64>], { a + b.iter().sum::<u64>() }).await
///     })
///     .await?;
/// assert_eq!(total, 6);
/// # Ok(()) }
/// ```
pub struct Node {
    inner: Arc<Inner>,
    /// A handle the application holds: the node shuts down when the last one goes. The node's
    /// own tasks hold handles that do not count, or it could never go.
    counted: bool,
}

/// A clone counts as a handle if the original does.
impl Clone for Node {
    fn clone(&self) -> Node {
        if self.counted {
            self.handle()
        } else {
            self.internal()
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.counted
            && self
                .inner
                .handles
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
                == 1
        {
            tracing::debug!(node = %self.inner.id, "last handle dropped; shutting down");
            self.shutdown();
        }
    }
}

struct Inner {
    id: PeerId,
    registry: &'static Registry,
    runtime: Arc<dyn Runtime>,
    config: Config,
    middleware: Vec<Arc<dyn Middleware>>,
    on_message: Option<Arc<MessageHandler>>,
    authenticate: Option<Arc<Authenticate>>,
    authorize: Option<Arc<dyn Authorize>>,
    connections: Mutex<crate::peer_id::PeerMap<Arc<Connection>>>,
    /// What all its connections have queued, against `max_queued_bytes_total`.
    queued: Arc<NodeQueue>,
    kept: KeptPeers,
    dialing: DialingState,
    membership: MembershipState,
    /// Idempotency keys of the calls this node serves.
    once: Arc<crate::connection::Once>,
    shut_down: std::sync::atomic::AtomicBool,
    /// The application's handles (`counted` ones).
    handles: std::sync::atomic::AtomicUsize,
    /// Set by `shutdown_gracefully`: no new bodies for peers, no new connections.
    draining: std::sync::atomic::AtomicBool,
    stopped: Stopped,
}

/// Something that stops once, and the futures that wait for it.
#[derive(Debug, Default)]
pub(crate) struct Stopped(Mutex<(bool, Vec<oneshot::Sender<()>>)>);

impl Stopped {
    /// Stops it: every waiter, and every later one, is done.
    pub(crate) fn stop(&self) {
        let waiters = {
            let mut state = lock(&self.0);
            state.0 = true;
            std::mem::take(&mut state.1)
        };
        for waiter in waiters {
            let _ = waiter.send(());
        }
    }

    /// Completes once it is stopped.
    pub(crate) fn wait(&self) -> impl std::future::Future<Output = ()> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = lock(&self.0);
            if state.0 {
                let _ = tx.send(());
            } else {
                state.1.push(tx);
            }
        }
        async move {
            let _ = rx.await;
        }
    }
}

/// A node that may be gone: what the process's list of nodes holds.
#[derive(Clone)]
pub(crate) struct WeakNode(std::sync::Weak<Inner>);

impl WeakNode {
    /// The node, if it is still there and not shut down.
    pub(crate) fn live(&self) -> Option<Node> {
        let inner = self.0.upgrade()?;
        (!inner.shut_down.load(std::sync::atomic::Ordering::Acquire)).then_some(Node {
            inner,
            counted: false,
        })
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.inner.id)
            .field("peers", &self.peers())
            .finish_non_exhaustive()
    }
}

impl Node {
    // On wasm32 a node's bodies are not `Send` (the page has one thread); the `Arc` is still
    // what its clones share.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub(crate) fn new(setup: Setup) -> Node {
        let queued = NodeQueue::new(setup.config.max_queued_bytes_total);
        Node {
            inner: Arc::new(Inner {
                queued,
                id: setup.id,
                registry: setup.registry,
                runtime: setup.runtime,
                config: setup.config,
                middleware: setup.middleware,
                on_message: setup.on_message,
                authenticate: setup.authenticate,
                authorize: setup.authorize,
                connections: Mutex::default(),
                kept: Mutex::new(HashMap::new()),
                dialing: Mutex::default(),
                membership: Mutex::default(),
                once: Arc::default(),
                shut_down: std::sync::atomic::AtomicBool::new(false),
                handles: std::sync::atomic::AtomicUsize::new(1),
                draining: std::sync::atomic::AtomicBool::new(false),
                stopped: Stopped::default(),
            }),
            counted: true,
        }
    }

    /// A handle for the node's own tasks, which does not keep the node up.
    pub(crate) fn internal(&self) -> Node {
        Node {
            inner: Arc::clone(&self.inner),
            counted: false,
        }
    }

    /// A handle for the application, which keeps the node up.
    pub(crate) fn handle(&self) -> Node {
        self.inner
            .handles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Node {
            inner: Arc::clone(&self.inner),
            counted: true,
        }
    }

    pub(crate) fn downgrade(&self) -> WeakNode {
        WeakNode(Arc::downgrade(&self.inner))
    }

    /// What all its connections have queued, which each new connection's outbox counts into.
    pub(crate) fn queued(&self) -> &Arc<NodeQueue> {
        &self.inner.queued
    }

    /// Waits for `duration` on this node's runtime: a sleep that works in bodies compiled for
    /// both native peers and browsers.
    pub async fn sleep(&self, duration: Duration) {
        self.inner.runtime.sleep(duration).await
    }

    /// This peer's id.
    pub fn id(&self) -> &PeerId {
        &self.inner.id
    }

    /// The bodies this node serves.
    pub fn registry(&self) -> &'static Registry {
        self.inner.registry
    }

    /// The pools this node is a member of.
    pub fn pools(&self) -> &[Pool] {
        &self.config().pools
    }

    /// The peers connected now, and those on a NATS cluster this node has joined (which a
    /// call reaches by id); [`Node::events`] tells the changes.
    pub fn peers(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = lock(&self.inner.connections).keys().cloned().collect();
        peers.extend(self.up_peers());
        peers.sort();
        peers.dedup();
        peers
    }

    /// Whether `peer` is connected now.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.connection(peer).is_ok()
    }

    /// Closes the connection to `peer`: its calls in flight fail with [`Error::Disconnected`].
    /// A peer kept with [`Node::keep_connected`] is not dialled again. Returns whether there
    /// was a connection.
    pub fn disconnect(&self, peer: &PeerId) -> bool {
        self.stop_keeping(peer);
        let conn = {
            let mut connections = lock(&self.inner.connections);
            let conn = connections.remove(peer);
            if conn.is_some() {
                self.seen_down(peer, Seen::Connected);
            }
            conn
        };
        conn.map(|c| c.close()).is_some()
    }

    /// Closes every connection and stops redialling kept peers.
    pub fn shutdown(&self) {
        self.inner
            .shut_down
            .store(true, std::sync::atomic::Ordering::Release);
        let kept: Vec<PeerId> = lock(&self.inner.kept).keys().cloned().collect();
        for peer in kept {
            self.stop_keeping(&peer);
        }
        let all: Vec<_> = lock(&self.inner.connections).drain().collect();
        for (peer, conn) in all {
            conn.close();
            self.seen_down(&peer, Seen::Connected);
        }
        self.end_events();
        self.inner.stopped.stop();
    }

    /// Shuts down after the bodies running for peers have finished, or `grace` has passed,
    /// whichever comes first: from now the node starts no more bodies for peers (their calls
    /// fail with [`Error::ShuttingDown`], so callers can go elsewhere) and accepts no more
    /// connections; bodies still running after `grace` are stopped, their callers get
    /// [`Error::Disconnected`]. Calls this node makes go on until the shutdown.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use std::time::Duration;
    ///
    /// let node = remote_scope::Node::builder().id("server").build()?;
    /// let server = node.listen("127.0.0.1:0").await?;
    /// node.shutdown_gracefully(Duration::from_secs(10)).await;
    /// server.wait().await; // done at once: the node has stopped
    /// # Ok(()) }
    /// ```
    pub async fn shutdown_gracefully(&self, grace: Duration) {
        self.inner
            .draining
            .store(true, std::sync::atomic::Ordering::Release);
        let started = self.runtime().now();
        let step = Duration::from_millis(10);
        while self.stats().bodies_running > 0
            && self.runtime().now().saturating_sub(started) < grace
        {
            self.runtime().sleep(step).await;
        }
        self.shutdown();
    }

    /// Whether the node is shutting down and starts no more bodies for peers.
    pub(crate) fn is_draining(&self) -> bool {
        self.inner
            .draining
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Completes once the node has shut down ([`Node::shutdown`],
    /// [`Node::shutdown_gracefully`]).
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> {
        self.inner.stopped.wait()
    }

    /// What this node holds now: connections, calls waiting for answers, bodies running for
    /// peers. Useful for metrics, and to check that nothing is left behind.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// let node = remote_scope::Node::builder().build()?;
    /// let stats = node.stats();
    /// assert_eq!((stats.connections, stats.calls_waiting, stats.bodies_running), (0, 0, 0));
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> NodeStats {
        let connections: Vec<Arc<Connection>> =
            lock(&self.inner.connections).values().cloned().collect();
        let mut stats = NodeStats {
            connections: connections.len(),
            kept: lock(&self.inner.kept).len(),
            bytes_queued: self.inner.queued.unsent(),
            ..NodeStats::default()
        };
        for conn in connections {
            let (calls, bodies) = conn.load();
            stats.calls_waiting += calls;
            stats.bodies_running += bodies;
        }
        stats
    }

    /// What `peer`, connected, serves: this build's bodies it serves, as it said when it
    /// connected, and how many it serves in all (see [`Served`](crate::Served)).
    pub fn peer_bodies(&self, peer: &PeerId) -> Result<crate::contract::Served, Error> {
        let conn = self.connection(peer)?;
        Ok(conn
            .peer_bodies()
            .unwrap_or(&crate::contract::PeerBodies::Same)
            .served(self.registry()))
    }

    /// Sends a user message to `peer`, through the outbound middleware.
    pub fn send_message(&self, peer: &PeerId, bytes: impl Into<bytes::Bytes>) -> Result<(), Error> {
        self.connection(peer)?.link().send_message(bytes)
    }

    pub(crate) fn insert_connection(
        &self,
        conn: &Arc<Connection>,
    ) -> Result<(), (crate::protocol::Reject, Error)> {
        let mut connections = lock(&self.inner.connections);
        if connections.contains_key(conn.peer()) {
            return Err((
                crate::protocol::Reject::DuplicatePeer,
                Error::DuplicatePeer {
                    peer: conn.peer().clone(),
                },
            ));
        }
        let limit = self.inner.config.max_connections;
        if connections.len() >= limit {
            let limit = u32::try_from(limit).unwrap_or(u32::MAX);
            return Err((
                crate::protocol::Reject::TooManyConnections { limit },
                Error::TooManyConnections {
                    peer: Some(conn.peer().clone()),
                    limit,
                },
            ));
        }
        connections.insert(conn.peer().clone(), Arc::clone(conn));
        Ok(())
    }

    /// Tells that `conn`, its handshake done, is up: unless it has left the table meanwhile
    /// (a disconnect or a shutdown during the handshake), which would leave an `Up` with no
    /// `Down` to follow.
    pub(crate) fn announce_connected(&self, conn: &Arc<Connection>, pools: &[crate::pool::Pool]) {
        let connections = lock(&self.inner.connections);
        if connections
            .get(conn.peer())
            .is_some_and(|c| Arc::ptr_eq(c, conn))
        {
            self.seen_up(conn.peer(), Seen::Connected, pools);
        }
    }

    /// Drops `conn` from the table (if it is still the one there) and closes it.
    pub(crate) fn forget_connection(&self, conn: &Arc<Connection>) {
        {
            let mut connections = lock(&self.inner.connections);
            let ours = connections
                .get(conn.peer())
                .is_some_and(|c| Arc::ptr_eq(c, conn));
            // Told under the table's lock, so a replacement's `Up` cannot come in between.
            // Only a connection that finished its handshake was told as up.
            if ours && connections.remove(conn.peer()).is_some() && conn.peer_bodies().is_some() {
                self.seen_down(conn.peer(), Seen::Connected);
            }
        }
        conn.close();
    }

    /// The connection to `peer`, once its handshake has finished: calls go out on it only
    /// when this node knows what the peer serves.
    pub(crate) fn connection(&self, peer: &PeerId) -> Result<Arc<Connection>, Error> {
        lock(&self.inner.connections)
            .get(peer)
            .filter(|conn| conn.peer_bodies().is_some())
            .cloned()
            .ok_or_else(|| Error::NotConnected { peer: peer.clone() })
    }

    /// The connected peers that said they are members of `pool`.
    pub(crate) fn connected_members(&self, pool: &crate::pool::Pool) -> Vec<PeerId> {
        lock(&self.inner.connections)
            .values()
            .filter(|conn| conn.in_pool(pool) && conn.peer_bodies().is_some())
            .map(|conn| conn.peer().clone())
            .collect()
    }

    /// The connected member of `pool` that serves `body`, not one of `tried`, with the fewest
    /// of this node's calls in flight.
    pub(crate) fn least_busy_member(
        &self,
        pool: &crate::pool::Pool,
        body: &str,
        tried: &[PeerId],
    ) -> Option<Arc<Connection>> {
        lock(&self.inner.connections)
            .values()
            .filter(|conn| {
                conn.in_pool(pool)
                    && conn.peer_bodies().is_some_and(|b| b.serves(body))
                    && !conn.is_closing()
                    && !tried.contains(conn.peer())
            })
            .min_by_key(|conn| conn.load().0)
            .cloned()
    }

    pub(crate) fn kept(&self) -> &KeptPeers {
        &self.inner.kept
    }

    pub(crate) fn dialing(&self) -> &DialingState {
        &self.inner.dialing
    }

    pub(crate) fn membership(&self) -> &MembershipState {
        &self.inner.membership
    }

    pub(crate) fn once(&self) -> &Arc<crate::connection::Once> {
        &self.inner.once
    }

    /// Whether [`Node::shutdown`] has run.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.inner
            .shut_down
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn runtime(&self) -> &dyn Runtime {
        &*self.inner.runtime
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn middleware(&self) -> &[Arc<dyn Middleware>] {
        &self.inner.middleware
    }

    /// Whether `peer` may connect with `token`.
    pub(crate) fn authenticates(&self, peer: &PeerId, token: Option<&str>) -> bool {
        self.inner
            .authenticate
            .as_ref()
            .is_none_or(|check| check(peer, token))
    }

    /// Whether `peer` may run `body` here.
    pub(crate) fn authorizes(&self, peer: &PeerId, body: &str) -> bool {
        self.inner
            .authorize
            .as_ref()
            .is_none_or(|policy| policy.authorize(peer, body))
    }

    pub(crate) fn deliver_message(&self, peer: &PeerId, bytes: Vec<u8>) {
        match &self.inner.on_message {
            Some(handler) => handler(peer, bytes),
            None => {
                tracing::debug!(%peer, len = bytes.len(), "user message with no handler dropped")
            }
        }
    }
}

//! The node: this peer. It owns the connections, serves the registered bodies and is the
//! current node of the calls made from it.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};

use crate::auth::{same_token, Authenticate, Authorize};
use crate::connection::{lock, spawn_tasks, Connection};
use crate::context::Scoped;
use crate::handshake::{self, Role};
use crate::outbox::NodeQueue;
use crate::protocol::{Frame, DEFAULT_MAX_FRAME_SIZE};
use crate::reconnect::KeptPeers;
use crate::runtime::Runtime;
use crate::transport::Transport;
use crate::{Error, Middleware, PeerId, RateLimit, Registry};

/// What to do when a peer's registry digest differs from ours at connect time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryCheck {
    /// Refuse the connection with [`Error::RegistryMismatch`]: both peers must be built with the
    /// same bodies. The default, so a stale deployment fails at connect time, not mid-call.
    #[default]
    Strict,
    /// Connect anyway and log a warning; a call to a body the peer lacks fails with
    /// [`Error::UnknownBody`].
    Lenient,
}

/// A node's settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) default_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_frame_size: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_bodies_per_connection: usize,
    pub(crate) max_capture_size: usize,
    pub(crate) max_queued_bytes: usize,
    pub(crate) max_queued_bytes_total: usize,
    pub(crate) rate_limit: RateLimit,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) registry_check: RegistryCheck,
    pub(crate) token: Option<String>,
    /// Peers prove their ids ([`NodeBuilder::peer_tokens`]), so one that connects again under
    /// its id may take over a silent connection of that id.
    pub(crate) ids_proven: bool,
}

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
    /// [`NodeBuilder::max_queued_bytes_total`] counts them.
    pub bytes_queued: usize,
}

/// Called with each user message that no middleware consumed.
type MessageHandler = dyn Fn(&PeerId, Vec<u8>) + Send + Sync;

/// Configures and builds a [`Node`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use std::time::Duration;
/// use remote_scope::{Node, RegistryCheck};
///
/// let node = Node::builder()
///     .id("worker-1")
///     .default_timeout(Duration::from_secs(5))
///     .registry_check(RegistryCheck::Lenient)
///     .build()?;
/// assert_eq!(node.id().as_str(), "worker-1");
/// # Ok(()) }
/// ```
#[must_use]
pub struct NodeBuilder {
    id: Option<PeerId>,
    config: Config,
    middleware: Vec<Arc<dyn Middleware>>,
    on_message: Option<Arc<MessageHandler>>,
    runtime: Option<Arc<dyn Runtime>>,
    authenticate: Option<Arc<Authenticate>>,
    authorize: Option<Arc<dyn Authorize>>,
}

impl NodeBuilder {
    /// This peer's id (default: [`PeerId::random`]).
    pub fn id(mut self, id: impl Into<PeerId>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// How long a call waits for its result unless it says otherwise with
    /// [`Call::timeout`](crate::Call::timeout) (default: 30 s).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.config.default_timeout = timeout;
        self
    }

    /// How long a new connection may take to exchange `Hello`s (default: 10 s). Also how long
    /// a closing connection may go without sending a frame of what it still has queued: a peer
    /// that reads slowly gets what is left, one that does not read at all is then dropped, so it
    /// cannot hold the connection's writer and queue.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// The largest frame accepted from a peer, in bytes (default: 64 MiB). Larger frames are
    /// refused before they are decoded and close the connection.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config.max_frame_size = bytes;
        self
    }

    /// The most connections this node holds (default: 16 384). A peer beyond that is refused
    /// at connect time with [`Error::TooManyConnections`].
    pub fn max_connections(mut self, limit: usize) -> Self {
        self.config.max_connections = limit;
        self
    }

    /// The most bodies this node runs at once for one connected peer (default: 4 096). A call
    /// beyond that is answered at once with [`Error::Busy`] and its body does not run, so a peer
    /// cannot queue work without bound.
    pub fn max_bodies_per_connection(mut self, limit: usize) -> Self {
        self.config.max_bodies_per_connection = limit;
        self
    }

    /// The largest captures this node decodes for a call, in bytes (default: 16 MiB). A call
    /// with larger ones is answered with [`Error::CapturesTooLarge`] and its body does not run.
    pub fn max_capture_size(mut self, bytes: usize) -> Self {
        self.config.max_capture_size = bytes;
        self
    }

    /// The most bytes this node queues for one peer and has not yet written (default:
    /// 128 MiB). Beyond it, a call fails at once with [`Error::QueueFull`] instead of queueing,
    /// and a peer that leaves unread what it is owed (the results of its calls, the pongs to its
    /// pings, the cancels of calls it serves) is disconnected, so a peer that stops reading
    /// cannot make this node hold an unbounded backlog. Each frame counts what it occupies: its
    /// bytes and its slot in the queue. The memory behind them can be up to about twice that
    /// (the queue and a large frame's buffer grow by doubling, and small frames share buffers).
    pub fn max_queued_bytes(mut self, bytes: usize) -> Self {
        self.config.max_queued_bytes = bytes;
        self
    }

    /// The most bytes this node queues for all its peers together, counted as for
    /// [`max_queued_bytes`](NodeBuilder::max_queued_bytes) (default: 1 GiB), so that many
    /// slow peers cannot add up to more than one node can hold. Once it is reached, a peer
    /// that already has frames waiting gets no more: its calls fail with
    /// [`Error::QueueFull`], and it is disconnected if what does not fit is owed to it. A
    /// peer with nothing waiting may always be sent one frame.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// let node = remote_scope::Node::builder()
    ///     .max_queued_bytes(16 << 20)
    ///     .max_queued_bytes_total(256 << 20)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn max_queued_bytes_total(mut self, bytes: usize) -> Self {
        self.config.max_queued_bytes_total = bytes;
        self
    }

    /// How fast one peer may send frames (default: [`RateLimit::default`], far above what an
    /// honest peer sends). A peer over the rate is throttled: its connection stops reading
    /// until the peer is back within it, so the peer's own sends slow down (TCP's flow control
    /// pushes back), and the node spends no more than the rate's worth of work on it. It is not
    /// disconnected for it; keep-alive still hears it, as its frames are read later.
    ///
    /// Whatever the rate, a connection's reader yields to the node's other work after a bounded
    /// number of frames and bytes per turn, so one peer cannot hold a worker thread.
    ///
    /// ```
    /// use remote_scope::{Node, RateLimit};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// let node = Node::builder()
    ///     .rate_limit(RateLimit::default().frames_per_second(50_000))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.config.rate_limit = limit;
        self
    }

    /// How long a connection may be quiet before this node asks the peer whether it is still
    /// there (default: 15 s; `None` turns keep-alive off). A peer that stays silent for two
    /// intervals is taken for gone: the connection closes and its calls fail with
    /// [`Error::Disconnected`], so a peer that vanished without closing (a cut cable, a frozen
    /// host) is noticed.
    pub fn keepalive(mut self, interval: Option<Duration>) -> Self {
        self.config.keepalive = interval.filter(|i| !i.is_zero());
        self
    }

    /// The token this node presents in every handshake, for the other peer's
    /// [`authenticate`](NodeBuilder::authenticate).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.config.token = Some(token.into());
        self
    }

    /// Decides at connect time whether a peer may connect, given the id it claims and the
    /// token it presented ([`token`](NodeBuilder::token)). A refused peer gets
    /// [`Error::NotAuthenticated`] and no connection, so it can invoke nothing. Applies to
    /// connections in both directions.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use remote_scope::{Error, Node, PeerId};
    ///
    /// let server = Node::builder()
    ///     .authenticate(|peer: &PeerId, token: Option<&str>| {
    ///         token == Some(format!("token-of-{peer}").as_str())
    ///     })
    ///     .build()?;
    /// let listener = server.listen("127.0.0.1:0").await?;
    ///
    /// let intruder = Node::builder().id("alice").token("guess").build()?;
    /// let refused = intruder.connect(&listener.url()).await;
    /// assert!(matches!(refused, Err(Error::NotAuthenticated { .. })), "{refused:?}");
    ///
    /// let alice = Node::builder().id("alice").token("token-of-alice").build()?;
    /// assert_eq!(alice.connect(&listener.url()).await?, *server.id());
    /// # Ok(()) }
    /// ```
    pub fn authenticate(
        mut self,
        check: impl Fn(&PeerId, Option<&str>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.authenticate = Some(Arc::new(check));
        self.config.ids_proven = false;
        self
    }

    /// [`authenticate`](NodeBuilder::authenticate) with one shared token: a peer may connect
    /// if it presents `token`. Compared in constant time.
    ///
    /// Any holder of the token may claim any id, so an [`authorize`](NodeBuilder::authorize)
    /// policy that tells peers apart by id trusts them all alike; give each peer a token of its
    /// own with [`peer_tokens`](NodeBuilder::peer_tokens) when it must not.
    pub fn require_token(self, token: impl Into<String>) -> Self {
        let expected: String = token.into();
        self.authenticate(move |_, given| given.is_some_and(|g| same_token(g, &expected)))
    }

    /// [`authenticate`](NodeBuilder::authenticate) with a token per peer: a peer may connect
    /// only under an id listed here and with that id's token, so no peer can claim another's
    /// id, and an [`authorize`](NodeBuilder::authorize) policy can trust the ids it is given.
    /// Tokens are compared in constant time. And since an id is proven, a peer that connects
    /// again while this node still holds a connection of its id that has gone silent (its link
    /// died without a close) takes that connection's place at once, instead of being refused
    /// until keep-alive notices.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use remote_scope::{Error, Node};
    ///
    /// let server = Node::builder()
    ///     .peer_tokens([("ops", "token-of-ops"), ("alice", "token-of-alice")])
    ///     .build()?;
    /// let listener = server.listen("127.0.0.1:0").await?;
    ///
    /// // Alice's token does not make her `ops`.
    /// let impostor = Node::builder().id("ops").token("token-of-alice").build()?;
    /// let refused = impostor.connect(&listener.url()).await;
    /// assert!(matches!(refused, Err(Error::NotAuthenticated { .. })), "{refused:?}");
    ///
    /// let ops = Node::builder().id("ops").token("token-of-ops").build()?;
    /// assert_eq!(ops.connect(&listener.url()).await?, *server.id());
    /// # Ok(()) }
    /// ```
    pub fn peer_tokens<P, T>(self, tokens: impl IntoIterator<Item = (P, T)>) -> Self
    where
        P: Into<PeerId>,
        T: Into<String>,
    {
        let tokens: HashMap<PeerId, String> = tokens
            .into_iter()
            .map(|(peer, token)| (peer.into(), token.into()))
            .collect();
        let mut builder = self.authenticate(move |peer, given| match (tokens.get(peer), given) {
            (Some(expected), Some(given)) => same_token(given, expected),
            _ => false,
        });
        builder.config.ids_proven = true;
        builder
    }

    /// Decides, per call, whether a connected peer may run a body on this node (see
    /// [`Authorize`] and [`Allowlist`](crate::Allowlist)). A denied call fails with
    /// [`Error::NotAuthorized`] and its body does not run; its captures are not even decoded.
    /// Calls this node makes to itself are not checked. By default every peer may run every
    /// body compiled into this node.
    pub fn authorize(mut self, policy: impl Authorize) -> Self {
        self.authorize = Some(Arc::new(policy));
        self
    }

    /// What a registry digest mismatch at connect time does (default: [`RegistryCheck::Strict`]).
    pub fn registry_check(mut self, check: RegistryCheck) -> Self {
        self.config.registry_check = check;
        self
    }

    /// Adds a middleware layer below the ones added before it (see [`Middleware`]).
    pub fn middleware(mut self, layer: impl Middleware) -> Self {
        self.middleware.push(Arc::new(layer));
        self
    }

    /// Receives user messages ([`Frame::Message`]) that no middleware consumed.
    pub fn on_message(
        mut self,
        handler: impl Fn(&PeerId, Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        self.on_message = Some(Arc::new(handler));
        self
    }

    /// The executor to run on (default: the tokio runtime `build` is called in).
    pub fn runtime(mut self, runtime: Arc<dyn Runtime>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Builds the node. Fails if the registry has a name conflict
    /// ([`Error::DuplicateBody`]), the id is not [valid](PeerId::is_valid) or there is no
    /// runtime to run on ([`Error::Setup`]).
    // On wasm32 bodies, and so connections, are not `Send`: the page has one thread.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub fn build(self) -> Result<Node, Error> {
        let registry = Registry::global()?;
        let id = self.id.unwrap_or_else(PeerId::random);
        if !id.is_valid() {
            return Err(Error::Setup {
                reason: id.refusal(),
            });
        }
        let runtime = match self.runtime {
            Some(runtime) => runtime,
            None => crate::runtime::current()?,
        };
        let queued = NodeQueue::new(self.config.max_queued_bytes_total);
        Ok(Node {
            inner: Arc::new(Inner {
                queued,
                id,
                registry,
                runtime,
                config: self.config,
                middleware: self.middleware,
                on_message: self.on_message,
                authenticate: self.authenticate,
                authorize: self.authorize,
                connections: Mutex::default(),
                kept: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// Takes a connection out of the node again unless the handshake that added it finishes.
struct Unfinished<'a> {
    node: &'a Node,
    conn: &'a Arc<Connection>,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.node.forget_connection(self.conn);
        }
    }
}

/// This peer: serves the bodies compiled into the binary and calls those of its peers.
///
/// Cheap to clone; clones are the same node. Connections stay up until the peer goes away,
/// [`disconnect`](Node::disconnect) or [`shutdown`](Node::shutdown).
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
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
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
    /// Starts configuring a node.
    pub fn builder() -> NodeBuilder {
        NodeBuilder {
            id: None,
            config: Config {
                default_timeout: Duration::from_secs(30),
                handshake_timeout: Duration::from_secs(10),
                max_frame_size: DEFAULT_MAX_FRAME_SIZE,
                max_connections: 16 << 10,
                max_bodies_per_connection: 4 << 10,
                max_capture_size: 16 << 20,
                max_queued_bytes: 128 << 20,
                max_queued_bytes_total: 1 << 30,
                rate_limit: RateLimit::default(),
                keepalive: Some(Duration::from_secs(15)),
                registry_check: RegistryCheck::Strict,
                token: None,
                ids_proven: false,
            },
            middleware: Vec::new(),
            on_message: None,
            runtime: None,
            authenticate: None,
            authorize: None,
        }
    }

    /// The node running the current body, or the node of the surrounding [`Node::run`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use remote_scope::Node;
    /// let node = Node::builder().id("me").build()?;
    /// assert!(Node::current().is_none());
    /// let id = node.run(async { Node::current().map(|n| n.id().clone()) }).await;
    /// assert_eq!(id.map(|id| id.to_string()).as_deref(), Some("me"));
    /// # Ok(()) }
    /// ```
    pub fn current() -> Option<Node> {
        crate::context::current()
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

    /// Runs `future` with this node as the current node, so the `remote!` calls in it go out
    /// from this peer. A single call can be passed directly: `node.run(remote!(..))`.
    pub fn run<F: IntoFuture>(&self, future: F) -> impl Future<Output = F::Output> {
        Scoped::new(self.clone(), Box::pin(future.into_future()))
    }

    /// The peers connected now.
    pub fn peers(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = lock(&self.inner.connections).keys().cloned().collect();
        peers.sort();
        peers
    }

    /// Whether `peer` is connected now.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        lock(&self.inner.connections).contains_key(peer)
    }

    /// Closes the connection to `peer`: its calls in flight fail with [`Error::Disconnected`].
    /// A peer kept with [`Node::keep_connected`] is not dialled again. Returns whether there
    /// was a connection.
    pub fn disconnect(&self, peer: &PeerId) -> bool {
        self.stop_keeping(peer);
        let conn = lock(&self.inner.connections).remove(peer);
        conn.map(|c| c.close()).is_some()
    }

    /// Closes every connection and stops redialling kept peers.
    pub fn shutdown(&self) {
        let kept: Vec<PeerId> = lock(&self.inner.kept).keys().cloned().collect();
        for peer in kept {
            self.stop_keeping(&peer);
        }
        let all: Vec<_> = lock(&self.inner.connections).drain().collect();
        for (_, conn) in all {
            conn.close();
        }
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

    /// Sends a user message to `peer`, through the outbound middleware.
    pub fn send_message(&self, peer: &PeerId, bytes: Vec<u8>) -> Result<(), Error> {
        self.connection(peer)?.link().send(Frame::Message(bytes))
    }

    /// Runs the handshake as the connecting side over any transport and keeps the connection.
    /// Returns the peer's id. [`Node::connect`] does this over a WebSocket.
    pub async fn connect_transport(&self, transport: impl Transport) -> Result<PeerId, Error> {
        self.establish(transport, Role::Connector, "the accepting peer")
            .await
    }

    /// Runs the handshake as the accepting side over any transport and keeps the connection.
    /// Returns the peer's id. [`Node::listen`] does this for each WebSocket connection.
    pub async fn accept_transport(&self, transport: impl Transport) -> Result<PeerId, Error> {
        self.establish(transport, Role::Acceptor, "the connecting peer")
            .await
    }

    async fn establish(
        &self,
        transport: impl Transport,
        role: Role,
        who: &str,
    ) -> Result<PeerId, Error> {
        let (mut sink, mut stream) = transport.split();
        if role == Role::Connector {
            self.in_time(handshake::send(&mut sink, &handshake::hello(self)), who)
                .await?;
        }
        let theirs = match handshake::first_frame(self, &mut stream, who).await? {
            Frame::Hello(hello) => hello,
            Frame::Reject(reject) if role == Role::Connector => {
                return Err(handshake::rejected(self, who, reject))
            }
            other => {
                return Err(handshake::handshake_error(
                    who,
                    &format!("expected a hello, got {other:?}"),
                ))
            }
        };
        let refusal = match handshake::check(self, &theirs) {
            Err((reject, error)) => Some((reject, error)),
            Ok(()) => None,
        };
        let conn = Connection::new(
            theirs.peer.clone(),
            self.middleware().is_empty(),
            self.config().max_queued_bytes,
            Arc::clone(&self.inner.queued),
        );
        if refusal.is_none() {
            self.replace_if_silent(&theirs.peer).await;
        }
        let refusal = refusal.or_else(|| self.insert_connection(&conn).err());
        if let Some((reject, error)) = refusal {
            if role == Role::Acceptor {
                let refuse = Frame::Reject(reject);
                let _ = self.in_time(handshake::send(&mut sink, &refuse), who).await;
            }
            let _ = self.in_time(sink.close(), who).await;
            return Err(error);
        }
        // From here the connection is in the table: if this future is dropped or fails before
        // its tasks run, the guard takes it out again, so no peer is left half-connected.
        let mut guard = Unfinished {
            node: self,
            conn: &conn,
            armed: true,
        };
        if role == Role::Acceptor {
            self.in_time(handshake::send(&mut sink, &handshake::hello(self)), who)
                .await?;
        }
        guard.armed = false;
        tracing::debug!(node = %self.id(), peer = %theirs.peer, "connected");
        spawn_tasks(self, &conn, sink, stream);
        Ok(theirs.peer)
    }

    /// `work`, or a handshake error once the handshake timeout has passed.
    async fn in_time<T>(
        &self,
        work: impl Future<Output = Result<T, Error>>,
        who: &str,
    ) -> Result<T, Error> {
        let timeout = self.config().handshake_timeout;
        futures::pin_mut!(work);
        match futures::future::select(work, self.runtime().sleep(timeout)).await {
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right(_) => Err(handshake::handshake_error(
                who,
                &format!("the handshake did not finish within {timeout:?}"),
            )),
        }
    }

    /// A peer connecting under the id of a connected one is refused, unless ids are proven
    /// ([`NodeBuilder::peer_tokens`]) and the connected one has gone silent: a client whose
    /// link died without a close (a dropped Wi-Fi, a NAT that forgot it) comes back before this
    /// side's keep-alive has noticed, and would otherwise be refused until it does. The old
    /// connection is pinged and has a second (at most the handshake time limit) to show any
    /// sign of life; if it shows none, it is closed. Where anyone may claim an id, a silence is
    /// no proof (a live peer on a slow link, or in the middle of a large frame, is silent too),
    /// so no one is replaced.
    async fn replace_if_silent(&self, peer: &PeerId) {
        if !self.config().ids_proven {
            return;
        }
        let Ok(old) = self.connection(peer) else {
            return;
        };
        let heard = old.heard();
        let _ = old.link().send(Frame::Ping);
        let wait = self.config().handshake_timeout.min(Duration::from_secs(1));
        let step = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        while waited < wait {
            self.runtime().sleep(step).await;
            waited += step;
            if old.heard() != heard || old.is_closing() {
                return;
            }
        }
        tracing::info!(%peer, "a connected peer went silent and connects again; replacing its connection");
        self.forget_connection(&old);
    }

    fn insert_connection(
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
                    peer: conn.peer().to_string(),
                    limit,
                },
            ));
        }
        connections.insert(conn.peer().clone(), Arc::clone(conn));
        drop(connections);
        self.connected(conn.peer());
        Ok(())
    }

    /// Drops `conn` from the table (if it is still the one there) and closes it.
    pub(crate) fn forget_connection(&self, conn: &Arc<Connection>) {
        {
            let mut connections = lock(&self.inner.connections);
            if connections
                .get(conn.peer())
                .is_some_and(|c| Arc::ptr_eq(c, conn))
            {
                connections.remove(conn.peer());
            }
        }
        conn.close();
    }

    pub(crate) fn connection(&self, peer: &PeerId) -> Result<Arc<Connection>, Error> {
        lock(&self.inner.connections)
            .get(peer)
            .cloned()
            .ok_or_else(|| Error::NotConnected { peer: peer.clone() })
    }

    pub(crate) fn kept(&self) -> &KeptPeers {
        &self.inner.kept
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

//! Configuring a node: its id, limits, policies, middleware and runtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{same_token, Authenticate, Authorize};
use crate::config::{Config, MessageHandler};
use crate::error::Error;
use crate::middleware::Middleware;
use crate::node::{Node, Setup};
use crate::peer_id::PeerId;
use crate::protocol::DEFAULT_MAX_FRAME_SIZE;
use crate::rate::RateLimit;
use crate::registry::Registry;
use crate::runtime::Runtime;

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
                required_modules: Vec::new(),
                required_bodies: Vec::new(),
                token: None,
                ids_proven: false,
                pools: Vec::new(),
                trusted_certificates: Vec::new(),
                connect_headers: Vec::new(),
                #[cfg(all(feature = "tls", not(target_arch = "wasm32")))]
                client_tls: Default::default(),
            },
            middleware: Vec::new(),
            on_message: None,
            runtime: None,
            authenticate: None,
            authorize: None,
        }
    }
}

/// Configures and builds a [`Node`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use std::time::Duration;
/// use remote_scope::Node;
///
/// let node = Node::builder()
///     .id("worker-1")
///     .default_timeout(Duration::from_secs(5))
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

    /// Trusts the certificates in `pem` (PEM text) for `wss://` connections from this node,
    /// beside the system's root certificates: how a client reaches a server whose certificate
    /// a private authority signed (or a self-signed one). Needs the `tls` feature, as `wss://`
    /// does; [`build`](NodeBuilder::build) fails with [`Error::Setup`] if the text holds no
    /// certificate.
    ///
    /// ```
    /// use remote_scope::{Error, Node};
    ///
    /// let refused = Node::builder().trust_certificate_pem("not PEM").build();
    /// assert!(matches!(refused, Err(Error::Setup { .. })));
    /// ```
    pub fn trust_certificate_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.config.trusted_certificates.push(pem.as_ref().to_vec());
        self
    }

    /// Sends the HTTP header `name: value` with the WebSocket upgrade of every
    /// [`connect`](Node::connect) (and reconnect) of this node: how a native client passes an
    /// app's middleware in front of a route (an `authorization` header, a session cookie; see
    /// `remote_scope::axum`, feature `axum`). Call it again for more headers. They go to every
    /// server this node connects to, and in the clear over `ws://`: a node that holds a
    /// session cookie or a bearer token should connect with `wss://`, and only where they
    /// belong. [`build`](NodeBuilder::build) fails with [`Error::Setup`] if one is not a valid
    /// header or is one of the upgrade's own (`Host`, `Connection`, `Upgrade`,
    /// `Sec-WebSocket-*`), and in a browser, whose WebSocket sends no headers of its own (it
    /// sends the page's cookies by itself).
    ///
    /// ```
    /// use remote_scope::{Error, Node};
    ///
    /// let refused = Node::builder().connect_header("bad name", "x").build();
    /// assert!(matches!(refused, Err(Error::Setup { .. })));
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let node = Node::builder()
    ///     .connect_header("authorization", "Bearer k3y-of-reports")
    ///     .build()?;
    /// # let _ = node;
    /// # Ok(()) }
    /// ```
    pub fn connect_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config
            .connect_headers
            .push((name.into(), value.into()));
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

    /// Requires every peer to serve all of this build's bodies in `module` and the modules
    /// inside it (a path as `module_path!()` gives it, e.g. `"my_app::jobs"`): a peer that
    /// lacks one is refused when it connects, with [`Error::MissingBodies`] here (naming the
    /// bodies) and [`Error::RequiredBodies`] on its side. Without it peers built from different
    /// versions connect and call what both have; a call to a body the peer lacks fails with
    /// [`Error::UnknownBody`]. May be given more than once.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// let worker = remote_scope::Node::builder()
    ///     .require_module("my_app::jobs")
    ///     .build()?;
    /// # let _ = worker; Ok(()) }
    /// ```
    pub fn require_module(mut self, module: impl Into<String>) -> Self {
        self.config.required_modules.push(module.into());
        self
    }

    /// Requires every peer to serve one body, as [`require_module`](Self::require_module) does
    /// for a module's: the body of a [`#[remote_fn]`](crate::remote_fn), by its `NAME`, or any
    /// body by its [`Registration::name`](crate::Registration::name). May be given more than
    /// once.
    ///
    /// ```
    /// #[remote_scope::remote_fn]
    /// async fn resize(width: u32, pixels: Vec<u8>) -> Vec<u8> {
    ///     pixels.into_iter().take(width as usize).collect()
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// let worker = remote_scope::Node::builder()
    ///     .require_body(resize::NAME)
    ///     .build()?;
    /// # let _ = worker; Ok(()) }
    /// ```
    pub fn require_body(mut self, name: &'static str) -> Self {
        self.config.required_bodies.push(name);
        self
    }

    /// Adds a middleware layer below the ones added before it (see [`Middleware`]).
    pub fn middleware(mut self, layer: impl Middleware) -> Self {
        self.middleware.push(Arc::new(layer));
        self
    }

    /// Receives user messages ([`Frame::Message`](crate::protocol::Frame::Message)) that no middleware consumed.
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

    /// Makes this node a member of `pool`: its peers may send calls for the pool to it
    /// ([`Pool`](crate::Pool)). It tells the peers it connects to, and on a NATS cluster it joins the pool's
    /// queue group. A name that is not one token of letters, digits, `_` and `-` fails the
    /// build with [`Error::Setup`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// let worker = remote_scope::Node::builder().pool("resize").pool("thumbnails").build()?;
    /// assert_eq!(worker.pools().len(), 2);
    /// assert!(remote_scope::Node::builder().pool("a.b").build().is_err());
    /// # Ok(()) }
    /// ```
    pub fn pool(mut self, pool: impl Into<crate::pool::Pool>) -> Self {
        let pool = pool.into();
        if !self.config.pools.contains(&pool) {
            self.config.pools.push(pool);
        }
        self
    }

    /// Builds the node. Fails if the registry has a name conflict
    /// ([`Error::DuplicateBody`]), the id is not [valid](PeerId::is_valid) or there is no
    /// runtime to run on ([`Error::Setup`]).
    pub fn build(self) -> Result<Node, Error> {
        let registry = Registry::global()?;
        let id = self.id.unwrap_or_else(PeerId::random);
        if !id.is_valid() {
            return Err(Error::Setup {
                reason: id.refusal(),
            });
        }
        if let Some(pool) = self.config.pools.iter().find(|p| !p.is_valid()) {
            return Err(Error::Setup {
                reason: pool.refusal(),
            });
        }
        for pem in &self.config.trusted_certificates {
            check_trusted(pem)?;
        }
        for (name, value) in &self.config.connect_headers {
            check_header(name, value)?;
        }
        let runtime = match self.runtime {
            Some(runtime) => runtime,
            None => crate::runtime::current()?,
        };
        let node = Node::new(Setup {
            id,
            registry,
            runtime,
            config: self.config,
            middleware: self.middleware,
            on_message: self.on_message,
            authenticate: self.authenticate,
            authorize: self.authorize,
        });
        crate::context::register(&node);
        Ok(node)
    }
}

/// Whether PEM text given to [`NodeBuilder::trust_certificate_pem`] can be trusted.
#[cfg(all(feature = "tls", not(target_arch = "wasm32")))]
fn check_trusted(pem: &[u8]) -> Result<(), Error> {
    crate::transport::websocket::check_trusted(pem)
}

/// Whether a header given to [`NodeBuilder::connect_header`] can be sent.
#[cfg(not(target_arch = "wasm32"))]
fn check_header(name: &str, value: &str) -> Result<(), Error> {
    crate::transport::websocket::check_header(name, value)
}

#[cfg(target_arch = "wasm32")]
fn check_header(name: &str, _: &str) -> Result<(), Error> {
    Err(Error::Setup {
        reason: format!(
            "connect_header(\"{name}\", ..): a browser's WebSocket sends no headers of its \
             own; it sends the page's cookies by itself"
        ),
    })
}

/// Without TLS there is nothing to trust a certificate for: say so at once rather than at the
/// first `wss://`.
#[cfg(not(all(feature = "tls", not(target_arch = "wasm32"))))]
fn check_trusted(_: &[u8]) -> Result<(), Error> {
    Err(Error::Setup {
        reason: "trust_certificate_pem needs TLS: enable the `tls` feature of remote-scope \
                 (native peers; a browser trusts what the browser trusts)"
            .to_owned(),
    })
}

//! Nodes that reach each other through a NATS cluster (feature `nats`, native only).
//!
//! A node that joins a cluster ([`Node::join_nats`]) listens on a subject of its own, derived
//! from its id; from then on `remote!(peer, ..)` reaches any node of the cluster by id alone,
//! with no address to configure: the first call to a peer opens a *session* to it (the same
//! handshake as over a WebSocket: protocol version, token, the bodies each serves), and later
//! calls reuse it. Deadlines, cancellation, authentication, authorization, caller identity and
//! contracts all work as over a WebSocket, because the session carries the same frames.
//!
//! - **Absent peers fail at once.** Every frame is published with a reply subject, so NATS
//!   answers "no responders" when no node listens on the peer's subject: the call fails with
//!   [`Error::NotConnected`] without waiting for its deadline (after a grace of 250 ms in
//!   which a new node's subscription spreads through the cluster). A peer that goes away in
//!   the middle of a session is seen the same way at the next frame sent to it; its calls in
//!   flight fail with [`Error::Disconnected`], or [`Error::Timeout`] at their deadline when
//!   nothing more is sent.
//! - **Frame size.** NATS carries messages of at most the server's `max_payload` (1 MB by
//!   default). A session tells its peer the smaller of that (less 1 KB of envelope) and the
//!   node's own frame limit, so captures too large fail before sending with
//!   [`Error::CapturesTooLarge`], and a result too large fails the call with
//!   [`Error::EncodeResult`]; nothing is split.
//! - **A broken link to NATS** ends every session (frames may have been lost in it): their
//!   calls fail with [`Error::Disconnected`], and the client reconnects to another server of
//!   the cluster on its own; the next call opens a new session.
//!
//! Trust: see SECURITY.md. In short, a node proves its id in the handshake with a per-peer
//! token ([`NodeBuilder::peer_tokens`](crate::NodeBuilder::peer_tokens)) exactly as over a
//! WebSocket, and NATS accounts with subject permissions keep other clients of the cluster
//! from reading a node's subject or sending as it.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), remote_scope::Error> {
//! use remote_scope::{remote, Node, PeerId};
//!
//! let worker = Node::builder().id("worker").build()?;
//! worker.join_nats(["nats://127.0.0.1:4222"]).await?;
//!
//! let client = Node::builder().id("client").build()?;
//! client.join_nats(["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]).await?;
//! let worker_id = PeerId::new("worker");
//! let n: u64 = client
//!     .run(async { remote!(worker_id, [], { 6 * 7 }).await })
//!     .await?;
//! assert_eq!(n, 42);
//! # Ok(()) }
//! ```

mod pools;
mod presence;
mod router;
mod session;
mod subjects;

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use futures::StreamExt;

use crate::error::Error;
use crate::node::{Directory, Node};
use crate::peer_id::PeerId;
use crate::runtime::BoxFuture;
use router::Router;

/// How a node joins a NATS cluster: the subject prefix its nodes share, and the NATS client's
/// own options (credentials, TLS, timeouts).
///
/// ```
/// use remote_scope::transport::nats::NatsOptions;
///
/// let options = NatsOptions::new()
///     .prefix("billing")
///     .client(async_nats::ConnectOptions::new().name("billing-worker"));
/// # let _ = options;
/// ```
#[derive(Debug)]
pub struct NatsOptions {
    prefix: String,
    client: async_nats::ConnectOptions,
    heartbeat: Duration,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions::new()
    }
}

impl NatsOptions {
    /// The prefix `rs`, and the NATS client's defaults.
    pub fn new() -> NatsOptions {
        NatsOptions {
            prefix: "rs".to_owned(),
            client: async_nats::ConnectOptions::new(),
            heartbeat: Duration::from_millis(500),
        }
    }

    /// How often the node tells the cluster it is there (500 ms unless set). A node that
    /// misses three heartbeats in a row counts as gone: the others see
    /// [`PeerEvent::Down`](crate::PeerEvent::Down) for it within 3.5 heartbeats of its last
    /// one (checked every half heartbeat), and stop sending it calls for its pools.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.clamp(Duration::from_millis(10), Duration::from_secs(3600));
        self
    }

    /// The first token of every subject the nodes use: nodes with different prefixes do not
    /// see each other, so several applications can share one cluster.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The NATS client's options: credentials, TLS, timeouts, its name. Its event callback is
    /// the node's own (it ends sessions when the link to NATS breaks).
    pub fn client(mut self, options: async_nats::ConnectOptions) -> Self {
        self.client = options;
        self
    }
}

/// A node's membership of a NATS cluster, from [`Node::join_nats`]. The node stays in the
/// cluster until it shuts down or [`Nats::leave`] is called; dropping this handle changes
/// nothing.
#[derive(Clone)]
pub struct Nats {
    router: Arc<Router>,
    node: Node,
}

impl std::fmt::Debug for Nats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nats")
            .field("node", self.node.id())
            .field("prefix", &self.router.prefix)
            .finish_non_exhaustive()
    }
}

impl Nats {
    /// The NATS client the node uses, to publish or subscribe beside it.
    pub fn client(&self) -> &async_nats::Client {
        &self.router.client
    }

    /// The largest frame a session carries: the server's `max_payload` less the envelope.
    pub fn max_frame_size(&self) -> usize {
        self.router.max_frame
    }

    /// Leaves the cluster: calls to peers not otherwise connected fail with
    /// [`Error::NotConnected`] again, sessions end, and the node's subjects go.
    pub async fn leave(&self) {
        self.router.leave();
        self.node.set_directory(None);
        self.router
            .end_all(&Error::transport("the node left the NATS cluster"));
        let _ = publish_heartbeat(&self.router, &self.node, true).await;
        self.router.presence.clear(&self.node);
        let _ = self.router.client.drain().await;
    }

    /// The peers on the cluster now, from their heartbeats (this node aside).
    pub fn peers_on_cluster(&self) -> Vec<crate::peer_id::PeerId> {
        let mut peers = self.router.presence.peers();
        peers.sort();
        peers
    }
}

impl Node {
    /// Joins the NATS cluster of `servers` (any of them; the client learns the others and
    /// fails over between them), with the default [`NatsOptions`]. See [`transport::nats`](self).
    pub async fn join_nats<S: AsRef<str>>(
        &self,
        servers: impl IntoIterator<Item = S>,
    ) -> Result<Nats, Error> {
        self.join_nats_with(servers, NatsOptions::new()).await
    }

    /// Joins the NATS cluster of `servers` with `options`.
    pub async fn join_nats_with<S: AsRef<str>>(
        &self,
        servers: impl IntoIterator<Item = S>,
        options: NatsOptions,
    ) -> Result<Nats, Error> {
        let servers = servers
            .into_iter()
            .map(|s| {
                let url = s.as_ref();
                url.parse::<async_nats::ServerAddr>()
                    .map_err(|e| Error::BadUrl {
                        url: url.to_owned(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if servers.is_empty() {
            return Err(Error::BadUrl {
                url: String::new(),
                reason: "no NATS server given".to_owned(),
            });
        }
        if options.prefix.is_empty() || options.prefix.contains(['.', '*', '>', ' ']) {
            return Err(Error::Setup {
                reason: format!(
                    "the NATS subject prefix {:?} must be one non-empty token, without `.`, `*`, `>` or spaces",
                    options.prefix
                ),
            });
        }
        if self.has_directory() {
            return Err(Error::Setup {
                reason: "this node has joined a NATS cluster already".to_owned(),
            });
        }
        // The router does not exist until the client does; the callback finds it here.
        let cell: Arc<OnceLock<Weak<Router>>> = Arc::default();
        let events = Arc::clone(&cell);
        let node_id = self.id().clone();
        let client = options
            .client
            .event_callback(move |event| {
                let router = events.get().and_then(Weak::upgrade);
                let node_id = node_id.clone();
                async move {
                    tracing::debug!(node = %node_id, %event, "NATS event");
                    let lost = match event {
                        async_nats::Event::Disconnected => {
                            "the connection to the NATS server broke"
                        }
                        // The client dropped messages for this node: sessions have gaps.
                        async_nats::Event::SlowConsumer(_) => {
                            "this node read its NATS messages too slowly and some were dropped"
                        }
                        _ => return,
                    };
                    if let Some(router) = router {
                        router.end_all(&Error::transport(lost));
                    }
                }
            })
            .connect(servers)
            .await
            .map_err(|e| Error::transport_caused("cannot connect to the NATS servers", e))?;
        let router = Arc::new(Router::new(
            client.clone(),
            options.prefix,
            options.heartbeat,
            self,
        ));
        let _ = cell.set(Arc::downgrade(&router));
        // Every fallible step before any task starts: a join that fails leaves nothing behind.
        let subscribed = async {
            let subscribe_failed = |e| Error::transport_caused("cannot subscribe on NATS", e);
            let frames = client
                .subscribe(subjects::inbox(&router.prefix, self.id()))
                .await
                .map_err(subscribe_failed)?;
            let statuses = client
                .subscribe(subjects::statuses(&router.prefix, self.id()))
                .await
                .map_err(subscribe_failed)?;
            let mut pools = Vec::new();
            for pool in self.pools() {
                let subject = pools::subject(&router.prefix, pool);
                pools.push(
                    client
                        .queue_subscribe(subject, pool.name().to_owned())
                        .await
                        .map_err(subscribe_failed)?,
                );
            }
            let beats = client
                .subscribe(presence::subjects(&router.prefix))
                .await
                .map_err(subscribe_failed)?;
            client
                .flush()
                .await
                .map_err(|e| Error::transport_caused("cannot reach the NATS server", e))?;
            Ok::<_, Error>((frames, statuses, pools, beats))
        };
        let (mut frames, mut statuses, pools, mut beats) = match subscribed.await {
            Ok(subscribed) => subscribed,
            Err(e) => {
                let _ = client.drain().await;
                return Err(e);
            }
        };
        let (reading, stopped) = (Arc::clone(&router), self.stopped());
        self.runtime().spawn(Box::pin(async move {
            let read = async {
                while let Some(message) = frames.next().await {
                    reading.deliver(&message.subject, message.payload);
                }
            };
            until(stopped, read).await;
            reading.end_all(&Error::transport("the node has stopped"));
        }));
        let (hearing, stopped) = (Arc::clone(&router), self.stopped());
        self.runtime().spawn(Box::pin(until(stopped, async move {
            while let Some(message) = statuses.next().await {
                hearing.status(&message.subject, message.status);
            }
        })));
        for requests in pools {
            self.runtime().spawn(Box::pin(pools::answer(
                self.downgrade(),
                Arc::clone(&router),
                requests,
            )));
        }
        let hearing = Arc::clone(&router);
        let weak = self.downgrade();
        self.runtime().spawn(Box::pin(async move {
            while let Some(message) = beats.next().await {
                let Some(node) = weak.live() else { return };
                let Some(beat) = presence::Heartbeat::received(&hearing.prefix, &message) else {
                    continue;
                };
                // A newcomer hears of this node at once, not at its next beat.
                if hearing.presence.heard(&node, beat) && !hearing.has_left() {
                    let _ = publish_heartbeat(&hearing, &node, false).await;
                }
            }
        }));
        let beating = Arc::clone(&router);
        let weak = self.downgrade();
        let every = options.heartbeat;
        let stopped = self.stopped();
        self.runtime().spawn(Box::pin(async move {
            let beat = async {
                let mut tick = 0_u64;
                while !beating.has_left() {
                    let Some(node) = weak.live() else { return };
                    if tick.is_multiple_of(2) {
                        let _ = publish_heartbeat(&beating, &node, false).await;
                    }
                    for gone in beating.presence.sweep(&node) {
                        // A peer that is gone no longer listens: NATS answers the ping with
                        // "no responders", which ends the session and fails its calls in
                        // flight now. One that is only slow answers, and keeps its session.
                        if let Ok(conn) = node.connection(&gone) {
                            conn.ping();
                        }
                    }
                    let pause = node.runtime().sleep(every / 2);
                    drop(node);
                    pause.await;
                    tick += 1;
                }
            };
            until(stopped, beat).await;
            if beating.has_left() {
                return;
            }
            if let Some(node) = weak.live() {
                let _ = publish_heartbeat(&beating, &node, true).await;
                beating.presence.clear(&node);
            }
            // The node is done with NATS: flush what is left and close the connection.
            let _ = beating.client.drain().await;
        }));
        self.set_directory(Some(Arc::new(Dialer(Arc::clone(&router)))));
        tracing::debug!(node = %self.id(), max_frame = router.max_frame, "joined the NATS cluster");
        Ok(Nats {
            router,
            node: self.internal(),
        })
    }
}

/// Runs `work` until it ends or `stopped` completes (the node has stopped).
async fn until(
    stopped: impl std::future::Future<Output = ()>,
    work: impl std::future::Future<Output = ()>,
) {
    futures::pin_mut!(stopped, work);
    futures::future::select(work, stopped).await;
}

/// Tells the cluster this node is there (or, `leaving`, that it goes).
async fn publish_heartbeat(router: &Router, node: &Node, leaving: bool) -> Result<(), Error> {
    let beat = presence::Heartbeat {
        peer: node.id().clone(),
        pools: node.pools().to_vec(),
        leaving,
        every_ms: u64::try_from(router.heartbeat.as_millis()).unwrap_or(u64::MAX),
    };
    router
        .client
        .publish(presence::subject(&router.prefix, node.id()), beat.encode())
        .await
        .map_err(|e| Error::transport_caused("publishing a heartbeat on NATS failed", e))
}

/// The router as the node's directory.
struct Dialer(Arc<Router>);

impl Directory for Dialer {
    fn dial(&self, node: &Node, peer: &PeerId) -> BoxFuture<'static, Result<PeerId, Error>> {
        let router = Arc::clone(&self.0);
        let node = node.clone();
        let peer = peer.clone();
        Box::pin(async move { router.dial(&node, &peer).await })
    }

    fn members(&self, pool: &crate::pool::Pool) -> Vec<PeerId> {
        self.0.presence.members(pool)
    }

    fn pick(
        &self,
        node: &Node,
        pool: &crate::pool::Pool,
        tried: &[PeerId],
    ) -> BoxFuture<'static, Result<PeerId, Error>> {
        let router = Arc::clone(&self.0);
        let (node, pool, tried) = (node.clone(), pool.clone(), tried.to_vec());
        Box::pin(async move { pools::pick(&router, &node, &pool, &tried).await })
    }
}

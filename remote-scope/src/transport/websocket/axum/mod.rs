//! Peers on a route of an [axum](https://docs.rs/axum) app (feature `axum`): the app's port,
//! its middleware and its shutdown, and the peer's identity from its web session.
//!
//! [`Endpoint::route`] is a `GET` route that upgrades to a peer connection. Whatever runs before
//! it (the app's middleware: cookies, auth headers, rate limits) decides whether a peer gets to
//! connect at all: a request it refuses never reaches the node. Middleware that has checked a
//! session tells the route who the peer is by inserting a [`SessionPeer`] into the request's
//! extensions; the peer's `Hello` must then name that id, no token is asked for, and per-peer
//! authorization ([`NodeBuilder::authorize`](crate::NodeBuilder::authorize)) sees the id the
//! session proved. A handler of the app's own takes a [`PeerUpgrade`] and calls
//! [`PeerUpgrade::serve`].
//!
//! After the upgrade a connection is the node's own WebSocket transport, with the limits of
//! [`Node::listen`](crate::Node::listen): frames no larger than
//! [`max_frame_size`](crate::NodeBuilder::max_frame_size) (64 KiB for the first), the
//! [handshake timeout](crate::NodeBuilder::handshake_timeout) from the upgrade to the end of
//! the node's handshake, and at most [`max_connections`](crate::NodeBuilder::max_connections)
//! peers of an endpoint in their handshake at once (one beyond gets `503` at once). The HTTP
//! request before the route is the app's HTTP server's to bound.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{extract::Request, http::StatusCode, middleware::{self, Next}, response::Response};
//! use remote_scope::axum::{Endpoint, SessionPeer};
//! use remote_scope::Node;
//!
//! /// The app's session check: a cookie it set at login names the user.
//! async fn session(mut request: Request, next: Next) -> Result<Response, StatusCode> {
//!     let cookie = request.headers().get("cookie").and_then(|c| c.to_str().ok());
//!     let user = match cookie {
//!         Some("session=k3y-of-alice") => "alice",
//!         _ => return Err(StatusCode::UNAUTHORIZED),
//!     };
//!     request.extensions_mut().insert(SessionPeer::new(user));
//!     Ok(next.run(request).await)
//! }
//!
//! // Sent by whatever tells the app to stop: a signal handler, an admin route.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! # drop(stop);
//! let node = Node::builder().id("server").build()?;
//! let endpoint = Endpoint::new(&node);
//! let app = axum::Router::new()
//!     .route("/peer", endpoint.route())
//!     .route_layer(middleware::from_fn(session))
//!     .route("/", axum::routing::get(|| async { "the page" }));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
//! axum::serve(listener, app)
//!     .with_graceful_shutdown(async move {
//!         let _ = stopped.await;
//!         // Calls under way finish (for up to 5 s), then every peer is told goodbye.
//!         node.shutdown_gracefully(std::time::Duration::from_secs(5)).await;
//!     })
//!     .await?;
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex};

use ::axum::routing::{get, MethodRouter};
use tokio::sync::Semaphore;

mod peer_upgrade;
#[cfg(feature = "tls")]
mod tls_listener;

pub use peer_upgrade::{PeerUpgrade, PeerUpgradeRejection, SessionPeer};
#[cfg(feature = "tls")]
pub use tls_listener::{TlsConnection, TlsListener};

use super::Accepted;
use crate::node::Node;
use crate::sync::lock;

/// Where an axum app's routes hand peers to a node: the node, its count of handshakes under
/// way, and the connections accepted through it. Clones share all three; when the last is
/// dropped (the app's router with it), or on [`Endpoint::shutdown`], the connections close.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// let node = remote_scope::Node::builder().id("server").build()?;
/// let endpoint = remote_scope::axum::Endpoint::new(&node);
/// let app: axum::Router = axum::Router::new().route("/peer", endpoint.route());
/// # let _ = app;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Endpoint {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    node: Node,
    /// One permit per connection between its `101` and the end of the node's handshake.
    in_progress: Arc<Semaphore>,
    accepted: Mutex<Accepted>,
}

impl Endpoint {
    /// An endpoint for `node`, which it keeps up (as a [`Server`](crate::Server) does).
    pub fn new(node: &Node) -> Endpoint {
        let limit = node.config().max_connections.min(Semaphore::MAX_PERMITS);
        Endpoint {
            shared: Arc::new(Shared {
                node: node.handle(),
                in_progress: Arc::new(Semaphore::new(limit)),
                accepted: Mutex::new(Accepted::default()),
            }),
        }
    }

    /// A `GET` route that upgrades to a peer connection, for `Router::route`. The peer is the
    /// one a [`SessionPeer`] in the request's extensions names, if the app's middleware put
    /// one there; else the id its `Hello` claims, checked by the node's authentication.
    pub fn route<S>(&self) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let endpoint = self.clone();
        get(move |upgrade: PeerUpgrade| {
            let response = upgrade.serve(&endpoint);
            async move { response }
        })
    }

    /// The node peers reach through this endpoint.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// Closes the connections accepted through this endpoint, and refuses new ones with `503`.
    pub fn shutdown(&self) {
        Accepted::close(&self.shared.accepted, &self.shared.node);
    }

    fn is_closed(&self) -> bool {
        lock(&self.shared.accepted).closed
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        Accepted::close(&self.accepted, &self.node);
    }
}

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
//! A browser sends the page's cookies with every WebSocket it opens, whichever site's page
//! opens it, so a route that trusts a cookie must also know which pages may connect: an
//! endpoint refuses (`403`) an upgrade whose `Origin` is not the app's own (the request's
//! `Host`) unless told otherwise ([`Endpoint::allow_origin`], [`Endpoint::allow_any_origin`]).
//! A request with no `Origin` does not come from a page, and is let through to the session
//! check. Session cookies should be `SameSite=Strict` or `Lax` as well.
//!
//! A session's peer id shares the node's ids with peers that connect elsewhere (the node's own
//! listener, another route, NATS): if any of those lets a peer claim an id without proving it,
//! a session's id proves nothing there. Give every way into a node proofs as strong, or name
//! session peers apart (`web:alice`). A session's connection is replaced by a later one of
//! the same session when it falls silent (a page that reconnects); it never replaces a
//! connection that proved its id otherwise.
//!
//! After the upgrade a connection is the node's own WebSocket transport, with the limits of
//! [`Node::listen`](crate::Node::listen): frames no larger than
//! [`max_frame_size`](crate::NodeBuilder::max_frame_size) (64 KiB for the first), the
//! [handshake timeout](crate::NodeBuilder::handshake_timeout) for the upgrade and again for
//! the `Hello`, and at most [`max_connections`](crate::NodeBuilder::max_connections) peers of
//! an endpoint in their handshake at once (one beyond gets `503` at once). The HTTP request
//! before the route is the app's HTTP server's to bound. Peers connect over HTTP/1.1 (a
//! WebSocket over HTTP/2 is refused with `405`).
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
/// way, the connections accepted through it, and the page origins it lets connect. Clones share
/// them. [`Endpoint::shutdown`] (or the node's shutdown) closes the connections; so does
/// dropping the last clone, but axum keeps clones of the router in its connection tasks,
/// which may outlive `axum::serve`.
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
    origins: Arc<Origins>,
}

/// The pages whose WebSockets an endpoint takes.
#[derive(Clone, Debug)]
enum Origins {
    /// The app's own (an `Origin` whose host and port are the request's `Host`), and these.
    Listed(Vec<String>),
    Any,
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
            origins: Arc::new(Origins::Listed(Vec::new())),
        }
    }

    /// Also takes the WebSockets of pages from `origin` (`https://app.example.com`, scheme, host
    /// and port as a browser sends them in `Origin`), beside the app's own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// let node = remote_scope::Node::builder().id("server").build()?;
    /// let endpoint = remote_scope::axum::Endpoint::new(&node).allow_origin("https://app.example.com");
    /// # let _ = endpoint;
    /// # Ok(()) }
    /// ```
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Endpoint {
        let origin = origin.into().trim_end_matches('/').to_ascii_lowercase();
        let origins = Arc::make_mut(&mut self.origins);
        if let Origins::Listed(listed) = origins {
            listed.push(origin);
        }
        self
    }

    /// Takes the WebSockets of any page: for a route that trusts nothing the browser sends by
    /// itself (no cookies; peers that prove themselves with a token), or one for tests.
    pub fn allow_any_origin(mut self) -> Endpoint {
        self.origins = Arc::new(Origins::Any);
        self
    }

    /// Whether a page from `origin` (the request's `Origin`, if any) may connect through this
    /// endpoint to an app reached as `host` (the request's `Host`).
    fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            // Not a page: a browser always says where a WebSocket's page came from.
            return true;
        };
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        match &*self.origins {
            Origins::Any => true,
            Origins::Listed(listed) => {
                listed.contains(&origin) || host.is_some_and(|host| same_authority(&origin, host))
            }
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
        let node = &self.shared.node;
        node.is_draining() || node.is_shut_down() || lock(&self.shared.accepted).closed
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the authority `host` (`host[:port]`), a
/// default port written or not.
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default = match scheme {
        "https" | "wss" => ":443",
        "http" | "ws" => ":80",
        _ => return false,
    };
    let host = host.to_ascii_lowercase();
    let strip = |a: &str| a.strip_suffix(default).unwrap_or(a).to_owned();
    strip(authority) == strip(&host)
}

impl Drop for Shared {
    fn drop(&mut self) {
        Accepted::close(&self.accepted, &self.node);
    }
}

#[cfg(test)]
mod tests {
    use super::same_authority;

    #[test]
    fn an_origin_is_the_apps_own_when_it_names_the_requests_host() {
        assert!(same_authority("https://app.example.com", "app.example.com"));
        assert!(same_authority(
            "https://app.example.com",
            "App.Example.com:443"
        ));
        assert!(same_authority("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!same_authority("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!same_authority("https://evil.example", "app.example.com"));
        assert!(!same_authority(
            "https://app.example.com.evil",
            "app.example.com"
        ));
        assert!(!same_authority("null", "app.example.com"));
    }
}

//! The native WebSocket transport: [`Node::listen`] and [`Node::connect`].
//!
//! tungstenite does the HTTP upgrade (`upgrade.rs`); after it, frames are read and written here
//! (`framing.rs`, `socket.rs`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

#[cfg(feature = "axum")]
pub mod axum;
mod byte_stream;
pub(crate) mod framing;
mod socket;
#[cfg(feature = "tls")]
mod tls;
mod upgrade;

use byte_stream::ByteStream;
use socket::{Limits, WebSocketTransport};
#[cfg(feature = "tls")]
pub(crate) use tls::check_trusted;
#[cfg(feature = "tls")]
pub use tls::TlsIdentity;

use crate::connection::Connection;
use crate::error::Error;
use crate::node::{Node, Stopped};
use crate::peer_id::PeerId;
use crate::sync::lock;

/// The largest first message either side accepts: that message is the other peer's `Hello` (or
/// a `Reject`), a few hundred bytes plus its token. Until the handshake has checked it, the peer
/// is unknown, and a frame's header is all it takes to make a reader set aside room for the
/// frame: under `max_frame_size` (64 MiB by default) anyone who can open a socket could make
/// the server reserve that much per connection by sending ten bytes.
///
/// Only the first message is held to it because it is the only one read before the node's
/// handshake has accepted the peer: the handshake reads exactly one message, checks it
/// (version, token, id, registry), and a refused connection is dropped without reading on.
const FIRST_MESSAGE_LIMIT: usize = 64 << 10;

fn limits(node: &Node) -> Limits {
    let max = node.config().max_frame_size;
    Limits {
        first: max.min(FIRST_MESSAGE_LIMIT),
        after: max,
    }
}

/// A listening server peer, from [`Node::listen`]. Dropping it (or [`Server::shutdown`]) stops
/// accepting and closes the connections it accepted.
#[derive(Debug)]
#[must_use = "dropping the Server stops listening and closes its connections"]
pub struct Server {
    node: Node,
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
    accepted: Arc<Mutex<Accepted>>,
    stopped: Stopped,
    tls: bool,
}

/// The connections a server (or an axum endpoint) accepted. Once `closed`, a handshake that
/// finishes late closes its connection at once instead of outliving the server.
#[derive(Debug, Default)]
struct Accepted {
    closed: bool,
    connections: Vec<Weak<Connection>>,
}

impl Accepted {
    /// Keeps `conn`, just accepted, to close it with the others; closes it now if they were
    /// closed while its handshake ran.
    fn keep(accepted: &Mutex<Accepted>, node: &Node, conn: &Arc<Connection>) {
        let mut accepted = lock(accepted);
        // A node that began to stop while the handshake ran takes no new peer.
        if accepted.closed || node.is_draining() || node.is_shut_down() {
            drop(accepted);
            node.forget_connection(conn);
            return;
        }
        accepted.connections.retain(|c| c.strong_count() > 0);
        accepted.connections.push(Arc::downgrade(conn));
    }

    /// Closes every connection kept, and any accepted later.
    fn close(accepted: &Mutex<Accepted>, node: &Node) {
        let connections = {
            let mut accepted = lock(accepted);
            accepted.closed = true;
            std::mem::take(&mut accepted.connections)
        };
        for conn in connections.iter().filter_map(Weak::upgrade) {
            node.forget_connection(&conn);
        }
    }
}

impl Server {
    /// The address it listens on (with the real port when it was asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL a client passes to [`Node::connect`], e.g. `ws://127.0.0.1:40123` (`wss://`
    /// for a server from `Node::listen_tls`, feature `tls`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Completes once the server has stopped: [`Server::shutdown`], or its node shut down
    /// ([`Node::shutdown`], [`Node::shutdown_gracefully`], say from a body or a task that
    /// watches for a signal). A server program awaits it to stay up:
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// let node = remote_scope::Node::builder().id("server").build()?;
    /// let server = node.listen("0.0.0.0:9400").await?;
    /// server.wait().await;
    /// # Ok(()) }
    /// ```
    pub async fn wait(&self) {
        let node = std::pin::pin!(self.node.stopped());
        let own = std::pin::pin!(self.stopped.wait());
        futures::future::select(node, own).await;
    }

    /// Stops accepting and closes every connection this server accepted.
    pub fn shutdown(&self) {
        self.stopped.stop();
        self.accept.abort();
        Accepted::close(&self.accepted, &self.node);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Node {
    /// Listens for WebSocket connections on `addr` (use port 0 for a free port). Each connecting
    /// peer can call this node's bodies, and this node can call theirs.
    ///
    /// Limits for peers not yet known: a new connection has the
    /// [handshake timeout](crate::NodeBuilder::handshake_timeout) for its WebSocket upgrade and
    /// again for its `Hello`, and its first message may be at most 64 KiB (or
    /// [`max_frame_size`](crate::NodeBuilder::max_frame_size) if that is smaller), refused from
    /// its header. At most [`max_connections`](crate::NodeBuilder::max_connections) connections
    /// of this server are in their upgrade or handshake at once; one beyond that is closed as
    /// soon as it is accepted, not queued. A connection leaves that count when its handshake
    /// ends, and if accepted it counts among the node's connections, which are themselves at
    /// most `max_connections`: so the sockets a server holds are at most the node's
    /// connections plus `max_connections` in progress. Handshakes get their own room, rather
    /// than sharing the node's, so that a peer beyond the limit still learns why it was refused
    /// ([`Error::TooManyConnections`]) while there is room to tell it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// let node = remote_scope::Node::builder().id("server").build()?;
    /// let server = node.listen("127.0.0.1:0").await?;
    /// assert!(server.url().starts_with("ws://127.0.0.1:"));
    /// # Ok(()) }
    /// ```
    pub async fn listen(&self, addr: impl ToSocketAddrs) -> Result<Server, Error> {
        self.listen_on(addr, None).await
    }

    /// Listens for WebSocket connections over TLS (`wss://`) on `addr`, presenting `identity`'s
    /// certificate; otherwise as [`Node::listen`], whose limits hold from the first byte (the
    /// TLS handshake is inside the handshake timeout). Feature `tls`.
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use remote_scope::{Node, TlsIdentity};
    ///
    /// let identity = TlsIdentity::from_pem(
    ///     std::fs::read("/etc/ssl/peer/fullchain.pem").expect("certificate chain"),
    ///     std::fs::read("/etc/ssl/peer/key.pem").expect("private key"),
    /// )?;
    /// let node = Node::builder().id("server").build()?;
    /// let server = node.listen_tls("0.0.0.0:443", &identity).await?;
    /// assert!(server.url().starts_with("wss://"));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub async fn listen_tls(
        &self,
        addr: impl ToSocketAddrs,
        identity: &TlsIdentity,
    ) -> Result<Server, Error> {
        self.listen_on(addr, Some(identity.clone())).await
    }

    async fn listen_on(&self, addr: impl ToSocketAddrs, tls: Option<Tls>) -> Result<Server, Error> {
        let (listener, local_addr) = bind(addr).await?;
        let accepted = Arc::new(Mutex::new(Accepted::default()));
        let is_tls = tls.is_some();
        let accept = tokio::spawn(accept_loop(
            self.internal(),
            listener,
            Arc::clone(&accepted),
            tls,
        ));
        tracing::info!(node = %self.id(), %local_addr, "listening");
        Ok(Server {
            // A server keeps its node up: it may be the only handle the application holds.
            node: self.handle(),
            local_addr,
            accept,
            accepted,
            stopped: Stopped::default(),
            tls: is_tls,
        })
    }

    /// Connects to a server peer at `url` (`ws://host:port`, or `wss://host:port` with the
    /// `tls` feature) and returns its id.
    ///
    /// Fails if the server cannot be reached, speaks another protocol version, lacks bodies of
    /// a module this node requires ([`NodeBuilder::require_module`](crate::NodeBuilder::require_module)),
    /// or already has a peer with this node's id.
    ///
    /// Over `wss://` the server's certificate must be signed by one of the system's root
    /// certificates or by one the node was told to trust
    /// ([`NodeBuilder::trust_certificate_pem`](crate::NodeBuilder::trust_certificate_pem)), and
    /// name the URL's host; otherwise the connection fails with [`Error::Transport`], its source
    /// saying why. A node connecting again (a reconnect, say) resumes its TLS session where
    /// the server allows it, instead of a full handshake. Without the `tls` feature a `wss://`
    /// URL fails at once with [`Error::BadUrl`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use remote_scope::{Error, Node};
    ///
    /// let client = Node::builder().build()?;
    /// let refused = client.connect("http://example.invalid").await;
    /// assert!(matches!(refused, Err(Error::BadUrl { .. })));
    /// # Ok(()) }
    /// ```
    pub async fn connect(&self, url: &str) -> Result<PeerId, Error> {
        self.connect_transport(open(url.to_owned(), Dialing::of(self)).await?)
            .await
    }
}

/// What a client dials with, the node's settings for it.
#[derive(Clone)]
struct Dialing {
    limits: Limits,
    /// PEM texts trusted beside the system's roots.
    #[cfg(feature = "tls")]
    trusted: Arc<[Vec<u8>]>,
    headers: Arc<[(String, String)]>,
    #[cfg(feature = "tls")]
    tls: crate::config::ClientTls,
}

impl Dialing {
    fn of(node: &Node) -> Dialing {
        let config = node.config();
        Dialing {
            limits: limits(node),
            #[cfg(feature = "tls")]
            trusted: config.trusted_certificates.clone().into(),
            headers: config.connect_headers.clone().into(),
            #[cfg(feature = "tls")]
            tls: config.client_tls.clone(),
        }
    }
}

/// Whether `name: value` can go into an HTTP request, for
/// [`NodeBuilder::connect_header`](crate::NodeBuilder::connect_header).
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), Error> {
    header(name, value).map(drop)
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let setup = |what: String| Error::Setup { reason: what };
    let parsed_name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| setup(format!("`{name}` is not an HTTP header name")))?;
    // The upgrade's own headers: a second of any would break it.
    let upgrade = [
        "host",
        "connection",
        "upgrade",
        "content-length",
        "transfer-encoding",
    ];
    if upgrade.contains(&parsed_name.as_str()) || parsed_name.as_str().starts_with("sec-websocket-")
    {
        return Err(setup(format!(
            "`{name}` is a header of the WebSocket upgrade itself; it cannot be set"
        )));
    }
    let parsed_value = HeaderValue::from_str(value).map_err(|_| {
        setup(format!(
            "the value given for the header `{name}` is not a valid header value"
        ))
    })?;
    Ok((parsed_name, parsed_value))
}

/// Opens a WebSocket to `url`, its first incoming message held to
/// [`FIRST_MESSAGE_LIMIT`].
/// What dials `url` again and again for [`Node::connect_with_reconnect`]: a new WebSocket each
/// time.
pub(crate) fn dialer(
    node: &Node,
    url: &str,
) -> impl Fn() -> crate::runtime::BoxFuture<'static, Result<WebSocketTransport, Error>> {
    let (url, dialing) = (url.to_owned(), Dialing::of(node));
    move || Box::pin(open(url.clone(), dialing.clone()))
}

/// A TCP listener on `addr`, and the address it got.
async fn bind(addr: impl ToSocketAddrs) -> Result<(TcpListener, SocketAddr), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::transport_caused("could not listen", e))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| Error::transport_caused("could not tell the listening address", e))?;
    Ok((listener, local_addr))
}

/// A server's TLS, if it has it.
#[cfg(feature = "tls")]
type Tls = TlsIdentity;
/// Without the `tls` feature a server has none.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
enum Tls {}

async fn open(url: String, dialing: Dialing) -> Result<WebSocketTransport, Error> {
    let bad = |reason: &str| Error::BadUrl {
        url: url.clone(),
        reason: reason.to_owned(),
    };
    let caused = |e| Error::transport_caused(format!("could not connect to {url}"), e);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| bad(&e.to_string()))?;
    for (name, value) in dialing.headers.iter() {
        let (name, value) = header(name, value)?;
        request.headers_mut().append(name, value);
    }
    let secure = match request.uri().scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("ws") => false,
        Some(scheme) if scheme.eq_ignore_ascii_case("wss") => true,
        _ => return Err(bad("the URL must start with ws:// or wss://")),
    };
    // tungstenite would say "TLS support not compiled in", which reads like a build mistake of
    // this crate's; it is a feature to turn on.
    if secure && cfg!(not(feature = "tls")) {
        return Err(bad(
            "wss:// needs TLS: enable the `tls` feature of remote-scope (or terminate TLS in a \
             proxy in front of the server and connect with ws://)",
        ));
    }
    let host = request
        .uri()
        .host()
        .ok_or_else(|| bad("the URL has no host"))?;
    let port = request
        .uri()
        .port_u16()
        .unwrap_or(if secure { 443 } else { 80 });
    // An IPv6 host keeps its brackets, so this parses as a socket address.
    let tcp = TcpStream::connect(format!("{host}:{port}"))
        .await
        .map_err(|e| caused(e.into()))?;
    let _ = tcp.set_nodelay(true);
    let stream = if secure {
        secured(tcp, host, &dialing).await?
    } else {
        ByteStream::Tcp(tcp)
    };
    upgrade::connect(request, stream, dialing.limits)
        .await
        .map_err(caused)
}

#[cfg(feature = "tls")]
async fn secured(tcp: TcpStream, host: &str, dialing: &Dialing) -> Result<ByteStream, Error> {
    tls::connect(tcp, host, &dialing.tls, &dialing.trusted).await
}

#[cfg(not(feature = "tls"))]
async fn secured(_: TcpStream, _: &str, _: &Dialing) -> Result<ByteStream, Error> {
    unreachable!("wss:// is refused without the `tls` feature before connecting")
}

async fn accept_loop(
    node: Node,
    listener: TcpListener,
    accepted: Arc<Mutex<Accepted>>,
    tls: Option<Tls>,
) {
    // One permit per connection in its upgrade or handshake; see `Node::listen` for the bound.
    let limit = node.config().max_connections.min(Semaphore::MAX_PERMITS);
    let in_progress = Arc::new(Semaphore::new(limit));
    loop {
        let (tcp, from) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if node.is_draining() {
            tracing::debug!(%from, "shutting down; closing a new connection");
            continue;
        }
        // Closed at once rather than queued: a queue would hold the sockets this bound is
        // there to limit.
        let Ok(permit) = Arc::clone(&in_progress).try_acquire_owned() else {
            tracing::debug!(%from, limit, "too many handshakes under way; closing a new connection");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let node = node.clone();
        let accepted = Arc::clone(&accepted);
        let tls = tls.clone();
        tokio::spawn(async move {
            let conn = admit(&node, tcp, from, tls.as_ref()).await;
            // An accepted peer is in the node's table by now and counts against
            // `max_connections` there.
            drop(permit);
            if let Some(conn) = conn {
                Accepted::keep(&accepted, &node, &conn);
            }
        });
    }
}

/// The WebSocket upgrade and the node's handshake of a new connection; the connection if it
/// was accepted.
async fn admit(
    node: &Node,
    tcp: TcpStream,
    from: SocketAddr,
    tls: Option<&Tls>,
) -> Option<Arc<Connection>> {
    // The TLS handshake and the WebSocket upgrade get the handshake's time limit too, so a
    // client that opens TCP and says nothing does not hold the task and its socket forever.
    let limit = node.config().handshake_timeout;
    let upgraded = async {
        let stream = match tls {
            #[cfg(feature = "tls")]
            Some(identity) => identity
                .accept(tcp)
                .await
                .map_err(tokio_tungstenite::tungstenite::Error::Io)?,
            #[cfg(not(feature = "tls"))]
            Some(never) => match *never {},
            None => ByteStream::Tcp(tcp),
        };
        upgrade::accept(stream, limits(node)).await
    };
    let ws = match tokio::time::timeout(limit, upgraded).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%from, error = %e, "WebSocket upgrade failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%from, "WebSocket upgrade timed out");
            return None;
        }
    };
    match node.accept_connection(ws, None).await {
        Ok(conn) => Some(conn),
        Err(e) => {
            tracing::warn!(%from, error = %e, "refused a peer");
            None
        }
    }
}

//! The native WebSocket transport (tokio-tungstenite): [`Node::listen`] and [`Node::connect`].

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::connection::{lock, Connection};
use crate::{Error, Node, PeerId};

/// A WebSocket connection as a [`Transport`](super::Transport): binary messages are frames;
/// pings are answered by tungstenite; a text message is a protocol error.
pub struct WebSocketTransport<S> {
    inner: WebSocketStream<S>,
}

impl<S> WebSocketTransport<S> {
    /// Wraps an established WebSocket.
    pub fn new(inner: WebSocketStream<S>) -> Self {
        WebSocketTransport { inner }
    }
}

fn transport_error(e: tungstenite::Error) -> Error {
    Error::Transport {
        reason: e.to_string(),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocketTransport<S> {
    type Item = Result<bytes::Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let message = match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                ))) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(transport_error(e)))),
                Poll::Ready(Some(Ok(message))) => message,
            };
            return Poll::Ready(match message {
                Message::Binary(bytes) => Some(Ok(bytes)),
                Message::Close(_) => None,
                Message::Text(_) => Some(Err(Error::Protocol {
                    reason: "a text message; frames are binary".into(),
                })),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            });
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<bytes::Bytes> for WebSocketTransport<S> {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner)
            .poll_ready(cx)
            .map_err(transport_error)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: bytes::Bytes) -> Result<(), Error> {
        Pin::new(&mut self.inner)
            .start_send(Message::Binary(frame))
            .map_err(transport_error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner)
            .poll_flush(cx)
            .map_err(transport_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match Pin::new(&mut self.inner).poll_close(cx) {
            Poll::Ready(Err(
                tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
            )) => Poll::Ready(Ok(())),
            other => other.map_err(transport_error),
        }
    }
}

/// The read buffer each connection allocates up front. tungstenite's default (128 KiB) made an
/// idle connection cost a server about 137 KiB; larger messages still arrive whole, the buffer
/// grows for them.
const READ_BUFFER: usize = 16 << 10;

fn ws_config(node: &Node) -> WebSocketConfig {
    let max = node.config().max_frame_size;
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .read_buffer_size(READ_BUFFER)
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
}

/// The connections a server accepted. Once `closed`, a handshake that finishes late closes its
/// connection at once instead of outliving the server.
#[derive(Debug, Default)]
struct Accepted {
    closed: bool,
    connections: Vec<Weak<Connection>>,
}

impl Server {
    /// The address it listens on (with the real port when it was asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL a client passes to [`Node::connect`], e.g. `ws://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.local_addr)
    }

    /// Stops accepting and closes every connection this server accepted.
    pub fn shutdown(&self) {
        self.accept.abort();
        let connections = {
            let mut accepted = lock(&self.accepted);
            accepted.closed = true;
            std::mem::take(&mut accepted.connections)
        };
        for conn in connections.iter().filter_map(Weak::upgrade) {
            self.node.forget_connection(&conn);
        }
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
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// let node = remote_scope::Node::builder().id("server").build()?;
    /// let server = node.listen("127.0.0.1:0").await?;
    /// assert!(server.url().starts_with("ws://127.0.0.1:"));
    /// # Ok(()) }
    /// ```
    pub async fn listen(&self, addr: impl ToSocketAddrs) -> Result<Server, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Transport {
                reason: format!("could not listen: {e}"),
            })?;
        let local_addr = listener.local_addr().map_err(|e| Error::Transport {
            reason: e.to_string(),
        })?;
        let accepted = Arc::new(Mutex::new(Accepted::default()));
        let accept = tokio::spawn(accept_loop(self.clone(), listener, Arc::clone(&accepted)));
        tracing::info!(node = %self.id(), %local_addr, "listening");
        Ok(Server {
            node: self.clone(),
            local_addr,
            accept,
            accepted,
        })
    }

    /// Connects to a server peer at `url` (`ws://host:port`) and returns its id.
    ///
    /// Fails if the server cannot be reached, speaks another protocol version, serves a
    /// different set of bodies (under [`RegistryCheck::Strict`](crate::RegistryCheck)), or
    /// already has a peer with this node's id.
    pub async fn connect(&self, url: &str) -> Result<PeerId, Error> {
        self.connect_transport(open(url.to_owned(), ws_config(self)).await?)
            .await
    }

    /// Connects to a server peer at `url` and keeps the connection: when it is lost, the node
    /// dials again as `policy` says, and calls made meanwhile wait for it (see
    /// [`Node::keep_connected`]).
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
        policy: crate::Reconnect,
    ) -> Result<PeerId, Error> {
        let (url, config) = (url.to_owned(), ws_config(self));
        self.keep_connected(policy, move || open(url.clone(), config))
            .await
    }
}

/// Opens a WebSocket to `url`.
async fn open(
    url: String,
    config: WebSocketConfig,
) -> Result<WebSocketTransport<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>, Error> {
    let (ws, _response) = tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
        .await
        .map_err(|e| Error::Transport {
            reason: format!("could not connect to {url}: {e}"),
        })?;
    Ok(WebSocketTransport::new(ws))
}

async fn accept_loop(node: Node, listener: TcpListener, accepted: Arc<Mutex<Accepted>>) {
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
        let _ = tcp.set_nodelay(true);
        let node = node.clone();
        let accepted = Arc::clone(&accepted);
        tokio::spawn(async move {
            // The WebSocket upgrade gets the handshake's time limit too, so a client that opens
            // TCP and says nothing does not hold the task and its socket forever.
            let limit = node.config().handshake_timeout;
            let upgrade = tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config(&node)));
            let ws = match tokio::time::timeout(limit, upgrade).await {
                Ok(Ok(ws)) => ws,
                Ok(Err(e)) => {
                    tracing::debug!(%from, error = %e, "WebSocket upgrade failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%from, "WebSocket upgrade timed out");
                    return;
                }
            };
            let peer = match node.accept_transport(WebSocketTransport::new(ws)).await {
                Ok(peer) => peer,
                Err(e) => {
                    tracing::warn!(%from, error = %e, "refused a peer");
                    return;
                }
            };
            let Ok(conn) = node.connection(&peer) else {
                return;
            };
            let mut accepted = lock(&accepted);
            if accepted.closed {
                drop(accepted);
                node.forget_connection(&conn);
                return;
            }
            accepted.connections.retain(|c| c.strong_count() > 0);
            accepted.connections.push(Arc::downgrade(&conn));
        });
    }
}

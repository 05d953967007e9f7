//! A TLS listener for `axum::serve` (features `axum` and `tls`): the app's pages and its peers
//! on one `https://`/`wss://` port, with the certificate of a [`TlsIdentity`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::super::TlsIdentity;
use crate::error::Error;

/// How long a connection has for its TLS handshake, unless told otherwise.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many TLS handshakes run at once, unless told otherwise; a connection beyond is closed.
const HANDSHAKES: usize = 1024;

/// Listens on a TCP port and does each connection's TLS handshake before `axum::serve` sees it.
/// Handshakes run side by side, each within a time limit and at most so many at once, so that
/// clients that open connections and say nothing do not hold up the others.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use remote_scope::axum::{Endpoint, TlsListener};
/// use remote_scope::{Node, TlsIdentity};
///
/// let identity = TlsIdentity::from_pem(
///     std::fs::read("/etc/ssl/app/fullchain.pem")?,
///     std::fs::read("/etc/ssl/app/key.pem")?,
/// )?;
/// let node = Node::builder().id("server").build()?;
/// let app = axum::Router::new().route("/peer", Endpoint::new(&node).route());
/// let listener = TlsListener::bind("0.0.0.0:443", &identity).await?;
/// axum::serve(listener, app).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TlsListener {
    local_addr: SocketAddr,
    secured: mpsc::Receiver<(TlsConnection, SocketAddr)>,
    accept: JoinHandle<()>,
}

/// A connection a [`TlsListener`] accepted, its TLS handshake done.
pub struct TlsConnection(Box<tokio_rustls::server::TlsStream<TcpStream>>);

impl std::fmt::Debug for TlsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TlsConnection")
            .field(&self.0.get_ref().0.peer_addr().ok())
            .finish()
    }
}

impl TlsListener {
    /// Listens on `addr` (port 0 for a free port), presenting `identity`'s certificate, with a
    /// handshake limit of 10 s and at most 1024 handshakes at once.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        identity: &TlsIdentity,
    ) -> Result<TlsListener, Error> {
        TlsListener::bind_with(addr, identity, HANDSHAKE_TIMEOUT, HANDSHAKES).await
    }

    /// As [`bind`](TlsListener::bind), with the time a connection has for its TLS handshake
    /// and how many handshakes may run at once.
    pub async fn bind_with(
        addr: impl ToSocketAddrs,
        identity: &TlsIdentity,
        handshake_timeout: Duration,
        handshakes: usize,
    ) -> Result<TlsListener, Error> {
        let (listener, local_addr) = super::super::bind(addr).await?;
        // A small queue: connections wait in the kernel's backlog rather than here when the
        // server is slow to take them.
        let (tx, secured) = mpsc::channel(16);
        let limit = Arc::new(Semaphore::new(handshakes.clamp(1, Semaphore::MAX_PERMITS)));
        let accept = tokio::spawn(accept_loop(
            listener,
            identity.clone(),
            tx,
            limit,
            handshake_timeout,
        ));
        Ok(TlsListener {
            local_addr,
            secured,
            accept,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    identity: TlsIdentity,
    secured: mpsc::Sender<(TlsConnection, SocketAddr)>,
    limit: Arc<Semaphore>,
    timeout: Duration,
) {
    loop {
        let (tcp, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::debug!(%from, "too many TLS handshakes under way; closing a new connection");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (identity, secured) = (identity.clone(), secured.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, identity.accept_tls(tcp)).await {
                Ok(Ok(tls)) => {
                    // The permit is held until the server has taken the connection, so that
                    // finished handshakes do not pile up while it is slow to.
                    let _ = secured.send((TlsConnection(Box::new(tls)), from)).await;
                    drop(permit);
                }
                Ok(Err(e)) => tracing::debug!(%from, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%from, "TLS handshake timed out"),
            }
        });
    }
}

impl ::axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.secured.recv().await {
            Some(accepted) => accepted,
            // The accepting task holds a sender as long as it runs, and it runs until this
            // listener is dropped, unless it panicked.
            None => {
                tracing::error!("the TLS listener's accepting task ended; no more connections");
                std::future::pending().await
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

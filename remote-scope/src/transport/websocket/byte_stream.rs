//! The bytes under a WebSocket: a TCP stream, TLS over one (feature `tls`), or the connection
//! an axum app's HTTP server upgraded (feature `axum`).
//!
//! Plain TCP is read through tokio's own `poll_read`, into the read buffer's spare room: after
//! a read that did not fill the room, tokio knows the socket is drained and waits for it
//! without asking again, where a `try_read` loop makes one more `recv` per message to find
//! that out (`EAGAIN`), a third of the syscalls of a small call. Writes are
//! `try_write_vectored` with a wait for readiness. Each direction has its own waker, so the
//! reader and the writer of one connection never take each other's wake-ups. TLS goes through `tokio-rustls`, whose stream
//! keeps that property (it waits on the TCP stream underneath in the direction it needs), and
//! so does hyper's upgraded connection, whatever the app's listener put under it.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection's byte stream.
pub(crate) enum ByteStream {
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
    /// From an axum route: whatever the app serves HTTP over, with its address if the app
    /// told it (`into_make_service_with_connect_info`, which axum offers for a `TcpListener`).
    #[cfg(feature = "axum")]
    Upgraded(Box<Upgraded>, Option<SocketAddr>),
}

/// hyper's upgraded connection, as tokio's reader and writer.
#[cfg(feature = "axum")]
pub(crate) type Upgraded = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

impl ByteStream {
    pub(super) fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            ByteStream::Tcp(tcp) => tcp.peer_addr().ok(),
            #[cfg(feature = "tls")]
            ByteStream::Tls(tls) => tls.get_ref().0.peer_addr().ok(),
            #[cfg(feature = "axum")]
            ByteStream::Upgraded(_, addr) => *addr,
        }
    }

    /// Reads into the spare room of `buf` (which the caller reserved): `Ok(0)` at the end.
    pub(super) fn poll_read_buf(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        #[cfg(feature = "tls")]
        if let ByteStream::Tls(_) = self {
            // Into a chunk on the stack, then appended: reading TLS straight into the spare
            // room measured slower for large messages (BENCHMARKS.md).
            let mut chunk = [0_u8; 16 << 10];
            let room = buf
                .capacity()
                .saturating_sub(buf.len())
                .clamp(1, chunk.len());
            let read = ready!(self.poll_read_slice(cx, &mut chunk[..room]))?;
            buf.extend_from_slice(&chunk[..read]);
            return Poll::Ready(Ok(read));
        }
        tokio_util::io::poll_read_buf(Pin::new(self), cx, buf)
    }

    /// Reads into `buf`: `Ok(0)` at the end. Through the stream's own `poll_read`, as
    /// [`poll_read_buf`](ByteStream::poll_read_buf) reads TCP, for the same reason.
    pub(super) fn poll_read_slice(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut read = ReadBuf::new(buf);
        ready!(Pin::new(self).poll_read(cx, &mut read))?;
        Poll::Ready(Ok(read.filled().len()))
    }

    /// Writes from `slices`, as much as the stream takes at once.
    pub(super) fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self {
            ByteStream::Tcp(tcp) => when_ready(
                |cx| tcp.poll_write_ready(cx),
                cx,
                || tcp.try_write_vectored(slices),
            ),
            #[cfg(feature = "tls")]
            ByteStream::Tls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, slices),
            #[cfg(feature = "axum")]
            ByteStream::Upgraded(io, _) => Pin::new(&mut **io).poll_write_vectored(cx, slices),
        }
    }

    /// Sends what the stream holds back (TLS records not yet written); nothing for TCP.
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ByteStream::Tcp(_) => {
                let _ = cx;
                Poll::Ready(Ok(()))
            }
            #[cfg(any(feature = "tls", feature = "axum"))]
            _ => Pin::new(self).poll_flush(cx),
        }
    }
}

/// Tries `operation` on a TCP stream until it does not block, waiting for `readiness` in
/// between (the readiness of the one direction the operation needs).
fn when_ready<T>(
    readiness: impl Fn(&mut Context<'_>) -> Poll<io::Result<()>>,
    cx: &mut Context<'_>,
    mut operation: impl FnMut() -> io::Result<T>,
) -> Poll<io::Result<T>> {
    loop {
        match operation() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready!(readiness(cx))?,
            done => return Poll::Ready(done),
        }
    }
}

// tungstenite's upgrade reads and writes through these.
impl AsyncRead for ByteStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ByteStream::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            ByteStream::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
            #[cfg(feature = "axum")]
            ByteStream::Upgraded(io, _) => Pin::new(&mut **io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ByteStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ByteStream::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            ByteStream::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
            #[cfg(feature = "axum")]
            ByteStream::Upgraded(io, _) => Pin::new(&mut **io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ByteStream::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            #[cfg(feature = "tls")]
            ByteStream::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
            #[cfg(feature = "axum")]
            ByteStream::Upgraded(io, _) => Pin::new(&mut **io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ByteStream::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            ByteStream::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
            #[cfg(feature = "axum")]
            ByteStream::Upgraded(io, _) => Pin::new(&mut **io).poll_shutdown(cx),
        }
    }
}

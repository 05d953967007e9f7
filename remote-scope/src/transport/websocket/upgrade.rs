//! The HTTP upgrade, done by tungstenite on a socket that lets it read the HTTP head and not a
//! byte more, so that whatever followed the head (the peer's first frames, when it sent them
//! at once) is handed to [`super::socket`] instead of staying in tungstenite's buffer.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use super::byte_stream::ByteStream;
use super::framing::Role;
use super::socket::{Limits, WebSocketTransport};

/// The socket under tungstenite during the upgrade. Reads stop at the blank line that ends the
/// HTTP head; what came after it is kept in `after_head`.
pub(super) struct HeadOnly<S> {
    inner: S,
    /// The last two bytes of the head read so far, the later one last.
    last: [u8; 2],
    ended: bool,
    after_head: Vec<u8>,
}

impl<S> HeadOnly<S> {
    pub(super) fn new(inner: S) -> Self {
        HeadOnly {
            inner,
            last: [0; 2],
            ended: false,
            after_head: Vec::new(),
        }
    }

    /// The socket, and the bytes read past the HTTP head.
    pub(super) fn into_parts(self) -> (S, Vec<u8>) {
        (self.inner, self.after_head)
    }

    /// Follows `bytes` through the head; the offset just past its end, if it is in them. The
    /// head ends with an empty line: `\r\n\r\n`, or with bare line feeds as httparse also
    /// accepts (`\n\n`, `\n\r\n`).
    fn end_of_head(&mut self, bytes: &[u8]) -> Option<usize> {
        for (at, &byte) in bytes.iter().enumerate() {
            let [before, previous] = self.last;
            if byte == b'\n' && (previous == b'\n' || (previous == b'\r' && before == b'\n')) {
                self.ended = true;
                return Some(at + 1);
            }
            self.last = [previous, byte];
        }
        None
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadOnly<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ended {
            // tungstenite stops reading once it has a whole head; a read beyond it would be a
            // frame taken from the transport.
            return Poll::Ready(Err(io::Error::other(
                "read past the end of the HTTP upgrade",
            )));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        if let Some(end) = this.end_of_head(&buf.filled()[before..]) {
            this.after_head
                .extend_from_slice(&buf.filled()[before + end..]);
            buf.set_filled(before + end);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadOnly<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Takes the socket back from tungstenite after its upgrade.
fn taken_over(
    ws: WebSocketStream<HeadOnly<ByteStream>>,
    role: Role,
    limits: Limits,
) -> WebSocketTransport {
    let (stream, after_head) = ws.into_inner().into_parts();
    WebSocketTransport::new(stream, role, after_head, limits)
}

/// The server's side of the upgrade.
pub(super) async fn accept(
    stream: ByteStream,
    limits: Limits,
) -> Result<WebSocketTransport, WsError> {
    let ws = tokio_tungstenite::accept_async(HeadOnly::new(stream)).await?;
    Ok(taken_over(ws, Role::Server, limits))
}

/// The client's side of the upgrade, on a connected socket.
pub(super) async fn connect(
    request: impl IntoClientRequest + Unpin,
    stream: ByteStream,
    limits: Limits,
) -> Result<WebSocketTransport, WsError> {
    let (ws, _response) = tokio_tungstenite::client_async(request, HeadOnly::new(stream)).await?;
    Ok(taken_over(ws, Role::Client, limits))
}

#[cfg(test)]
mod tests {
    use super::HeadOnly;

    #[test]
    fn the_head_ends_at_its_blank_line_even_when_split() {
        let mut head = HeadOnly::new(());
        assert_eq!(head.end_of_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r"), None);
        assert_eq!(head.end_of_head(b"\n\x82\x80"), Some(1));
    }

    #[test]
    fn bare_line_feeds_end_it_too() {
        let mut head = HeadOnly::new(());
        assert_eq!(
            head.end_of_head(b"GET / HTTP/1.1\nHost: x\n\nframes"),
            Some(24)
        );
        let mut head = HeadOnly::new(());
        assert_eq!(head.end_of_head(b"GET / HTTP/1.1\nHost: x\n\r\n"), Some(25));
    }

    #[test]
    fn a_lone_line_break_does_not_end_it() {
        let mut head = HeadOnly::new(());
        assert_eq!(head.end_of_head(b"GET /\r\n\r\r\n"), None);
        assert_eq!(head.end_of_head(b"\r\n"), Some(2));
    }
}

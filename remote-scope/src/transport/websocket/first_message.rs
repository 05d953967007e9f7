//! The first message a WebSocket peer sends is held to a small limit, checked from its frame
//! headers before tungstenite reserves room for it: until the node's handshake has accepted
//! the peer, it is unknown.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The largest first message either side accepts: that message is the other peer's `Hello` (or
/// a `Reject`), a few hundred bytes plus its token. Until the handshake has checked it, the peer
/// is unknown, and tungstenite reserves room for a whole frame as soon as it has read the
/// frame's header: under `max_frame_size` (64 MiB by default) anyone who can open a socket could
/// make the server set aside that much per connection by sending ten bytes.
pub(super) const FIRST_MESSAGE_LIMIT: usize = 64 << 10;

/// The byte stream under tungstenite. It follows the frame headers of the first WebSocket
/// message as they are read and fails the read once they announce more than `limit` bytes, so an
/// oversized first message is refused from its header, before tungstenite reserves room for it
/// or waits for its payload. From the second message on it only passes bytes through, and
/// tungstenite's own limits (`max_frame_size`) apply.
///
/// Why below tungstenite, and why the first message: tokio-tungstenite 0.30 cannot change the
/// limits of an established `WebSocketStream` (tungstenite's `set_config` is not reachable through
/// it), and above it a message has already been read whole. And the first message is the only one
/// read before the node's handshake has accepted the peer: the handshake reads exactly one
/// message, checks it (version, token, id, registry), and a refused connection is dropped
/// without reading on; only an accepted one reads a second message.
pub(super) struct FirstMessageLimit<S> {
    inner: S,
    scan: Scan,
}

impl<S> FirstMessageLimit<S> {
    /// Wraps a socket before its WebSocket upgrade: the HTTP exchange passes unchecked, frames
    /// start after it.
    pub(super) fn new(inner: S, limit: usize) -> Self {
        FirstMessageLimit {
            inner,
            scan: Scan {
                limit: u64::try_from(limit).unwrap_or(u64::MAX),
                announced: 0,
                phase: Phase::Upgrade { matched: 0 },
            },
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstMessageLimit<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.scan.phase {
            Phase::Done => return Pin::new(&mut this.inner).poll_read(cx, buf),
            Phase::Refused { announced } => return Poll::Ready(Err(this.scan.refusal(announced))),
            _ => {}
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        match this.scan.observe(&buf.filled()[before..]) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(announced) => {
                // Not handed on: tungstenite never sees the header of the refused message.
                buf.set_filled(before);
                Poll::Ready(Err(this.scan.refusal(announced)))
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstMessageLimit<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Where [`FirstMessageLimit`] is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// In the HTTP upgrade; `matched` bytes of the blank line that ends it have gone by.
    Upgrade { matched: usize },
    /// In a frame header; its first `len` bytes are in `head`.
    Header {
        head: [u8; MAX_FRAME_HEADER],
        len: usize,
    },
    /// In the payload of a frame, `left` bytes to go; `last` if it ends the first message.
    Payload { left: u64, last: bool },
    /// The first message has gone by.
    Done,
    /// The first message announced `announced` bytes, more than the limit.
    Refused { announced: u64 },
}

/// Two bytes, up to eight of extended length, four of mask (RFC 6455, 5.2).
const MAX_FRAME_HEADER: usize = 14;

/// The blank line that ends an HTTP head.
const END_OF_HEAD: &[u8] = b"\r\n\r\n";

const NO_HEADER_YET: Phase = Phase::Header {
    head: [0; MAX_FRAME_HEADER],
    len: 0,
};

struct Scan {
    limit: u64,
    /// Payload bytes of the first message announced so far: it may come in fragments.
    announced: u64,
    phase: Phase,
}

/// What [`Scan`] needs from a frame header.
struct FrameHead {
    fin: bool,
    control: bool,
    len: u64,
}

impl Scan {
    /// Follows `bytes`, the next ones read from the socket. `Err` carries the size the first
    /// message announced once that is over the limit.
    fn observe(&mut self, mut bytes: &[u8]) -> Result<(), u64> {
        loop {
            let Some((&byte, rest)) = bytes.split_first() else {
                return match self.phase {
                    Phase::Refused { announced } => Err(announced),
                    _ => Ok(()),
                };
            };
            match &mut self.phase {
                Phase::Done => return Ok(()),
                Phase::Refused { announced } => return Err(*announced),
                Phase::Upgrade { matched } => {
                    *matched = if byte == END_OF_HEAD[*matched] {
                        *matched + 1
                    } else {
                        usize::from(byte == END_OF_HEAD[0])
                    };
                    if *matched == END_OF_HEAD.len() {
                        self.phase = NO_HEADER_YET;
                    }
                    bytes = rest;
                }
                Phase::Header { head, len } => {
                    head[*len] = byte;
                    *len += 1;
                    if let Some(frame) = frame_head(&head[..*len]) {
                        self.phase = self.after_header(frame);
                    }
                    bytes = rest;
                }
                Phase::Payload { left, last } => {
                    let skip = usize::try_from(*left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    *left -= skip as u64;
                    if *left == 0 {
                        self.phase = if *last { Phase::Done } else { NO_HEADER_YET };
                    }
                    bytes = &bytes[skip..];
                }
            }
        }
    }

    fn after_header(&mut self, frame: FrameHead) -> Phase {
        // Control frames (ping, pong, close) may come between the fragments of a message and
        // are not part of it; tungstenite caps them at 125 bytes itself.
        let announced = if frame.control {
            frame.len
        } else {
            self.announced.saturating_add(frame.len)
        };
        if announced > self.limit {
            return Phase::Refused { announced };
        }
        let last = !frame.control && frame.fin;
        if !frame.control {
            self.announced = announced;
        }
        match (frame.len, last) {
            (0, true) => Phase::Done,
            (0, false) => NO_HEADER_YET,
            (left, last) => Phase::Payload { left, last },
        }
    }

    fn refusal(&self, announced: u64) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the first message announces {announced} bytes; at most {} are accepted before \
                 the handshake",
                self.limit
            ),
        )
    }
}

/// The header in `head`, once `head` holds all of it.
fn frame_head(head: &[u8]) -> Option<FrameHead> {
    let [first, second, ..] = *head else {
        return None;
    };
    let extended = match second & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    if head.len() < 2 + extended + mask {
        return None;
    }
    let len = match extended {
        0 => u64::from(second & 0x7F),
        n => head[2..2 + n]
            .iter()
            .fold(0, |len, &b| (len << 8) | u64::from(b)),
    };
    Some(FrameHead {
        fin: first & 0x80 != 0,
        control: first & 0x08 != 0,
        len,
    })
}

/// The limit for a connection with `config`: [`FIRST_MESSAGE_LIMIT`], or less if the node's
/// frame limit is lower.
pub(super) fn first_message_limit(config: &WebSocketConfig) -> usize {
    config
        .max_message_size
        .map_or(FIRST_MESSAGE_LIMIT, |max| max.min(FIRST_MESSAGE_LIMIT))
}

#[cfg(test)]
mod tests {
    use super::{FirstMessageLimit, Phase};

    const LIMIT: usize = 100;

    fn scan() -> FirstMessageLimit<()> {
        FirstMessageLimit::new((), LIMIT)
    }

    /// A masked client frame header announcing `len` bytes.
    fn header(first: u8, len: u64) -> Vec<u8> {
        let mut head = vec![first];
        match len {
            0..=125 => head.push(0x80 | len as u8),
            126..=0xFFFF => {
                head.push(0x80 | 126);
                head.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                head.push(0x80 | 127);
                head.extend_from_slice(&len.to_be_bytes());
            }
        }
        head.extend_from_slice(&[1, 2, 3, 4]);
        head
    }

    const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    const BINARY: u8 = 0x82;

    #[test]
    fn a_first_message_within_the_limit_passes_and_lifts_it() {
        let mut s = scan();
        let mut bytes = UPGRADE.to_vec();
        bytes.extend(header(BINARY, 100));
        bytes.extend([0; 100]);
        // A second message far over the first one's limit: tungstenite's to judge.
        bytes.extend(header(BINARY, 1 << 40));
        assert_eq!(s.scan.observe(&bytes), Ok(()));
        assert_eq!(s.scan.phase, Phase::Done);
    }

    #[test]
    fn an_oversized_first_message_is_refused_from_its_header_even_split_byte_by_byte() {
        let mut s = scan();
        let mut bytes = UPGRADE.to_vec();
        bytes.extend(header(BINARY, 32 << 20));
        let results: Vec<_> = bytes.chunks(1).map(|b| s.scan.observe(b)).collect();
        assert_eq!(results.last(), Some(&Err(32 << 20)));
        assert!(results[..results.len() - 1].iter().all(Result::is_ok));
    }

    #[test]
    fn fragments_count_together_and_control_frames_between_them_do_not() {
        let mut s = scan();
        let mut bytes = UPGRADE.to_vec();
        bytes.extend(header(0x02, 60)); // binary, not final
        bytes.extend([0; 60]);
        bytes.extend(header(0x89, 4)); // ping
        bytes.extend([0; 4]);
        assert_eq!(s.scan.observe(&bytes), Ok(()));
        assert_eq!(s.scan.observe(&header(0x80, 41)), Err(101)); // final continuation
    }

    #[test]
    fn the_http_head_is_not_read_as_frames() {
        let mut s = scan();
        // Bytes that would announce a huge frame if taken for a header, then a split blank line.
        assert_eq!(s.scan.observe(b"GET /\xff\xff HTTP/1.1\r\n\r"), Ok(()));
        assert_eq!(s.scan.observe(b"\n"), Ok(()));
        assert_eq!(s.scan.observe(&header(BINARY, 101)), Err(101));
    }
}

//! An upgraded WebSocket over TCP as a [`Transport`](crate::transport::Transport): frames are
//! read into one buffer and handed on as slices of it, and written from where they lie.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures::{Sink, Stream};
use tokio::io::AsyncWrite;

use super::byte_stream::ByteStream;
use super::framing::{self, Decoder, FramingError, Incoming, Role, NORMAL_CLOSE};
use crate::buffers::{
    FIRST_READ, HIGH_WATER, MAX_RESERVE, READ_CHUNK, STAGING_ROOM, WRITTEN_IN_PLACE,
};
use crate::error::Error;

/// The most buffers handed to one vectored write.
const MAX_IOVECS: usize = 64;

/// The slices of a write that holds few chunks: see `Outgoing::poll_write_queued`.
const FEW_IOVECS: usize = 4;

/// Socket reads and control frames one poll of the stream may take before it yields. Reading
/// with `try_read_buf` does not count against tokio's cooperative budget, so without this a
/// peer that never stops sending (pings, say) would hold a worker thread, and the writer,
/// which waits for the same lock.
const READS_PER_POLL: u32 = 32;

/// The largest message a connection accepts: `first` until its first message has come (the
/// peer's `Hello`, when the peer is still unknown), `after` from then on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) first: usize,
    pub(super) after: usize,
}

/// A WebSocket connection after its upgrade, as [`Node::listen`](crate::Node::listen) and
/// [`Node::connect`](crate::Node::connect) use it.
///
/// Binary messages are frames. Pings are answered; a text message or broken framing is an
/// error that ends the connection.
pub(crate) struct WebSocketTransport {
    stream: ByteStream,
    role: Role,
    decoder: Decoder,
    read: BytesMut,
    /// The limit once the first message has come.
    limit_after_first: Option<usize>,
    /// The last message handed on was larger than a read chunk: the buffer's room is kept
    /// while such messages come.
    large_last: bool,
    /// A large message was handed on and its buffer not yet taken back: it is worth taking
    /// back once the message is gone.
    held_large: bool,
    out: Outgoing,
    /// The peer's close has been read: the stream has ended.
    read_closed: bool,
}

impl std::fmt::Debug for WebSocketTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketTransport")
            .field("role", &self.role)
            .field("peer", &self.stream.peer_addr())
            .finish_non_exhaustive()
    }
}

impl WebSocketTransport {
    /// Takes over `stream` after its upgrade. `after_head` is what was read past the HTTP head.
    pub(super) fn new(stream: ByteStream, role: Role, after_head: Vec<u8>, limits: Limits) -> Self {
        WebSocketTransport {
            stream,
            role,
            decoder: Decoder::new(role, limits.first),
            read: BytesMut::from(&after_head[..]),
            limit_after_first: Some(limits.after),
            large_last: false,
            held_large: false,
            out: Outgoing::new(role),
            read_closed: false,
        }
    }

    /// Reads more bytes into the buffer: `Ok(false)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.read.is_empty() && !self.large_last && self.read.capacity() > 2 * MAX_RESERVE {
            // Large messages came and a small one followed: their room is let go. (It is kept
            // while large messages come, and while the connection is quiet after one.)
            self.read = BytesMut::new();
        }
        // Room for the rest of the message and a chunk more: a buffer grown to one large
        // message then holds the next even if it is a few bytes longer (its call id, say).
        // Grown to the exact size, the buffer would double for every such message, copying
        // what it holds: a tenth of the time of a 1 MiB round trip.
        let wanted = self.decoder.wanted().saturating_sub(self.read.len());
        let room = wanted.min(MAX_RESERVE) + READ_CHUNK;
        if self.held_large && self.read.is_empty() {
            // Asking for more than is left after the last message takes the buffer back from
            // its start: left where that message ended, a message as long would not fit.
            // `bytes` grants it only once nothing else holds the buffer (no copy: it is
            // empty); until then the next message is read apart (`poll_fill_first`).
            let reclaim = room.max(self.read.capacity() + 1);
            if !self.read.try_reclaim(reclaim) {
                return self.poll_fill_first(cx, reclaim, room);
            }
            self.held_large = false;
        }
        self.read.reserve(room);
        let read = ready!(self.stream.poll_read_buf(cx, &mut self.read))?;
        Poll::Ready(Ok(read > 0))
    }

    /// Reads the first bytes of a message while the last, a large one, still holds the read
    /// buffer: onto the stack, and room is found for them only then, when that message may be
    /// gone and its buffer free to take back whole. Reserving at once would start a new buffer
    /// for the next message to grow, copying, and leave the old one to the allocator, which
    /// now and then gives such memory back to the kernel only to fault it in again. Waiting for
    /// readiness is not enough: it stays set until a read finds nothing. `reclaim` is the room
    /// the old buffer is taken back with, `room` that of a new one.
    fn poll_fill_first(
        &mut self,
        cx: &mut Context<'_>,
        reclaim: usize,
        room: usize,
    ) -> Poll<io::Result<bool>> {
        let mut first = [0; FIRST_READ];
        let read = ready!(self.stream.poll_read_slice(cx, &mut first))?;
        if read == 0 {
            return Poll::Ready(Ok(false));
        }
        if !self.read.try_reclaim(reclaim) {
            self.read = BytesMut::with_capacity(room);
        }
        self.held_large = false;
        self.read.extend_from_slice(&first[..read]);
        Poll::Ready(Ok(true))
    }

    /// Sends what the reader owes the peer (a pong, a close), unless the writer is in the
    /// middle of sending: the socket wakes one waiter per direction, and it must stay the
    /// writer's, whose flush takes the reader's frames along.
    fn flush_for_reader(&mut self, cx: &mut Context<'_>) {
        if self.out.reader_owes() && !self.out.writer_waiting {
            // Whatever is left goes out with the next flush, the writer's or this one's.
            let _ = self.out.poll_write(&mut self.stream, cx);
        }
    }
}

fn framing_error(e: FramingError) -> Error {
    match e {
        FramingError::Text => Error::protocol(e.to_string()),
        // Kept whole as the source, as an `io::Error` is.
        _ => Error::transport_caused("the WebSocket framing broke", e),
    }
}

fn io_error(e: io::Error) -> Error {
    Error::transport_caused("the socket failed", e)
}

impl Stream for WebSocketTransport {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.read_closed {
            return Poll::Ready(None);
        }
        // Each message handed on counts against the task's share of tokio's cooperative
        // budget, as a read from tokio's own sockets would: messages taken from a buffer that
        // is already full never touch the socket, so nothing else would count them.
        let coop = ready!(tokio::task::coop::poll_proceed(cx));
        this.flush_for_reader(cx);
        let mut budget = READS_PER_POLL;
        loop {
            if budget == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            match this.decoder.decode(&mut this.read) {
                Err(e) => return Poll::Ready(Some(Err(framing_error(e)))),
                Ok(Some(Incoming::Binary(message))) => {
                    if let Some(limit) = this.limit_after_first.take() {
                        this.decoder.set_limit(limit);
                    }
                    this.large_last = message.len() > READ_CHUNK;
                    this.held_large = this.large_last;
                    coop.made_progress();
                    return Poll::Ready(Some(Ok(message)));
                }
                Ok(Some(Incoming::Ping(payload))) => {
                    budget -= 1;
                    // Only the latest ping is answered (RFC 6455 allows it, 5.5.3), so a peer
                    // that pings and never reads cannot make pongs pile up.
                    this.out.pong = Some(payload);
                    this.flush_for_reader(cx);
                }
                Ok(Some(Incoming::Pong)) => budget -= 1,
                Ok(Some(Incoming::Close(code))) => {
                    this.read_closed = true;
                    // Echo the status code, as RFC 6455 (5.5.1) asks.
                    this.out.close(code.or(Some(NORMAL_CLOSE)));
                    this.flush_for_reader(cx);
                    return Poll::Ready(None);
                }
                Ok(None) => match ready!(this.poll_fill(cx)) {
                    Ok(true) => budget -= 1,
                    Ok(false) if this.read.is_empty() && !this.decoder.in_message() => {
                        return Poll::Ready(None)
                    }
                    Ok(false) => {
                        return Poll::Ready(Some(Err(Error::transport(
                            "the connection ended inside a WebSocket message",
                        ))))
                    }
                    Err(e) => return Poll::Ready(Some(Err(io_error(e)))),
                },
            }
        }
    }
}

impl Sink<Bytes> for WebSocketTransport {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.out.queued() < HIGH_WATER {
            return Poll::Ready(Ok(()));
        }
        self.poll_flush(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Bytes) -> Result<(), Error> {
        self.out.binary(frame);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = &mut *self;
        let written = this.out.poll_write(&mut this.stream, cx);
        // Waiting only while pending: after an error nobody is, and the reader may write.
        this.out.writer_waiting = written.is_pending();
        ready!(written).map_err(io_error)?;
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.out.close(Some(NORMAL_CLOSE));
        ready!(self.as_mut().poll_flush(cx))?;
        match Pin::new(&mut self.stream).poll_shutdown(cx) {
            Poll::Ready(Err(e)) if e.kind() != io::ErrorKind::NotConnected => {
                Poll::Ready(Err(io_error(e)))
            }
            Poll::Ready(_) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// What is queued to be sent, in order: whole buffers in `chunks`, then `staging`, where
/// headers and small frames are gathered; then the pong the reader owes, if any.
#[derive(Debug)]
struct Outgoing {
    /// A client masks its frames (RFC 6455, 5.3).
    masked: bool,
    chunks: VecDeque<Bytes>,
    /// The bytes in `chunks`.
    chunked: usize,
    staging: BytesMut,
    /// The payload of the latest ping not yet answered.
    pong: Option<Bytes>,
    /// A close frame has been queued: nothing more is sent after it.
    closed: bool,
    /// A close frame queued by the reader and not yet written.
    close_owed: bool,
    /// A write the reader started, for a pong or a close, has not finished.
    reader_pending: bool,
    /// The writer's flush is waiting for the socket.
    writer_waiting: bool,
}

impl Outgoing {
    fn new(role: Role) -> Self {
        Outgoing {
            masked: role == Role::Client,
            chunks: VecDeque::new(),
            chunked: 0,
            staging: BytesMut::new(),
            pong: None,
            closed: false,
            close_owed: false,
            reader_pending: false,
            writer_waiting: false,
        }
    }

    /// A fresh mask key for a client's frame: RFC 6455 (10.3) asks for keys a proxy cannot
    /// predict, so they come from a cryptographic generator. One 32-bit draw: an array of four
    /// bytes would be four draws of 32 bits, each cut to a byte.
    fn mask(&self) -> Option<[u8; 4]> {
        self.masked.then(|| rand::random::<u32>().to_ne_bytes())
    }

    fn queued(&self) -> usize {
        self.chunked + self.staging.len()
    }

    fn reader_owes(&self) -> bool {
        self.pong.is_some() || self.close_owed || self.reader_pending
    }

    /// Queues a binary message. After a close frame it is dropped: the connection is closing,
    /// and a frame after a close would break the protocol.
    fn binary(&mut self, frame: Bytes) {
        if self.closed {
            return;
        }
        let mask = self.mask();
        if frame.len() < WRITTEN_IN_PLACE {
            self.room_for(framing::MAX_HEADER + frame.len());
            framing::put_binary(&mut self.staging, &frame, mask);
            return;
        }
        // A client's payload is masked where it lies when nothing else holds it: a copy would
        // cost an allocation as large as the payload, and the page faults of touching it.
        let frame = match mask {
            None => frame,
            Some(key) => match frame.try_into_mut() {
                Ok(mut owned) => {
                    framing::apply_mask(&mut owned, key);
                    owned.freeze()
                }
                Err(shared) => {
                    self.room_for(framing::MAX_HEADER + shared.len());
                    framing::put_binary(&mut self.staging, &shared, mask);
                    return;
                }
            },
        };
        self.room_for(framing::MAX_HEADER);
        framing::binary_header(&mut self.staging, frame.len(), mask);
        self.seal();
        self.chunked += frame.len();
        self.chunks.push_back(frame);
    }

    /// Queues a close frame, unless one is queued already.
    fn close(&mut self, code: Option<u16>) {
        if self.closed {
            return;
        }
        self.put_pong();
        self.closed = true;
        self.close_owed = true;
        let mask = self.mask();
        self.room_for(framing::MAX_HEADER + 2);
        framing::put_close(&mut self.staging, code, mask);
    }

    fn put_pong(&mut self) {
        if let Some(payload) = self.pong.take() {
            if !self.closed {
                let mask = self.mask();
                self.room_for(framing::MAX_HEADER + payload.len());
                framing::put_pong(&mut self.staging, &payload, mask);
            }
        }
    }

    /// Makes room for `len` more bytes in `staging`: what is gathered there is sealed rather
    /// than grown, which would copy it (a batch of many small frames would grow it again and
    /// again).
    fn room_for(&mut self, len: usize) {
        if self.staging.capacity() - self.staging.len() < len {
            self.seal();
            self.staging.reserve(len.max(STAGING_ROOM));
        }
    }

    /// Ends the gathered bytes, so that a buffer can be queued after them.
    fn seal(&mut self) {
        if !self.staging.is_empty() {
            let sealed = self.staging.split().freeze();
            self.chunked += sealed.len();
            self.chunks.push_back(sealed);
        }
    }

    /// Writes everything queued, the reader's frames included.
    fn poll_write(
        &mut self,
        stream: &mut ByteStream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let owed = self.reader_owes();
        self.close_owed = false;
        let mut written = self.poll_write_queued(stream, cx);
        // The pong joins the queue only once the queue has gone out: until then a later ping
        // replaces it, so unread pongs cannot pile up.
        if matches!(written, Poll::Ready(Ok(()))) && self.pong.is_some() {
            self.put_pong();
            written = self.poll_write_queued(stream, cx);
        }
        self.reader_pending = owed && written.is_pending();
        written
    }

    /// Writes `chunks` and `staging`, with as few system calls as the socket allows.
    fn poll_write_queued(
        &mut self,
        stream: &mut ByteStream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        self.seal();
        while !self.chunks.is_empty() {
            // Most flushes hold a chunk or two (a call's frames, or a header and a large
            // payload): an array for those is not the 1 KiB of the largest to clear each time.
            let written = if self.chunks.len() <= FEW_IOVECS {
                poll_write_chunks::<FEW_IOVECS>(&self.chunks, stream, cx)
            } else {
                poll_write_chunks::<MAX_IOVECS>(&self.chunks, stream, cx)
            };
            match ready!(written)? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                written => self.advance(written),
            }
        }
        ready!(stream.poll_flush(cx))?;
        // All written: an idle connection keeps no room for frames; the next frame takes
        // some anew. That is an allocation per flush for calls made one at a time, and 4 KiB
        // less per idle connection (17 KiB in all, BENCHMARKS.md).
        self.staging = BytesMut::new();
        Poll::Ready(Ok(()))
    }

    fn advance(&mut self, mut written: usize) {
        self.chunked -= written;
        while let Some(front) = self.chunks.front_mut() {
            if written < front.len() {
                front.advance(written);
                return;
            }
            written -= front.len();
            self.chunks.pop_front();
        }
    }
}

/// Writes the first `N` of `chunks` (or all, if fewer) with one vectored write.
fn poll_write_chunks<const N: usize>(
    chunks: &VecDeque<Bytes>,
    stream: &mut ByteStream,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let mut slices = [IoSlice::new(&[]); N];
    let mut count = 0;
    for (slot, chunk) in slices.iter_mut().zip(chunks) {
        *slot = IoSlice::new(chunk);
        count += 1;
    }
    stream.poll_write_vectored(cx, &slices[..count])
}

#[cfg(test)]
mod tests {
    use futures::{FutureExt, SinkExt, StreamExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A client and a server transport over a loopback socket, past any upgrade.
    async fn pair() -> (WebSocketTransport, WebSocketTransport) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let limits = Limits {
            first: 4 << 20,
            after: 4 << 20,
        };
        let client = ByteStream::Tcp(client.expect("connect"));
        let client = WebSocketTransport::new(client, Role::Client, vec![], limits);
        let (server, _) = accepted.expect("accept");
        let server = WebSocketTransport::new(ByteStream::Tcp(server), Role::Server, vec![], limits);
        (client, server)
    }

    #[test]
    fn a_client_masks_with_fresh_keys_and_a_server_does_not_mask() {
        let client = Outgoing::new(Role::Client);
        let keys: std::collections::HashSet<[u8; 4]> =
            (0..64).filter_map(|_| client.mask()).collect();
        // 64 draws of 32 bits: a repeat among them is a one-in-two-million chance.
        assert_eq!(keys.len(), 64);
        assert_eq!(Outgoing::new(Role::Server).mask(), None);
    }

    #[test]
    fn small_frames_are_gathered_in_buffers_sealed_when_full_not_grown() {
        let mut out = Outgoing::new(Role::Client);
        let frames: Vec<Bytes> = (0..2_000_u32)
            .map(|n| Bytes::from(n.to_be_bytes().repeat(1 + n as usize % 9)))
            .collect();
        for frame in &frames {
            out.binary(frame.clone());
        }
        out.seal();
        assert!(out.chunks.len() > 1);
        assert!(out.chunks.iter().all(|chunk| chunk.len() <= STAGING_ROOM));
        let mut sent = BytesMut::new();
        for chunk in &out.chunks {
            sent.extend_from_slice(chunk);
        }
        let mut server = Decoder::new(Role::Server, 1 << 20);
        for frame in &frames {
            let read = server.decode(&mut sent).expect("well formed");
            assert_eq!(read, Some(framing::Incoming::Binary(frame.clone())));
        }
        assert!(sent.is_empty());
    }

    #[tokio::test]
    async fn a_connection_that_sent_everything_keeps_no_room_for_frames() {
        let (mut client, mut server) = pair().await;
        client
            .send(Bytes::from_static(b"hello"))
            .await
            .expect("sent");
        assert_eq!(client.out.staging.capacity(), 0);
        let read = server.next().await.expect("a message").expect("whole");
        assert_eq!(&read[..], b"hello");
    }

    #[tokio::test]
    async fn a_large_message_gone_before_the_next_comes_leaves_its_buffer_to_it() {
        let (mut client, mut server) = pair().await;
        let large = |byte| Bytes::from(vec![byte; 100 << 10]);
        client.send(large(1)).await.expect("sent");
        let first = server.next().await.expect("a message").expect("whole");
        let at = first.as_ptr();
        // The reader goes back to the socket while the message is still held, as a
        // connection's reader does, and finds nothing yet: it takes no new room meanwhile.
        let room = server.read.as_ptr();
        assert!(server.next().now_or_never().is_none());
        assert_eq!(
            server.read.as_ptr(),
            room,
            "no buffer started while the message is held"
        );
        drop(first);
        client.send(large(2)).await.expect("sent");
        let second = server.next().await.expect("a message").expect("whole");
        assert_eq!(second, large(2));
        assert_eq!(second.as_ptr(), at, "read into the first message's buffer");
        // Still held when the third comes: that one goes elsewhere, and neither is touched.
        assert!(server.next().now_or_never().is_none());
        client.send(large(3)).await.expect("sent");
        let third = server.next().await.expect("a message").expect("whole");
        assert_eq!((second, third), (large(2), large(3)));
    }

    /// How far the buffer `message` was read into reaches from the message's first byte:
    /// `read` is what is left of that buffer after it.
    fn reach(message: &Bytes, read: &BytesMut) -> usize {
        read.as_ptr() as usize + read.capacity() - message.as_ptr() as usize
    }

    #[tokio::test]
    async fn a_buffer_grown_for_large_messages_holds_the_next_without_growing() {
        let (mut client, mut server) = pair().await;
        // Just under the most a read reserves, and over it: each message is a few bytes longer
        // than the last, as a call's message is when its id needs another byte.
        for size in [MAX_RESERVE - 100, 3 * MAX_RESERVE / 2] {
            let mut first = None;
            for (byte, size) in [(1, size), (2, size + 8), (3, size + 16)] {
                let message = Bytes::from(vec![byte; size]);
                // Sent and read at once: the socket's buffers need not hold a whole message.
                let (sent, read) = tokio::join!(client.send(message.clone()), server.next());
                sent.expect("sent");
                let read = read.expect("a message").expect("whole");
                assert_eq!(read, message);
                let here = (read.as_ptr(), reach(&read, &server.read));
                assert_eq!(
                    *first.get_or_insert(here),
                    here,
                    "read into the first message's buffer, not grown, for {size} bytes"
                );
                drop(read);
                assert!(server.next().now_or_never().is_none());
                assert!(
                    server.read.capacity() > size,
                    "the buffer is kept while large messages come: {} for {size}",
                    server.read.capacity()
                );
            }
        }
        // For the longer messages the buffer doubled once, past twice the most a read reserves
        // for: a small message lets it go.
        client
            .send(Bytes::from_static(b"small"))
            .await
            .expect("sent");
        let small = server.next().await.expect("a message").expect("whole");
        assert_eq!(&small[..], b"small");
        assert!(server.next().now_or_never().is_none());
        assert!(server.read.capacity() < MAX_RESERVE);
    }
}

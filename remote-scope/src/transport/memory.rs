//! An in-memory transport: two connected ends in one process, for tests and for peers that
//! live in the same program.
//!
//! Sending never waits: what one end sends waits in an unbounded queue until the other reads
//! it, so a node's limit on queued bytes (`max_queued_bytes`) does not hold back a peer that
//! stops reading here. Both ends are this program's own, which is why that is acceptable.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::channel::mpsc;
use futures::{Sink, Stream};

use crate::error::Error;

/// One end of an in-memory connection.
#[derive(Debug)]
pub struct MemoryTransport {
    tx: mpsc::UnboundedSender<Bytes>,
    rx: mpsc::UnboundedReceiver<Bytes>,
}

/// Two connected ends: what one sends, the other receives. Closing or dropping one end ends the
/// other's stream.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::{transport::memory, Node};
///
/// let (a, b) = (Node::builder().build()?, Node::builder().build()?);
/// let (end_a, end_b) = memory::pair();
/// let (b_seen_by_a, a_seen_by_b) =
///     futures::try_join!(a.connect_transport(end_a), b.accept_transport(end_b))?;
/// assert_eq!((&b_seen_by_a, &a_seen_by_b), (b.id(), a.id()));
/// # Ok(()) }
/// ```
pub fn pair() -> (MemoryTransport, MemoryTransport) {
    let (a_tx, b_rx) = mpsc::unbounded();
    let (b_tx, a_rx) = mpsc::unbounded();
    (
        MemoryTransport { tx: a_tx, rx: a_rx },
        MemoryTransport { tx: b_tx, rx: b_rx },
    )
}

impl Stream for MemoryTransport {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.rx).poll_next(cx).map(|m| m.map(Ok))
    }
}

impl Sink<Bytes> for MemoryTransport {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Bytes) -> Result<(), Error> {
        self.tx
            .unbounded_send(item)
            .map_err(|_| Error::transport("the other end of the in-memory transport is gone"))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.tx.close_channel();
        Poll::Ready(Ok(()))
    }
}

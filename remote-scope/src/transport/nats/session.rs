//! One session: the frames between this node and one peer, over NATS, as a [`Transport`]
//! the node runs its handshake and calls over, as it does over a WebSocket.
//!
//! Frames the router reads for the session come out of the stream; frames the node sends go
//! to a task that publishes them, in order, on the peer's subject.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::channel::mpsc;
use futures::{Sink, Stream, StreamExt};

use crate::error::Error;
use crate::peer_id::PeerId;

/// The table of sessions a session is kept in (the router's).
pub(super) trait Sessions: Send + Sync {
    /// Takes the session out of the table: the node has let go of it.
    fn forget(&self, key: &(PeerId, u64));
    /// Ends the session with `error`, which the node reads.
    fn end(&self, key: &(PeerId, u64), error: Error);
}

/// How many frames may wait for the node to read them, and for the publisher to send them.
/// Both drain at once in normal use; the bound makes a stalled side push back, not pile up.
pub(super) const QUEUED_FRAMES: usize = 4096;

/// The node's end of a session.
pub(crate) struct Session {
    pub(super) incoming: mpsc::Receiver<Result<Bytes, Error>>,
    /// The bytes of frames in `incoming`, which the router bounds.
    pub(super) queued: Arc<std::sync::atomic::AtomicUsize>,
    pub(super) outgoing: mpsc::Sender<Bytes>,
    /// Takes the session out of the router's table when the node lets go of it.
    pub(super) key: (PeerId, u64),
    pub(super) router: Weak<dyn Sessions>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(router) = self.router.upgrade() {
            router.forget(&self.key);
        }
    }
}

impl Stream for Session {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.incoming.poll_next_unpin(cx);
        if let Poll::Ready(Some(Ok(frame))) = &next {
            self.queued
                .fetch_sub(frame.len(), std::sync::atomic::Ordering::AcqRel);
        }
        next
    }
}

fn gone() -> Error {
    Error::transport("the NATS session has ended")
}

impl Sink<Bytes> for Session {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.outgoing.poll_ready(cx).map_err(|_| gone())
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Bytes) -> Result<(), Error> {
        self.outgoing.start_send(frame).map_err(|_| gone())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // The publisher sends what it is given at once; NATS itself flushes.
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.outgoing.close_channel();
        Poll::Ready(Ok(()))
    }
}

/// Publishes the frames the node sends in one session on `subject`, each with the reply
/// subject `back`, until the node closes the session; then an empty message, which tells the
/// peer that the session has ended (no frame is empty), as a WebSocket's close does.
pub(super) async fn publish(
    client: async_nats::Client,
    subject: String,
    back: String,
    mut frames: mpsc::Receiver<Bytes>,
    router: Arc<dyn Sessions>,
    key: (PeerId, u64),
) {
    let (subject, back) = (
        async_nats::Subject::from(subject),
        async_nats::Subject::from(back),
    );
    while let Some(frame) = frames.next().await {
        if let Err(e) = client
            .publish_with_reply(subject.clone(), back.clone(), frame)
            .await
        {
            tracing::debug!(peer = %key.0, error = %e, "publishing on NATS failed; ending the session");
            router.end(
                &key,
                Error::transport_caused("publishing on NATS failed", e),
            );
            return;
        }
    }
    let _ = client.publish(subject, Bytes::new()).await;
}

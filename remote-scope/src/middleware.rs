//! Middleware: layers every frame of a connection passes through, as in kabel.
//!
//! A node's stack is the list given to [`NodeBuilder::middleware`](crate::NodeBuilder::middleware),
//! outermost first, with the remote layer (invoke, result) at the bottom. An inbound frame goes
//! down the stack from the first middleware to the remote layer; an outbound frame goes up from
//! the remote layer to the first middleware and then onto the wire. A layer may pass a frame on,
//! change it, or consume it (return `None`), and may send frames of its own through the [`Link`].
//! User messages ([`Frame::Message`]) share the connection with calls. The frame is the one
//! [`Frame`] type the codec reads and writes, its byte fields shared with the message as read:
//! passing a frame on copies nothing.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::Error;
use crate::outbox::{Outbox, Outgoing, Refused};
use crate::peer_id::PeerId;
use crate::protocol::Frame;

/// One layer of a connection's stack.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use remote_scope::{protocol::Frame, Link, Middleware};
///
/// /// Counts frames and answers `b"ping"` messages with `b"pong"`.
/// #[derive(Default)]
/// struct Pinger { frames: AtomicUsize }
///
/// impl Middleware for Pinger {
///     fn inbound(&self, link: &Link, frame: Frame) -> Option<Frame> {
///         self.frames.fetch_add(1, Ordering::Relaxed);
///         match frame {
///             Frame::Message(bytes) if bytes == b"ping"[..] => {
///                 let _ = link.send_message(&b"pong"[..]);
///                 None
///             }
///             other => Some(other),
///         }
///     }
/// }
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// A frame arriving from `link.peer()`. Return it (possibly changed) to pass it down.
    fn inbound(&self, link: &Link, frame: Frame) -> Option<Frame> {
        let _ = link;
        Some(frame)
    }

    /// A frame leaving for `link.peer()`. Return it (possibly changed) to pass it up.
    fn outbound(&self, link: &Link, frame: Frame) -> Option<Frame> {
        let _ = link;
        Some(frame)
    }
}

/// A shared layer, so the code that built the stack can keep a handle to it (to read counters,
/// say).
impl<M: Middleware> Middleware for std::sync::Arc<M> {
    fn inbound(&self, link: &Link, frame: Frame) -> Option<Frame> {
        (**self).inbound(link, frame)
    }

    fn outbound(&self, link: &Link, frame: Frame) -> Option<Frame> {
        (**self).outbound(link, frame)
    }
}

/// A middleware's view of one connection.
#[derive(Debug, Clone)]
pub struct Link {
    peer: PeerId,
    outbox: Arc<Outbox>,
}

impl Link {
    pub(crate) fn new(peer: PeerId, outbox: Arc<Outbox>) -> Link {
        Link { peer, outbox }
    }

    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The peer at the other end.
    pub fn peer(&self) -> &PeerId {
        &self.peer
    }

    /// Sends a frame to the peer; it passes the outbound stack like any other.
    pub fn send(&self, frame: Frame) -> Result<(), Error> {
        self.enqueue(Outgoing::Frame(frame))
    }

    pub(crate) fn enqueue(&self, item: Outgoing) -> Result<(), Error> {
        self.outbox.push(item).map_err(|refused| match refused {
            Refused::Closed => Error::NotConnected {
                peer: self.peer.clone(),
            },
            Refused::Full => Error::QueueFull {
                peer: self.peer.clone(),
                limit: u64::try_from(self.outbox.limit()).unwrap_or(u64::MAX),
            },
        })
    }

    /// Closes the outbound queue: the connection's writer finishes and closes the transport.
    pub(crate) fn close(&self) {
        self.outbox.close();
    }

    /// Sends a user message to the peer.
    pub fn send_message(&self, bytes: impl Into<Bytes>) -> Result<(), Error> {
        self.send(Frame::Message(bytes.into()))
    }
}

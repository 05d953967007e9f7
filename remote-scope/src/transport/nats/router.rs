//! The router: reads every frame NATS delivers to this node, hands each to its session, starts
//! a session (and the handshake as the accepting side) for a peer that opens one, and ends a
//! session when NATS says its peer is not there. It is also the node's
//! [`Directory`]: a call to a peer the node holds no connection to opens a session to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::channel::mpsc;
use futures::SinkExt;

use super::presence::Presence;
use super::session::{self, Session, QUEUED_FRAMES};
use super::subjects;
use crate::directory::Directory;
use crate::error::Error;
use crate::handshake::Role;
use crate::node::{Node, WeakNode};
use crate::peer_id::PeerId;
use crate::runtime::BoxFuture;
use crate::sync::lock;

/// How every `Hello` frame begins (`{"Hello": `, see the protocol's pinned layout): only a
/// message that begins so opens a session.
const HELLO: &[u8] = b"\x81\xa5Hello";

/// Room left in a NATS message for what NATS itself adds around a frame (subjects, headers).
const ENVELOPE: usize = 1024;

pub(crate) struct Router {
    pub(super) client: async_nats::Client,
    pub(super) prefix: String,
    pub(super) id: PeerId,
    /// Subjects of frames for this node start with this.
    inbox_base: String,
    /// Subjects of statuses about this node's sessions start with this.
    back_base: String,
    /// The largest frame a session carries: the server's `max_payload`, less the envelope.
    pub(super) max_frame: usize,
    node: WeakNode,
    sessions: Mutex<HashMap<(PeerId, u64), ToNode>>,
    /// The peers on the cluster, from their heartbeats.
    pub(super) presence: Presence,
}

/// Where the router puts the frames of one session for the node to read.
type ToNode = mpsc::Sender<Result<Bytes, Error>>;

impl Router {
    pub(super) fn new(client: async_nats::Client, prefix: String, node: &Node) -> Router {
        let id = node.id().clone();
        let max_frame = client.max_payload().saturating_sub(ENVELOPE).max(1);
        Router {
            inbox_base: subjects::inbox_base(&prefix, &id),
            back_base: subjects::back_base(&prefix, &id),
            client,
            prefix,
            id,
            max_frame,
            node: node.downgrade(),
            sessions: Mutex::default(),
            presence: Presence::default(),
        }
    }

    /// A new session with `peer`, in the table, its publisher running; `first` is a frame the
    /// peer already sent in it.
    fn open(
        self: &Arc<Self>,
        node: &Node,
        peer: PeerId,
        session: u64,
        first: Option<Bytes>,
    ) -> Session {
        let (mut to_node, incoming) = mpsc::channel(QUEUED_FRAMES);
        if let Some(first) = first {
            // A new channel has room for one.
            let _ = to_node.try_send(Ok(first));
        }
        let (outgoing, to_publish) = mpsc::channel(QUEUED_FRAMES);
        let key = (peer, session);
        lock(&self.sessions).insert(key.clone(), to_node);
        let subject = subjects::frames(&self.prefix, &key.0, &self.id, session);
        let back = subjects::back(&self.prefix, &self.id, &key.0, session);
        node.runtime().spawn(Box::pin(session::publish(
            self.client.clone(),
            subject,
            back,
            to_publish,
            Arc::clone(self),
            key.clone(),
        )));
        Session {
            incoming,
            outgoing,
            key,
            router: Arc::downgrade(self),
        }
    }

    /// Takes a session out of the table (its node has let go of it).
    pub(super) fn forget(&self, key: &(PeerId, u64)) {
        lock(&self.sessions).remove(key);
    }

    /// Ends a session with `error`: the node reads it and closes the connection.
    pub(super) fn end(&self, key: &(PeerId, u64), error: Error) {
        if let Some(mut to_node) = lock(&self.sessions).remove(key) {
            // Full means the node is behind on this session; it ends when it reads the close.
            let _ = to_node.try_send(Err(error));
        }
    }

    /// Ends every session: the connection to NATS broke, and frames may have been lost in it.
    pub(super) fn end_all(&self, error: &Error) {
        let sessions: Vec<_> = lock(&self.sessions).drain().collect();
        for (_, mut to_node) in sessions {
            let _ = to_node.try_send(Err(error.clone()));
        }
    }

    /// Hands a frame that arrived on `subject` to its session, or opens the session a peer
    /// starts with it.
    pub(super) async fn deliver(self: &Arc<Self>, subject: &str, frame: Bytes) {
        let Some(key) = subjects::parse_frames(subject, &self.inbox_base) else {
            tracing::debug!(subject, "a NATS message on no session's subject; dropped");
            return;
        };
        if frame.is_empty() {
            // The peer closed the session; dropping the sender ends the node's stream.
            self.forget(&key);
            return;
        }
        let known = lock(&self.sessions).get(&key).cloned();
        match known {
            Some(mut to_node) => {
                // Waits when the node is behind on this session, so NATS buffers, not we.
                if to_node.send(Ok(frame)).await.is_err() {
                    self.forget(&key);
                }
            }
            None if frame.starts_with(HELLO) => self.accept(key, frame),
            // A frame of a session this side no longer has (it ended here while the peer's
            // close was lost, say): tell the peer it is over, so it fails its calls there now.
            None => {
                let back = subjects::frames(&self.prefix, &key.0, &self.id, key.1);
                let _ = self.client.publish(back, Bytes::new()).await;
            }
        }
    }

    /// A peer opened a session: run the handshake as the accepting side.
    fn accept(self: &Arc<Self>, key: (PeerId, u64), first: Bytes) {
        let Some(node) = self.node.live() else {
            return;
        };
        let (peer, session) = key;
        let open = lock(&self.sessions).len();
        // Established sessions are bounded by the node's connection limit; this bounds those
        // still in their handshake too, whatever someone on the cluster sends.
        if open >= node.config().max_connections.saturating_mul(2) {
            tracing::warn!(%peer, open, "too many NATS sessions; a new one is ignored");
            return;
        }
        let transport = self.open(&node, peer.clone(), session, Some(first));
        let max_frame = self.max_frame;
        let task_node = node.clone();
        node.runtime().spawn(Box::pin(async move {
            // A peer whose NATS link broke (or that restarted) opens a new session while this
            // side still holds its old one: the old one goes if it has gone silent, rather
            // than at its keep-alive. One that still answers stays, and the new session is
            // refused as a duplicate, as over a WebSocket. On NATS the sender's id is the
            // subject's, which the cluster's permissions guard (SECURITY.md).
            task_node.replace_if_silent_anyway(&peer).await;
            if let Err(e) = task_node
                .establish_within(transport, Role::Acceptor, max_frame)
                .await
            {
                tracing::debug!(%peer, error = %e, "a NATS session's handshake failed");
            }
        }));
    }

    /// A status NATS sent about one of this node's sessions: "no responders" means its peer
    /// is not subscribed (never was, or has gone).
    pub(super) fn status(&self, subject: &str, status: Option<async_nats::StatusCode>) {
        if status != Some(async_nats::StatusCode::NO_RESPONDERS) {
            return;
        }
        let Some(key) = subjects::parse_back(subject, &self.back_base) else {
            return;
        };
        let error = Error::NotConnected {
            peer: key.0.clone(),
        };
        self.end(&key, error);
    }
}

/// The router as the node's directory.
pub(super) struct Dialer(pub(super) Arc<Router>);

impl Directory for Dialer {
    fn dial(&self, node: &Node, peer: &PeerId) -> BoxFuture<'static, Result<PeerId, Error>> {
        let router = Arc::clone(&self.0);
        let node = node.clone();
        let peer = peer.clone();
        Box::pin(async move { router.dial(&node, &peer).await })
    }

    fn members(&self, pool: &crate::Pool) -> Vec<PeerId> {
        self.0.presence.members(pool)
    }

    fn pick(
        &self,
        node: &Node,
        pool: &crate::Pool,
        tried: &[PeerId],
    ) -> BoxFuture<'static, Result<PeerId, Error>> {
        let router = Arc::clone(&self.0);
        let (node, pool, tried) = (node.clone(), pool.clone(), tried.to_vec());
        Box::pin(async move { super::pools::pick(&router, &node, &pool, &tried).await })
    }
}

impl Router {
    /// Opens a session to `peer` and runs the handshake as the connecting side. Right after a
    /// peer joins, its subscription may not have reached every server of the cluster yet, so
    /// "no responders" is believed only once it has lasted [`INTEREST_GRACE`].
    pub(super) async fn dial(
        self: &Arc<Self>,
        node: &Node,
        peer: &PeerId,
    ) -> Result<PeerId, Error> {
        if *peer == self.id {
            return Err(Error::DuplicatePeer { peer: peer.clone() });
        }
        let started = node.runtime().now();
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            let session = crate::random::random_u64();
            let transport = self.open(node, peer.clone(), session, None);
            match node
                .establish_within(transport, Role::Connector, self.max_frame)
                .await
            {
                Err(Error::NotConnected { .. })
                    if node.runtime().now().saturating_sub(started) < INTEREST_GRACE =>
                {
                    node.runtime().sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }
}

/// How long "no responders" from a peer's subject may be the cluster still spreading a new
/// subscription between its servers, rather than the peer's absence.
pub(crate) const INTEREST_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

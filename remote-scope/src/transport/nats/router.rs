//! The router: reads every frame NATS delivers to this node, hands each to its session, starts
//! a session (and the handshake as the accepting side) for a peer that opens one, and ends a
//! session when NATS says its peer is not there. It is also the node's
//! [`Directory`]: a call to a peer the node holds no connection to opens a session to it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;

use super::presence::Presence;
use super::session::{self, Session, Sessions, QUEUED_FRAMES};
use super::subjects;
use crate::error::Error;
use crate::node::{Node, WeakNode};
use crate::peer_id::PeerId;
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
    /// How often this node beats.
    pub(super) heartbeat: Duration,
    /// Set by [`Nats::leave`](super::Nats::leave): no more heartbeats.
    left: AtomicBool,
    /// Peers this node is dialling, and peers whose sessions it is accepting (in their
    /// handshake), with how many of each: two nodes that dial each other at once keep the
    /// session the lower id opened.
    handshakes: Mutex<Handshakes>,
}

#[derive(Default)]
struct Handshakes {
    dialling: HashMap<PeerId, usize>,
    accepting: HashMap<PeerId, usize>,
}

/// Counts a handshake under way in one of the maps of [`Handshakes`] while it lives.
struct Underway {
    router: Arc<Router>,
    peer: PeerId,
    dialling: bool,
}

impl Underway {
    fn new(router: &Arc<Router>, peer: &PeerId, dialling: bool) -> Underway {
        let mut handshakes = lock(&router.handshakes);
        let map = if dialling {
            &mut handshakes.dialling
        } else {
            &mut handshakes.accepting
        };
        *map.entry(peer.clone()).or_insert(0) += 1;
        Underway {
            router: Arc::clone(router),
            peer: peer.clone(),
            dialling,
        }
    }
}

impl Drop for Underway {
    fn drop(&mut self) {
        let mut handshakes = lock(&self.router.handshakes);
        let map = if self.dialling {
            &mut handshakes.dialling
        } else {
            &mut handshakes.accepting
        };
        if let Some(n) = map.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.peer);
            }
        }
    }
}

/// Sessions a peer may have in their handshake at once; more from it are ignored.
const HANDSHAKES_PER_PEER: usize = 4;

/// Where the router puts the frames of one session for the node to read, and the bytes of
/// them the node has not read yet.
#[derive(Clone)]
struct ToNode {
    frames: mpsc::Sender<Result<Bytes, Error>>,
    queued: Arc<AtomicUsize>,
}

impl Sessions for Router {
    /// Takes a session out of the table (its node has let go of it).
    fn forget(&self, key: &(PeerId, u64)) {
        lock(&self.sessions).remove(key);
    }

    /// Ends a session with `error`: the node reads it and closes the connection.
    fn end(&self, key: &(PeerId, u64), error: Error) {
        if let Some(mut to_node) = lock(&self.sessions).remove(key) {
            // Full means the node is behind on this session; dropping the sender ends it
            // after what is queued.
            let _ = to_node.frames.try_send(Err(error));
        }
    }
}

impl Router {
    pub(super) fn new(
        client: async_nats::Client,
        prefix: String,
        heartbeat: Duration,
        node: &Node,
    ) -> Router {
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
            heartbeat,
            left: AtomicBool::new(false),
            handshakes: Mutex::default(),
        }
    }

    /// The node leaves the cluster: it beats no more.
    pub(super) fn leave(&self) {
        self.left.store(true, Ordering::Release);
    }

    pub(super) fn has_left(&self) -> bool {
        self.left.load(Ordering::Acquire)
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
        let (mut frames, incoming) = mpsc::channel(QUEUED_FRAMES);
        let queued = Arc::new(AtomicUsize::new(0));
        if let Some(first) = first {
            // A new channel has room for one.
            queued.fetch_add(first.len(), Ordering::AcqRel);
            let _ = frames.try_send(Ok(first));
        }
        let to_node = ToNode {
            frames,
            queued: Arc::clone(&queued),
        };
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
            Arc::clone(self) as Arc<dyn Sessions>,
            key.clone(),
        )));
        Session {
            incoming,
            queued,
            outgoing,
            key,
            router: Arc::downgrade(&(Arc::clone(self) as Arc<dyn Sessions>)),
        }
    }

    /// Ends every session: the connection to NATS broke, and frames may have been lost in it.
    pub(super) fn end_all(&self, error: &Error) {
        let sessions: Vec<_> = lock(&self.sessions).drain().collect();
        for (_, mut to_node) in sessions {
            let _ = to_node.frames.try_send(Err(error.clone()));
        }
    }

    /// Hands a frame that arrived on `subject` to its session, or opens the session a peer
    /// starts with it.
    pub(super) fn deliver(self: &Arc<Self>, subject: &str, frame: Bytes) {
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
                // The router never waits for one session, or it would hold up all the others
                // (and NATS would drop messages): a session whose node is that far behind
                // (its queue bound, or the frames behind it) ends instead.
                let limit = self.node.live().map_or(0, |n| n.config().max_queued_bytes);
                let queued = to_node.queued.fetch_add(frame.len(), Ordering::AcqRel);
                if queued + frame.len() > limit {
                    self.end(
                        &key,
                        Error::transport(format!(
                            "the node did not read its NATS session with `{}` ({queued} bytes queued)",
                            key.0
                        )),
                    );
                    return;
                }
                match to_node.frames.try_send(Ok(frame)) {
                    Ok(()) => {}
                    Err(e) if e.is_full() => self.end(
                        &key,
                        Error::transport(format!(
                            "the node did not read its NATS session with `{}` ({QUEUED_FRAMES} frames queued)",
                            key.0
                        )),
                    ),
                    Err(_) => self.forget(&key),
                }
            }
            None if frame.starts_with(HELLO) => self.accept(key, frame),
            // A frame of a session this side no longer has (it ended here while the peer's
            // close was lost, say): tell the peer it is over, so it fails its calls there now.
            None => {
                if let Some(node) = self.node.live() {
                    self.tell_closed(&node, &key);
                }
            }
        }
    }

    /// Tells the peer of session `key` that it is over here: the empty message a session's
    /// publisher sends when it closes.
    fn tell_closed(&self, node: &Node, key: &(PeerId, u64)) {
        let back = subjects::frames(&self.prefix, &key.0, &self.id, key.1);
        let client = self.client.clone();
        node.runtime().spawn(Box::pin(async move {
            let _ = client.publish(back, Bytes::new()).await;
        }));
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
        {
            let handshakes = lock(&self.handshakes);
            let busy = handshakes.accepting.get(&peer).copied().unwrap_or(0);
            if busy >= HANDSHAKES_PER_PEER {
                tracing::warn!(%peer, busy, "too many NATS sessions in their handshake from one peer; a new one is ignored");
                return;
            }
            // Both sides dial at once: the session the lower id opened wins, on both sides.
            if handshakes.dialling.contains_key(&peer) && self.id < peer {
                drop(handshakes);
                self.tell_closed(&node, &(peer, session));
                return;
            }
        }
        let transport = self.open(&node, peer.clone(), session, Some(first));
        let max_frame = self.max_frame;
        let task_node = node.clone();
        // Counted from now, not from when the task runs: a dial of this peer that fails next
        // must see it.
        let underway = Underway::new(self, &peer, false);
        node.runtime().spawn(Box::pin(async move {
            let _underway = underway;
            // The sender's id is the subject's, which the cluster's permissions guard
            // (SECURITY.md): the handshake holds the `Hello` to it, and a peer whose NATS link
            // broke (or that restarted) replaces its old session here if that has gone silent.
            if let Err(e) = task_node.accept_within(transport, max_frame, &peer).await {
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
        // The peer is opening a session to this node: that one will do.
        if self.await_accepted(node, peer, Duration::ZERO).await {
            return Ok(peer.clone());
        }
        let started = node.runtime().now();
        let mut pause = std::time::Duration::from_millis(5);
        let dialled = loop {
            let session = crate::random::random_u64();
            let transport = self.open(node, peer.clone(), session, None);
            let underway = Underway::new(self, peer, true);
            let dialled = node.connect_within(transport, self.max_frame, peer).await;
            drop(underway);
            match dialled {
                Err(Error::NotConnected { .. })
                    if node.runtime().now().saturating_sub(started) < INTEREST_GRACE =>
                {
                    node.runtime().sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                other => break other,
            }
        };
        if dialled.is_ok() || self.id < *peer {
            return dialled;
        }
        // The peer dialled this node at the same time, and its session (the lower id's)
        // wins: this one was refused or lost the race; wait for that one's handshake.
        // Its `Hello` may be on the way still: its own frames and its refusal of this session
        // leave it by different tasks.
        if self.await_accepted(node, peer, INTEREST_GRACE).await {
            return Ok(peer.clone());
        }
        dialled
    }

    /// Waits for the sessions `peer` is opening to this node to finish their handshake, and
    /// for one to begin within `grace`; whether the node is connected to it then.
    async fn await_accepted(&self, node: &Node, peer: &PeerId, grace: Duration) -> bool {
        let now = node.runtime().now();
        let (begun_by, deadline) = (now + grace, now + node.config().handshake_timeout);
        loop {
            let now = node.runtime().now();
            if node.is_connected(peer) || now >= deadline {
                break;
            }
            let accepting = lock(&self.handshakes).accepting.contains_key(peer);
            if !accepting && now >= begun_by {
                break;
            }
            node.runtime().sleep(Duration::from_millis(5)).await;
        }
        node.is_connected(peer)
    }
}

/// How long "no responders" from a peer's subject may be the cluster still spreading a new
/// subscription between its servers, rather than the peer's absence.
pub(crate) const INTEREST_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

//! register-scope: the first frames each way, checked before any call can be made: the
//! `Hello`s, and the lists of bodies when the two peers serve different ones.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{Sink, SinkExt, Stream, StreamExt};

use crate::connection::Connection;
use crate::contract::{self, PeerBodies};
use crate::error::{Cause, Error};
use crate::node::Node;
use crate::peer_id::PeerId;
use crate::protocol::{self, Bodies, Frame, Hello, Limits, Reject, PROTOCOL_VERSION};
use crate::tasks::spawn_tasks;
use crate::transport::Transport;

/// Every binary that connects to peers serves the library's own bodies: the health probe
/// ([`patterns::health`](crate::patterns::health)) and the delivery of a stream's items
/// ([`streams`](crate::streams)). The linker keeps only the parts of a crate that something it
/// keeps refers to, and a body's registration is found by no reference, so this holds on to
/// theirs. (Without it, two builds could differ in having them, and their lists of bodies with
/// them.)
#[used]
static LIBRARY_BODIES: [fn() -> &'static str; 2] =
    [crate::patterns::health_body, crate::streams::delivery_body];

/// Which side of the connection this peer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Sends its `Hello` first, then reads the answer.
    Connector,
    /// Reads the connector's `Hello`, checks it, answers with `Hello` or `Reject`.
    Acceptor,
}

/// This node's `Hello`, telling frames of at most `max_frame_size` bytes (the node's own limit,
/// or less where the transport carries less).
pub(crate) fn hello(node: &Node, max_frame_size: usize) -> Frame {
    Frame::Hello(Hello {
        version: PROTOCOL_VERSION,
        peer: node.id().clone(),
        digest: node.registry().digest(),
        bodies: u32::try_from(node.registry().len()).unwrap_or(u32::MAX),
        token: node.config().token.clone(),
        limits: Limits {
            max_frame_size: u64::try_from(max_frame_size).unwrap_or(u64::MAX),
            max_capture_size: u64::try_from(node.config().max_capture_size).unwrap_or(u64::MAX),
        },
        pools: node.config().pools.clone(),
    })
}

/// Reads the next frame of the handshake, within the handshake timeout.
pub(crate) async fn first_frame<Rx>(node: &Node, stream: &mut Rx) -> Result<Frame, Error>
where
    Rx: Stream<Item = Result<bytes::Bytes, Error>> + Unpin,
{
    let timeout = node.config().handshake_timeout;
    let next = stream.next();
    let sleep = node.runtime().sleep(timeout);
    let bytes = match futures::future::select(next, sleep).await {
        futures::future::Either::Left((Some(bytes), _)) => bytes?,
        futures::future::Either::Left((None, _)) => {
            return Err(handshake_error(&format!(
                "the connection closed before the handshake finished (a peer that speaks \
                 another protocol version than {PROTOCOL_VERSION} closes it so)"
            )))
        }
        futures::future::Either::Right(_) => {
            return Err(handshake_error(&format!(
                "no handshake within {}",
                crate::error::Lasting(timeout)
            )))
        }
    };
    protocol::decode(bytes, node.config().max_frame_size).map_err(|e| Error::Handshake {
        peer: None,
        reason: format!("the first frame is not a protocol-{PROTOCOL_VERSION} hello"),
        source: Some(Cause::new(e)),
    })
}

/// What the transport itself proves about the peer's id, beyond what its `Hello` claims.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Proof<'a> {
    /// Nothing: the claim stands if the node's authentication accepts its token.
    Claimed,
    /// The frames come from this id's NATS subject, which the cluster's permissions guard: the
    /// `Hello` must name it, and its token is checked as any other.
    Subject(&'a PeerId),
    /// The web app checked the upgrade request's session and named the peer (feature `axum`):
    /// the `Hello` must name it, and no token is asked for, the app's check having taken the
    /// token's place.
    Session(&'a PeerId),
}

/// The checks both sides apply to the other's `Hello`; `Err` carries the rejection to send.
pub(crate) fn check(node: &Node, hello: &Hello, proof: Proof<'_>) -> Result<(), (Reject, Error)> {
    // First: an invalid id goes into no error and no log.
    if !hello.peer.is_valid() {
        return Err((
            Reject::InvalidPeerId,
            Error::Handshake {
                peer: None,
                reason: hello.peer.refusal(),
                source: None,
            },
        ));
    }
    if hello.version != PROTOCOL_VERSION {
        return Err((
            Reject::ProtocolVersion {
                ours: PROTOCOL_VERSION,
            },
            Error::ProtocolVersion {
                peer: Some(hello.peer.clone()),
                ours: PROTOCOL_VERSION,
                theirs: hello.version,
            },
        ));
    }
    // Before anything that would tell an unknown peer about this node's state. A peer a web
    // session named is authenticated by the session, and only as the peer it names; it learns
    // nothing more than a peer with a wrong token would.
    let authenticated = match proof {
        Proof::Session(named) => *named == hello.peer,
        Proof::Claimed | Proof::Subject(_) => {
            node.authenticates(&hello.peer, hello.token.as_deref())
        }
    };
    if !authenticated {
        return Err((
            Reject::NotAuthenticated,
            Error::NotAuthenticated {
                peer: hello.peer.clone(),
            },
        ));
    }
    if hello.peer == *node.id() {
        return Err((
            Reject::DuplicatePeer,
            Error::DuplicatePeer {
                peer: hello.peer.clone(),
            },
        ));
    }
    Ok(())
}

/// The bodies this build requires (by module or by name) that the peer does not serve, as
/// `name (site)`; empty when it serves them all.
fn lacking(node: &Node, theirs: &PeerBodies) -> Vec<String> {
    let config = node.config();
    let by_module = config
        .required_modules
        .iter()
        .flat_map(|module| theirs.lacking(node.registry(), module))
        .map(|r| format!("{} ({})", r.name(), r.site()));
    let by_name = config
        .required_bodies
        .iter()
        .filter(|name| !theirs.serves(name))
        .map(|name| match node.registry().registration(name) {
            Some(r) => format!("{} ({})", r.name(), r.site()),
            None => (*name).to_owned(),
        });
    let mut lacking: Vec<String> = by_module.chain(by_name).collect();
    crate::sort::sort(&mut lacking);
    lacking.dedup();
    lacking
}

/// The connector's view of a `Reject` from the acceptor, whose id it does not know.
pub(crate) fn rejected(node: &Node, reject: Reject) -> Error {
    match reject {
        Reject::ProtocolVersion { ours } => Error::ProtocolVersion {
            peer: None,
            ours: PROTOCOL_VERSION,
            theirs: ours,
        },
        Reject::MissingBodies { missing } => Error::RequiredBodies {
            peer: None,
            missing,
        },
        Reject::DuplicatePeer => Error::DuplicatePeer {
            peer: node.id().clone(),
        },
        Reject::TooManyConnections { limit } => Error::TooManyConnections { peer: None, limit },
        Reject::NotAuthenticated => Error::NotAuthenticated {
            peer: node.id().clone(),
        },
        Reject::InvalidPeerId => handshake_error(&node.id().refusal()),
    }
}

pub(crate) async fn send<Tx>(sink: &mut Tx, frame: &Frame) -> Result<(), Error>
where
    Tx: Sink<bytes::Bytes, Error = Error> + Unpin,
{
    sink.send(protocol::encode(frame)?).await
}

/// A handshake that failed before the other peer's id was known.
pub(crate) fn handshake_error(reason: &str) -> Error {
    Error::Handshake {
        peer: None,
        reason: reason.to_owned(),
        source: None,
    }
}

/// Takes a connection out of the node again unless the handshake that added it finishes.
struct Unfinished<'a> {
    node: &'a Node,
    conn: &'a Arc<Connection>,
    armed: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.node.forget_connection(self.conn);
        }
    }
}

impl Node {
    /// Runs the handshake as the connecting side over any transport and keeps the connection.
    /// Returns the peer's id. [`Node::connect`] does this over a WebSocket.
    pub async fn connect_transport(&self, transport: impl Transport) -> Result<PeerId, Error> {
        self.establish(
            transport,
            Role::Connector,
            self.config().max_frame_size,
            Proof::Claimed,
        )
        .await
        .map(|conn| conn.peer().clone())
    }

    /// Runs the handshake as the accepting side over any transport and keeps the connection.
    /// Returns the peer's id. [`Node::listen`] does this for each WebSocket connection.
    pub async fn accept_transport(&self, transport: impl Transport) -> Result<PeerId, Error> {
        self.accept_connection(transport, None)
            .await
            .map(|conn| conn.peer().clone())
    }

    /// [`accept_transport`](Node::accept_transport), giving the connection itself (for a
    /// server that closes the connections it accepted, which a later one of the same id may
    /// have replaced by the time it looks the id up); with the peer a web app's session check
    /// named, if one did (feature `axum`).
    pub(crate) async fn accept_connection(
        &self,
        transport: impl Transport,
        session: Option<&PeerId>,
    ) -> Result<Arc<Connection>, Error> {
        let proof = match session {
            Some(named) => Proof::Session(named),
            None => Proof::Claimed,
        };
        self.establish(
            transport,
            Role::Acceptor,
            self.config().max_frame_size,
            proof,
        )
        .await
    }

    /// The handshake over a transport that carries messages of at most `max_message` bytes
    /// (the peer is told the smaller of that and this node's frame limit, so that it sends
    /// nothing larger) and that itself proves the peer is `from` (a NATS subject the cluster's
    /// permissions guard): a `Hello` that names another id is refused, and a silent connection
    /// of that id is replaced as where ids are proven by tokens.
    #[cfg_attr(
        not(all(feature = "nats", not(target_arch = "wasm32"))),
        allow(dead_code)
    )]
    pub(crate) async fn connect_within(
        &self,
        transport: impl Transport,
        max_message: usize,
        from: &PeerId,
    ) -> Result<PeerId, Error> {
        self.within(transport, Role::Connector, max_message, from)
            .await
    }

    /// [`connect_within`](Node::connect_within) as the accepting side.
    #[cfg_attr(
        not(all(feature = "nats", not(target_arch = "wasm32"))),
        allow(dead_code)
    )]
    pub(crate) async fn accept_within(
        &self,
        transport: impl Transport,
        max_message: usize,
        from: &PeerId,
    ) -> Result<PeerId, Error> {
        self.within(transport, Role::Acceptor, max_message, from)
            .await
    }

    async fn within(
        &self,
        transport: impl Transport,
        role: Role,
        max_message: usize,
        from: &PeerId,
    ) -> Result<PeerId, Error> {
        let limit = self.config().max_frame_size.min(max_message);
        self.establish(transport, role, limit, Proof::Subject(from))
            .await
            .map(|conn| conn.peer().clone())
    }

    async fn establish(
        &self,
        transport: impl Transport,
        role: Role,
        max_frame_size: usize,
        proof: Proof<'_>,
    ) -> Result<Arc<Connection>, Error> {
        let (mut sink, mut stream) = transport.split();
        if role == Role::Connector {
            self.in_time(send(&mut sink, &hello(self, max_frame_size)))
                .await?;
        }
        let theirs = match first_frame(self, &mut stream).await? {
            Frame::Hello(hello) => hello,
            Frame::Reject(reject) if role == Role::Connector => return Err(rejected(self, reject)),
            other => {
                return Err(handshake_error(&format!(
                    "expected a hello, got a {} frame",
                    other.kind()
                )))
            }
        };
        let refusal = match check(self, &theirs, proof) {
            Err((reject, error)) => Some((reject, error)),
            Ok(()) => match proof {
                Proof::Subject(from) if *from != theirs.peer => Some((
                    Reject::InvalidPeerId,
                    handshake_error(&format!(
                        "the hello names the peer `{}`, but its frames come from `{from}`",
                        theirs.peer
                    )),
                )),
                _ => None,
            },
        };
        let conn = Connection::new(
            theirs.peer.clone(),
            self.middleware().is_empty(),
            theirs.limits,
            theirs.pools.clone(),
            Arc::clone(self.once()),
            self.config().max_queued_bytes,
            Arc::clone(self.queued()),
        );
        if refusal.is_none() {
            match proof {
                Proof::Claimed => self.replace_if_silent(&theirs.peer).await,
                Proof::Subject(_) => self.replace_if_silent_anyway(&theirs.peer).await,
                // Only a connection a session named too: a session must not evict a peer that
                // proved the same id another way.
                Proof::Session(_) => {
                    let by_session = self
                        .connection(&theirs.peer)
                        .is_ok_and(|old| old.by_session.load(Ordering::Relaxed));
                    if by_session {
                        self.replace_if_silent_anyway(&theirs.peer).await;
                    }
                }
            }
        }
        conn.by_session
            .store(matches!(proof, Proof::Session(_)), Ordering::Relaxed);
        let refusal = refusal.or_else(|| self.insert_connection(&conn).err());
        if let Some((reject, error)) = refusal {
            if role == Role::Acceptor {
                let refuse = Frame::Reject(reject);
                let _ = self.in_time(send(&mut sink, &refuse)).await;
            }
            let _ = self.in_time(sink.close()).await;
            return Err(error);
        }
        // From here the connection is in the table: if this future is dropped or fails before
        // its tasks run, the guard takes it out again, so no peer is left half-connected.
        let mut guard = Unfinished {
            node: self,
            conn: &conn,
            armed: true,
        };
        if role == Role::Acceptor {
            self.in_time(send(&mut sink, &hello(self, max_frame_size)))
                .await?;
        }
        let peer_bodies = self
            .in_time(self.exchange_bodies(role, &theirs, &mut sink, &mut stream))
            .await;
        let peer_bodies = match peer_bodies {
            Ok(bodies) => bodies,
            Err(e) => {
                let _ = self.in_time(sink.close()).await;
                return Err(e);
            }
        };
        conn.set_peer_bodies(peer_bodies);
        // Calls waiting for this peer go out now, checked against what it serves.
        self.connected(&theirs.peer);
        self.announce_connected(&conn, &theirs.pools);
        guard.armed = false;
        tracing::debug!(node = %self.id(), peer = %theirs.peer, "connected");
        spawn_tasks(self, &conn, sink, stream);
        drop(guard);
        Ok(conn)
    }

    /// What the peer serves: the same as this node when the digests agree; else what the lists
    /// the two exchange say, the connector's first. Each side refuses the other, with
    /// `Reject::MissingBodies`, if it lacks bodies of a module it requires.
    async fn exchange_bodies<Tx, Rx>(
        &self,
        role: Role,
        theirs: &Hello,
        sink: &mut Tx,
        stream: &mut Rx,
    ) -> Result<PeerBodies, Error>
    where
        Tx: Sink<bytes::Bytes, Error = Error> + Unpin,
        Rx: Stream<Item = Result<bytes::Bytes, Error>> + Unpin,
    {
        if theirs.digest == self.registry().digest() {
            return Ok(PeerBodies::Same);
        }
        let ours = Frame::Bodies(Bodies {
            entries: contract::advertise(self.registry()),
        });
        if role == Role::Connector {
            send(sink, &ours).await?;
        }
        let listed = match first_frame(self, stream).await? {
            Frame::Bodies(bodies) => {
                PeerBodies::listed(self.registry(), &bodies.entries, theirs.bodies)?
            }
            Frame::Reject(Reject::MissingBodies { missing }) => {
                return Err(Error::RequiredBodies {
                    peer: Some(theirs.peer.clone()),
                    missing,
                })
            }
            Frame::Reject(reject) if role == Role::Connector => return Err(rejected(self, reject)),
            other => {
                return Err(Error::Handshake {
                    peer: Some(theirs.peer.clone()),
                    reason: format!("expected the peer's bodies, got a {} frame", other.kind()),
                    source: None,
                })
            }
        };
        let lacking = lacking(self, &listed);
        if !lacking.is_empty() {
            let missing = u32::try_from(lacking.len()).unwrap_or(u32::MAX);
            let _ = send(sink, &Frame::Reject(Reject::MissingBodies { missing })).await;
            return Err(Error::MissingBodies {
                peer: theirs.peer.clone(),
                bodies: lacking,
            });
        }
        if role == Role::Acceptor {
            send(sink, &ours).await?;
        }
        tracing::debug!(
            peer = %theirs.peer,
            serves = listed.count(self.registry()),
            "the peer serves other bodies than this node"
        );
        Ok(listed)
    }

    /// `work`, or a handshake error once the handshake timeout has passed.
    async fn in_time<T>(&self, work: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        let timeout = self.config().handshake_timeout;
        futures::pin_mut!(work);
        match futures::future::select(work, self.runtime().sleep(timeout)).await {
            futures::future::Either::Left((result, _)) => result,
            futures::future::Either::Right(_) => Err(handshake_error(&format!(
                "the handshake did not finish within {}",
                crate::error::Lasting(timeout)
            ))),
        }
    }

    /// A peer connecting under the id of a connected one is refused, unless ids are proven
    /// ([`NodeBuilder::peer_tokens`]) and the connected one has gone silent: a client whose
    /// link died without a close (a dropped Wi-Fi, a NAT that forgot it) comes back before this
    /// side's keep-alive has noticed, and would otherwise be refused until it does. The old
    /// connection is pinged and has a second (at most the handshake time limit) to show any
    /// sign of life; if it shows none, it is closed. Where anyone may claim an id, a silence is
    /// no proof (a live peer on a slow link, or in the middle of a large frame, is silent too),
    /// so no one is replaced.
    async fn replace_if_silent(&self, peer: &PeerId) {
        if self.config().ids_proven {
            self.replace_if_silent_anyway(peer).await;
        }
    }

    /// [`replace_if_silent`](Node::replace_if_silent) where the transport proves the id.
    pub(crate) async fn replace_if_silent_anyway(&self, peer: &PeerId) {
        let Ok(old) = self.connection(peer) else {
            return;
        };
        let heard = old.heard();
        let _ = old.link().send(Frame::Ping);
        let wait = self.config().handshake_timeout.min(Duration::from_secs(1));
        let step = Duration::from_millis(10);
        let mut waited = Duration::ZERO;
        while waited < wait {
            self.runtime().sleep(step).await;
            waited += step;
            if old.heard() != heard || old.is_closing() {
                return;
            }
        }
        tracing::info!(%peer, "a connected peer went silent and connects again; replacing its connection");
        self.forget_connection(&old);
    }
}

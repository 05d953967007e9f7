//! register-scope: the first frame each way, checked before any call can be made.

use std::time::Duration;

use futures::{Sink, SinkExt, Stream, StreamExt};

use crate::protocol::{self, Frame, Hello, Reject, PROTOCOL_VERSION};
use crate::{Error, Node, PeerId, RegistryCheck};

/// Which side of the connection this peer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Sends its `Hello` first, then reads the answer.
    Connector,
    /// Reads the connector's `Hello`, checks it, answers with `Hello` or `Reject`.
    Acceptor,
}

pub(crate) fn hello(node: &Node) -> Frame {
    Frame::Hello(Hello {
        version: PROTOCOL_VERSION,
        peer: node.id().clone(),
        digest: node.registry().digest(),
        bodies: u32::try_from(node.registry().len()).unwrap_or(u32::MAX),
        token: node.config().token.clone(),
    })
}

/// Reads the first frame, within the handshake timeout.
pub(crate) async fn first_frame<Rx>(node: &Node, stream: &mut Rx, who: &str) -> Result<Frame, Error>
where
    Rx: Stream<Item = Result<bytes::Bytes, Error>> + Unpin,
{
    let timeout = node.config().handshake_timeout;
    let next = stream.next();
    let sleep = node.runtime().sleep(timeout);
    let bytes = match futures::future::select(next, sleep).await {
        futures::future::Either::Left((Some(bytes), _)) => bytes?,
        futures::future::Either::Left((None, _)) => {
            return Err(handshake_error(
                who,
                "the connection closed before the handshake",
            ))
        }
        futures::future::Either::Right(_) => {
            return Err(handshake_error(
                who,
                &format!("no handshake within {}", fmt_duration(timeout)),
            ))
        }
    };
    protocol::decode(&bytes, node.config().max_frame_size).map_err(|e| {
        handshake_error(
            who,
            &format!("the first frame is not a protocol-{PROTOCOL_VERSION} hello: {e}"),
        )
    })
}

/// The checks both sides apply to the other's `Hello`; `Err` carries the rejection to send.
pub(crate) fn check(node: &Node, hello: &Hello) -> Result<(), (Reject, Error)> {
    // First: an invalid id goes into no error and no log.
    if !hello.peer.is_valid() {
        return Err((
            Reject::InvalidPeerId,
            Error::Handshake {
                peer: "the other peer".into(),
                reason: hello.peer.refusal(),
            },
        ));
    }
    if hello.version != PROTOCOL_VERSION {
        return Err((
            Reject::ProtocolVersion {
                ours: PROTOCOL_VERSION,
            },
            Error::ProtocolVersion {
                peer: hello.peer.clone(),
                ours: PROTOCOL_VERSION,
                theirs: hello.version,
            },
        ));
    }
    // Before anything that would tell an unknown peer about this node's state.
    if !node.authenticates(&hello.peer, hello.token.as_deref()) {
        return Err((
            Reject::NotAuthenticated,
            Error::NotAuthenticated {
                peer: format!("peer `{}`", hello.peer),
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
    let ours = node.registry().digest();
    if hello.digest != ours {
        match node.config().registry_check {
            RegistryCheck::Strict => {
                return Err((
                    Reject::RegistryMismatch { ours },
                    Error::RegistryMismatch {
                        peer: hello.peer.clone(),
                        ours,
                        theirs: hello.digest,
                    },
                ))
            }
            RegistryCheck::Lenient => tracing::warn!(
                peer = %hello.peer,
                ours = format_args!("{ours:016x}"),
                theirs = format_args!("{:016x}", hello.digest),
                "the peer serves a different set of bodies; calls to bodies it lacks will fail"
            ),
        }
    }
    Ok(())
}

/// The connector's view of a `Reject` from the acceptor.
pub(crate) fn rejected(node: &Node, peer: &str, reject: Reject) -> Error {
    let unknown = PeerId::new(peer);
    match reject {
        Reject::ProtocolVersion { ours } => Error::ProtocolVersion {
            peer: unknown,
            ours: PROTOCOL_VERSION,
            theirs: ours,
        },
        Reject::RegistryMismatch { ours } => Error::RegistryMismatch {
            peer: unknown,
            ours: node.registry().digest(),
            theirs: ours,
        },
        Reject::DuplicatePeer => Error::DuplicatePeer {
            peer: node.id().clone(),
        },
        Reject::TooManyConnections { limit } => Error::TooManyConnections {
            peer: peer.to_owned(),
            limit,
        },
        Reject::NotAuthenticated => Error::NotAuthenticated {
            peer: format!("this peer (`{}`)", node.id()),
        },
        Reject::InvalidPeerId => handshake_error(peer, &node.id().refusal()),
    }
}

pub(crate) async fn send<Tx>(sink: &mut Tx, frame: &Frame) -> Result<(), Error>
where
    Tx: Sink<bytes::Bytes, Error = Error> + Unpin,
{
    sink.send(protocol::encode(frame)?.into()).await
}

pub(crate) fn handshake_error(who: &str, reason: &str) -> Error {
    Error::Handshake {
        peer: who.to_owned(),
        reason: reason.to_owned(),
    }
}

fn fmt_duration(d: Duration) -> String {
    format!("{d:?}")
}

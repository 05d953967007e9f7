//! The one error type of the runtime.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::peer_id::PeerId;

/// Everything that can go wrong with a remote call, a connection or the registry.
///
/// Each variant says what happened and, for calls, whether the body may have run. `Error` is
/// itself serializable, so a body may return `Result<T, Error>` and a failure of a nested call
/// travels back to the original caller intact.
///
/// ```
/// use remote_scope::Error;
///
/// fn explain(e: &Error) -> &'static str {
///     match e {
///         Error::UnknownBody { .. } => "the peer was built without this body",
///         Error::Timeout { .. } => "no answer in time; the body may still have run",
///         Error::Disconnected { .. } => "the connection was lost; the body may have run",
///         _ => "something else",
///     }
/// }
/// # let _ = explain;
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// The peer has no body of this name: it was built from other source. The body did not run.
    #[error("peer `{peer}` has no body named `{body}` (was it built from the same source?)")]
    UnknownBody { peer: PeerId, body: String },

    /// The body panicked on the peer that ran it. That peer keeps serving.
    #[error("body `{body}` panicked on peer `{peer}`: {message}")]
    Panicked {
        peer: PeerId,
        body: String,
        message: String,
    },

    /// The captures could not be encoded on the calling side. Nothing was sent.
    #[error("could not encode the captures of `{body}`: {reason}")]
    EncodeCaptures { body: String, reason: String },

    /// The serving peer could not decode the captures. The body did not run.
    #[error("peer `{peer}` could not decode the captures of `{body}`: {reason}")]
    DecodeCaptures {
        peer: PeerId,
        body: String,
        reason: String,
    },

    /// The body ran but its result could not be encoded on the serving peer.
    #[error("peer `{peer}` could not encode the result of `{body}`: {reason}")]
    EncodeResult {
        peer: PeerId,
        body: String,
        reason: String,
    },

    /// The body ran but its result could not be decoded here.
    #[error("could not decode the result of `{body}` from peer `{peer}`: {reason}")]
    DecodeResult {
        peer: PeerId,
        body: String,
        reason: String,
    },

    /// The body, compiled on its own, produces another type than the call expects: an untyped
    /// literal in it took the caller's type at the call site but its default type (`i32`, `f64`)
    /// in the body every peer runs. Nothing was sent. Give the literal a type (`0_u64`).
    #[error(
        "body `{body}` produces `{produced}` when compiled on its own, but this call expects \
         `{expected}`: give the body's untyped literals a type (e.g. `0_u64`) so both agree"
    )]
    ResultType {
        body: String,
        produced: String,
        expected: String,
    },

    /// The peer already runs as many bodies for this connection as it allows. The body did not
    /// run; the call can be retried once others finish.
    #[error("peer `{peer}` is busy: it already runs {limit} bodies for this connection; `{body}` did not run")]
    Busy {
        peer: PeerId,
        body: String,
        limit: u32,
    },

    /// The peer does not let this peer run the body ([`NodeBuilder::authorize`]). The body did
    /// not run.
    ///
    /// [`NodeBuilder::authorize`]: crate::NodeBuilder::authorize
    #[error("peer `{peer}` does not let this peer run `{body}`; it did not run")]
    NotAuthorized { peer: PeerId, body: String },

    /// The captures are larger than the peer accepts
    /// ([`NodeBuilder::max_capture_size`](crate::NodeBuilder::max_capture_size)). The body did
    /// not run.
    #[error("peer `{peer}` accepts captures of at most {limit} bytes; `{body}` did not run")]
    CapturesTooLarge {
        peer: PeerId,
        body: String,
        limit: u64,
    },

    /// The peer's token was missing or wrong ([`NodeBuilder::authenticate`]): the connection
    /// was refused, by this peer or by the other.
    ///
    /// [`NodeBuilder::authenticate`]: crate::NodeBuilder::authenticate
    #[error("peer `{peer}` failed authentication: its token is missing or wrong")]
    NotAuthenticated {
        /// The peer whose token was refused: the other one, or this one when the other refused it.
        peer: PeerId,
    },

    /// This node already holds `limit` bytes queued for the peer and not yet written: the peer
    /// (or the network) is slower than this node sends. Nothing was sent; the call can be
    /// retried once the queue drains.
    #[error("the queue of frames to peer `{peer}` is full ({limit} bytes not yet sent); nothing was sent")]
    QueueFull { peer: PeerId, limit: u64 },

    /// The accepting peer holds as many connections as it allows and refused this one.
    #[error(
        "the connection with {} was refused: the accepting peer holds its maximum of {limit} \
         connections",
        Other(peer)
    )]
    TooManyConnections {
        /// The other peer, when its id is known (the acceptor knows the connector's).
        peer: Option<PeerId>,
        limit: u32,
    },

    /// No connection to this peer. Nothing was sent.
    #[error("not connected to peer `{peer}`")]
    NotConnected { peer: PeerId },

    /// The connection was lost while the call was in flight. The body may have run.
    #[error("connection to peer `{peer}` was lost while `{body}` was in flight")]
    Disconnected { peer: PeerId, body: String },

    /// No result within the call's timeout. The body may have run or may still be running.
    #[error("body `{body}` on peer `{peer}` did not answer within {after:?}")]
    Timeout {
        peer: PeerId,
        body: String,
        after: Duration,
    },

    /// `remote!` was awaited outside of a node: use [`Node::run`](crate::Node::run) (bodies served
    /// by a node always have one).
    #[error("no current node: await remote! inside `Node::run` or a body served by a node")]
    NoCurrentNode,

    /// The connection's handshake (`register-scope`) failed.
    #[error("handshake with {} failed: {reason}", Other(peer))]
    Handshake {
        /// The other peer, when its id is known.
        peer: Option<PeerId>,
        reason: String,
    },

    /// The two peers speak different protocol versions.
    #[error(
        "{} speaks protocol version {theirs}, this peer speaks {ours}",
        Other(peer)
    )]
    ProtocolVersion {
        /// The other peer, when its id is known.
        peer: Option<PeerId>,
        ours: u32,
        theirs: u32,
    },

    /// The two peers were built with different sets of bodies (their registry digests differ).
    #[error(
        "{} serves a different set of bodies (registry digest {theirs:016x}, ours \
         {ours:016x}): were both built from the same source, with `remote_scope::link!` for \
         library modules whose bodies a binary serves but never calls?",
        Other(peer)
    )]
    RegistryMismatch {
        /// The other peer, when its id is known.
        peer: Option<PeerId>,
        ours: u64,
        theirs: u64,
    },

    /// Another connected peer already has this id.
    #[error("a peer with id `{peer}` is already connected")]
    DuplicatePeer { peer: PeerId },

    /// Two different bodies were registered under one name (a fingerprint collision).
    #[error("two different bodies share the name `{name}`: one at {first}, one at {second}")]
    DuplicateBody {
        name: String,
        first: String,
        second: String,
    },

    /// A frame broke the protocol: malformed, too large or unexpected. The connection is closed.
    #[error("protocol error: {reason}")]
    Protocol { reason: String },

    /// The transport (WebSocket, TCP) failed; `source` is the error underneath, where there is
    /// one (an [`std::io::Error`], say: [`Cause::downcast_ref`] gets it back).
    #[error("transport error: {reason}")]
    Transport {
        reason: String,
        #[source]
        source: Option<Cause>,
    },

    /// The node could not start (for example: no async runtime to run on).
    #[error("node setup failed: {reason}")]
    Setup { reason: String },
}

impl Error {
    /// Whether the body may have run on the remote peer despite this error. `false` means it
    /// certainly did not, so retrying cannot run it twice.
    ///
    /// ```
    /// use remote_scope::{Error, PeerId};
    /// let e = Error::NotConnected { peer: PeerId::new("server") };
    /// assert!(!e.body_may_have_run());
    /// ```
    pub fn body_may_have_run(&self) -> bool {
        matches!(
            self,
            Error::Panicked { .. }
                | Error::EncodeResult { .. }
                | Error::DecodeResult { .. }
                | Error::Disconnected { .. }
                | Error::Timeout { .. }
        )
    }

    /// A transport error with nothing underneath it.
    pub(crate) fn transport(reason: impl Into<String>) -> Error {
        Error::Transport {
            reason: reason.into(),
            source: None,
        }
    }

    /// A transport error caused by `source`, in the words of `reason`.
    pub(crate) fn transport_caused(
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Transport {
            reason: reason.into(),
            source: Some(Cause::new(source)),
        }
    }
}

/// "peer `x`", or "the other peer" while its id is unknown.
struct Other<'a>(&'a Option<PeerId>);

impl fmt::Display for Other<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(peer) => write!(f, "peer `{peer}`"),
            None => f.write_str("the other peer"),
        }
    }
}

/// The error underneath an [`Error`]: kept whole (and shared, so `Error` stays `Clone`) on the
/// peer where it happened, and as its text once it has travelled to another peer inside a
/// result. Two causes are equal when their texts are.
///
/// ```
/// use std::error::Error as _;
/// use remote_scope::error::Cause;
///
/// let cause = Cause::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
/// assert_eq!(
///     cause.downcast_ref::<std::io::Error>().map(|e| e.kind()),
///     Some(std::io::ErrorKind::ConnectionReset)
/// );
/// assert!(cause.source().is_none());
/// ```
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Keeps `error` as a cause.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(error))
    }

    /// The error itself, if it is an `E` (not once it has travelled to another peer: then it
    /// is its text).
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Cause {}

impl Serialize for Cause {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cause {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cause, D::Error> {
        Ok(Cause::new(Travelled(String::deserialize(deserializer)?)))
    }
}

/// A cause that came from another peer: its text.
#[derive(Debug)]
struct Travelled(String);

impl fmt::Display for Travelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Travelled {}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_transport_error_keeps_its_io_error_here_and_its_text_on_another_peer() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused by the test");
        let here = Error::transport_caused("could not connect to ws://127.0.0.1:1", io);
        let source = here.source().expect("a source");
        assert_eq!(source.to_string(), "refused by the test");
        let Error::Transport {
            source: Some(cause),
            ..
        } = &here
        else {
            panic!("{here:?}")
        };
        assert_eq!(
            cause.downcast_ref::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionRefused)
        );

        // A body may return an `Error`: it travels, and its cause becomes text.
        let bytes = rmp_serde::to_vec(&here).expect("encoded");
        let there: Error = rmp_serde::from_slice(&bytes).expect("decoded");
        assert_eq!(there, here);
        assert_eq!(
            there.source().map(|s| s.to_string()).as_deref(),
            Some("refused by the test")
        );
        let Error::Transport {
            source: Some(cause),
            ..
        } = &there
        else {
            panic!("{there:?}")
        };
        assert!(cause.downcast_ref::<std::io::Error>().is_none());
    }

    #[test]
    fn a_peer_not_yet_known_is_called_the_other_peer() {
        let unknown = Error::Handshake {
            peer: None,
            reason: "no hello".into(),
        };
        assert_eq!(
            unknown.to_string(),
            "handshake with the other peer failed: no hello"
        );
        let known = Error::ProtocolVersion {
            peer: Some(PeerId::new("server")),
            ours: 2,
            theirs: 3,
        };
        assert_eq!(
            known.to_string(),
            "peer `server` speaks protocol version 3, this peer speaks 2"
        );
    }
}

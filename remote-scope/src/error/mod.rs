//! The one error type of the runtime.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::body_error::BodyError;
use crate::peer_id::PeerId;

mod wire;

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
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The peer does not serve this body: it was built from other source, or without the
    /// body's module. The body did not run; where the peer said what it serves when it
    /// connected, nothing was sent.
    #[error("{}", unknown_body(peer, body, site.as_deref(), *missing))]
    UnknownBody {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The body's stable name.
        body: String,
        /// Where the `remote!` is, `file:line:column`, when this build has the body.
        site: Option<String>,
        /// What the peer's build has instead.
        missing: Missing,
    },

    /// The body panicked on the peer that ran it. That peer keeps serving.
    #[error("body `{body}` panicked on peer `{peer}`: {message}")]
    Panicked {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The body's stable name.
        body: String,
        /// The panic's message.
        message: String,
    },

    /// The captures could not be encoded on the calling side. Nothing was sent.
    #[error("could not encode the captures of `{body}`: {reason}")]
    EncodeCaptures {
        /// The body's stable name.
        body: String,
        /// What went wrong.
        reason: String,
    },

    /// The serving peer could not decode the captures. The body did not run.
    #[error("peer `{peer}` could not decode the captures of `{body}`: {reason}")]
    DecodeCaptures {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The body's stable name.
        body: String,
        /// What went wrong.
        reason: String,
    },

    /// The body ran but its result could not be encoded on the serving peer.
    #[error("peer `{peer}` could not encode the result of `{body}`: {reason}")]
    EncodeResult {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The body's stable name.
        body: String,
        /// What went wrong.
        reason: String,
    },

    /// The body ran but its result could not be decoded here.
    #[error("could not decode the result of `{body}` from peer `{peer}`: {reason}")]
    DecodeResult {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The body's stable name.
        body: String,
        /// What went wrong.
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
        /// The body's stable name.
        body: String,
        /// The type the body produces, compiled on its own.
        produced: String,
        /// The type the call expects.
        expected: String,
    },

    /// The peer already runs as many bodies for this connection as it allows. The body did not
    /// run; the call can be retried once others finish.
    #[error(
        "peer `{peer}` is busy: it already runs {limit} bodies for this connection; `{body}` \
         did not run: retry later, or raise that peer's `NodeBuilder::max_bodies_per_connection`"
    )]
    Busy {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The body's stable name.
        body: String,
        /// The limit.
        limit: u32,
    },

    /// The peer does not let this peer run the body ([`NodeBuilder::authorize`]). The body did
    /// not run.
    ///
    /// [`NodeBuilder::authorize`]: crate::NodeBuilder::authorize
    #[error("peer `{peer}` does not let this peer run `{body}`; it did not run")]
    NotAuthorized {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The body's stable name.
        body: String,
    },

    /// The captures are larger than the peer accepts
    /// ([`NodeBuilder::max_capture_size`](crate::NodeBuilder::max_capture_size)). The body did
    /// not run.
    #[error(
        "peer `{peer}` accepts captures of at most {limit} bytes (encoded); `{body}` did not \
         run: send less, or raise that peer's `NodeBuilder::max_capture_size`"
    )]
    CapturesTooLarge {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The body's stable name.
        body: String,
        /// The limit.
        limit: u64,
    },

    /// The peer's token was missing or wrong ([`NodeBuilder::authenticate`]), or, on an axum
    /// route (feature `axum`), its hello names another peer than its web session: the
    /// connection was refused, by this peer or by the other.
    ///
    /// [`NodeBuilder::authenticate`]: crate::NodeBuilder::authenticate
    #[error(
        "peer `{peer}` failed authentication: its token is missing or wrong (`NodeBuilder::token` \
         on the connecting side, checked by `NodeBuilder::authenticate` on the other), or its \
         web session names another peer"
    )]
    NotAuthenticated {
        /// The peer whose token was refused: the other one, or this one when the other refused it.
        peer: PeerId,
    },

    /// This node already holds `limit` bytes queued for the peer and not yet written: the peer
    /// (or the network) is slower than this node sends. Nothing was sent; the call can be
    /// retried once the queue drains.
    #[error(
        "the queue of frames to peer `{peer}` is full ({limit} bytes not yet sent); nothing was \
         sent: the peer reads too slowly; retry later, or raise `NodeBuilder::max_queued_bytes`"
    )]
    QueueFull {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The limit.
        limit: u64,
    },

    /// The accepting peer holds as many connections as it allows and refused this one.
    #[error(
        "the connection with {} was refused: the accepting peer holds its maximum of {limit} \
         connections (its `NodeBuilder::max_connections`)",
        Other(peer)
    )]
    TooManyConnections {
        /// The other peer, when its id is known (the acceptor knows the connector's).
        peer: Option<PeerId>,
        /// The limit.
        limit: u32,
    },

    /// No connection to this peer. Nothing was sent.
    #[error(
        "not connected to peer `{peer}`: connect first (`Node::connect`), join a NATS cluster it \
         is on (`Node::join_nats`), or keep the \
         connection with `Node::keep_connected` so calls wait while it is redialled"
    )]
    NotConnected {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
    },

    /// A call to a pool found no member to run it: none is connected or on the NATS cluster,
    /// or each one tried could not take it. Nothing ran.
    #[error(
        "{pool} has no member that can take the call{}: start a member (`NodeBuilder::pool`) \
         and connect to it, or join the NATS cluster its members are on",
        tried_text(tried)
    )]
    NoMembers {
        /// The pool.
        pool: crate::pool::Pool,
        /// The members tried, none of which took the call.
        tried: Vec<PeerId>,
    },

    /// The connection was lost while the call was in flight. The body may have run.
    #[error(
        "connection to peer `{peer}` was lost while `{body}` was in flight; the body may have run"
    )]
    Disconnected {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The body's stable name.
        body: String,
    },

    /// No result within the call's timeout. The body may have run or may still be running.
    #[error(
        "body `{body}` on peer `{peer}` did not answer within {}; it may have run: give it \
         longer with `Call::timeout` or `NodeBuilder::default_timeout` if it needs longer",
        Lasting(*after)
    )]
    Timeout {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The body's stable name.
        body: String,
        /// How long the call waited.
        after: Duration,
    },

    /// `remote!` was awaited where no node is current (outside [`Node::run`](crate::Node::run)
    /// and outside a body), and the process does not have exactly one node to fall back on.
    #[error("{}", no_current_node(*nodes))]
    NoCurrentNode {
        /// How many nodes the process has (built and not shut down).
        nodes: usize,
    },

    /// The connection's handshake (`register-scope`) failed; `source` is the error underneath,
    /// where there is one (the malformed first frame's [`Error::Protocol`], say).
    #[error("handshake with {} failed: {reason}", Other(peer))]
    Handshake {
        /// The other peer, when its id is known.
        peer: Option<PeerId>,
        /// What went wrong.
        reason: String,
        #[source]
        /// The error underneath.
        source: Option<Cause>,
    },

    /// The two peers speak different protocol versions.
    #[error(
        "{} speaks protocol version {theirs}, this peer speaks {ours}: build both with \
         versions of remote-scope that speak the same protocol",
        Other(peer)
    )]
    ProtocolVersion {
        /// The other peer, when its id is known.
        peer: Option<PeerId>,
        /// This peer's protocol version.
        ours: u32,
        /// The other peer's protocol version.
        theirs: u32,
    },

    /// The peer does not serve bodies that this node requires of it
    /// ([`NodeBuilder::require_module`](crate::NodeBuilder::require_module)); the connection
    /// was refused.
    #[error(
        "peer `{peer}` does not serve {} that this node requires of it: {}; deploy the same \
         version of these modules to both, and have the peer link them \
         (`remote_scope::link!`) if it never calls into them",
        count(bodies.len(), "body", "bodies"),
        listed(bodies.iter().map(String::as_str))
    )]
    MissingBodies {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The bodies, as `name (file:line:column)`.
        bodies: Vec<String>,
    },

    /// The other peer requires bodies that this build does not serve; it refused the
    /// connection.
    #[error(
        "{} requires {} that this build does not serve: build this peer from the same \
         version of the modules that peer requires (`NodeBuilder::require_module`)",
        Other(peer),
        count(*missing as usize, "body", "bodies")
    )]
    RequiredBodies {
        /// The other peer, when its id is known.
        peer: Option<PeerId>,
        /// How many bodies it lacks.
        missing: u32,
    },

    /// Another connected peer already has this id.
    #[error(
        "a peer with id `{peer}` is already connected: give each node its own id \
         (`NodeBuilder::id`; the default is a random one)"
    )]
    DuplicatePeer {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
    },

    /// Two different bodies were registered under one name (a fingerprint collision).
    #[error(
        "two different bodies share the name `{name}` (their fingerprints collide): one at \
         {first}, one at {second}; change either body, by a token, to tell them apart"
    )]
    DuplicateBody {
        /// The name both bodies have.
        name: String,
        /// Where one body is, `file:line:column`.
        first: String,
        /// Where the other is.
        second: String,
    },

    /// A frame broke the protocol: malformed, too large or unexpected. The connection is closed.
    /// `source` is the decoder's or encoder's own error, where there is one.
    #[error("protocol error: {reason}")]
    Protocol {
        /// What went wrong.
        reason: String,
        #[source]
        /// The error underneath.
        source: Option<Cause>,
    },

    /// The transport (WebSocket, TCP) failed; `source` is the error underneath, where there is
    /// one (an [`std::io::Error`], say: [`Cause::downcast_ref`] gets it back).
    #[error("transport error: {reason}")]
    Transport {
        /// What went wrong.
        reason: String,
        #[source]
        /// The error underneath.
        source: Option<Cause>,
    },

    /// The peer is shutting down ([`Node::shutdown_gracefully`](crate::Node::shutdown_gracefully))
    /// and starts no more bodies; the body did not run.
    #[error(
        "peer `{peer}` is shutting down and did not run `{body}`: call another peer, or again \
         once it is back"
    )]
    ShuttingDown {
        /// The peer the call went to, or the one in question.
        peer: PeerId,
        /// The body's stable name.
        body: String,
    },

    /// A body ran and gave its caller an error of the application's ([`BodyError`]), which `?`
    /// turned into this one.
    #[error("{error}")]
    Body {
        /// The body's error.
        error: BodyError,
    },

    /// A URL this node cannot dial: not a WebSocket URL, or one the transport does not support.
    /// Dialling it again cannot help.
    #[error("cannot dial `{url}`: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// A [`patterns`](crate::patterns) helper was given no peers (or no replicas) to run on.
    /// Nothing ran.
    #[error(
        "`{pattern}` was given no peers to run on; nothing ran (for the members of a pool, \
         pass `node.members(&pool)`)"
    )]
    NoPeers {
        /// The helper: `first_success`, `retry`, `quorum`, ...
        pattern: String,
    },

    /// Every peer a [`patterns`](crate::patterns) helper tried failed; `errors` holds each
    /// failure, in the order they came.
    #[error("{}", all_failed(errors))]
    AllFailed {
        /// One error per failed attempt.
        errors: Vec<Error>,
    },

    /// [`patterns::quorum`](crate::patterns::quorum) found no majority of its replicas
    /// agreeing on one value.
    #[error(
        "no quorum: {agreed} of {replicas} replicas agreed, {needed} needed ({} disagreed, {} \
         failed{})",
        disagreed.len(),
        errors.len(),
        first_error(errors)
    )]
    NoQuorum {
        /// Replicas asked.
        replicas: usize,
        /// Replicas that had to agree.
        needed: usize,
        /// The size of the largest group of replicas that agreed.
        agreed: usize,
        /// Replicas that answered with another value than the largest group's.
        disagreed: Vec<PeerId>,
        /// The replicas that failed to answer.
        errors: Vec<Error>,
    },

    /// The node could not start (for example: no async runtime to run on).
    #[error("node setup failed: {reason}")]
    Setup {
        /// What went wrong.
        reason: String,
    },
}

/// The message, then the chain of sources, as `anyhow` prints an error: what
/// `fn main() -> Result<(), Error>` shows when it fails. The variant and its fields are what
/// `match` is for.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        if source.is_some() {
            f.write_str("\n\nCaused by:")?;
        }
        while let Some(cause) = source {
            write!(f, "\n    {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// What a peer that does not serve a body has instead, as far as the caller can tell.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Missing {
    /// The peer serves a body from the same site (`remote!`) under another name: the two
    /// builds differ there, in the body's captures or code.
    ChangedThere,
    /// The peer serves none of the bodies of the body's module that this build has: its
    /// binary lacks the module (a library module it never calls into needs
    /// `remote_scope::link!`), or all of the module changed.
    Module,
    /// The peer's build has no such body; it has others of the module.
    Body,
    /// The peer said it has no body of this name when the call reached it.
    Unknown,
}

/// The module a body's name is in: what precedes its last `::` (`""` for a name without one).
pub(crate) fn module_of(name: &str) -> &str {
    // By bytes: `rsplit_once("::")` brings a general substring searcher along, 1.5 KB of a
    // browser's page.
    let bytes = name.as_bytes();
    (1..bytes.len())
        .rev()
        .find(|&i| bytes[i - 1] == b':' && bytes[i] == b':')
        .map_or("", |i| &name[..i - 1])
}

fn unknown_body(peer: &PeerId, body: &str, site: Option<&str>, missing: Missing) -> String {
    let module = module_of(body);
    let at = site.map_or(String::new(), |site| format!(" (the `remote!` at {site})"));
    let what = match missing {
        Missing::ChangedThere => format!(
            "it serves another body from that `remote!`: the two builds differ there; deploy \
             the same version of `{module}` to both"
        ),
        Missing::Module => format!(
            "it serves no body of module `{module}`: its build lacks the module (an older \
             version), or its binary gets `{module}` from a library it never calls into and the \
             linker left it out (add `remote_scope::link!(<any function of {module}>);` to \
             that binary)"
        ),
        Missing::Body | Missing::Unknown => {
            format!("it was built without it; deploy the same version of `{module}` to both")
        }
    };
    format!("peer `{peer}` does not serve body `{body}`{at}: {what}")
}

impl From<BodyError> for Error {
    fn from(error: BodyError) -> Error {
        Error::Body { error }
    }
}

fn all_failed(errors: &[Error]) -> String {
    match errors {
        [] => "every attempt failed".to_owned(),
        [only] => format!("the only attempt failed: {only}"),
        [.., last] => format!("all {} attempts failed; the last: {last}", errors.len()),
    }
}

fn first_error(errors: &[Error]) -> String {
    errors
        .first()
        .map_or(String::new(), |e| format!("; the first failure: {e}"))
}

fn tried_text(tried: &[PeerId]) -> String {
    if tried.is_empty() {
        String::new()
    } else {
        format!(" (tried: {})", listed(tried.iter().map(PeerId::as_str)))
    }
}

/// `items`, comma-separated: one small function for every list in a message, where each
/// `join` is a copy of std's generic code.
fn listed<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut list = String::new();
    for (n, item) in items.enumerate() {
        if n > 0 {
            list.push_str(", ");
        }
        list.push_str(item);
    }
    list
}

fn no_current_node(nodes: usize) -> String {
    if nodes == 0 {
        return "no node to call from: build one with `Node::builder()` (a call goes out from \
                the node of the surrounding `Node::run`, of the body running, or else the \
                process's only node)"
            .to_owned();
    }
    format!(
        "no current node here, and this process has {nodes} nodes: say which one calls, with \
         `node.run(..)` around the code, `node.spawn(..)` for a task (`tokio::spawn` does not \
         carry the node), or `.on(&node)` on the call"
    )
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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
                | Error::Body { .. }
        ) || match self {
            Error::AllFailed { errors } => errors.iter().any(Error::body_may_have_run),
            // Replicas that answered ran it.
            Error::NoQuorum {
                agreed,
                disagreed,
                errors,
                ..
            } => {
                *agreed > 0 || !disagreed.is_empty() || errors.iter().any(Error::body_may_have_run)
            }
            _ => false,
        }
    }

    /// The peer the error is about, where there is one: the peer a failed call went to, or
    /// the one a connection failed with.
    ///
    /// ```
    /// use remote_scope::{Error, PeerId};
    ///
    /// let e = Error::NotConnected { peer: PeerId::new("worker-2") };
    /// assert_eq!(e.peer(), Some(&PeerId::new("worker-2")));
    /// assert_eq!(Error::NoCurrentNode { nodes: 0 }.peer(), None);
    /// ```
    pub fn peer(&self) -> Option<&PeerId> {
        match self {
            Error::UnknownBody { peer, .. }
            | Error::Panicked { peer, .. }
            | Error::DecodeCaptures { peer, .. }
            | Error::EncodeResult { peer, .. }
            | Error::DecodeResult { peer, .. }
            | Error::Busy { peer, .. }
            | Error::NotAuthorized { peer, .. }
            | Error::CapturesTooLarge { peer, .. }
            | Error::NotAuthenticated { peer }
            | Error::QueueFull { peer, .. }
            | Error::NotConnected { peer }
            | Error::Disconnected { peer, .. }
            | Error::Timeout { peer, .. }
            | Error::MissingBodies { peer, .. }
            | Error::DuplicatePeer { peer }
            | Error::ShuttingDown { peer, .. } => Some(peer),
            Error::TooManyConnections { peer, .. }
            | Error::Handshake { peer, .. }
            | Error::ProtocolVersion { peer, .. }
            | Error::RequiredBodies { peer, .. } => peer.as_ref(),
            _ => None,
        }
    }

    /// A protocol error with nothing underneath it.
    pub(crate) fn protocol(reason: impl Into<String>) -> Error {
        Error::Protocol {
            reason: reason.into(),
            source: None,
        }
    }

    /// A protocol error caused by `source` (a decoder's error, say), in the words of `reason`.
    pub(crate) fn protocol_caused(
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Protocol {
            reason: reason.into(),
            source: Some(Cause::new(source)),
        }
    }

    /// A transport error with nothing underneath it.
    pub(crate) fn transport(reason: impl Into<String>) -> Error {
        Error::Transport {
            reason: reason.into(),
            source: None,
        }
    }

    /// A transport error caused by `source`, in the words of `reason`.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
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

/// A duration as `Duration`'s `Debug` prints it (`5s`, `1.5s`, `250ms`, `20µs`, `7ns`): that
/// code is 2 KB of a browser's page, and messages are all it is for there.
pub(crate) struct Lasting(pub(crate) Duration);

impl fmt::Display for Lasting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, nanos) = (self.0.as_secs(), self.0.subsec_nanos());
        let (whole, mut fraction, mut digits, unit) = match (secs, nanos) {
            (1.., _) => (secs, nanos, 9, "s"),
            (0, 1_000_000..) => (u64::from(nanos / 1_000_000), nanos % 1_000_000, 6, "ms"),
            (0, 1_000..) => (u64::from(nanos / 1_000), nanos % 1_000, 3, "µs"),
            (0, _) => (u64::from(nanos), 0, 0, "ns"),
        };
        write!(f, "{whole}")?;
        if fraction > 0 {
            while fraction.is_multiple_of(10) {
                fraction /= 10;
                digits -= 1;
            }
            write!(f, ".{fraction:0digits$}")?;
        }
        f.write_str(unit)
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
struct Travelled(String);

impl fmt::Debug for Travelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Travelled({})", crate::text::Quoted(&self.0))
    }
}

impl fmt::Display for Travelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Travelled {}

#[cfg(test)]
mod tests;

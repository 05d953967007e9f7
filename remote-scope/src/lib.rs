//! # remote-scope
//!
//! Distributed computation that keeps lexical scope: write a block, say which peer runs it and
//! which variables it takes along, and await its result as if it had run here.
//!
//! ```
//! use remote_scope::{remote, Node, PeerId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), remote_scope::Error> {
//! // A server peer and a client peer, connected over a WebSocket on localhost.
//! let server = Node::builder().id("server").build()?;
//! let listener = server.listen("127.0.0.1:0").await?;
//! let client = Node::builder().id("client").build()?;
//! let server_id: PeerId = client.connect(&listener.url()).await?;
//!
//! let n: u64 = client
//!     .run(async {
//!         let a = 2_u64;
//!         let b = vec![1_u64, 2, 3];
//!         // Runs on the server, with `a` and `b` sent along.
//!         remote!(server_id, [a: u64, b: Vec<u64>], { a + b.len() as u64 }).await
//!     })
//!     .await?;
//! assert_eq!(n, 5);
//! # Ok(()) }
//! ```
//!
//! ## Captures
//!
//! The list `[a: u64, b: Vec<u64>]` names every local the body uses, with its type. The values
//! are encoded with MessagePack (serde), so capture types must be `Serialize + Deserialize`.
//! The compiler checks the list:
//!
//! - a local used in the body but not listed is an error at the use ("`x` is not in the capture
//!   list: ... add `x: u64` to the list"); functions, constants, statics and types are not
//!   captures and need no listing;
//! - a listed capture the body never uses is an `unused variable` warning at the list entry;
//! - a capture listed twice, an untyped capture, or a borrowed capture type (`&str`) is an error.
//!
//! The result type is the body's own type, inferred: `let n: u32 = remote!(..)` on a body of
//! type `u64` is a compile error, not a decode error at run time.
//!
//! ## Nesting
//!
//! A body can itself `remote!` to any peer connected to the one running it, including the one
//! that called it: server → client → server, and deeper. The peer running a body is its
//! *current node*; on the calling side, [`Node::run`] sets it.
//!
//! ## Names
//!
//! Every body is registered at compile time under a stable name: its module path and a
//! fingerprint of its captures and tokens (FNV-1a 64, see the macro crate's `name` module).
//! A peer runs only bodies compiled into it. The same source gives the same names in every
//! build. When peers connect, each tells the other which bodies it serves (nothing more than a
//! digest when both serve the same), so a call to a body the peer was built without fails at
//! once, naming the body's site and what the peer has instead ([`Error::UnknownBody`]); peers
//! built from different versions call whatever both have. [`NodeBuilder::require_module`]
//! makes a module's bodies a condition of the connection.
//!
//! ## Errors
//!
//! Every failure is an [`Error`] variant: unknown body, panic in the body (the serving peer
//! keeps serving), captures or result that fail to decode, peer not connected, connection lost
//! mid-call, timeout ([`Call::timeout`], [`NodeBuilder::default_timeout`]). No call waits
//! forever for a peer that went away: a closed connection fails its calls at once, and
//! keep-alive ([`NodeBuilder::keepalive`]) finds one that went silent without closing.
//!
//! ## Security and faults
//!
//! A peer that runs code on request is an attack surface, so a node decides who may connect
//! ([`NodeBuilder::authenticate`], with tokens sent in the handshake;
//! [`NodeBuilder::peer_tokens`] gives each id a token of its own, so ids are proven) and which
//! bodies each connected peer may run ([`NodeBuilder::authorize`], [`Allowlist`]); every
//! resource a peer can make it spend is bounded (frame and capture sizes, the first message
//! before the handshake, bodies per connection, bytes queued, connections and handshakes under
//! way; see [`NodeBuilder`]). A request id runs its body at most once. Client peers can
//! stay connected across losses ([`Node::keep_connected`], [`Reconnect`]), and
//! [`transport::faulty`] injects drops, delays, reordering, duplicates and cuts for tests.
//!
//! ## Crate layout
//!
//! [`protocol`] (wire format), [`Registry`], [`Node`] (peers and routing), [`transport`]
//! (native WebSocket, browser WebSocket, in-memory, faulty), [`Middleware`], [`Authorize`],
//! [`Reconnect`], [`runtime`] (the executor seam), [`patterns`] (fan-out, first success,
//! retries, placement by key, quorum, health), [`Error`].

// Every public item says what it is; CI runs clippy with `-D warnings`.
#![warn(missing_docs)]

// Lets `remote!` expansions (which name `::remote_scope`) work in this crate's own tests.
extern crate self as remote_scope;

#[macro_use]
mod trace;

mod auth;
mod bodies;
mod body_error;
mod bounds;
mod buffers;
mod builder;
mod call;
mod config;
mod connection;
mod context;
mod contract;
mod directory;
pub mod error;
mod events;
mod handshake;
mod hash;
mod link;
mod middleware;
mod node;
mod once;
mod outbox;
pub mod patterns;
mod peer_id;
mod pending;
mod pool;
pub mod protocol;
mod random;
mod rate;
mod reconnect;
mod registry;
pub mod runtime;
mod seen;
mod serve;
mod sort;
pub mod streams;
mod sync;
mod tasks;
#[cfg(test)]
mod testing;
mod text;
mod trace_context;
pub mod transport;

/// The README, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzz;

pub use auth::{Allowlist, Authorize};
pub use body_error::BodyError;
pub use bounds::{AsPeer, Capture, Fallible, Returnable};
pub use builder::NodeBuilder;
pub use call::{Call, Unsent};
pub use context::caller;
pub use contract::Served;
pub use error::{Error, Missing};
pub use middleware::{Link, Middleware};
pub use node::{Node, NodeStats, PeerEvent};
pub use peer_id::PeerId;
pub use pool::{Pool, Target};
pub use rate::RateLimit;
pub use reconnect::Reconnect;
pub use registry::{Registration, Registry};
pub use trace_context::{InTrace, TraceContext};
#[cfg(all(feature = "axum", not(target_arch = "wasm32")))]
pub use transport::websocket::axum;
#[cfg(not(target_arch = "wasm32"))]
pub use transport::websocket::Server;
#[cfg(all(feature = "tls", not(target_arch = "wasm32")))]
pub use transport::websocket::TlsIdentity;

/// Runs a block on another peer and evaluates to a [`Call`] of its result.
///
/// `remote!(peer, [name: Type, ...], { body })`: `peer` names the peer ([`AsPeer`]: a
/// [`PeerId`], a reference to one, or its text);
/// the list names every local the body uses, with its type; the body is a block and may
/// `.await`. Awaiting the call gives `Result<T, Error>` where `T` is the body's type.
///
/// ```
/// # use remote_scope::{remote, Node, PeerId};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// # let node = Node::builder().build()?;
/// # let peer = node.id().clone();
/// # node.run(async {
/// let words = vec!["a".to_string(), "bb".to_string()];
/// let longest: Option<String> =
///     remote!(peer, [words: Vec<String>], { words.into_iter().max_by_key(|w| w.len()) }).await?;
/// assert_eq!(longest.as_deref(), Some("bb"));
/// # Ok::<(), remote_scope::Error>(()) }).await }
/// ```
pub use remote_scope_macros::remote;

/// Makes an `async fn` a remote function: its parameters are its captures, its result is its
/// body's value, and calling it gives an [`Unsent`] call to send to a peer with
/// [`Unsent::on_peer`].
///
/// ```
/// use remote_scope::{remote_fn, BodyError, Node, PeerId};
///
/// /// Counts the words of `text` longer than `min`.
/// #[remote_fn]
/// pub async fn long_words(text: String, min: usize) -> Result<usize, BodyError> {
///     if min == 0 {
///         return Err(BodyError::new("`min` must be at least 1"));
///     }
///     Ok(text.split_whitespace().filter(|w| w.len() >= min).count())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// # let node = Node::builder().build()?;
/// # let peer: PeerId = node.id().clone();
/// let text = "a remote body runs on the peer".to_string();
/// let count = node.run(long_words(text, 4).on_peer(&peer)).await??;
/// assert_eq!(count, 4);
/// assert!(long_words::NAME.starts_with("rust_out::long_words#"));
/// # Ok(()) }
/// ```
///
/// The function is checked as `remote!` checks a body: its parameter types must be
/// [`Capture`]s and its result a [`Returnable`]; it must be `async`, and cannot be generic,
/// take `self` or take references. Its body is registered under `name::NAME`, the function's
/// path and a fingerprint of its signature (not of its block): a peer redeployed with a new
/// implementation keeps serving callers built against the old one, while a changed signature
/// is a new name, which a call to an older peer finds missing before it is sent
/// ([`Error::UnknownBody`]).
///
/// (It is not `#[remote]`: an attribute and `remote!` cannot share a name.)
pub use remote_scope_macros::remote_fn;

/// The id of the peer whose code is running: inside a body, the peer that runs it; inside
/// [`Node::run`], that node. `None` elsewhere.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// let node = remote_scope::Node::builder().id("me").build()?;
/// assert_eq!(remote_scope::current_peer(), None);
/// let inside = node.run(async { remote_scope::current_peer() }).await;
/// assert_eq!(inside, Some(remote_scope::PeerId::new("me")));
/// # Ok(()) }
/// ```
pub fn current_peer() -> Option<PeerId> {
    context::current().map(|node| node.id().clone())
}

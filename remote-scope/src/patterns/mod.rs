//! Distributed patterns built on `remote!`: the shapes of program people write with "run this
//! there", each a thin layer over [`Call`](crate::Call)s. The bodies stay lexical blocks with
//! checked capture lists; a helper takes a closure that gives the call for a peer (or an
//! item), and decides where, how many at once, and what to do with failures.
//!
//! | helper | what it does |
//! |---|---|
//! | [`gather`] | many calls, a bound on those in flight, every result in order; or the first failure, cancelling the rest |
//! | [`fan_out`] | one body on each of a set of peers, each peer's result |
//! | [`spread`] | the items of a collection over a set of peers, each to the least loaded |
//! | [`first_success`] | redundant execution: the first success wins, the others are cancelled |
//! | [`retry`] | on a failure where the body did not run, the next peer, with a backoff and a deadline |
//! | [`Placement`] | which member owns a key (rendezvous hashing), stable as members come and go |
//! | [`quorum`] | the same body on every replica; a majority that agrees decides |
//! | [`health`] | a peer's round trip and load, which [`Spread::weighted`] can use |
//!
//! Every helper works on any peers: connected over WebSockets, in a browser, or on a NATS
//! cluster (where [`Node::members`](crate::Node::members) gives the set of a pool's members).
//! Dropping a helper's future cancels its calls in flight, which stops their bodies.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), remote_scope::Error> {
//! use remote_scope::{patterns, remote, Node};
//!
//! let node = Node::builder().build()?;
//! let peers = vec![node.id().clone()];
//! let text = "a body runs\nwhere the call says".to_string();
//! // Map: count the words of each line on a peer; reduce: add the counts here.
//! let lines: Vec<String> = text.lines().map(str::to_owned).collect();
//! let counts = node
//!     .run(patterns::spread(peers, lines, |peer, line| {
//!         remote!(peer, [line: String], { line.split_whitespace().count() })
//!     }).fail_fast())
//!     .await?;
//! assert_eq!(counts, [3, 4]);
//! # Ok(()) }
//! ```

mod first;
mod gather;
mod health;
mod placement;
mod quorum;
mod retry;
mod spread;

pub use first::{first_success, FirstSuccess};
pub use gather::{fan_out, gather, FailFast, FanOut, Gather};
pub use health::{health, health_body, Health, Load};
pub use placement::Placement;
pub use quorum::{quorum, Agreed, Quorum};
pub use retry::{retry, Backoff, Retry};
pub use spread::{spread, Assign, Counted, Spread};

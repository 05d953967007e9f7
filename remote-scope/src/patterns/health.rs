//! How a peer is doing: the round trip of a call to it, and its load as it reports it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::context;
use crate::error::Error;
use crate::node::Node;
use crate::peer_id::PeerId;

/// A peer's health, as [`health`] measured it: a call's round trip to it and its own count of
/// the work it has.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// The peer.
    pub peer: PeerId,
    /// The round trip of a call that does nothing, from sending it to its answer.
    pub rtt: Duration,
    /// The peer's load when it answered.
    pub load: Load,
}

/// What a peer reports of its work, from its [`NodeStats`](crate::NodeStats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Load {
    /// Bodies it was running for its peers (the probe's own included).
    pub running: usize,
    /// Calls it had made and was waiting on.
    pub waiting: usize,
    /// Bytes it had queued for its peers and not written yet.
    pub queued_bytes: usize,
    /// Peers connected to it.
    pub connections: usize,
}

impl Health {
    /// How much of the work a peer should get relative to others, for
    /// [`spread`](crate::patterns::spread): `1 / (1 + bodies running besides the probe)`, so an
    /// idle peer weighs 1 and one running 3 bodies weighs a quarter.
    pub fn weight(&self) -> f64 {
        let others = self.load.running.saturating_sub(1);
        1.0 / (1.0 + others as f64)
    }
}

/// Measures `peer`'s health: sends it a call that reads its load (a body built into every
/// peer of this version) and times the round trip on the runtime's clock. A peer whose
/// [`Authorize`](crate::Authorize) lets a caller run only some bodies must allow
/// [`health_body`] for this one to work.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::{patterns, Node};
///
/// let server = Node::builder().build()?;
/// let listener = server.listen("127.0.0.1:0").await?;
/// let client = Node::builder().build()?;
/// let peer = client.connect(&listener.url()).await?;
/// let health = client.run(patterns::health(peer.clone())).await?;
/// assert_eq!(health.peer, peer);
/// assert_eq!(health.load.connections, 1);
/// # Ok(()) }
/// ```
pub async fn health(peer: PeerId) -> Result<Health, Error> {
    let node = context::calling_node()?;
    let started = node.runtime().now();
    let load = load_of(&peer).on(&node).await?;
    let rtt = node.runtime().now().saturating_sub(started);
    Ok(Health { peer, rtt, load })
}

/// The name of the body [`health`] calls, for an [`Allowlist`](crate::Allowlist).
///
/// ```
/// assert!(remote_scope::patterns::health_body().starts_with("remote_scope::patterns::health::"));
/// ```
pub fn health_body() -> &'static str {
    load_of(&PeerId::new("")).body_name()
}

fn load_of(peer: &PeerId) -> crate::call::Call<Load> {
    crate::remote!(peer, [], {
        context::current().map_or_else(Load::default, |n| load_here(&n))
    })
}

fn load_here(node: &Node) -> Load {
    let stats = node.stats();
    Load {
        running: stats.bodies_running,
        waiting: stats.calls_waiting,
        queued_bytes: stats.bytes_queued,
        connections: stats.connections,
    }
}

//! Pools: named groups of peers that serve the same bodies. A call to a pool runs on one
//! member: over direct connections the node picks the connected member with the fewest of its
//! calls in flight; on a NATS cluster the cluster's queue group picks one.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::peer_id::PeerId;

/// A named group of peers that serve the same bodies; used where a peer goes, a call runs on
/// one member. A node is a member of the pools its builder names
/// ([`NodeBuilder::pool`](crate::NodeBuilder::pool)), and tells its peers so when it connects.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::{remote, Node, Pool};
///
/// let worker = Node::builder().id("worker-1").pool("resize").build()?;
/// let listener = worker.listen("127.0.0.1:0").await?;
/// let client = Node::builder().build()?;
/// client.connect(&listener.url()).await?;
///
/// let resize = Pool::new("resize");
/// assert_eq!(client.members(&resize), ["worker-1".into()]);
/// let ran_on = client
///     .run(remote!(resize, [], { remote_scope::current_peer() }))
///     .await?;
/// assert_eq!(ran_on, Some("worker-1".into()));
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pool(Arc<str>);

impl Pool {
    /// The longest name a pool may have, in bytes.
    pub(crate) const MAX_LEN: usize = 128;

    /// The pool named `name`: one token of letters, digits, `_` and `-` (it is a subject
    /// token on NATS); [`NodeBuilder::pool`](crate::NodeBuilder::pool) refuses others.
    pub fn new(name: impl Into<Arc<str>>) -> Pool {
        Pool(name.into())
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Whether the name is one a node can serve: 1 to 128 letters, digits, `_` or `-`.
    ///
    /// ```
    /// use remote_scope::Pool;
    /// assert!(Pool::new("resize-v2").is_valid());
    /// assert!(!Pool::new("a.b").is_valid());
    /// ```
    pub fn is_valid(&self) -> bool {
        (1..=Self::MAX_LEN).contains(&self.0.len())
            && self
                .0
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    /// Why this name is not valid, for errors.
    pub(crate) fn refusal(&self) -> String {
        format!(
            "the pool name {} is not valid: 1 to {} letters, digits, `_` or `-`",
            crate::text::Quoted(&self.0),
            Self::MAX_LEN
        )
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({})", crate::text::Quoted(&self.0))
    }
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pool `{}`", &*self.0)
    }
}

impl From<&str> for Pool {
    fn from(name: &str) -> Pool {
        Pool::new(name)
    }
}

/// Where a call goes: one peer, or one member of a pool ([`AsPeer::target`](crate::AsPeer::target)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// This peer.
    Peer(PeerId),
    /// One member of this pool, chosen when the call starts.
    Pool(Pool),
}

impl From<String> for Pool {
    fn from(name: String) -> Pool {
        Pool::new(name)
    }
}

impl From<&Pool> for Pool {
    fn from(pool: &Pool) -> Pool {
        pool.clone()
    }
}

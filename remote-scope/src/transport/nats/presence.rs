//! Who is on the cluster: every node publishes a heartbeat on `<prefix>.presence` (its id and
//! pools) every heartbeat interval, and a last one, marked as leaving, when it leaves. A node
//! counts a peer as on the cluster from its first heartbeat until it leaves or misses
//! [`MISSED`] heartbeats in a row; the node's [`events`](crate::Node::events) say so.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::events::Seen;
use crate::node::Node;
use crate::peer_id::PeerId;
use crate::pool::Pool;
use crate::sync::lock;

/// Heartbeats a peer may miss before it counts as gone.
pub(crate) const MISSED: u32 = 3;

/// What a heartbeat says.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    pub(crate) peer: PeerId,
    pub(crate) pools: Vec<Pool>,
    pub(crate) leaving: bool,
}

impl Heartbeat {
    pub(crate) fn encode(&self) -> Bytes {
        rmp_serde::to_vec(self).map(Bytes::from).unwrap_or_default()
    }

    /// A heartbeat as received: anything on the subject may be sent by anyone on the cluster.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Heartbeat> {
        let beat: Heartbeat = rmp_serde::from_slice(bytes).ok()?;
        let pools_ok = beat.pools.len() <= 1024 && beat.pools.iter().all(|p| p.check().is_ok());
        (beat.peer.is_valid() && pools_ok).then_some(beat)
    }
}

/// The peers on the cluster, as their heartbeats tell.
#[derive(Default)]
pub(crate) struct Presence {
    /// Each peer's pools, and when its last heartbeat came (on the node's clock).
    peers: Mutex<HashMap<PeerId, (Vec<Pool>, Duration)>>,
}

impl Presence {
    /// A heartbeat arrived. Returns whether the peer is new (so that it hears of this node
    /// at once, rather than at the next beat).
    pub(crate) fn heard(&self, node: &Node, beat: Heartbeat) -> bool {
        if beat.peer == *node.id() {
            return false;
        }
        if beat.leaving {
            if lock(&self.peers).remove(&beat.peer).is_some() {
                node.seen_down(&beat.peer, Seen::OnCluster);
            }
            return false;
        }
        let now = node.runtime().now();
        let new = lock(&self.peers)
            .insert(beat.peer.clone(), (beat.pools.clone(), now))
            .is_none();
        if new {
            node.seen_up(&beat.peer, Seen::OnCluster, &beat.pools);
        }
        new
    }

    /// Forgets the peers whose last heartbeat is older than `gone_after`, and returns them.
    pub(crate) fn sweep(&self, node: &Node, gone_after: Duration) -> Vec<PeerId> {
        let now = node.runtime().now();
        let gone: Vec<PeerId> = {
            let mut peers = lock(&self.peers);
            let gone: Vec<PeerId> = peers
                .iter()
                .filter(|(_, (_, at))| now.saturating_sub(*at) > gone_after)
                .map(|(peer, _)| peer.clone())
                .collect();
            for peer in &gone {
                peers.remove(peer);
            }
            gone
        };
        for peer in &gone {
            tracing::info!(%peer, ?gone_after, "no heartbeat from a peer on the cluster; it counts as gone");
            node.seen_down(peer, Seen::OnCluster);
        }
        gone
    }

    /// Forgets every peer (this node left the cluster).
    pub(crate) fn clear(&self, node: &Node) {
        let all: Vec<PeerId> = lock(&self.peers).drain().map(|(peer, _)| peer).collect();
        for peer in all {
            node.seen_down(&peer, Seen::OnCluster);
        }
    }

    /// The peers on the cluster that are members of `pool`.
    pub(crate) fn members(&self, pool: &Pool) -> Vec<PeerId> {
        lock(&self.peers)
            .iter()
            .filter(|(_, (pools, _))| pools.contains(pool))
            .map(|(peer, _)| peer.clone())
            .collect()
    }

    /// The peers on the cluster.
    pub(crate) fn peers(&self) -> Vec<PeerId> {
        lock(&self.peers).keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_round_trip_and_hostile_ones_are_refused() {
        let beat = Heartbeat {
            peer: PeerId::new("worker-1"),
            pools: vec![Pool::new("resize")],
            leaving: false,
        };
        let back = Heartbeat::decode(&beat.encode()).expect("decodes");
        assert_eq!(back.peer, beat.peer);
        assert_eq!(back.pools, beat.pools);
        for bad in [
            Heartbeat {
                peer: PeerId::new("two\nlines"),
                pools: vec![],
                leaving: false,
            },
            Heartbeat {
                peer: PeerId::new("w"),
                pools: vec![Pool::new("a.b")],
                leaving: false,
            },
        ] {
            assert!(Heartbeat::decode(&bad.encode()).is_none());
        }
        assert!(Heartbeat::decode(b"\xff\x00garbage").is_none());
    }
}

//! Who is on the cluster: every node publishes a heartbeat on `<prefix>.presence.<its id>`
//! (its id, pools and interval) every heartbeat interval, and a last one, marked as leaving,
//! when it leaves. A node counts a peer as on the cluster from its first heartbeat until it
//! leaves or misses [`MISSED`] of its heartbeats in a row; the node's
//! [`events`](crate::Node::events) say so. A heartbeat counts only on its sender's own subject,
//! which the cluster's permissions guard as they guard its frames (SECURITY.md).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::node::Node;
use crate::node::Seen::OnCluster;
use crate::peer_id::PeerId;
use crate::pool::Pool;
use crate::sync::lock;

/// Heartbeats a peer may miss before it counts as gone.
pub(crate) const MISSED: u32 = 3;

/// Peers a node keeps track of on the cluster; heartbeats of more are ignored.
const MOST_PEERS: usize = 65_536;

/// The most pools a heartbeat may name.
const MOST_POOLS: usize = 1024;

/// The largest heartbeat a node sends: its id, and the most pools at the longest names, each
/// with a string header, plus room for the fields' names and headers. A larger one is refused
/// unread: decoding it first would allocate for every name it claims (an empty name is a byte
/// on the wire and an allocation here) before the count is checked.
const MOST_BYTES: usize = PeerId::MAX_LEN + MOST_POOLS * (Pool::MAX_LEN + 2) + 256;

/// Where `peer` beats.
pub(crate) fn subject(prefix: &str, peer: &PeerId) -> String {
    format!("{prefix}.presence.{}", super::subjects::token(peer))
}

/// Where every node's heartbeats come.
pub(crate) fn subjects(prefix: &str) -> String {
    format!("{prefix}.presence.*")
}

/// What a heartbeat says.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    pub(crate) peer: PeerId,
    pub(crate) pools: Vec<Pool>,
    pub(crate) leaving: bool,
    /// The sender's interval, in milliseconds: it is gone after [`MISSED`] of them.
    pub(crate) every_ms: u64,
}

impl Heartbeat {
    pub(crate) fn encode(&self) -> Bytes {
        crate::protocol::encode_control(self).unwrap_or_default()
    }

    /// A heartbeat as received: anything on the subject may be sent by anyone on the cluster.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Heartbeat> {
        if bytes.len() > MOST_BYTES {
            return None;
        }
        let beat: Heartbeat = crate::protocol::decode_frame(bytes).ok()?;
        let pools_ok = beat.pools.len() <= MOST_POOLS && beat.pools.iter().all(Pool::is_valid);
        (beat.peer.is_valid() && pools_ok && beat.every_ms > 0).then_some(beat)
    }

    /// The heartbeat in `message`, if it is one and came on its sender's own subject.
    pub(crate) fn received(prefix: &str, message: &async_nats::Message) -> Option<Heartbeat> {
        let beat = Heartbeat::decode(&message.payload)?;
        (message.subject.as_str() == subject(prefix, &beat.peer)).then_some(beat)
    }
}

/// The peers on the cluster, as their heartbeats tell.
#[derive(Default)]
pub(crate) struct Presence {
    /// Each peer's pools, when its last heartbeat came (on the node's clock), and how long
    /// after that it counts as gone.
    peers: Mutex<HashMap<PeerId, Seen>>,
}

struct Seen {
    pools: Vec<Pool>,
    at: Duration,
    gone_after: Duration,
}

impl Presence {
    /// A heartbeat arrived. Returns whether the peer is new (so that it hears of this node
    /// at once, rather than at the next beat). Membership changes under the table's lock, so
    /// a sweep and a heartbeat at once leave both agreeing.
    pub(crate) fn heard(&self, node: &Node, beat: Heartbeat) -> bool {
        if beat.peer == *node.id() {
            return false;
        }
        let mut peers = lock(&self.peers);
        if beat.leaving {
            if peers.remove(&beat.peer).is_some() {
                node.seen_down(&beat.peer, OnCluster);
            }
            return false;
        }
        let now = node.runtime().now();
        let gone_after = Duration::from_millis(beat.every_ms)
            .saturating_mul(MISSED)
            .min(Duration::from_secs(3 * 3600));
        if !peers.contains_key(&beat.peer) && peers.len() >= MOST_PEERS {
            return false;
        }
        let new = peers
            .insert(
                beat.peer.clone(),
                Seen {
                    pools: beat.pools.clone(),
                    at: now,
                    gone_after,
                },
            )
            .is_none();
        if new {
            node.seen_up(&beat.peer, OnCluster, &beat.pools);
        }
        new
    }

    /// Forgets the peers whose last heartbeat is older than they allow, and returns them.
    pub(crate) fn sweep(&self, node: &Node) -> Vec<PeerId> {
        let now = node.runtime().now();
        let mut peers = lock(&self.peers);
        let gone: Vec<PeerId> = peers
            .iter()
            .filter(|(_, seen)| now.saturating_sub(seen.at) > seen.gone_after)
            .map(|(peer, _)| peer.clone())
            .collect();
        for peer in &gone {
            peers.remove(peer);
            tracing::info!(%peer, "no heartbeat from a peer on the cluster; it counts as gone");
            node.seen_down(peer, OnCluster);
        }
        gone
    }

    /// Forgets every peer (this node left the cluster).
    pub(crate) fn clear(&self, node: &Node) {
        let mut peers = lock(&self.peers);
        for (peer, _) in peers.drain() {
            node.seen_down(&peer, OnCluster);
        }
    }

    /// The peers on the cluster that are members of `pool`.
    pub(crate) fn members(&self, pool: &Pool) -> Vec<PeerId> {
        lock(&self.peers)
            .iter()
            .filter(|(_, seen)| seen.pools.contains(pool))
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
    fn the_largest_heartbeat_a_node_sends_is_taken_and_larger_input_is_not_read() {
        let largest = Heartbeat {
            peer: PeerId::new("p".repeat(PeerId::MAX_LEN)),
            pools: (0..MOST_POOLS)
                .map(|n| Pool::new(format!("{n:0>width$}", width = Pool::MAX_LEN)))
                .collect(),
            leaving: true,
            every_ms: u64::MAX,
        };
        let bytes = largest.encode();
        assert!(bytes.len() <= MOST_BYTES, "{} bytes", bytes.len());
        let back = Heartbeat::decode(&bytes).expect("taken");
        assert_eq!(back.pools.len(), MOST_POOLS);
        // A million empty names: refused from its length, before a name is allocated.
        let mut flood = vec![0x94, 0xa1, b'p', 0xdd];
        flood.extend_from_slice(&1_000_000_u32.to_be_bytes());
        flood.resize(flood.len() + 1_000_000, 0xa0);
        assert!(flood.len() > MOST_BYTES);
        assert!(Heartbeat::decode(&flood).is_none());
    }

    #[test]
    fn heartbeats_round_trip_and_hostile_ones_are_refused() {
        let beat = Heartbeat {
            peer: PeerId::new("worker-1"),
            pools: vec![Pool::new("resize")],
            leaving: false,
            every_ms: 500,
        };
        // As other builds of this protocol write it: rmp-serde's default form.
        let expected = rmp_serde::to_vec(&beat).expect("encodes");
        assert_eq!(&beat.encode()[..], &expected[..]);
        let back = Heartbeat::decode(&beat.encode()).expect("decodes");
        assert_eq!(back.peer, beat.peer);
        assert_eq!(back.pools, beat.pools);
        for bad in [
            Heartbeat {
                peer: PeerId::new("two\nlines"),
                pools: vec![],
                leaving: false,
                every_ms: 500,
            },
            Heartbeat {
                peer: PeerId::new("w"),
                pools: vec![Pool::new("a.b")],
                leaving: false,
                every_ms: 500,
            },
            Heartbeat {
                peer: PeerId::new("w"),
                pools: vec![],
                leaving: false,
                every_ms: 0,
            },
        ] {
            assert!(Heartbeat::decode(&bad.encode()).is_none());
        }
        assert!(Heartbeat::decode(b"\xff\x00garbage").is_none());
    }

    #[test]
    fn a_heartbeat_counts_only_on_its_senders_own_subject() {
        let beat = Heartbeat {
            peer: PeerId::new("worker 1"),
            pools: vec![],
            leaving: true,
            every_ms: 500,
        };
        let message = |subject: &str| async_nats::Message {
            subject: subject.into(),
            reply: None,
            payload: beat.encode(),
            headers: None,
            status: None,
            description: None,
            length: 0,
        };
        let own = subject("rs", &beat.peer);
        assert_eq!(own, "rs.presence.worker~201");
        assert!(Heartbeat::received("rs", &message(&own)).is_some());
        // Another node saying that `worker 1` leaves is not heard.
        assert!(Heartbeat::received("rs", &message("rs.presence.mallory")).is_none());
    }
}

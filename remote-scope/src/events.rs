//! Membership as a node sees it: a peer is *up* while the node holds a connection to it or
//! sees it on a NATS cluster the node has joined, and *down* once neither holds.
//! [`Node::events`] streams the changes.

use futures::channel::mpsc;
use futures::Stream;

use crate::node::{Node, PeerEvent, Seen};
use crate::peer_id::PeerId;
use crate::pool::Pool;
use crate::sync::lock;

impl Node {
    /// The peers' comings and goings from now on: [`PeerEvent::Up`] when a peer connects or
    /// appears on the NATS cluster, [`PeerEvent::Down`] when its last connection closes and the
    /// cluster has not seen it for the heartbeat bound
    /// (`transport::nats::NatsOptions::heartbeat`, on NATS).
    /// Peers up already are told first, as `Up`s. The stream ends when the node shuts down;
    /// events wait for the reader, who should keep reading.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use futures::StreamExt;
    /// use remote_scope::{Node, PeerEvent};
    ///
    /// let server = Node::builder().id("server").build()?;
    /// let listener = server.listen("127.0.0.1:0").await?;
    /// let client = Node::builder().id("client").build()?;
    /// let mut events = client.events();
    /// client.connect(&listener.url()).await?;
    /// assert!(matches!(events.next().await, Some(PeerEvent::Up { peer, .. }) if peer == "server".into()));
    /// server.shutdown();
    /// assert!(matches!(events.next().await, Some(PeerEvent::Down { peer }) if peer == "server".into()));
    /// # Ok(()) }
    /// ```
    pub fn events(&self) -> impl Stream<Item = PeerEvent> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        let mut membership = lock(self.membership());
        for (peer, (_, pools)) in &membership.up {
            let _ = tx.unbounded_send(PeerEvent::Up {
                peer: peer.clone(),
                pools: pools.clone(),
            });
        }
        if !self.is_shut_down() {
            membership.listeners.push(tx);
        }
        rx
    }

    /// `peer` is up for `why`, a member of `pools`.
    pub(crate) fn seen_up(&self, peer: &PeerId, why: Seen, pools: &[Pool]) {
        let mut membership = lock(self.membership());
        let entry = membership
            .up
            .entry(peer.clone())
            .or_insert_with(|| (0, pools.to_vec()));
        let was = entry.0;
        entry.0 |= why as u8;
        if was == 0 {
            let event = PeerEvent::Up {
                peer: peer.clone(),
                pools: pools.to_vec(),
            };
            membership.tell(&event);
        }
    }

    /// `peer` is no longer up for `why`.
    pub(crate) fn seen_down(&self, peer: &PeerId, why: Seen) {
        let mut membership = lock(self.membership());
        let Some(entry) = membership.up.get_mut(peer) else {
            return;
        };
        entry.0 &= !(why as u8);
        if entry.0 == 0 {
            membership.up.remove(peer);
            membership.tell(&PeerEvent::Down { peer: peer.clone() });
        }
    }

    /// The peers up now.
    pub(crate) fn up_peers(&self) -> Vec<PeerId> {
        lock(self.membership()).up.keys().cloned().collect()
    }

    /// Ends every listener's stream (the node has shut down).
    pub(crate) fn end_events(&self) {
        lock(self.membership()).listeners.clear();
    }

    /// The members of `pool` this node knows of now: connected peers that said they are
    /// members, and members on a NATS cluster the node has joined.
    pub fn members(&self, pool: &Pool) -> Vec<PeerId> {
        let mut members = self.connected_members(pool);
        for member in self.directory_members(pool) {
            if !members.contains(&member) {
                members.push(member);
            }
        }
        members.sort();
        members
    }
}

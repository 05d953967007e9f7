//! Peers reached by id alone: when a node has joined a directory (a NATS cluster, where every
//! node listens on a subject of its own), a call to a peer it holds no connection to dials that
//! peer first and waits for the handshake, instead of failing with `NotConnected`.
//!
//! The directory itself lives with its transport; this is the part the call path sees, free of
//! any runtime or client library so that the core still builds for wasm32.

use std::sync::Arc;

use futures::channel::oneshot;

use crate::error::Error;
use crate::node::{Directory, Node};
use crate::peer_id::PeerId;
use crate::pool::Pool;
use crate::sync::lock;

impl Node {
    /// From now on, calls to peers this node is not connected to dial them through `directory`.
    // Only the NATS transport joins a directory.
    #[cfg_attr(
        not(all(feature = "nats", not(target_arch = "wasm32"))),
        allow(dead_code)
    )]
    pub(crate) fn set_directory(&self, directory: Option<Arc<dyn Directory>>) {
        lock(self.dialing()).directory = directory;
    }

    /// Whether the node has joined a directory.
    #[cfg_attr(
        not(all(feature = "nats", not(target_arch = "wasm32"))),
        allow(dead_code)
    )]
    pub(crate) fn has_directory(&self) -> bool {
        lock(self.dialing()).directory.is_some()
    }

    /// A future that completes when `peer` is connected, dialling it through the directory
    /// (once, however many calls wait); `None` if the node has joined no directory. It ends
    /// with the dial's error if the dial fails.
    pub(crate) fn dial_on_demand(
        &self,
        peer: &PeerId,
    ) -> Option<oneshot::Receiver<Result<PeerId, Error>>> {
        let (tx, rx) = oneshot::channel();
        let directory = {
            let mut dialing = lock(self.dialing());
            let directory = Arc::clone(dialing.directory.as_ref()?);
            // A caller that found no connection a moment ago may come after the dial that
            // made it: a second session would only compete with the first.
            if self.is_connected(peer) {
                let _ = tx.send(Ok(peer.clone()));
                return Some(rx);
            }
            if let Some(waiters) = dialing.waiting.get_mut(peer) {
                waiters.push(tx);
                return Some(rx);
            }
            dialing.waiting.insert(peer.clone(), vec![tx]);
            directory
        };
        let node = self.internal();
        let peer = peer.clone();
        let dial = directory.dial(&node, &peer);
        self.runtime().spawn(Box::pin(async move {
            let result = match dial.await {
                Ok(_) => Ok(peer.clone()),
                // Two calls that raced: the peer dialled us while we dialled it.
                Err(Error::DuplicatePeer { .. }) if node.is_connected(&peer) => Ok(peer.clone()),
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                tracing::debug!(%peer, error = %e, "dialling through the directory failed");
            }
            let waiters = lock(node.dialing())
                .waiting
                .remove(&peer)
                .unwrap_or_default();
            for waiter in waiters {
                let _ = waiter.send(result.clone());
            }
        }));
        Some(rx)
    }
}

impl Node {
    /// The directory's members of `pool`; none without a directory.
    pub(crate) fn directory_members(&self, pool: &Pool) -> Vec<PeerId> {
        let directory = lock(self.dialing()).directory.clone();
        directory.map(|d| d.members(pool)).unwrap_or_default()
    }

    /// A member of `pool` the directory knows of, not one of `tried`, that this node holds no
    /// connection to; one at random, so that callers spread over them.
    pub(crate) fn unconnected_member(&self, pool: &Pool, tried: &[PeerId]) -> Option<PeerId> {
        let candidates: Vec<PeerId> = self
            .directory_members(pool)
            .into_iter()
            .filter(|m| !tried.contains(m) && !self.is_connected(m) && m != self.id())
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let at = crate::random::random_u64() as usize % candidates.len();
        candidates.into_iter().nth(at)
    }

    /// A future for one member of `pool` (not one of `tried`, where the directory can tell),
    /// connected by the time it completes; `None` without a directory.
    pub(crate) fn pick_member(
        &self,
        pool: &Pool,
        tried: &[PeerId],
    ) -> Option<oneshot::Receiver<Result<PeerId, Error>>> {
        let directory = lock(self.dialing()).directory.clone()?;
        let (tx, rx) = oneshot::channel();
        let pick = directory.pick(self, pool, tried);
        let node = self.internal();
        self.runtime().spawn(Box::pin(async move {
            let result = match pick.await {
                Ok(member) if node.is_connected(&member) => Ok(member),
                Ok(member) => match node.dial_on_demand(&member) {
                    Some(dialled) => dialled.await.unwrap_or_else(|_| {
                        Err(Error::NotConnected {
                            peer: member.clone(),
                        })
                    }),
                    None => Err(Error::NotConnected { peer: member }),
                },
                Err(e) => Err(e),
            };
            let _ = tx.send(result);
        }));
        Some(rx)
    }
}

//! Peers reached by id alone: when a node has joined a directory (a NATS cluster, where every
//! node listens on a subject of its own), a call to a peer it holds no connection to dials that
//! peer first and waits for the handshake, instead of failing with `NotConnected`.
//!
//! The directory itself lives with its transport; this is the part the call path sees, free of
//! any runtime or client library so that the core still builds for wasm32.

use std::collections::HashMap;
use std::sync::Arc;

use futures::channel::oneshot;

use crate::error::Error;
use crate::node::Node;
use crate::peer_id::PeerId;
use crate::runtime::BoxFuture;
use crate::sync::lock;

/// Something that connects this node to a peer given only the peer's id.
pub(crate) trait Directory: Send + Sync + 'static {
    /// Dials `peer` and runs the handshake; the connection is in the node's table when it
    /// returns `Ok`.
    fn dial(&self, node: &Node, peer: &PeerId) -> BoxFuture<'static, Result<PeerId, Error>>;
}

/// The node's directory, if it has joined one, and the calls waiting for a dial under way.
#[derive(Default)]
pub(crate) struct Dialing {
    directory: Option<Arc<dyn Directory>>,
    /// One dial per peer at a time; every call to it waits for that one.
    waiting: HashMap<PeerId, Vec<oneshot::Sender<Result<(), Error>>>>,
}

/// The state a node keeps for dialling on demand.
pub(crate) type DialingState = std::sync::Mutex<Dialing>;

impl Node {
    /// From now on, calls to peers this node is not connected to dial them through `directory`.
    pub(crate) fn set_directory(&self, directory: Option<Arc<dyn Directory>>) {
        lock(self.dialing()).directory = directory;
    }

    /// A future that completes when `peer` is connected, dialling it through the directory
    /// (once, however many calls wait); `None` if the node has joined no directory. It ends
    /// with the dial's error if the dial fails.
    pub(crate) fn dial_on_demand(
        &self,
        peer: &PeerId,
    ) -> Option<oneshot::Receiver<Result<(), Error>>> {
        let (tx, rx) = oneshot::channel();
        let directory = {
            let mut dialing = lock(self.dialing());
            let directory = Arc::clone(dialing.directory.as_ref()?);
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
                Ok(_) => Ok(()),
                // Two calls that raced: the peer dialled us while we dialled it.
                Err(Error::DuplicatePeer { .. }) if node.is_connected(&peer) => Ok(()),
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

//! Pools on the cluster: a member of pool `P` is in the NATS queue group `P` on
//! `<prefix>.pool.P`, and answers a request there with its id. A caller that knows no member of
//! a pool yet (its heartbeats have not come) asks the queue group, which picks one member, or
//! says at once that there are none ("no responders").

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::router::Router;
use crate::error::Error;
use crate::node::Node;
use crate::peer_id::PeerId;
use crate::pool::Pool;

/// How long a caller waits for a member to answer for its pool.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a caller asks again when the member the queue group picked was tried already.
const ASKS: usize = 4;

/// The subject of `pool`'s queue group.
pub(super) fn subject(prefix: &str, pool: &Pool) -> String {
    format!("{prefix}.pool.{}", pool.name())
}

/// Answers the requests for `pool` that the queue group gives this node: with its id, or
/// nothing (an empty answer) while it shuts down, so that the caller asks again.
pub(super) async fn answer(
    node: crate::node::WeakNode,
    router: Arc<Router>,
    mut requests: async_nats::Subscriber,
) {
    while let Some(request) = requests.next().await {
        let Some(reply) = request.reply else {
            continue;
        };
        let Some(node) = node.live() else {
            return;
        };
        let answer = if node.is_draining() {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(node.id().as_str().as_bytes())
        };
        let _ = router.client.publish(reply, answer).await;
    }
}

/// Asks the queue group of `pool` for a member not in `tried`.
pub(super) async fn pick(
    router: &Router,
    node: &Node,
    pool: &Pool,
    tried: &[PeerId],
) -> Result<PeerId, Error> {
    let subject = subject(&router.prefix, pool);
    let no_members = || Error::NoMembers {
        pool: pool.clone(),
        tried: tried.to_vec(),
    };
    for _ in 0..ASKS {
        let asked = router
            .client
            .send_request(
                subject.clone(),
                async_nats::Request::new().timeout(Some(ASK_TIMEOUT)),
            )
            .await;
        let answer = match asked {
            Ok(answer) => answer,
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                return Err(no_members())
            }
            Err(e) => {
                return Err(Error::transport_caused(
                    "asking a pool's queue group on NATS failed",
                    e,
                ))
            }
        };
        let member = std::str::from_utf8(&answer.payload)
            .ok()
            .filter(|id| !id.is_empty())
            .map(PeerId::new)
            .filter(|peer| peer.is_valid() && peer != node.id());
        match member {
            Some(member) if !tried.contains(&member) => return Ok(member),
            _ => continue,
        }
    }
    Err(no_members())
}

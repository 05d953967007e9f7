//! `remote_scope::caller()`: a body knows which peer called it, hop by hop, so it can answer
//! per caller (quotas, ownership, audit) without the caller passing its own id.

mod common;

use common::connected_peers;
use remote_scope::{caller, remote, Error, PeerId};

/// The callers seen: by the server's body, by the client's body it calls, by a body the server
/// calls on itself, and by the server's body again after those.
type Seen = (
    Option<PeerId>,
    Option<PeerId>,
    Option<PeerId>,
    Option<PeerId>,
);

#[tokio::test]
async fn each_body_sees_the_peer_that_called_it_and_nested_calls_their_own() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let client = p.client_id.clone();
    let seen: Result<Seen, Error> = p
        .client
        .run(async move {
            remote!(server, [client: PeerId], {
                let here = caller();
                // Back to the client: its body sees the server as its caller.
                let back = remote!(client, [], { caller() }).await?;
                // This node to itself: the caller is this node.
                let me = remote_scope::Node::current().expect("a body has a node").id().clone();
                let local = remote!(me, [], { caller() }).await?;
                // And after the nested calls, still the client.
                Ok::<_, Error>((here, back, local, caller()))
            })
            .await?
        })
        .await;
    let (here, back, local, after) = seen.expect("the calls succeed");
    assert_eq!(here.as_ref(), Some(&p.client_id));
    assert_eq!(back.as_ref(), Some(&p.server_id));
    assert_eq!(local.as_ref(), Some(&p.server_id));
    assert_eq!(after.as_ref(), Some(&p.client_id));
    // Outside a body there is no caller.
    assert_eq!(p.client.run(async { caller() }).await, None);
}

#[tokio::test]
async fn a_body_answers_per_caller() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let greeting = p
        .client
        .run(remote!(server, [], {
            match caller() {
                Some(peer) => format!("hello, {peer}"),
                None => "hello, nobody".to_owned(),
            }
        }))
        .await;
    assert_eq!(greeting, Ok(format!("hello, {}", p.client_id)));
}

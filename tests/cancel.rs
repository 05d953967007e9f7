//! A caller that stops waiting stops the body on the serving peer: by dropping the call, by its
//! timeout, or, should the cancel never arrive, by the deadline the call carried.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{connected_peers, wait_until, RawPeer};
use futures::StreamExt;
use remote_scope::protocol::{Frame, Invoke};
use remote_scope::{remote, Error, Node, PeerId};

/// Sets its flag when dropped: the body holding it was stopped, not left running.
struct SetOnDrop(&'static AtomicBool);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

static DROPPED_CALL: AtomicBool = AtomicBool::new(false);
static TIMED_OUT_CALL: AtomicBool = AtomicBool::new(false);
static DEADLINE: AtomicBool = AtomicBool::new(false);

#[tokio::test]
async fn dropping_a_call_stops_its_body_on_the_serving_peer() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let call = p.client.run(remote!(server, [], {
        let _noticed = SetOnDrop(&DROPPED_CALL);
        tokio::time::sleep(Duration::from_secs(60)).await;
    }));
    // Sent and running on the server, then given up.
    assert!(tokio::time::timeout(Duration::from_millis(100), call)
        .await
        .is_err());
    wait_until(|| DROPPED_CALL.load(Ordering::SeqCst)).await;
}

#[tokio::test]
async fn a_call_that_times_out_stops_its_body_on_the_serving_peer() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let result = p
        .client
        .run(
            remote!(server, [], {
                let _noticed = SetOnDrop(&TIMED_OUT_CALL);
                tokio::time::sleep(Duration::from_secs(60)).await;
            })
            .timeout(Duration::from_millis(100)),
        )
        .await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    wait_until(|| TIMED_OUT_CALL.load(Ordering::SeqCst)).await;
}

fn body_that_notices_the_deadline() -> &'static str {
    let peer = PeerId::new("unused");
    remote!(peer, [], {
        let _noticed = SetOnDrop(&DEADLINE);
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .body_name()
}

#[tokio::test]
async fn serving_peer_stops_a_body_once_the_callers_wait_is_over() {
    let node = Node::builder().id("server").build().unwrap();
    let mut raw = RawPeer::connected_to(&node, "raw").await;
    // A caller that says it waits 100 ms and then never cancels.
    raw.send(&Frame::Invoke(Invoke {
        id: 1,
        body: body_that_notices_the_deadline().into(),
        timeout_ms: 100,
        captures: rmp_serde::to_vec(&()).unwrap(),
    }))
    .await;
    wait_until(|| DEADLINE.load(Ordering::SeqCst)).await;
    // No result is sent for a body stopped at its deadline.
    let next = tokio::time::timeout(Duration::from_millis(300), raw.end.next()).await;
    assert!(next.is_err(), "unexpected frame {next:?}");
}

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
        captures: rmp_serde::to_vec(&()).unwrap().into(),
    }))
    .await;
    wait_until(|| DEADLINE.load(Ordering::SeqCst)).await;
    // No result is sent for a body stopped at its deadline.
    let next = tokio::time::timeout(Duration::from_millis(300), raw.end.next()).await;
    assert!(next.is_err(), "unexpected frame {next:?}");
}

/// Bodies that hold their thread (never yielding) until the test opens their gate, so the test
/// decides exactly which bodies wait in the queue, or in the batch being polled, meanwhile.
mod held {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    pub static FIRST_OPEN: AtomicBool = AtomicBool::new(false);
    pub static SECOND_STARTED: AtomicBool = AtomicBool::new(false);
    pub static SECOND_OPEN: AtomicBool = AtomicBool::new(false);
    pub static EFFECTS: AtomicU32 = AtomicU32::new(0);

    fn hold(gate: &AtomicBool) {
        while !gate.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    pub fn first() -> &'static str {
        let p = remote_scope::PeerId::new("x");
        remote_scope::remote!(p, [], { hold(&FIRST_OPEN) }).body_name()
    }

    pub fn second() -> &'static str {
        let p = remote_scope::PeerId::new("x");
        remote_scope::remote!(p, [], {
            SECOND_STARTED.store(true, Ordering::SeqCst);
            hold(&SECOND_OPEN)
        })
        .body_name()
    }

    /// Finishes at its first poll, leaving a trace.
    pub fn effect() -> &'static str {
        let p = remote_scope::PeerId::new("x");
        remote_scope::remote!(p, [], {
            EFFECTS.fetch_add(1, Ordering::SeqCst);
        })
        .body_name()
    }

    pub fn reset() {
        for gate in [&FIRST_OPEN, &SECOND_STARTED, &SECOND_OPEN] {
            gate.store(false, Ordering::SeqCst);
        }
        EFFECTS.store(0, Ordering::SeqCst);
    }
}

fn invoke(id: u64, body: &str) -> Frame {
    Frame::Invoke(Invoke {
        id,
        body: body.to_owned().into(),
        timeout_ms: 10_000,
        captures: rmp_serde::to_vec(&()).unwrap().into(),
    })
}

/// Counts the `Ping`s a node's reader has taken in. The held bodies block a worker thread, and
/// tokio may leave the connection's writer queued behind them, so the tests learn what the
/// reader has handled from here rather than from the node's answers.
#[derive(Default)]
struct PingsRead(std::sync::atomic::AtomicU32);

impl remote_scope::Middleware for PingsRead {
    fn inbound(&self, _: &remote_scope::Link, frame: Frame) -> Option<Frame> {
        if frame == Frame::Ping {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        Some(frame)
    }
}

/// Sends `Ping` and waits until the node's reader has taken it in, and with it every frame sent
/// before.
async fn read_so_far(raw: &mut RawPeer, pings: &PingsRead) {
    let before = pings.0.load(Ordering::SeqCst);
    raw.send(&Frame::Ping).await;
    wait_until(|| pings.0.load(Ordering::SeqCst) > before).await;
}

/// A node whose reader's progress the test can follow, and a raw peer connected to it.
async fn held_server() -> (Node, RawPeer, std::sync::Arc<PingsRead>) {
    let pings = std::sync::Arc::new(PingsRead::default());
    let node = Node::builder()
        .id("server")
        .middleware(std::sync::Arc::clone(&pings))
        .build()
        .unwrap();
    let raw = RawPeer::connected_to(&node, "raw").await;
    (node, raw, pings)
}

/// Both held-body tests share the gates: one at a time.
static HELD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Takes the gates, and starts body 1 (holding the connection's body task) and body 2 (queued
/// behind it; it holds the task again once it runs).
async fn two_held_bodies() -> (
    tokio::sync::MutexGuard<'static, ()>,
    Node,
    RawPeer,
    std::sync::Arc<PingsRead>,
) {
    let one_at_a_time = HELD.lock().await;
    held::reset();
    let (node, mut raw, pings) = held_server().await;
    raw.send(&invoke(1, held::first())).await;
    raw.send(&invoke(2, held::second())).await;
    (one_at_a_time, node, raw, pings)
}

/// A body cancelled while queued behind a busy one, or while an earlier body of its batch is
/// being polled, is never polled; and after a close, the rest of the batch is not polled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_cancelled_before_its_first_poll_never_runs() {
    let (_gates, node, mut raw, pings) = two_held_bodies().await;
    // 2, 3 and 4 wait in the queue while 1 holds the body task.
    raw.send(&invoke(3, held::effect())).await;
    raw.send(&invoke(4, held::effect())).await;
    // 3 is cancelled while queued.
    raw.send(&Frame::Cancel(3)).await;
    read_so_far(&mut raw, &pings).await;
    held::FIRST_OPEN.store(true, Ordering::SeqCst);
    // 2, 3 and 4 form the next batch; 4 is cancelled while 2 is being polled.
    wait_until(|| held::SECOND_STARTED.load(Ordering::SeqCst)).await;
    raw.send(&Frame::Cancel(4)).await;
    read_so_far(&mut raw, &pings).await;
    held::SECOND_OPEN.store(true, Ordering::SeqCst);
    wait_until(|| node.stats().bodies_running == 0).await;
    assert_eq!(held::EFFECTS.load(Ordering::SeqCst), 0);
    // The connection is still good: an uncancelled body runs.
    raw.send(&invoke(5, held::effect())).await;
    wait_until(|| held::EFFECTS.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_close_the_rest_of_the_batch_is_not_polled() {
    let (_gates, node, mut raw, pings) = two_held_bodies().await;
    raw.send(&invoke(3, held::effect())).await;
    read_so_far(&mut raw, &pings).await;
    held::FIRST_OPEN.store(true, Ordering::SeqCst);
    wait_until(|| held::SECOND_STARTED.load(Ordering::SeqCst)).await;
    node.shutdown();
    held::SECOND_OPEN.store(true, Ordering::SeqCst);
    // Give a wrongly polled body every chance to leave its trace.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(held::EFFECTS.load(Ordering::SeqCst), 0);
    assert_eq!(node.stats(), remote_scope::NodeStats::default());
}

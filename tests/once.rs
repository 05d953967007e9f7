//! Idempotency keys ([`Frame::InvokeOnce`]): a node runs a keyed call once per caller and key,
//! however often it arrives: a repeat while the first run goes on waits for its result, one
//! after it gets the kept result, on the same connection or a new one; another caller's same
//! key is another call; a first run that is stopped does not count.

mod common;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use common::RawPeer;
use remote_scope::protocol::{Frame, Invoke, InvokeOnce, Outcome};
use remote_scope::{remote, Node, PeerId};

/// The runs of the counted body, by its `n` (each test uses its own).
static RUNS: Mutex<Option<HashMap<u64, usize>>> = Mutex::new(None);

fn runs(n: u64) -> usize {
    let runs = RUNS.lock().expect("not poisoned");
    runs.as_ref().and_then(|r| r.get(&n).copied()).unwrap_or(0)
}

/// A body that counts its runs and takes `ms` to answer `n + 1`.
fn counted_body() -> &'static str {
    let (peer, n, ms) = (PeerId::new("unused"), 0_u64, 0_u64);
    remote!(peer, [n: u64, ms: u64], {
        *RUNS
            .lock()
            .expect("not poisoned")
            .get_or_insert_with(HashMap::new)
            .entry(n)
            .or_insert(0) += 1;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        n + 1
    })
    .body_name()
}

fn once(key: u64, id: u64, n: u64, ms: u64) -> Frame {
    Frame::InvokeOnce(InvokeOnce {
        key,
        invoke: Invoke {
            id,
            body: counted_body().into(),
            timeout_ms: 10_000,
            captures: rmp_serde::to_vec(&(n, ms)).expect("encodes").into(),
        },
    })
}

/// The next `Result`'s (id, value).
async fn answer(raw: &mut RawPeer) -> (u64, u64) {
    loop {
        match raw.recv().await {
            Some(Frame::Result(result)) => match result.outcome {
                Outcome::Value(bytes) => {
                    return (result.id, rmp_serde::from_slice(&bytes).expect("a u64"))
                }
                Outcome::Failure(f) => panic!("request {} failed: {f:?}", result.id),
            },
            Some(_) => continue,
            None => panic!("the connection closed"),
        }
    }
}

#[tokio::test]
async fn a_keyed_call_runs_once_however_often_it_arrives() {
    let node = Node::builder().id("worker").build().expect("node");

    let mut raw = RawPeer::connected_to(&node, "caller").await;
    // The first run takes a while; a repeat comes meanwhile and waits for it.
    raw.send(&once(77, 1, 41, 300)).await;
    raw.send(&once(77, 2, 41, 300)).await;
    let mut got = vec![answer(&mut raw).await, answer(&mut raw).await];
    got.sort_unstable();
    assert_eq!(got, [(1, 42), (2, 42)]);
    // A repeat after it finished: the kept result, at once.
    raw.send(&once(77, 3, 41, 300)).await;
    assert_eq!(answer(&mut raw).await, (3, 42));
    assert_eq!(runs(41), 1, "one run for key 77");

    // The caller's connection breaks; on a new one, the key is still known.
    drop(raw);
    let mut again = RawPeer::connected_to(&node, "caller").await;
    again.send(&once(77, 1, 41, 300)).await;
    assert_eq!(answer(&mut again).await, (1, 42));
    assert_eq!(runs(41), 1, "still one run");

    // Another key, or another caller's same key, is another call.
    again.send(&once(78, 2, 1, 0)).await;
    assert_eq!(answer(&mut again).await, (2, 2));
    let mut other = RawPeer::connected_to(&node, "another-caller").await;
    other.send(&once(77, 1, 5, 0)).await;
    assert_eq!(answer(&mut other).await, (1, 6));
    assert_eq!((runs(41), runs(1), runs(5)), (1, 1, 1));
}

#[tokio::test]
async fn a_first_run_stopped_with_its_connection_does_not_count() {
    let node = Node::builder().id("worker").build().expect("node");
    let mut raw = RawPeer::connected_to(&node, "caller").await;
    raw.send(&once(5, 1, 9, 60_000)).await;
    // Its caller goes while it runs: the body is stopped, so a repeat runs it again.
    common::wait_until(|| node.stats().bodies_running == 1).await;
    drop(raw);
    common::wait_until(|| node.stats().bodies_running == 0).await;
    let mut again = RawPeer::connected_to(&node, "caller").await;
    again.send(&once(5, 1, 9, 0)).await;
    assert_eq!(answer(&mut again).await, (1, 10));
    assert_eq!(runs(9), 2);
}

//! Calls over a link that duplicates, reorders, delays and drops frames: each call gets its
//! own answer or a clean error, and no request runs its body twice.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use remote_scope::transport::faulty::{self, Faults};
use remote_scope::{remote, Error, Node, PeerId};

/// A client and a server over a faulty link; the handshake (the first frame each way) is
/// spared, keep-alive is off so that lost pings do not end the connection.
async fn over(faults: Faults) -> (Node, Node, faulty::Control) {
    let node = |id: &str| Node::builder().id(id).keepalive(None).build().unwrap();
    let (client, server) = (node("client"), node("server"));
    let timers = Arc::new(common::LiveTasks::default());
    let (a, b, control) = faulty::pair(faults.after(1), timers);
    futures::try_join!(client.connect_transport(a), server.accept_transport(b)).unwrap();
    (client, server, control)
}

const CALLS: u32 = 200;
static RUNS: [AtomicU32; CALLS as usize] = [const { AtomicU32::new(0) }; CALLS as usize];

fn call(
    client: &Node,
    i: u32,
    timeout: Duration,
) -> impl std::future::Future<Output = Result<u32, Error>> {
    let server = PeerId::new("server");
    client.run(
        remote!(server, [i: u32], {
            RUNS[i as usize].fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(u64::from(i % 7))).await;
            i * 2
        })
        .timeout(timeout),
    )
}

/// Runs the bodies of 100 of the calls: those of one test only (`first..first + 100`).
async fn hundred_calls(client: &Node, first: u32, timeout: Duration) -> Vec<Result<u32, Error>> {
    join_all((first..first + 100).map(|i| call(client, i, timeout))).await
}

fn runs(first: u32) -> Vec<u32> {
    (first..first + 100)
        .map(|i| RUNS[i as usize].load(Ordering::SeqCst))
        .collect()
}

#[tokio::test]
async fn every_frame_duplicated_still_runs_each_body_once() {
    let (client, _server, control) = over(Faults::new(11).duplicate(1.0)).await;
    let results = hundred_calls(&client, 0, Duration::from_secs(10)).await;
    for (i, result) in (0..).zip(&results) {
        assert_eq!(result, &Ok(i * 2));
    }
    assert!(runs(0).iter().all(|&n| n == 1), "{:?}", runs(0));
    assert!(control.stats().duplicated >= 200, "{:?}", control.stats());
}

#[tokio::test]
async fn reordered_and_delayed_frames_answer_each_call_with_its_own_value() {
    let faults = Faults::new(12)
        .reorder(0.5)
        .delay(0.2, Duration::from_millis(2))
        .duplicate(0.2);
    let (client, _server, control) = over(faults).await;
    let results = hundred_calls(&client, 100, Duration::from_secs(10)).await;
    for (i, result) in (100..).zip(&results) {
        assert_eq!(result, &Ok(i * 2));
    }
    assert!(runs(100).iter().all(|&n| n == 1), "{:?}", runs(100));
    let stats = control.stats();
    assert!(stats.reordered > 20 && stats.delayed > 10, "{stats:?}");
}

#[tokio::test]
async fn lost_frames_cost_a_timeout_never_a_wrong_answer_or_a_second_run() {
    let faults = Faults::new(13).drop(0.2).duplicate(0.2);
    let (client, server, _control) = over(faults).await;
    // Reuses the counters of the first test's calls: run them on a fresh range instead.
    let results = join_all((0..100).map(|i| {
        let server = server.id().clone();
        client.run(
            remote!(server, [i: u32], {
                DROPPED_RUNS[i as usize].fetch_add(1, Ordering::SeqCst);
                i + 1
            })
            .timeout(Duration::from_millis(300)),
        )
    }))
    .await;
    let (mut ok, mut timed_out) = (0, 0);
    for (i, result) in (0..).zip(&results) {
        match result {
            Ok(v) => {
                assert_eq!(*v, i + 1);
                assert_eq!(DROPPED_RUNS[i as usize].load(Ordering::SeqCst), 1);
                ok += 1;
            }
            Err(e @ Error::Timeout { .. }) => {
                assert!(e.body_may_have_run());
                timed_out += 1;
            }
            Err(e) => panic!("call {i}: {e}"),
        }
    }
    assert!(ok > 20 && timed_out > 10, "ok {ok}, timed out {timed_out}");
    assert!(DROPPED_RUNS.iter().all(|n| n.load(Ordering::SeqCst) <= 1));
}

static DROPPED_RUNS: [AtomicU32; 100] = [const { AtomicU32::new(0) }; 100];

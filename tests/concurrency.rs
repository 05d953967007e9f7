//! Many calls in flight on one connection, correlated by request id.

mod common;

use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::connected_peers;
use futures::stream::{FuturesUnordered, StreamExt};
use remote_scope::{remote, Error};

#[tokio::test]
async fn hundred_concurrent_calls_complete_out_of_order_with_the_right_results() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let finished: Arc<Mutex<Vec<u64>>> = Arc::default();
    let order = Arc::clone(&finished);
    p.client
        .run(async move {
            let mut calls = FuturesUnordered::new();
            for i in 0..100_u64 {
                let server = server.clone();
                let order = Arc::clone(&order);
                calls.push(async move {
                    // Later calls sleep less, so they finish first.
                    let delay_ms: u64 = (100 - i) * 3;
                    let echoed = remote!(server, [i: u64, delay_ms: u64], {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        i * 10
                    })
                    .await?;
                    assert_eq!(echoed, i * 10, "result {echoed} answered call {i}");
                    order.lock().unwrap().push(i);
                    Ok::<(), Error>(())
                });
            }
            while let Some(done) = calls.next().await {
                done.expect("call succeeds");
            }
        })
        .await;
    let order = finished.lock().unwrap().clone();
    assert_eq!(order.len(), 100);
    let issued: Vec<u64> = (0..100).collect();
    assert_ne!(order, issued, "results arrived in issue order");
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, issued, "every call answered exactly once");
}

#[tokio::test]
async fn slow_body_does_not_hold_up_others() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let (slow_done_first, fast) = p
        .client
        .run(async move {
            let slow = remote!(server, [], {
                tokio::time::sleep(Duration::from_secs(2)).await;
                String::from("slow")
            });
            let fast = async {
                let mut answers = Vec::new();
                for n in 0..20_u32 {
                    answers.push(remote!(server, [n: u32], { n + 1 }).await?);
                }
                Ok::<_, Error>(answers)
            };
            tokio::pin!(fast);
            let slow = slow.into_future();
            tokio::pin!(slow);
            tokio::select! {
                _ = &mut slow => (true, Vec::new()),
                fast = &mut fast => (false, fast.expect("fast calls succeed")),
            }
        })
        .await;
    assert!(
        !slow_done_first,
        "the slow body finished before 20 quick calls"
    );
    assert_eq!(fast, (1..=20).collect::<Vec<u32>>());
}

#[tokio::test]
async fn both_peers_call_each_other_at_the_same_time_over_one_connection() {
    let p = connected_peers().await;
    let (server, client) = (p.server_id.clone(), p.client_id.clone());
    let from_client = p.client.run(async move {
        let mut sum = 0;
        for n in 0..50_u64 {
            sum += remote!(server, [n: u64], { n }).await?;
        }
        Ok::<u64, Error>(sum)
    });
    let from_server = p.server.run(async move {
        let mut sum = 0;
        for n in 0..50_u64 {
            sum += remote!(client, [n: u64], { n * 2 }).await?;
        }
        Ok::<u64, Error>(sum)
    });
    let (a, b) = tokio::join!(from_client, from_server);
    assert_eq!((a, b), (Ok(1225), Ok(2450)));
}

/// A body that computes before it ever waits must not stop the connection from reading: the
/// results of this peer's own calls, and the calls its peer makes meanwhile, still get through.
/// (Bodies are first polled on a task of the connection's, not on its reader.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_computes_before_it_waits_does_not_stop_the_connection_reading() {
    let p = common::connected_peers().await;
    let server = p.server_id.clone();
    let client = p.client_id.clone();
    static BUSY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let busy = tokio::spawn(p.client.run(remote!(server, [], {
        BUSY.store(true, std::sync::atomic::Ordering::SeqCst);
        // Holds its thread for 1.5 s without ever yielding.
        std::thread::sleep(Duration::from_millis(1500));
        1_u8
    })));
    // Only once the body holds its thread does the call below show anything.
    common::wait_until(|| BUSY.load(std::sync::atomic::Ordering::SeqCst)).await;
    // Meanwhile the server calls the client, and reads the answer on the same connection.
    let started = std::time::Instant::now();
    let answer = p
        .server
        .run(remote!(client, [], { 2_u8 }).timeout(Duration::from_secs(5)))
        .await;
    assert_eq!(answer, Ok(2));
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the answer waited for the busy body: {:?}",
        started.elapsed()
    );
    assert_eq!(busy.await.unwrap(), Ok(1));
}

/// Bodies that finish at their first poll cost no task; those that wait get one each.
#[tokio::test]
async fn only_bodies_that_wait_get_a_task_of_their_own() {
    let tasks = Arc::new(common::LiveTasks::default());
    let server = remote_scope::Node::builder()
        .id("server")
        .runtime(tasks.clone())
        .build()
        .unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let client = remote_scope::Node::builder().id("client").build().unwrap();
    let server_id = client.connect(&listener.url()).await.unwrap();
    common::wait_until(|| server.is_connected(&remote_scope::PeerId::new("client"))).await;

    let before = tasks.spawned();
    for n in 0..10_u32 {
        let sid = server_id.clone();
        assert_eq!(
            client.run(remote!(sid, [n: u32], { n * 3 })).await,
            Ok(n * 3)
        );
    }
    assert_eq!(tasks.spawned() - before, 0);
    for n in 0..10_u32 {
        let sid = server_id.clone();
        let waits = remote!(sid, [n: u32], {
            tokio::task::yield_now().await;
            n * 3
        });
        assert_eq!(client.run(waits).await, Ok(n * 3));
    }
    assert_eq!(tasks.spawned() - before, 10);
}

//! Peers going away: no call is left hanging.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use remote_scope::transport::faulty::{self, Faults};
use remote_scope::{remote, Error, Node, PeerId};

/// A server on a runtime and thread of its own, so the test can kill it the way a crash would:
/// every task and socket gone at once, no goodbye. Sending on the returned channel kills it.
fn server_on_its_own_runtime() -> (std::sync::mpsc::Sender<()>, String) {
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    let (url_tx, url_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        let (node, listener) = rt.block_on(async {
            let node = Node::builder().id("server").build().expect("node");
            let listener = node.listen("127.0.0.1:0").await.expect("listen");
            (node, listener)
        });
        url_tx.send(listener.url()).expect("test is waiting");
        let _ = kill_rx.recv();
        rt.shutdown_background();
        // Only now, with the runtime gone: dropping them earlier would close politely.
        drop((node, listener));
    });
    let url = url_rx.recv().expect("server started");
    (kill_tx, url)
}

#[tokio::test]
async fn server_killed_while_calls_are_pending_fails_them_all_within_a_second() {
    let (kill, url) = server_on_its_own_runtime();
    let client = Node::builder().id("client").build().unwrap();
    let server = client.connect(&url).await.unwrap();

    let calls = (0..20_u32).map(|i| {
        let server = server.clone();
        client.run(async move {
            remote!(server, [i: u32], {
                SERVED.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(60)).await;
                i
            })
            .await
        })
    });
    let pending = tokio::spawn(join_all(calls));
    // Every call is running on the server when it dies.
    common::wait_until(|| SERVED.load(Ordering::SeqCst) == 20).await;

    let killed = Instant::now();
    kill.send(()).expect("server thread alive");
    let results = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("no call hangs")
        .unwrap();
    let elapsed = killed.elapsed();

    assert_eq!(results.len(), 20);
    for r in &results {
        assert!(matches!(r, Err(Error::Disconnected { .. })), "{r:?}");
    }
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    assert!(!client.is_connected(&server));

    // A call made after the loss fails at once.
    let after = client.run(remote!(server, [], { 1_u8 })).await;
    assert!(
        matches!(after, Err(Error::NotConnected { .. })),
        "{after:?}"
    );
}

#[tokio::test]
async fn client_disconnecting_stops_the_bodies_it_was_waiting_for() {
    let p = common::connected_peers().await;
    let server = p.server_id.clone();
    let call = tokio::spawn(p.client.run(remote!(server, [], {
        let _noticed = DropFlag::start();
        tokio::time::sleep(Duration::from_secs(60)).await;
    })));
    // The body runs on the server before the client goes.
    common::wait_until(|| BODY_RUNNING.load(Ordering::SeqCst)).await;
    assert!(p.client.disconnect(&p.server_id));
    let result = tokio::time::timeout(Duration::from_secs(1), call)
        .await
        .expect("the call ends")
        .unwrap();
    assert!(
        matches!(result, Err(Error::Disconnected { .. })),
        "{result:?}"
    );
    common::wait_until(|| p.server.peers().is_empty()).await;
    common::wait_until(|| BODY_DROPPED.load(Ordering::SeqCst)).await;
}

static BODY_RUNNING: AtomicBool = AtomicBool::new(false);
static BODY_DROPPED: AtomicBool = AtomicBool::new(false);

/// Calls of `server_killed_while_calls_are_pending_fails_them_all_within_a_second` that reached
/// their body.
static SERVED: AtomicUsize = AtomicUsize::new(0);

/// Records that the body holding it runs, and that it was stopped (dropped) rather than left
/// running.
struct DropFlag;

impl DropFlag {
    fn start() -> DropFlag {
        BODY_RUNNING.store(true, Ordering::SeqCst);
        DropFlag
    }
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        BODY_DROPPED.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn server_shutdown_closes_its_connections() {
    let p = common::connected_peers().await;
    p.listener.shutdown();
    common::wait_until(|| p.client.peers().is_empty()).await;
    let server = p.server_id.clone();
    let result = p.client.run(remote!(server, [], { 1_u8 })).await;
    assert!(matches!(result, Err(Error::NotConnected { .. })));
}

/// Two nodes on task-counting runtimes, with a fast keep-alive, connected over `a_end`/`b_end`.
async fn counted_nodes<T: remote_scope::transport::Transport>(
    a_end: T,
    b_end: T,
) -> (Node, Arc<common::LiveTasks>, Node, Arc<common::LiveTasks>) {
    let node = |id: &str, tasks: &Arc<common::LiveTasks>| {
        Node::builder()
            .id(id)
            .keepalive(Some(Duration::from_millis(100)))
            .runtime(tasks.clone())
            .build()
            .unwrap()
    };
    let (a_tasks, b_tasks) = (
        Arc::new(common::LiveTasks::default()),
        Arc::new(common::LiveTasks::default()),
    );
    let (a, b) = (node("a", &a_tasks), node("b", &b_tasks));
    futures::try_join!(a.connect_transport(a_end), b.accept_transport(b_end)).unwrap();
    (a, a_tasks, b, b_tasks)
}

/// Starts `n` calls each way whose bodies would run for a minute, and waits until every body
/// runs.
async fn calls_both_ways(
    a: &Node,
    b: &Node,
    n: u32,
) -> tokio::task::JoinHandle<Vec<Result<u32, Error>>> {
    let calls = |from: &Node, to: &Node| {
        (0..n)
            .map(|i| {
                let to = to.id().clone();
                from.run(remote!(to, [i: u32], {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    i
                }))
            })
            .collect::<Vec<_>>()
    };
    let all: Vec<_> = calls(a, b).into_iter().chain(calls(b, a)).collect();
    let pending = tokio::spawn(join_all(all));
    let n = n as usize;
    common::wait_until(|| {
        let (sa, sb) = (a.stats(), b.stats());
        (
            sa.bodies_running,
            sb.bodies_running,
            sa.calls_waiting,
            sb.calls_waiting,
        ) == (n, n, n, n)
    })
    .await;
    pending
}

/// Both sides fail every call within a second, and hold no connection, call, body or task
/// afterwards.
async fn nothing_left_behind(
    pending: tokio::task::JoinHandle<Vec<Result<u32, Error>>>,
    since: Instant,
    nodes: [(&Node, &common::LiveTasks); 2],
) {
    let results = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("no call hangs")
        .unwrap();
    let elapsed = since.elapsed();
    for r in &results {
        assert!(matches!(r, Err(Error::Disconnected { .. })), "{r:?}");
    }
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    for (node, tasks) in nodes {
        let stats = node.stats();
        assert_eq!(
            (stats.connections, stats.calls_waiting, stats.bodies_running),
            (0, 0, 0),
            "{}: {stats:?}",
            node.id()
        );
        // Reader, writer, keep-alive and every body task end.
        common::wait_until(|| tasks.live() == 0).await;
    }
}

#[tokio::test]
async fn a_link_gone_silent_is_found_by_keep_alive_and_leaves_nothing_behind() {
    let (a_end, b_end, link) = common::controlled_pair();
    let (a, a_tasks, b, b_tasks) = counted_nodes(a_end, b_end).await;
    let pending = calls_both_ways(&a, &b, 10).await;
    // No close, no error: the link just stops carrying anything.
    link.set(common::FROZEN);
    let since = Instant::now();
    nothing_left_behind(pending, since, [(&a, &a_tasks), (&b, &b_tasks)]).await;
}

#[tokio::test]
async fn a_link_cut_mid_call_fails_every_call_on_both_sides_and_leaves_nothing_behind() {
    let timers = Arc::new(common::LiveTasks::default());
    let (a_end, b_end, link) = faulty::pair(Faults::new(1), timers);
    let (a, a_tasks, b, b_tasks) = counted_nodes(a_end, b_end).await;
    let pending = calls_both_ways(&a, &b, 10).await;
    link.cut();
    let since = Instant::now();
    nothing_left_behind(pending, since, [(&a, &a_tasks), (&b, &b_tasks)]).await;
}

/// A peer that stops reading holds a closing connection's writer (and its socket and queue)
/// only for the handshake time limit, not forever.
#[tokio::test]
async fn a_peer_that_stops_reading_cannot_keep_a_closed_connection_alive() {
    let (a_end, b_end, ends) = common::controlled_pair();
    let tasks = Arc::new(common::LiveTasks::default());
    let a = Node::builder()
        .id("a")
        .handshake_timeout(Duration::from_millis(200))
        .keepalive(None)
        .runtime(tasks.clone())
        .build()
        .unwrap();
    let b = Node::builder().id("b").build().unwrap();
    futures::try_join!(a.connect_transport(a_end), b.accept_transport(b_end)).unwrap();
    // b stops taking what a sends: a's writer waits to send.
    ends.a.store(common::STALLED, Ordering::SeqCst);
    a.send_message(&PeerId::new("b"), vec![1; 64]).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tasks.live() > 0);
    let closed = Instant::now();
    assert!(a.disconnect(&PeerId::new("b")));
    common::wait_until(|| tasks.live() == 0).await;
    let took = closed.elapsed();
    assert!(
        took >= Duration::from_millis(150),
        "the writer was given its time to send: {took:?}"
    );
    assert_eq!(a.stats(), remote_scope::NodeStats::default());
}

//! Nodes that share only a NATS cluster: each joins a different server of a 3-server cluster
//! (real `nats-server` processes on free ports), and `remote!` works between them as over a
//! WebSocket.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::nats::NatsServer;
use common::{nested, wait_until};
use remote_scope::{current_peer, remote, Error, Node, NodeBuilder, PeerId};

/// A 3-server cluster and two nodes, `server` on the first server and `client` on the second.
struct Cluster {
    _servers: Vec<NatsServer>,
    server: Node,
    client: Node,
}

async fn cluster() -> Cluster {
    let servers = NatsServer::cluster(3);
    let server = Node::builder().id("server").build().expect("node");
    server.join_nats([&servers[0].url]).await.expect("joins");
    let client = Node::builder().id("client").build().expect("node");
    client.join_nats([&servers[1].url]).await.expect("joins");
    Cluster {
        _servers: servers,
        server,
        client,
    }
}

#[tokio::test]
async fn the_nested_demo_runs_across_the_cluster() {
    let c = cluster().await;
    let (server, client) = (c.server.id().clone(), c.client.id().clone());
    assert!(
        !c.client.is_connected(&server),
        "no connection before the first call"
    );
    let result = c.client.run(nested(server.clone(), client)).await;
    assert_eq!(result.expect("runs"), (vec![42; 43], 44));
    assert!(c.client.is_connected(&server));
    // The caller's identity is the node's id, as over a WebSocket.
    let caller = c
        .client
        .run(remote!(server, [], { remote_scope::caller() }))
        .await
        .expect("runs");
    assert_eq!(caller, Some(PeerId::new("client")));
    let ran_on = c
        .client
        .run(remote!(server, [], { current_peer() }))
        .await
        .expect("runs");
    assert_eq!(ran_on, Some(PeerId::new("server")));
}

#[tokio::test]
async fn a_peer_not_on_the_cluster_fails_at_once_with_not_connected() {
    let c = cluster().await;
    let nobody = PeerId::new("nobody");
    let started = Instant::now();
    let result = c
        .client
        .run(remote!(nobody, [], { 1_u8 }).timeout(Duration::from_secs(30)))
        .await;
    let took = started.elapsed();
    assert!(
        matches!(&result, Err(Error::NotConnected { peer }) if *peer == PeerId::new("nobody")),
        "{result:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn a_thousand_concurrent_calls_each_get_their_own_answer() {
    let c = cluster().await;
    let server = c.server.id().clone();
    let calls = (0..1000_u64).map(|i| {
        let server = server.clone();
        remote!(server, [i: u64], { i * 2 })
    });
    let results = c.client.run(futures::future::join_all(calls)).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.expect("answers"), i as u64 * 2);
    }
}

/// Two nodes built as the test says, each on another server of a 3-server cluster.
async fn pair(server: NodeBuilder, client: NodeBuilder) -> (Vec<NatsServer>, Node, Node) {
    let nats = NatsServer::cluster(3);
    let server = server.id("server").build().expect("node");
    server.join_nats([&nats[0].url]).await.expect("joins");
    let client = client.id("client").build().expect("node");
    client.join_nats([&nats[1].url]).await.expect("joins");
    (nats, server, client)
}

#[tokio::test]
async fn errors_in_and_around_bodies_are_the_same_as_over_a_websocket() {
    let (_nats, server, client) = pair(Node::builder(), Node::builder()).await;
    let peer = server.id().clone();
    let panicked = client
        .run(remote!(peer, [], {
            if current_peer().is_some() {
                panic!("boom on the server");
            }
        }))
        .await;
    assert!(
        matches!(&panicked, Err(Error::Panicked { message, .. }) if message.contains("boom")),
        "{panicked:?}"
    );
    let slow = client
        .run(
            remote!(peer, [], {
                tokio::time::sleep(Duration::from_secs(60)).await
            })
            .timeout(Duration::from_millis(200)),
        )
        .await;
    assert!(matches!(slow, Err(Error::Timeout { .. })), "{slow:?}");
    // The session is still good.
    let n = client.run(remote!(peer, [], { 7_u8 })).await;
    assert_eq!(n.expect("runs"), 7);
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_the_policy_decides_what_runs() {
    let server =
        Node::builder()
            .require_token("s3cret")
            .authorize(|caller: &PeerId, body: &str| {
                caller.as_str() == "client" && !body.contains("forbidden")
            });
    let (nats, server, client) = pair(server, Node::builder().token("wrong")).await;
    let peer = server.id().clone();
    let refused = client.run(remote!(peer, [], { 1_u8 })).await;
    assert!(
        matches!(refused, Err(Error::NotAuthenticated { .. })),
        "{refused:?}"
    );

    let client = Node::builder()
        .id("client2")
        .token("s3cret")
        .build()
        .expect("node");
    client.join_nats([&nats[2].url]).await.expect("joins");
    let not_allowed = client.run(remote!(peer, [], { 1_u8 })).await;
    assert!(
        matches!(not_allowed, Err(Error::NotAuthorized { .. })),
        "{not_allowed:?}"
    );
}

#[tokio::test]
async fn payloads_beyond_max_payload_fail_before_sending_with_a_clear_error() {
    let (_nats, server, client) = pair(Node::builder(), Node::builder()).await;
    let peer = server.id().clone();
    // The server's default max_payload is 1 MB.
    let big = vec![1_u8; 2 << 20];
    let too_large = client
        .run(remote!(peer, [big: Vec<u8>], { big.len() }))
        .await;
    match too_large {
        Err(Error::CapturesTooLarge { limit, .. }) => assert!(limit < 1 << 20, "{limit}"),
        other => panic!("{other:?}"),
    }
    let answer_too_large = client.run(remote!(peer, [], { vec![1_u8; 2 << 20] })).await;
    match answer_too_large {
        Err(e @ Error::EncodeResult { .. }) => assert!(e.to_string().contains("bytes"), "{e}"),
        other => panic!("{:?}", other.map(|v| v.len())),
    }
    // Neither broke the session.
    let fits = vec![1_u8; 512 << 10];
    let n = client
        .run(remote!(peer, [fits: Vec<u8>], { fits.len() }))
        .await;
    assert_eq!(n.expect("runs"), 512 << 10);
}

static STOPPED: AtomicBool = AtomicBool::new(false);

/// Sets [`STOPPED`] when dropped: the body holding it was stopped, not left running.
struct SetOnDrop;

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        STOPPED.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn dropping_a_call_stops_its_body_on_the_other_node() {
    let (_nats, server, client) = pair(Node::builder(), Node::builder()).await;
    let peer = server.id().clone();
    let call = client.run(remote!(peer, [], {
        let _noticed = SetOnDrop;
        tokio::time::sleep(Duration::from_secs(60)).await;
    }));
    assert!(tokio::time::timeout(Duration::from_millis(300), call)
        .await
        .is_err());
    wait_until(|| STOPPED.load(Ordering::SeqCst)).await;
}

#[tokio::test]
async fn a_node_that_leaves_is_not_connected_any_more() {
    let (_nats, server, client) = pair(Node::builder(), Node::builder()).await;
    let peer = server.id().clone();
    assert_eq!(
        client.run(remote!(peer, [], { 1_u8 })).await.expect("runs"),
        1
    );
    server.shutdown();
    wait_until(|| !client.is_connected(&peer)).await;
    let gone = client.run(remote!(peer, [], { 1_u8 })).await;
    assert!(matches!(gone, Err(Error::NotConnected { .. })), "{gone:?}");
}

/// How many times each body of the in-flight test ran, by its number.
static RUNS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn ran(i: usize) {
    let mut runs = RUNS.lock().expect("not poisoned");
    if runs.len() <= i {
        runs.resize(i + 1, 0);
    }
    runs[i] += 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_nats_server_under_a_node_ends_its_calls_and_it_carries_on_through_another() {
    let mut c = cluster().await;
    let server = c.server.id().clone();
    // A session first, so that the calls below are in flight at once.
    assert_eq!(
        c.client
            .run(remote!(server, [], { 1_u8 }))
            .await
            .expect("runs"),
        1
    );
    let deadline = Duration::from_secs(3);
    let calls = (0..100_usize).map(|i| {
        let server = server.clone();
        remote!(server, [i: usize], {
            ran(i);
            tokio::time::sleep(Duration::from_millis(500)).await;
            i
        })
        .timeout(deadline)
    });
    let in_flight = tokio::spawn(c.client.run(futures::future::join_all(calls)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed_at = Instant::now();
    c._servers[1].kill();
    let results = in_flight.await.expect("joins");
    let ended = killed_at.elapsed();
    assert!(ended < deadline, "the calls ended {ended:?} after the kill");
    for result in &results {
        // Lost with the link (the body may have run), or answered before the loss.
        assert!(
            matches!(result, Err(Error::Disconnected { .. }) | Ok(_)),
            "{result:?}"
        );
    }
    let lost = results.iter().filter(|r| r.is_err()).count();
    assert!(lost > 0, "the kill came while the calls were in flight");
    // The client reconnects to another server of the cluster and calls again.
    let again = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.client.run(remote!(server, [], { 2_u8 })).await {
                Ok(n) => return n,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("calls again within 10 s");
    assert_eq!(again, 2);
    println!(
        "calls ended {ended:?} after the kill, {lost} of 100 lost; calling again {:?} after it",
        killed_at.elapsed()
    );
    let runs = RUNS.lock().expect("not poisoned").clone();
    assert!(runs.iter().all(|&n| n <= 1), "a body ran twice: {runs:?}");
}

#[tokio::test]
async fn a_busy_node_refuses_calls_which_then_did_not_run() {
    let (_nats, server, client) = pair(
        Node::builder().max_bodies_per_connection(1),
        Node::builder(),
    )
    .await;
    let peer = server.id().clone();
    let slow = client.run(remote!(peer, [], {
        tokio::time::sleep(Duration::from_millis(500)).await
    }));
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.run(remote!(peer, [], { 1_u8 })).await
    };
    let (first, second) = futures::join!(slow, second);
    assert!(first.is_ok(), "{first:?}");
    assert!(
        matches!(second, Err(Error::Busy { limit: 1, .. })),
        "{second:?}"
    );
}

#[tokio::test]
async fn a_draining_node_refuses_new_calls_which_then_did_not_run() {
    let (_nats, server, client) = pair(Node::builder(), Node::builder()).await;
    let peer = server.id().clone();
    // A body that keeps the node draining while the next call comes.
    let running = client.run(remote!(peer, [], {
        tokio::time::sleep(Duration::from_millis(800)).await
    }));
    let refused = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let draining = {
            let server = server.clone();
            tokio::spawn(async move { server.shutdown_gracefully(Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = client.run(remote!(peer, [], { 2_u8 })).await;
        (refused, draining)
    };
    let (ran, (refused, draining)) = futures::join!(running, refused);
    assert!(ran.is_ok(), "the running body finishes: {ran:?}");
    assert!(
        matches!(refused, Err(Error::ShuttingDown { .. })),
        "{refused:?}"
    );
    draining.await.expect("drains");
}

#[tokio::test]
async fn two_nodes_that_first_call_each_other_at_once_both_get_their_answers() {
    let nats = NatsServer::cluster(2);
    for round in 0..10 {
        let a = Node::builder()
            .id(format!("a{round}"))
            .build()
            .expect("node");
        a.join_nats([&nats[0].url]).await.expect("joins");
        let b = Node::builder()
            .id(format!("b{round}"))
            .build()
            .expect("node");
        b.join_nats([&nats[1].url]).await.expect("joins");
        let (a_id, b_id) = (a.id().clone(), b.id().clone());
        let (from_a, from_b) = futures::join!(
            a.run(remote!(b_id, [], { current_peer() })),
            b.run(remote!(a_id, [], { current_peer() })),
        );
        assert_eq!(from_a.expect("a's call"), Some(b.id().clone()));
        assert_eq!(from_b.expect("b's call"), Some(a.id().clone()));
        assert!(a.is_connected(b.id()) && b.is_connected(a.id()));
    }
}

//! Nodes that share only a NATS cluster: each joins a different server of a 3-server cluster
//! (real `nats-server` processes on free ports), and `remote!` works between them as over a
//! WebSocket.

mod common;

use std::time::{Duration, Instant};

use common::nats::NatsServer;
use remote_scope::{current_peer, remote, Error, Node, PeerId};

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

async fn nested(server: PeerId, client: PeerId) -> Result<(Vec<u64>, u64), Error> {
    remote!(server, [server: PeerId, client: PeerId], {
        let a: u64 = 42;
        let b: Vec<u64> = remote!(client, [a: u64], { vec![42_u64; a as usize + 1] }).await?;
        remote!(server, [a: u64, b: Vec<u64>], { (b, a + 2) }).await
    })
    .await?
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

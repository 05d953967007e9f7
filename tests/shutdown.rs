//! Stopping a server: gracefully (running bodies finish, new calls are refused so callers can go
//! elsewhere), within a deadline, and a server program that waits until its node stops.

mod common;

use std::time::{Duration, Instant};

use common::connected_peers;
use remote_scope::{remote, Call, Error, PeerId};

fn slow(peer: &PeerId, millis: u64) -> Call<u64> {
    remote!(peer, [millis: u64], {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    })
}

/// A call from the client of a body that takes `millis` on the server, once it runs there.
async fn running_on_the_server(
    p: &common::Peers,
    millis: u64,
) -> tokio::task::JoinHandle<Result<u64, Error>> {
    let running = tokio::spawn({
        let client = p.client.clone();
        let server = p.server_id.clone();
        async move { client.run(slow(&server, millis)).await }
    });
    common::wait_until(|| p.server.stats().bodies_running == 1).await;
    running
}

#[tokio::test]
async fn a_graceful_shutdown_lets_running_bodies_finish_and_refuses_new_ones() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let running = running_on_the_server(&p, 400).await;
    let started = Instant::now();
    let stopping = tokio::spawn({
        let node = p.server.clone();
        async move { node.shutdown_gracefully(Duration::from_secs(10)).await }
    });
    // A call made while it drains is refused at once, and says so.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = p.client.run(slow(&server, 1)).await;
    assert!(
        matches!(&refused, Err(Error::ShuttingDown { peer, .. }) if *peer == server),
        "{refused:?}"
    );
    assert!(!refused.unwrap_err().body_may_have_run());
    // The running one finishes; then the node stops, well before the grace is over.
    assert_eq!(running.await.unwrap(), Ok(400));
    stopping.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    p.listener.wait().await;
    common::wait_until(|| !p.client.is_connected(&server)).await;
}

#[tokio::test]
async fn bodies_still_running_when_the_grace_is_over_are_stopped() {
    let p = connected_peers().await;
    let running = running_on_the_server(&p, 60_000).await;
    let started = Instant::now();
    p.server
        .shutdown_gracefully(Duration::from_millis(200))
        .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let result = running.await.unwrap();
    assert!(
        matches!(&result, Err(Error::Disconnected { .. })),
        "{result:?}"
    );
    common::wait_until(|| p.server.stats().bodies_running == 0).await;
}

#[tokio::test]
async fn a_server_waits_until_its_node_stops() {
    let p = connected_peers().await;
    let waiting = tokio::spawn({
        let node = p.server.clone();
        async move {
            // What a server program's main does instead of handling signals.
            let listening = node.listen("127.0.0.1:0").await.expect("listens");
            listening.wait().await;
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished());
    p.server.shutdown();
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the wait ends when the node stops")
        .unwrap();
    // And `Server::shutdown` ends the wait of its own server.
    p.listener.shutdown();
    p.listener.wait().await;
}

#[tokio::test]
async fn dropping_the_last_handle_of_a_node_closes_its_connections() {
    let server = remote_scope::Node::builder().id("server").build().unwrap();
    // The server program keeps only its `Server`: that is enough to keep the node up.
    let listening = server.listen("127.0.0.1:0").await.unwrap();
    let server_id = server.id().clone();
    drop(server);

    let client = remote_scope::Node::builder().id("client").build().unwrap();
    let id = client.connect(&listening.url()).await.unwrap();
    assert_eq!(id, server_id);
    let second = client.clone();
    assert_eq!(client.run(slow(&id, 1)).await, Ok(1));
    let watcher = remote_scope::Node::builder().id("watcher").build().unwrap();
    watcher.connect(&listening.url()).await.unwrap();
    // The server sees the client until the client's last handle goes.
    drop(client);
    assert_eq!(second.run(slow(&id, 2)).await, Ok(2));
    let server_sees = |peer: &'static str| {
        let watcher = watcher.clone();
        let id = id.clone();
        let peer = peer.to_owned();
        async move {
            watcher
                .run(remote!(id, [peer: String], {
                    remote_scope::Node::current()
                        .expect("a body has a node")
                        .is_connected(&PeerId::new(peer))
                }))
                .await
                .unwrap()
        }
    };
    assert!(server_sees("client").await);
    drop(second);
    let started = Instant::now();
    while server_sees("client").await {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Dropping the `Server`, the last handle of its node, stops it: its peers are cut off.
    drop(listening);
    common::wait_until(|| !watcher.is_connected(&id)).await;
}

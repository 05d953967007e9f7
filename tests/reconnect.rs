//! Client peers that stay connected: redialling after a loss, calls that wait for the peer to
//! come back, and the ways to stop it.

mod common;

use std::time::{Duration, Instant};

use remote_scope::{remote, Error, Node, PeerId, Reconnect};

fn fast() -> Reconnect {
    Reconnect::default()
        .initial(Duration::from_millis(20))
        .max(Duration::from_millis(100))
}

#[tokio::test]
async fn a_kept_peer_is_redialled_after_the_server_drops_it() {
    let server = Node::builder().id("server").build().unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let client = Node::builder().id("client").build().unwrap();
    let server_id = client
        .connect_with_reconnect(&listener.url(), fast())
        .await
        .unwrap();

    for round in 0..3_u32 {
        assert!(server.disconnect(client.id()), "round {round}");
        common::wait_until(|| server.is_connected(client.id())).await;
        let n = client
            .run(remote!(server_id, [round: u32], { round + 1 }))
            .await;
        assert_eq!(n, Ok(round + 1));
    }
    assert_eq!(client.stats().kept, 1);
}

#[tokio::test]
async fn a_call_made_while_away_waits_for_the_server_to_come_back() {
    let server = Node::builder().id("server").build().unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr();
    let client = Node::builder().id("client").build().unwrap();
    let server_id = client
        .connect_with_reconnect(&listener.url(), fast())
        .await
        .unwrap();

    // The server goes away entirely: nothing listens on its port.
    drop(listener);
    common::wait_until(|| !client.is_connected(&server_id)).await;

    // A call whose deadline passes before the server is back fails cleanly, and not at once.
    let started = Instant::now();
    let gave_up = client
        .run(remote!(server_id, [], { 1_u8 }).timeout(Duration::from_millis(300)))
        .await;
    assert!(
        matches!(&gave_up, Err(e @ Error::NotConnected { .. }) if !e.body_may_have_run()),
        "{gave_up:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));

    // A call made now is sent once the server listens again on the same address.
    let waiting = tokio::spawn(client.run(remote!(server_id, [], { 6_u8 * 7 })));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the call waits for the server");
    let _listener = server.listen(addr).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the call completes once the server is back")
        .unwrap();
    assert_eq!(answer, Ok(42));
}

#[tokio::test]
async fn disconnect_and_shutdown_end_the_redialling() {
    let server = Node::builder().id("server").build().unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let url = listener.url();

    let client = Node::builder().id("client").build().unwrap();
    let server_id = client.connect_with_reconnect(&url, fast()).await.unwrap();
    assert!(client.disconnect(&server_id));
    assert_eq!(client.stats().kept, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!client.is_connected(&server_id), "not redialled");
    assert!(!server.is_connected(client.id()));
    // Nothing to wait for: a call fails at once.
    let after = client.run(remote!(server_id, [], { 1_u8 })).await;
    assert!(matches!(after, Err(Error::NotConnected { .. })));

    let other = Node::builder().id("other").build().unwrap();
    let server_id = other.connect_with_reconnect(&url, fast()).await.unwrap();
    // A call waiting for a redial fails as soon as the node shuts down.
    drop(listener);
    common::wait_until(|| !other.is_connected(&server_id)).await;
    let waiting = tokio::spawn(other.run(remote!(server_id, [], { 1_u8 })));
    tokio::time::sleep(Duration::from_millis(50)).await;
    other.shutdown();
    let result = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("shutdown ends the wait")
        .unwrap();
    assert!(matches!(result, Err(Error::NotConnected { .. })));
    assert_eq!(other.stats().kept, 0);
}

/// A free port on 127.0.0.1, for a server that starts later.
fn free_port() -> std::net::SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

#[tokio::test]
async fn a_client_started_before_its_server_dials_until_it_is_up() {
    let addr = free_port();
    let client = Node::builder().id("client").build().unwrap();
    let connecting = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .connect_with_reconnect(&format!("ws://{addr}"), fast())
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!connecting.is_finished(), "still dialling");
    let server = Node::builder().id("server").build().unwrap();
    let _listener = server.listen(addr.to_string().as_str()).await.unwrap();
    let id = connecting
        .await
        .unwrap()
        .expect("connects once the server is up");
    assert_eq!(id, PeerId::new("server"));
    let n = client.run(remote!(id, [], { 6_u8 * 7 })).await;
    assert_eq!(n, Ok(42));
}

#[tokio::test]
async fn calls_to_a_server_named_in_advance_wait_for_it_to_start() {
    let addr = free_port();
    let client = Node::builder().id("client").build().unwrap();
    let id = client
        .connect_with_reconnect(&format!("ws://{addr}"), fast().peer("server"))
        .await
        .expect("returns at once");
    assert_eq!(id, PeerId::new("server"));
    assert_eq!(client.stats().kept, 1);
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .run(remote!(id, [], { 7_u8 }).timeout(Duration::from_secs(20)))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "the call waits for the server");
    let server = Node::builder().id("server").build().unwrap();
    let _listener = server.listen(addr.to_string().as_str()).await.unwrap();
    assert_eq!(call.await.unwrap(), Ok(7));

    // With nobody there, a call waits until its deadline and then says so.
    let nobody = Node::builder().id("lonely").build().unwrap();
    let id = nobody
        .connect_with_reconnect(&format!("ws://{}", free_port()), fast().peer("server"))
        .await
        .unwrap();
    let started = Instant::now();
    let result = nobody
        .run(remote!(id, [], { 1_u8 }).timeout(Duration::from_millis(300)))
        .await;
    assert!(
        matches!(&result, Err(Error::NotConnected { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    nobody.shutdown();
}

#[tokio::test]
async fn a_refusal_that_dialling_cannot_change_is_returned_not_retried() {
    let client = Node::builder().id("client").build().unwrap();
    let result = client
        .connect_with_reconnect("http://127.0.0.1:1", fast())
        .await;
    assert!(matches!(&result, Err(Error::BadUrl { .. })), "{result:?}");
    let server = Node::builder()
        .id("server")
        .require_token("s3cret")
        .build()
        .unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let result = client.connect_with_reconnect(&listener.url(), fast()).await;
    assert!(
        matches!(&result, Err(Error::NotAuthenticated { .. })),
        "{result:?}"
    );
    assert_eq!(client.stats().kept, 0);
}

/// A client whose link died without a close comes back before the server's keep-alive has
/// noticed: where ids are proven, the server finds its old connection silent and takes the new
/// one, instead of refusing the client as a duplicate until keep-alive catches up.
#[tokio::test]
async fn a_peer_back_after_a_silent_cut_replaces_its_dead_connection() {
    let server = Node::builder()
        .id("server")
        .peer_tokens([("client", "key")])
        .build()
        .unwrap();
    let client = || Node::builder().id("client").token("key").build().unwrap();
    let (old_end, server_end, link) = common::controlled_pair();
    let gone = client();
    futures::try_join!(
        gone.connect_transport(old_end),
        server.accept_transport(server_end)
    )
    .unwrap();
    link.set(common::FROZEN);

    let back = client();
    let (new_end, server_end) = remote_scope::transport::memory::pair();
    let started = Instant::now();
    let (server_id, _) = futures::try_join!(
        back.connect_transport(new_end),
        server.accept_transport(server_end)
    )
    .expect("the silent connection is replaced");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(server.peers(), [PeerId::new("client")]);
    let n = back.run(remote!(server_id, [], { 7_u8 })).await;
    assert_eq!(n, Ok(7));
}

/// Where anyone may claim an id, silence proves nothing (a live peer on a slow link is silent
/// too): a second peer under a connected id is refused, silent or not.
#[tokio::test]
async fn without_proven_ids_a_silent_connection_is_not_taken_over() {
    let server = Node::builder().id("server").build().unwrap();
    let (old_end, server_end, link) = common::controlled_pair();
    let gone = Node::builder().id("client").build().unwrap();
    futures::try_join!(
        gone.connect_transport(old_end),
        server.accept_transport(server_end)
    )
    .unwrap();
    link.set(common::FROZEN);

    let claimant = Node::builder().id("client").build().unwrap();
    let (new_end, server_end) = remote_scope::transport::memory::pair();
    let (claimed, accepted) = futures::join!(
        claimant.connect_transport(new_end),
        server.accept_transport(server_end)
    );
    assert!(
        matches!(claimed, Err(Error::DuplicatePeer { .. })),
        "{claimed:?}"
    );
    assert!(
        matches!(accepted, Err(Error::DuplicatePeer { .. })),
        "{accepted:?}"
    );
    assert!(server.is_connected(&PeerId::new("client")));
}

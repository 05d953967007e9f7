//! Hostile and broken clients against a real WebSocket server peer: each gets its connection
//! closed (or a refusal), never a panic or a hung task, and the server goes on serving a
//! well-behaved client meanwhile.

mod common;

use std::time::{Duration, Instant};

use futures::SinkExt;
use remote_scope::protocol::{self, Frame, Invoke};
use remote_scope::{remote, Error, Node, NodeBuilder, PeerId, Reconnect, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A server with short limits, and a well-behaved client connected to it.
async fn server() -> (Node, Server, Node, PeerId) {
    serve(
        Node::builder()
            .id("server")
            .handshake_timeout(Duration::from_millis(300))
            .max_frame_size(1024),
    )
    .await
}

/// A server built from `builder`, and a well-behaved client connected to it.
async fn serve(builder: NodeBuilder) -> (Node, Server, Node, PeerId) {
    let server = builder.build().unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let client = Node::builder().id("client").build().unwrap();
    let server_id = client.connect(&listener.url()).await.unwrap();
    (server, listener, client, server_id)
}

/// The server still answers the well-behaved client, and holds no other peer.
async fn still_serving(server: &Node, client: &Node, server_id: &PeerId) {
    let n = client.run(remote!(server_id, [], { 6_u8 * 7 })).await;
    assert_eq!(n, Ok(42));
    common::wait_until(|| server.peers() == [PeerId::new("client")]).await;
}

async fn websocket(listener: &Server) -> common::Ws {
    tokio_tungstenite::connect_async(listener.url())
        .await
        .expect("upgrade")
        .0
}

#[tokio::test]
async fn plain_http_instead_of_a_websocket_upgrade_is_closed() {
    let (server, listener, client, server_id) = server().await;
    let mut tcp = tokio::net::TcpStream::connect(listener.local_addr())
        .await
        .unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server closes the socket");
    still_serving(&server, &client, &server_id).await;
}

#[tokio::test]
async fn a_socket_that_never_upgrades_is_closed_after_the_handshake_timeout() {
    let (server, listener, client, server_id) = server().await;
    let mut tcp = tokio::net::TcpStream::connect(listener.local_addr())
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0_u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    still_serving(&server, &client, &server_id).await;
}

#[tokio::test]
async fn an_upgraded_socket_that_sends_no_hello_is_closed_in_time() {
    let (server, listener, client, server_id) = server().await;
    let mut ws = websocket(&listener).await;
    common::closed_by_server(&mut ws).await;
    still_serving(&server, &client, &server_id).await;
}

#[tokio::test]
async fn an_invoke_instead_of_a_hello_is_refused() {
    let (server, listener, client, server_id) = server().await;
    let mut ws = websocket(&listener).await;
    let invoke = protocol::encode(&Frame::Invoke(Invoke {
        id: 1,
        body: "anything".into(),
        timeout_ms: 1000,
        captures: vec![0x90].into(),
    }))
    .unwrap();
    ws.send(Message::Binary(invoke)).await.unwrap();
    common::closed_by_server(&mut ws).await;
    still_serving(&server, &client, &server_id).await;
}

#[tokio::test]
async fn a_text_message_closes_the_connection() {
    let (server, listener, client, server_id) = server().await;
    let mut ws = websocket(&listener).await;
    ws.send(Message::Binary(common::hello_bytes("texter").into()))
        .await
        .unwrap();
    ws.send(Message::Text("{\"Invoke\": []}".into()))
        .await
        .unwrap();
    common::closed_by_server(&mut ws).await;
    still_serving(&server, &client, &server_id).await;
}

#[tokio::test]
async fn a_second_hello_after_the_handshake_closes_the_connection() {
    let (server, listener, client, server_id) = server().await;
    let mut ws = websocket(&listener).await;
    ws.send(Message::Binary(common::hello_bytes("twice").into()))
        .await
        .unwrap();
    ws.send(Message::Binary(common::hello_bytes("twice").into()))
        .await
        .unwrap();
    common::closed_by_server(&mut ws).await;
    still_serving(&server, &client, &server_id).await;
}

#[tokio::test]
async fn a_message_over_the_frame_limit_closes_the_connection_before_it_is_read_whole() {
    let (server, listener, client, server_id) = server().await;
    let mut ws = websocket(&listener).await;
    ws.send(Message::Binary(common::hello_bytes("big").into()))
        .await
        .unwrap();
    // Only the header of 1 MiB against a 1 KiB limit, and no payload: a server that waited to
    // read the message whole would keep the connection open (keep-alive is 15 s away).
    ws.get_mut()
        .write_all(&common::frame_header(1 << 20))
        .await
        .unwrap();
    common::closed_by_server(&mut ws).await;
    still_serving(&server, &client, &server_id).await;
}

#[tokio::test]
async fn an_oversized_first_message_is_refused_from_its_header_before_the_hello() {
    // The frame limit is the default 64 MiB and the handshake timeout a minute: neither would
    // close the connection within the 5 s that `closed_by_server` waits.
    let (server, listener, client, server_id) = serve(
        Node::builder()
            .id("server")
            .handshake_timeout(Duration::from_secs(60)),
    )
    .await;
    let mut ws = websocket(&listener).await;
    // 32 MiB announced, nothing sent after it: only a refusal from the header closes this.
    ws.get_mut()
        .write_all(&common::frame_header(32 << 20))
        .await
        .unwrap();
    common::closed_by_server(&mut ws).await;
    still_serving(&server, &client, &server_id).await;
}

#[tokio::test]
async fn a_flood_of_sockets_that_never_upgrade_is_closed_beyond_max_connections() {
    const FLOOD: usize = 100;
    // A handshake timeout of a minute: any socket closed within this test was closed for the
    // bound, not for its time.
    let (server, listener, client, server_id) = serve(
        Node::builder()
            .id("server")
            .handshake_timeout(Duration::from_secs(60))
            .max_connections(2),
    )
    .await;
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        flood.push(TcpStream::connect(listener.local_addr()).await.unwrap());
    }
    // A socket the server closed reads EOF (or a reset) at once; one it holds, nothing.
    let reads = futures::future::join_all(flood.iter_mut().map(|tcp| async move {
        let mut buf = [0_u8; 1];
        tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf)).await
    }))
    .await;
    let held = reads.iter().filter(|read| read.is_err()).count();
    let closed = reads
        .iter()
        .filter(|read| matches!(read, Ok(Ok(0)) | Ok(Err(_))))
        .count();
    assert_eq!(held + closed, FLOOD, "{reads:?}");
    assert!(
        held <= 2,
        "the server holds {held} sockets that never upgraded"
    );
    still_serving(&server, &client, &server_id).await;

    drop(flood);
    // The server notices the held sockets closing, and has room again.
    let late = Node::builder().id("late").build().unwrap();
    let mut connected = late.connect(&listener.url()).await;
    for _ in 0..50 {
        if connected.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        connected = late.connect(&listener.url()).await;
    }
    assert_eq!(connected, Ok(PeerId::new("server")));
    common::wait_until(|| server.peers() == [PeerId::new("client"), PeerId::new("late")]).await;
}

#[tokio::test]
async fn a_wss_url_that_cannot_be_reached_fails_at_once() {
    let client = Node::builder().build().unwrap();
    // The workspace's tests build the `tls` feature: the URL is dialled, and nobody listens.
    for url in ["wss://127.0.0.1:1/", "WSS://127.0.0.1:1"] {
        let refused = client.connect(url).await;
        assert!(
            matches!(refused, Err(Error::Transport { .. })),
            "{refused:?}"
        );
    }
    // A URL no transport can dial is refused before any attempt, with or without reconnect.
    let refused = client
        .connect_with_reconnect("https://127.0.0.1:1", Reconnect::default())
        .await;
    assert!(matches!(refused, Err(Error::BadUrl { .. })), "{refused:?}");
}

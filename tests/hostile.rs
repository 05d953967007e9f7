//! Hostile and broken clients against a real WebSocket server peer: each gets its connection
//! closed (or a refusal), never a panic or a hung task, and the server goes on serving a
//! well-behaved client meanwhile.

mod common;

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use remote_scope::protocol::{self, Frame, Invoke};
use remote_scope::{remote, Node, PeerId, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// A server with short limits, and a well-behaved client connected to it.
async fn server() -> (Node, Server, Node, PeerId) {
    let server = Node::builder()
        .id("server")
        .handshake_timeout(Duration::from_millis(300))
        .max_frame_size(1024)
        .build()
        .unwrap();
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

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn websocket(listener: &Server) -> Ws {
    tokio_tungstenite::connect_async(listener.url())
        .await
        .expect("upgrade")
        .0
}

/// Reads until the server closes the WebSocket; panics if it does not within 5 s.
async fn closed_by_server(ws: &mut Ws) {
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server did not close the connection");
}

fn hello(id: &str) -> Vec<u8> {
    let registry = remote_scope::Registry::global().unwrap();
    protocol::encode(&Frame::Hello(protocol::Hello {
        version: protocol::PROTOCOL_VERSION,
        peer: PeerId::new(id),
        digest: registry.digest(),
        bodies: registry.len() as u32,
        token: None,
    }))
    .unwrap()
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
    closed_by_server(&mut ws).await;
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
        captures: vec![0x90],
    }))
    .unwrap();
    ws.send(Message::Binary(invoke.into())).await.unwrap();
    closed_by_server(&mut ws).await;
    still_serving(&server, &client, &server_id).await;
}

#[tokio::test]
async fn a_text_message_closes_the_connection() {
    let (server, listener, client, server_id) = server().await;
    let mut ws = websocket(&listener).await;
    ws.send(Message::Binary(hello("texter").into()))
        .await
        .unwrap();
    ws.send(Message::Text("{\"Invoke\": []}".into()))
        .await
        .unwrap();
    closed_by_server(&mut ws).await;
    still_serving(&server, &client, &server_id).await;
}

#[tokio::test]
async fn a_second_hello_after_the_handshake_closes_the_connection() {
    let (server, listener, client, server_id) = server().await;
    let mut ws = websocket(&listener).await;
    ws.send(Message::Binary(hello("twice").into()))
        .await
        .unwrap();
    ws.send(Message::Binary(hello("twice").into()))
        .await
        .unwrap();
    closed_by_server(&mut ws).await;
    still_serving(&server, &client, &server_id).await;
}

#[tokio::test]
async fn a_message_over_the_frame_limit_closes_the_connection_before_it_is_read_whole() {
    let (server, listener, client, server_id) = server().await;
    let mut ws = websocket(&listener).await;
    ws.send(Message::Binary(hello("big").into())).await.unwrap();
    // 1 MiB against a 1 KiB limit: tungstenite refuses it by its header.
    let _ = ws.send(Message::Binary(vec![0x90; 1 << 20].into())).await;
    closed_by_server(&mut ws).await;
    still_serving(&server, &client, &server_id).await;
}

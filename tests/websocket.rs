//! The WebSocket wire, byte by byte: a node's own framing (after tungstenite's upgrade) against
//! hand-written peers that send what RFC 6455 allows and what it forbids.

mod common;

use std::time::Duration;

use remote_scope::protocol::{self, Frame};
use remote_scope::{remote, Error, Node, PeerId, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The key of RFC 6455's example, and the answer it gives.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x0f, 0xa1, 0x5c, 0x33];

const CONTINUATION: u8 = 0x0;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const FIN: u8 = 0x80;

/// A frame with `first` (FIN and opcode) and `payload`, masked with `mask` if given.
fn frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![first];
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(masked | n as u8),
        n @ 126..=0xffff => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A frame as read off the wire: its first byte, whether it was masked, its payload unmasked.
#[derive(Debug)]
struct Read {
    first: u8,
    masked: bool,
    payload: Vec<u8>,
}

/// Reads one frame; fails the test if none comes within 5 s.
async fn read_frame(tcp: &mut TcpStream) -> std::io::Result<Read> {
    tokio::time::timeout(Duration::from_secs(5), read_frame_now(tcp))
        .await
        .expect("a frame within 5 s")
}

async fn read_frame_now(tcp: &mut TcpStream) -> std::io::Result<Read> {
    let mut head = [0; 2];
    tcp.read_exact(&mut head).await?;
    let len = match head[1] & 0x7f {
        126 => u64::from(tcp.read_u16().await?),
        127 => tcp.read_u64().await?,
        n => u64::from(n),
    };
    let masked = head[1] & 0x80 != 0;
    let mut key = [0; 4];
    if masked {
        tcp.read_exact(&mut key).await?;
    }
    let mut payload = vec![0; usize::try_from(len).expect("a small frame")];
    tcp.read_exact(&mut payload).await?;
    if masked {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
    }
    Ok(Read {
        first: head[0],
        masked,
        payload,
    })
}

/// Reads up to and including the blank line that ends an HTTP head, a byte at a time so that
/// nothing after it is taken.
async fn read_head(tcp: &mut TcpStream) -> String {
    let read = async {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.expect("an HTTP head"));
        }
        head
    };
    let head = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("an HTTP head within 5 s");
    String::from_utf8(head).expect("a text head")
}

fn upgrade_request() -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\r\n"
    )
    .into_bytes()
}

async fn server() -> (Node, Server) {
    let node = Node::builder()
        .id("server")
        .handshake_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let listener = node.listen("127.0.0.1:0").await.unwrap();
    (node, listener)
}

/// Reads until the end of the stream; fails the test if it takes more than 5 s.
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection was not closed");
    rest
}

#[tokio::test]
async fn a_hello_sent_with_the_upgrade_in_fragments_around_a_ping_is_read_and_pinged_back() {
    let (node, listener) = server().await;
    let mut tcp = TcpStream::connect(listener.local_addr()).await.unwrap();
    // All in one write: the server's upgrade must hand what follows the HTTP head to the
    // framing, not lose it.
    let hello = common::hello_bytes("fragments");
    let (front, back) = hello.split_at(hello.len() / 2);
    let mut bytes = upgrade_request();
    bytes.extend(frame(BINARY, front, Some(MASK)));
    bytes.extend(frame(FIN | PING, b"are you there", Some(MASK)));
    bytes.extend(frame(FIN | CONTINUATION, back, Some(MASK)));
    tcp.write_all(&bytes).await.unwrap();

    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(head.contains(ACCEPT), "{head}");
    let pong = read_frame(&mut tcp).await.unwrap();
    assert_eq!(pong.first, FIN | PONG);
    assert_eq!(pong.payload, b"are you there");
    let answer = read_frame(&mut tcp).await.unwrap();
    assert_eq!(answer.first, FIN | BINARY);
    assert!(
        !pong.masked && !answer.masked,
        "a server must not mask its frames"
    );
    match protocol::decode(answer.payload.clone().into(), 1 << 20) {
        Ok(Frame::Hello(theirs)) => assert_eq!(theirs.peer, PeerId::new("server")),
        other => panic!("expected the server's hello, got {other:?}"),
    }
    common::wait_until(|| node.peers() == [PeerId::new("fragments")]).await;

    // A close is answered with the same status code, then the socket ends.
    tcp.write_all(&frame(FIN | CLOSE, &1001_u16.to_be_bytes(), Some(MASK)))
        .await
        .unwrap();
    let close = read_frame(&mut tcp).await.unwrap();
    assert_eq!(close.first, FIN | CLOSE);
    assert_eq!(close.payload, 1001_u16.to_be_bytes());
    assert!(until_closed(&mut tcp).await.is_empty());
    common::wait_until(|| node.peers().is_empty()).await;
}

#[tokio::test]
async fn an_unmasked_frame_from_a_client_closes_the_connection() {
    let (node, listener) = server().await;
    let mut tcp = TcpStream::connect(listener.local_addr()).await.unwrap();
    let mut bytes = upgrade_request();
    bytes.extend(frame(FIN | BINARY, &common::hello_bytes("unmasked"), None));
    tcp.write_all(&bytes).await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    until_closed(&mut tcp).await;
    assert!(node.peers().is_empty());
}

/// A hand-written server on a free port: it answers the upgrade, then does `then` with the
/// socket.
async fn fake_server<F, Fut>(then: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: FnOnce(TcpStream, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let head = read_head(&mut tcp).await;
        let key = head
            .lines()
            .find_map(|line| line.strip_prefix("Sec-WebSocket-Key: "))
            .expect("a key")
            .to_owned();
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        );
        then(tcp, response).await;
    });
    (url, task)
}

#[tokio::test]
async fn a_client_masks_its_frames_and_reads_those_that_came_with_the_upgrade_response() {
    let (url, fake) = fake_server(|mut tcp, response| async move {
        // The server's hello in the same write as the response.
        let mut bytes = response.into_bytes();
        bytes.extend(frame(FIN | BINARY, &common::hello_bytes("fake"), None));
        tcp.write_all(&bytes).await.unwrap();
        let theirs = read_frame(&mut tcp).await.unwrap();
        assert!(theirs.masked, "a client must mask its frames");
        assert_eq!(theirs.first, FIN | BINARY);
        match protocol::decode(theirs.payload.clone().into(), 1 << 20) {
            Ok(Frame::Hello(hello)) => assert_eq!(hello.peer, PeerId::new("client")),
            other => panic!("expected the client's hello, got {other:?}"),
        }
        // Disconnecting sends a close frame, masked too, before the socket ends.
        let close = read_frame(&mut tcp).await.unwrap();
        assert_eq!((close.first, close.masked), (FIN | CLOSE, true));
        assert_eq!(close.payload, 1000_u16.to_be_bytes());
        until_closed(&mut tcp).await;
    })
    .await;
    let client = Node::builder().id("client").build().unwrap();
    let peer = client.connect(&url).await;
    assert_eq!(peer, Ok(PeerId::new("fake")));
    assert!(client.disconnect(&PeerId::new("fake")));
    fake.await.unwrap();
}

#[tokio::test]
async fn a_masked_frame_from_a_server_fails_the_client() {
    let (url, fake) = fake_server(|mut tcp, response| async move {
        let mut bytes = response.into_bytes();
        bytes.extend(frame(
            FIN | BINARY,
            &common::hello_bytes("fake"),
            Some(MASK),
        ));
        tcp.write_all(&bytes).await.unwrap();
        until_closed(&mut tcp).await;
    })
    .await;
    let client = Node::builder().id("client").build().unwrap();
    match client.connect(&url).await {
        // The framing error is the source, kept whole; `{:?}` shows the chain.
        Err(
            err @ Error::Transport {
                source: Some(_), ..
            },
        ) => {
            assert!(format!("{err:?}").contains("masked"), "{err:?}")
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    fake.await.unwrap();
}

#[tokio::test]
async fn large_payloads_cross_both_ways_intact() {
    let (_node, listener) = server().await;
    let client = Node::builder().id("client").build().unwrap();
    let server_id = client.connect(&listener.url()).await.unwrap();
    // Sizes around the framing's boundaries: 7-bit, 16-bit and 64-bit lengths, and payloads
    // written from where they lie (a server's as they are; a client's masked there when no one
    // else holds them, which is once its encoded frame is over 64 KiB: the encoder's shared
    // buffer takes smaller ones, and those are copied to be masked).
    for len in [0_usize, 125, 126, 4095, 4096, 65_535, 65_536, 3 << 20] {
        let data =
            serde_bytes::ByteBuf::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        let echoed = client
            .run(remote!(server_id, [data: serde_bytes::ByteBuf], {
                let mut data = data;
                data.reverse();
                data
            }))
            .await
            .unwrap();
        let mut expected = (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>();
        expected.reverse();
        assert_eq!(echoed.into_vec(), expected, "{len} bytes");
    }
}

#[tokio::test]
async fn a_peer_that_pings_without_reading_gets_the_latest_ping_answered_not_every_one() {
    let (node, listener) = server().await;
    // A small receive buffer, so that unread pongs back up into the server soon.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(listener.local_addr()).await.unwrap();
    tcp.write_all(&upgrade_request()).await.unwrap();
    let head = read_head(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // 16 MiB of pings, none of their pongs read until the last has been sent: more than the
    // socket buffers on both sides hold, so a server that queued a pong per ping would hold
    // megabytes for a peer it does not even know yet.
    let pings = 130_000;
    let ping = frame(FIN | PING, &[b'p'; 125], Some(MASK));
    let (reader, mut writer) = tcp.into_split();
    let flood = async move {
        for _ in 0..pings / 1000 {
            writer.write_all(&ping.repeat(1000)).await.unwrap();
        }
        writer
            .write_all(&frame(
                FIN | BINARY,
                &common::hello_bytes("pinger"),
                Some(MASK),
            ))
            .await
            .unwrap();
        writer
    };
    let writer = tokio::time::timeout(Duration::from_secs(30), flood)
        .await
        .expect("the server keeps reading pings while their pongs are not read");
    let mut tcp = reader.reunite(writer).unwrap();
    let mut pongs = 0;
    loop {
        let frame = read_frame(&mut tcp).await.unwrap();
        match frame.first & 0x0f {
            PONG => pongs += 1,
            BINARY => break,
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
    // About 24 000 here: what the socket buffers held before the server stopped queueing.
    assert!(pongs < pings / 2, "{pongs} pongs for {pings} pings");
    common::wait_until(|| node.peers() == [PeerId::new("pinger")]).await;
}

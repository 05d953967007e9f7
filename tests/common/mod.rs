//! Shared set-up for the integration tests: real peers on 127.0.0.1 (port 0), and a scripted
//! raw peer that speaks the protocol frame by frame.
#![allow(dead_code)] // each test binary uses a part of this

pub mod certs;
pub mod child;
pub mod nats;

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use remote_scope::protocol::{self, Frame, Hello, PROTOCOL_VERSION};
use remote_scope::transport::memory::{self, MemoryTransport};
use remote_scope::{remote, Error, Node, PeerId, Registry, Server};

/// The README's nested demo: server, then client, then server again; `(vec![42; 43], 44)`.
pub async fn nested(server: PeerId, client: PeerId) -> Result<(Vec<u64>, u64), Error> {
    remote!(server, [server: PeerId, client: PeerId], {
        let a: u64 = 42;
        let b: Vec<u64> = remote!(client, [a: u64], { vec![42_u64; a as usize + 1] }).await?;
        remote!(server, [a: u64, b: Vec<u64>], { (b, a + 2) }).await
    })
    .await?
}

/// A server node listening on a free port and a client node connected to it.
pub struct Peers {
    pub server: Node,
    pub listener: Server,
    pub client: Node,
    pub server_id: PeerId,
    pub client_id: PeerId,
}

pub async fn connected_peers() -> Peers {
    let server = Node::builder().id("server").build().expect("server node");
    let listener = server.listen("127.0.0.1:0").await.expect("listen");
    let client = Node::builder().id("client").build().expect("client node");
    let server_id = client.connect(&listener.url()).await.expect("connect");
    let client_id = client.id().clone();
    wait_until(|| server.is_connected(&client_id)).await;
    Peers {
        server,
        listener,
        client,
        server_id,
        client_id,
    }
}

/// Polls `cond` every few milliseconds for up to 5 s; panics if it never holds.
pub async fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached within 5 s");
}

/// A peer scripted by hand over an in-memory transport, to send what a real node never would.
pub struct RawPeer {
    pub end: Controlled,
    /// `a`: the raw peer's end; `b`: the node's.
    pub ends: Ends,
}

impl RawPeer {
    /// A raw peer whose other end `node` has accepted (the handshake is left to the script).
    pub fn accepted_by(node: &Node) -> RawPeer {
        let (ours, theirs, ends) = controlled_pair();
        let node = node.clone();
        tokio::spawn(async move {
            let _ = node.accept_transport(theirs).await;
        });
        RawPeer { end: ours, ends }
    }

    /// A raw peer with id `id` that `node` accepted, past the handshake.
    pub async fn connected_to(node: &Node, id: &str) -> RawPeer {
        let mut raw = RawPeer::accepted_by(node);
        raw.send(&RawPeer::hello(id)).await;
        assert!(
            matches!(raw.recv().await, Some(Frame::Hello(_))),
            "the node answers the hello"
        );
        raw
    }

    /// A raw peer that `node` connects to; returns the raw side and the pending connect.
    pub fn dialed_by(
        node: &Node,
    ) -> (
        RawPeer,
        tokio::task::JoinHandle<Result<PeerId, remote_scope::Error>>,
    ) {
        let (ours, theirs, ends) = controlled_pair();
        let node = node.clone();
        let connect = tokio::spawn(async move { node.connect_transport(theirs).await });
        (RawPeer { end: ours, ends }, connect)
    }

    pub fn hello(id: &str) -> Frame {
        Self::hello_with_token(id, None)
    }

    pub fn hello_with_token(id: &str, token: Option<&str>) -> Frame {
        let registry = Registry::global().expect("registry");
        Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            peer: PeerId::new(id),
            digest: registry.digest(),
            bodies: registry.len() as u32,
            token: token.map(str::to_owned),
            limits: remote_scope::protocol::Limits::default(),
            pools: Vec::new(),
        })
    }

    pub async fn send(&mut self, frame: &Frame) {
        let bytes = protocol::encode(frame).expect("encode");
        self.end.send(bytes).await.expect("raw send");
    }

    pub async fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.end.send(bytes.into()).await.expect("raw send");
    }

    /// The next frame if one comes within `wait`: `Some(None)` when the node closed the
    /// connection, `None` when nothing came.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Option<Frame>> {
        let next = tokio::time::timeout(wait, self.end.next()).await.ok()?;
        Some(next.map(|m| {
            protocol::decode(m.expect("raw recv"), usize::MAX).expect("node sends valid frames")
        }))
    }

    /// The next frame, or `None` when the node closed the connection.
    pub async fn recv(&mut self) -> Option<Frame> {
        let next = tokio::time::timeout(Duration::from_secs(5), self.end.next())
            .await
            .expect("the node answers within 5 s")?;
        Some(
            protocol::decode(next.expect("raw recv"), usize::MAX).expect("node sends valid frames"),
        )
    }
}

/// A `Hello` from peer `id`, built from the same source as the node, as it goes on the wire.
pub fn hello_bytes(id: &str) -> Vec<u8> {
    protocol::encode(&RawPeer::hello(id)).unwrap().to_vec()
}

/// What a [`controlled_pair`] link does now.
pub const FLOWING: u8 = 0;
/// Nothing more arrives at either end and what is sent vanishes, as with a cut cable or a
/// frozen host: no close, no error.
pub const FROZEN: u8 = 1;
/// Sending blocks at this end, as when the peer stopped reading; receiving goes on.
pub const STALLED: u8 = 2;

/// An in-memory link whose ends the test switches (see [`FLOWING`], [`FROZEN`], [`STALLED`]).
pub fn controlled_pair() -> (Controlled, Controlled, Ends) {
    let ends = Ends {
        a: Arc::new(AtomicU8::new(FLOWING)),
        b: Arc::new(AtomicU8::new(FLOWING)),
    };
    let (a, b) = memory::pair();
    (
        Controlled(a, Arc::clone(&ends.a)),
        Controlled(b, Arc::clone(&ends.b)),
        ends,
    )
}

/// The states of a [`controlled_pair`]'s two ends.
pub struct Ends {
    pub a: Arc<AtomicU8>,
    pub b: Arc<AtomicU8>,
}

impl Ends {
    pub fn set(&self, state: u8) {
        self.a.store(state, Ordering::SeqCst);
        self.b.store(state, Ordering::SeqCst);
    }
}

pub struct Controlled(MemoryTransport, Arc<AtomicU8>);

impl futures::Stream for Controlled {
    type Item = Result<remote_scope::transport::Bytes, remote_scope::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.1.load(Ordering::SeqCst) == FROZEN {
            return Poll::Pending;
        }
        Pin::new(&mut self.0).poll_next(cx)
    }
}

impl futures::Sink<remote_scope::transport::Bytes> for Controlled {
    type Error = remote_scope::Error;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.1.load(Ordering::SeqCst) == STALLED {
            return Poll::Pending;
        }
        Pin::new(&mut self.0).poll_ready(cx)
    }
    fn start_send(
        mut self: Pin<&mut Self>,
        item: remote_scope::transport::Bytes,
    ) -> Result<(), Self::Error> {
        if self.1.load(Ordering::SeqCst) == FROZEN {
            return Ok(());
        }
        Pin::new(&mut self.0).start_send(item)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// A tokio runtime for nodes that counts the tasks they spawn, and those not ended yet.
#[derive(Default)]
pub struct LiveTasks {
    live: Arc<AtomicUsize>,
    spawned: AtomicUsize,
}

impl LiveTasks {
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    pub fn spawned(&self) -> usize {
        self.spawned.load(Ordering::SeqCst)
    }
}

struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl remote_scope::runtime::Runtime for LiveTasks {
    fn spawn(&self, task: remote_scope::runtime::BoxFuture<'static, ()>) {
        self.live.fetch_add(1, Ordering::SeqCst);
        self.spawned.fetch_add(1, Ordering::SeqCst);
        let alive = Alive(Arc::clone(&self.live));
        tokio::spawn(async move {
            let _alive = alive;
            task.await
        });
    }
    fn sleep(&self, duration: Duration) -> remote_scope::runtime::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// An error and its sources, as one line.
pub fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A client's WebSocket, for tests that speak it by hand.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads until the server closes the WebSocket; panics if it does not within 5 s.
pub async fn closed_by_server(ws: &mut Ws) {
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

/// The header of a masked binary frame (as a client sends it) announcing `len` payload bytes.
pub fn frame_header(len: u64) -> Vec<u8> {
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&[0x5A; 4]);
    header
}

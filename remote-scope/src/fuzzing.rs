//! What the fuzz targets in `fuzz/` reach that the public API does not: the borrowed frame
//! decoder the node reads with, and serving a body from hostile capture bytes. Only with the
//! `fuzzing` feature; not public API.

use std::future::Future;
use std::task::Context;

use bytes::Bytes;

use crate::node::Node;
use crate::protocol::{self, Frame, Received};
use crate::serve;

/// The node's own decoder, as the reader calls it: `known` is the one body name it has (the
/// reader has the registry's).
pub fn decode_received(bytes: &[u8], known: Option<&'static str>) -> Option<Frame> {
    let message = Bytes::copy_from_slice(bytes);
    let names = |name: &[u8]| known.filter(|k| k.as_bytes() == name);
    protocol::decode_with(message, usize::MAX, names).ok()
}

/// The general decoder alone (the frames read by hand), which the fast path must agree with.
pub fn decode_general(bytes: &[u8]) -> Option<Frame> {
    protocol::decode_general(&Bytes::copy_from_slice(bytes)).ok()
}

/// serde's derive over the project's decoder, which reads every frame the general decoder
/// reads, the same, and more forms.
pub fn decode_by_serde(bytes: &[u8]) -> Option<Frame> {
    protocol::decode_frame(bytes).ok()
}

/// A node whose runtime never spawns or wakes anything, for targets that poll bodies
/// themselves; one per process, serving the bodies the target compiled in.
pub fn inert_node() -> &'static Node {
    use std::sync::OnceLock;
    use std::time::Duration;

    use crate::runtime::{BoxFuture, Runtime};

    struct Inert;

    impl Runtime for Inert {
        fn spawn(&self, _: BoxFuture<'static, ()>) {}
        fn sleep(&self, _: Duration) -> BoxFuture<'static, ()> {
            Box::pin(std::future::pending())
        }
    }

    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        Node::builder()
            .id("fuzz")
            .runtime(std::sync::Arc::new(Inert))
            .build()
            .expect("the registry builds")
    })
}

/// Serves every registered body once with `captures`, polling each up to `polls` times: decode
/// errors and panics must come back as failures, never unwind or abort.
pub fn serve_each_body(node: &Node, captures: &[u8], polls: usize) {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    for name in node.registry().names() {
        let mut work = serve::dispatch(
            node,
            node.registry().handler(name),
            Received::inline(captures)
                .unwrap_or_else(|| Received::Bytes(Bytes::copy_from_slice(captures))),
        );
        for _ in 0..polls {
            if std::pin::Pin::new(&mut work).poll(&mut cx).is_ready() {
                break;
            }
        }
    }
}

/// Decodes `bytes` as a caller decodes a body's result of type `T` (and a serving peer its
/// captures): the same depth-limited decoder.
pub fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    protocol::decode_payload(bytes).map_err(|e| e.to_string())
}

/// Feeds `bytes` to the native WebSocket transport's frame decoder as `role` would read them,
/// `chunk` bytes per read, under a message limit of `limit`, and checks what it promises: it
/// never panics, never asks for more room than one frame within the limit, and never hands on a
/// message over the limit or a control payload over 125 bytes. Then a message built from the
/// same bytes, framed as the other side would frame it, must come back whole.
#[cfg(not(target_arch = "wasm32"))]
pub fn websocket_frames(server: bool, limit: usize, chunk: usize, bytes: &[u8]) {
    use crate::transport::websocket::framing::{self, Decoder, Incoming, Role};

    let role = if server { Role::Server } else { Role::Client };
    let mut decoder = Decoder::new(role, limit);
    let mut buf = bytes::BytesMut::new();
    'reading: for piece in bytes.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(Incoming::Binary(message))) => assert!(message.len() <= limit),
                Ok(Some(Incoming::Ping(payload))) => assert!(payload.len() <= 125),
                Ok(Some(Incoming::Pong | Incoming::Close(_))) => {}
                Ok(None) => {
                    assert!(
                        decoder.wanted() > buf.len(),
                        "waits with a whole frame held"
                    );
                    assert!(decoder.wanted() <= limit.max(125).saturating_add(14));
                    continue 'reading;
                }
                Err(_) => break 'reading,
            }
        }
    }

    let mask = if server {
        Some([0x12, 0x34, 0x56, 0x78])
    } else {
        None
    };
    let mut framed = bytes::BytesMut::new();
    framing::put_binary(&mut framed, bytes, mask);
    let mut decoder = Decoder::new(role, bytes.len());
    match decoder.decode(&mut framed) {
        Ok(Some(Incoming::Binary(message))) => assert_eq!(&message[..], bytes),
        other => panic!("a well-framed message did not come back: {other:?}"),
    }
    assert!(framed.is_empty());
}

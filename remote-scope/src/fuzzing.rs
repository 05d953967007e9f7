//! What the fuzz targets in `fuzz/` reach that the public API does not: the borrowed frame
//! decoder the node reads with, and serving a body from hostile capture bytes. Only with the
//! `fuzzing` feature; not public API.

use std::future::Future;
use std::task::Context;

use crate::protocol::{self, Frame};
use crate::{serve, Node};

/// The node's own decoder (borrowing), as an owned frame.
pub fn decode_borrowed(bytes: &[u8]) -> Option<Frame> {
    protocol::decode_ref(bytes, usize::MAX)
        .ok()
        .map(protocol::FrameRef::into_owned)
}

/// Serves every registered body once with `captures`, polling each up to `polls` times: decode
/// errors and panics must come back as failures, never unwind or abort.
pub fn serve_each_body(node: &Node, captures: &[u8], polls: usize) {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    for name in node.registry().names() {
        let mut work = serve::dispatch(node, name, captures);
        for _ in 0..polls {
            if std::pin::Pin::new(&mut work).poll(&mut cx).is_ready() {
                break;
            }
        }
    }
}

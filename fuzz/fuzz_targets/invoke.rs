//! The invoke path on arbitrary capture bytes: every registered body below is served with the
//! input as its captures. Decoding must fail cleanly (a `DecodeCaptures` failure), a body must
//! never run with garbage, and nothing may panic out of the node.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_scope::{remote, PeerId};

/// Bodies with the capture shapes users write; registered by being compiled in.
#[allow(dead_code)]
fn bodies(peer: PeerId) {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Order {
        id: u32,
        items: Vec<String>,
        note: Option<String>,
    }
    let (a, b, s) = (1_u64, vec![2_u64], String::new());
    let order = Order {
        id: 0,
        items: Vec::new(),
        note: None,
    };
    let bytes: Vec<u8> = Vec::new();
    let _ = remote!(peer, [a: u64, b: Vec<u64>, s: String], {
        a.wrapping_add(b.len() as u64).wrapping_add(s.len() as u64)
    });
    let _ = remote!(peer, [order: Order], { order.items.len() + order.id as usize });
    let _ = remote!(peer, [bytes: Vec<u8>], { bytes.iter().map(|&x| x as u64).sum::<u64>() });
    let _ = remote!(peer, [], { 7_u8 });
}

fuzz_target!(|data: &[u8]| {
    remote_scope::__fuzz::serve_each_body(remote_scope::__fuzz::inert_node(), data, 2);
});

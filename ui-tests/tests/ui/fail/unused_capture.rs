// The unused-capture diagnostic is rustc's `unused_variables` warning; denied here so the
// snapshot shows where it points.
#![deny(unused_variables)]

use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<u64, Error> {
    let a: u64 = 1;
    let b: Vec<u64> = vec![];
    remote!(peer, [a: u64, b: Vec<u64>], { a + 1 }).await
}

fn main() {
    let _ = f;
}

use std::rc::Rc;

use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId, other: PeerId) -> Result<u64, Error> {
    remote!(peer, [other: PeerId], {
        let shared = Rc::new(1_u64);
        let n = remote!(other, [], { 2_u64 }).await?;
        Ok::<u64, Error>(*shared + n)
    })
    .await?
}

fn main() {
    let _ = f;
}

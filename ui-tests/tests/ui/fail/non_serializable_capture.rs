use remote_scope::{remote, Error, PeerId};

struct Handle(u64);

async fn f(peer: PeerId) -> Result<u64, Error> {
    let h = Handle(1);
    remote!(peer, [h: Handle], { h.0 }).await
}

fn main() {
    let _ = f;
}

use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<u64, Error> {
    let a: u64 = 1;
    let forgotten: u64 = 2;
    remote!(peer, [a: u64], { a + forgotten }).await
}

fn main() {
    let _ = f;
}

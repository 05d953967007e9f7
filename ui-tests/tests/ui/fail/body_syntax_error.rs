use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<u64, Error> {
    let a: u64 = 1;
    remote!(peer, [a: u64], {
        let b = ;
        a + b
    })
    .await
}

fn main() {
    let _ = f;
}

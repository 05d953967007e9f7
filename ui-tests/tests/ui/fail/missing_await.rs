use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<u64, Error> {
    let n = remote!(peer, [], { 1_u64 })?;
    Ok(n)
}

fn main() {
    let _ = f;
}

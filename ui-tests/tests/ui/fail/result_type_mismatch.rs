use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<u32, Error> {
    let a: u64 = 1;
    let n: u32 = remote!(peer, [a: u64], { a + 1 }).await?;
    Ok(n)
}

fn main() {
    let _ = f;
}

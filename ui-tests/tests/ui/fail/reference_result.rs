use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<(), Error> {
    let v: Vec<u64> = vec![1, 2];
    let _first = remote!(peer, [v: Vec<u64>], { &v[0] }).await?;
    Ok(())
}

fn main() {
    let _ = f;
}

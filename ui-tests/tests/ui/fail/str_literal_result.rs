use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<(), Error> {
    let _greeting = remote!(peer, [], { "hello" }).await?;
    Ok(())
}

fn main() {
    let _ = f;
}

use remote_scope::{remote, Error, PeerId};

struct Handle(u64);

async fn f(peer: PeerId) -> Result<(), Error> {
    let a: u64 = 1;
    let _h = remote!(peer, [a: u64], { Handle(a) }).await?;
    Ok(())
}

fn main() {
    let _ = f;
}

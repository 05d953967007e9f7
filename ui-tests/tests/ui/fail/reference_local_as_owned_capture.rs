use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId, name: &str) -> Result<usize, Error> {
    remote!(peer, [name: String], { name.len() }).await
}

fn main() {
    let _ = f;
}

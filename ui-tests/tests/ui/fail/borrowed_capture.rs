use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<usize, Error> {
    let s: &str = "hello";
    remote!(peer, [s: &str, t: impl Clone, u: _], { s.len() }).await
}

fn main() {
    let _ = f;
}

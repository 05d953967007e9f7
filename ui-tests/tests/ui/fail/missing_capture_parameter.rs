use remote_scope::{remote, Error, PeerId};

// A parameter of the caller.
async fn f(peer: PeerId, words: Vec<String>) -> Result<usize, Error> {
    remote!(peer, [], { words.len() }).await
}

fn main() {
    let _ = f;
}

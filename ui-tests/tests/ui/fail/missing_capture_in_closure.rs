use remote_scope::{remote, Error, PeerId};

// A parameter of a closure around the call.
async fn f(peer: PeerId, words: Vec<String>) -> Result<Vec<usize>, Error> {
    let capped = |limit: usize| {
        remote!(peer, [words: Vec<String>], { words.iter().map(|w| w.len().min(limit)).collect() })
    };
    capped(8).await
}

fn main() {
    let _ = f;
}

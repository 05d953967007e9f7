use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<u64, Error> {
    let text = String::from("42");
    let parsed = remote!(peer, [text: String], { text.parse::<u64>() }).await?;
    Ok(parsed.unwrap_or(0))
}

fn main() {
    let _ = f;
}

use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<u64, Error> {
    let text = String::from("42");
    remote!(peer, [text: String], {
        let n: u64 = text.parse()?;
        n
    })
    .await
}

fn main() {
    let _ = f;
}

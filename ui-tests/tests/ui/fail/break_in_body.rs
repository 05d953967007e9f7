use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<(), Error> {
    loop {
        remote!(peer, [], {
            break;
        })
        .await?;
    }
}

fn main() {
    let _ = f;
}

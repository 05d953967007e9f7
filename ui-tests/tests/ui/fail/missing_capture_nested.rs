use remote_scope::{remote, Error, PeerId};

// The inner body uses `a`, which only the outer body captured.
async fn f(server: PeerId, client: PeerId) -> Result<u64, Error> {
    let a: u64 = 1;
    remote!(server, [a: u64, client: PeerId], {
        let doubled = remote!(client, [], { a * 2 }).await?;
        Ok::<u64, Error>(doubled + a)
    })
    .await?
}

fn main() {
    let _ = f;
}

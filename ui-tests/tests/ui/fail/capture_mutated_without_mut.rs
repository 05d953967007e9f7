use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<Vec<u64>, Error> {
    let v: Vec<u64> = vec![1];
    remote!(peer, [v: Vec<u64>], {
        v.push(2);
        v
    })
    .await
}

fn main() {
    let _ = f;
}

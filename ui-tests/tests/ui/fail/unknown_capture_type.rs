use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<usize, Error> {
    let name = String::from("job");
    remote!(peer, [name: Strng], { name.len() }).await
}

fn main() {
    let _ = f;
}

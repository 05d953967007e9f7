use remote_scope::{remote, Error, PeerId};

async fn f<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static>(
    peer: PeerId,
    x: T,
) -> Result<(), Error> {
    remote!(peer, [x: T], { drop(x) }).await
}

fn main() {
    let _ = f::<u64>;
}

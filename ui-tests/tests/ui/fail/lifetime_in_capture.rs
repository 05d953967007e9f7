use std::borrow::Cow;

use remote_scope::{remote, Error, PeerId};

async fn f<'a>(peer: PeerId, name: Cow<'a, str>) -> Result<usize, Error> {
    remote!(peer, [name: Cow<'a, str>], { name.len() }).await
}

fn main() {
    let _ = f;
}

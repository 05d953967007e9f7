use remote_scope::{remote, Error, PeerId};

// A local used twice and in a format string, whose type the source does not write.
async fn f(peer: PeerId, scale: u64) -> Result<String, Error> {
    let offset = 2_u64 * scale;
    remote!(peer, [], {
        let shifted = offset + 1;
        format!("{shifted} from {offset}")
    })
    .await
}

fn main() {
    let _ = f;
}

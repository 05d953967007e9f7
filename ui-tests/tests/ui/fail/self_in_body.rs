use remote_scope::{remote, Error, PeerId};

struct Counter {
    count: u64,
}

impl Counter {
    async fn remote_double(&self, peer: PeerId) -> Result<u64, Error> {
        remote!(peer, [], { self.count * 2 }).await
    }
}

fn main() {
    let _ = Counter::remote_double;
}

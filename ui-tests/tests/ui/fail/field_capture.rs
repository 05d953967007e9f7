use remote_scope::{remote, Error, PeerId};

struct Job {
    size: u64,
}

async fn f(peer: PeerId, job: Job) -> Result<u64, Error> {
    remote!(peer, [job.size: u64], { size * 2 }).await
}

fn main() {
    let _ = f;
}

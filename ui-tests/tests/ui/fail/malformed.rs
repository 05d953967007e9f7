use remote_scope::{remote, PeerId};

async fn f(peer: PeerId) {
    let a: u64 = 1;
    let _ = remote!();
    let _ = remote!(peer);
    let _ = remote!(peer, a, { a });
    let _ = remote!(peer, [a: u64]);
    let _ = remote!(peer, [a: u64], a + 1);
    let _ = remote!(peer, [a: u64], { a } extra);
    let _ = remote!(peer, [a: u64 b: u64], { a });
}

fn main() {
    let _ = f;
}

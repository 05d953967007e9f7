use remote_scope::{remote, Error};

async fn f(port: u16) -> Result<u64, Error> {
    remote!(port, [], { 1_u64 }).await
}

fn main() {
    let _ = f;
}

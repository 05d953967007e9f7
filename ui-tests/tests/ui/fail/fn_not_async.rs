use remote_scope::remote_fn;

#[remote_fn]
fn double(n: u64) -> u64 {
    n * 2
}

fn main() {}

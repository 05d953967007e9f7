use remote_scope::remote_fn;

#[remote_fn(pool = "resize")]
async fn double(n: u64) -> u64 {
    n * 2
}

fn main() {}

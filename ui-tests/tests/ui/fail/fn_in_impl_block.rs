use remote_scope::remote_fn;

struct Jobs;

impl Jobs {
    #[remote_fn]
    async fn count(n: u64) -> u64 {
        n + 1
    }
}

fn main() {
    let _ = Jobs;
}

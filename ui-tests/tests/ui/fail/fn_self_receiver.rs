use remote_scope::remote_fn;

struct Counter {
    count: u64,
}

impl Counter {
    #[remote_fn]
    async fn doubled(&self) -> u64 {
        self.count * 2
    }
}

fn main() {
    let _ = Counter { count: 1 }.count;
}

use remote_scope::remote_fn;

#[remote_fn]
async fn first<T: serde::Serialize + Clone>(items: Vec<T>) -> Option<T> {
    items.first().cloned()
}

fn main() {}

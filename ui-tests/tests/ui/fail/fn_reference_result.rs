use remote_scope::remote_fn;

#[remote_fn]
async fn greeting(loud: bool) -> &'static str {
    if loud {
        "HELLO"
    } else {
        "hello"
    }
}

fn main() {}

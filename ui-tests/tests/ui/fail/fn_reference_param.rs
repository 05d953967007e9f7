use remote_scope::remote_fn;

#[remote_fn]
async fn shout(text: &str) -> String {
    text.to_uppercase()
}

fn main() {}

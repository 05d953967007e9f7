use remote_scope::{remote, Error, PeerId};

#[derive(serde::Serialize, serde::Deserialize)]
struct Invoice {
    lines: Vec<u64>,
}

async fn f(peer: PeerId) -> Result<usize, Error> {
    let invoice = Invoice { lines: vec![1, 2] };
    remote!(peer, [invoice: Invoce], { invoice.lines.len() }).await
}

fn main() {
    let _ = f;
}

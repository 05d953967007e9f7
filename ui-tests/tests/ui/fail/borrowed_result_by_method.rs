use remote_scope::{remote, Error, PeerId};

async fn f(peer: PeerId) -> Result<(), Error> {
    let name = String::from("job");
    let _name = remote!(peer, [name: String], { name.as_str() }).await?;
    Ok(())
}

fn main() {
    let _ = f;
}

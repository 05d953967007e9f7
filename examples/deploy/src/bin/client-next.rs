//! A client, version 2: also calls `next::shout`, new in `deploy-bodies` 2. A version-1 server
//! does not serve it: that call fails at once, saying so, and the others work.
//!
//! `client-next [URL]`, as `client`.

use bodies_next as bodies;

#[path = "../client.rs"]
mod client;

#[tokio::main]
async fn main() -> Result<(), remote_scope::Error> {
    let (node, server) = client::connect().await?;
    node.run(async {
        client::calls(&server, node.id()).await?;
        match bodies::next::shout(&server, "hello".into()).await {
            Ok(loud) => println!("shout: {loud}"),
            Err(e) => println!("shout failed: {e}"),
        }
        Ok(())
    })
    .await
}

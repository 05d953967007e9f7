//! A client, version 2: also calls `next::shout`, new in `deploy-bodies` 2. A version-1 server
//! does not serve it: that call fails at once, saying so, and the others work.
//!
//! `client-next [URL]`, as `client`.

use bodies_next as bodies;

#[path = "../client.rs"]
mod client;

#[tokio::main]
async fn main() -> Result<(), remote_scope::Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9400".into());
    let (node, server) = client::connect(&url).await?;
    node.run(async {
        client::calls(&server).await?;
        match bodies::next::shout(&server, "hello".into()).await {
            Ok(loud) => println!("shout: {loud}"),
            Err(e) => println!("shout failed: {e}"),
        }
        Ok(())
    })
    .await
}

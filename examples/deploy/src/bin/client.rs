//! A client, version 1: calls the bodies of `deploy-bodies` 1 on the server.
//!
//! `client [URL]` connects to URL (default `ws://127.0.0.1:9400`), waiting for the server if it
//! is not up yet, makes its calls and prints their outcomes.

use deploy_bodies as bodies;

#[path = "../client.rs"]
mod client;

#[tokio::main]
async fn main() -> Result<(), remote_scope::Error> {
    let (node, server) = client::connect().await?;
    node.run(client::calls(&server, node.id())).await
}

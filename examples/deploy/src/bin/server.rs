//! The service, version 1: serves the bodies of `deploy-bodies` 1.
//!
//! `server [ADDR]` listens on ADDR (default `127.0.0.1:9400`), prints `url ws://…`, and serves
//! until its standard input closes.

#[path = "../server.rs"]
mod server;

// The server never calls `jobs` itself, so the linker would leave the module out of this
// binary, and with it the bodies: name one of its functions to keep them.
remote_scope::link!(deploy_bodies::jobs::resize, deploy_bodies::reports::summary);

#[tokio::main]
async fn main() -> Result<(), remote_scope::Error> {
    server::main().await
}

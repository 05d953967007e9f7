//! The service, version 2: serves the bodies of `deploy-bodies` 2, the new `next` among them.
//!
//! `server-next [ADDR]`, as `server`.

#[path = "../server.rs"]
mod server;

remote_scope::link!(
    bodies_next::jobs::resize,
    bodies_next::reports::summary,
    bodies_next::next::shout
);

#[tokio::main]
async fn main() -> Result<(), remote_scope::Error> {
    server::main().await
}

//! Version 1 of the service without its `link!`: what happens when a binary serves the bodies
//! of a library it never calls into. The linker leaves the library out, so this server serves
//! none of its bodies, and a client's calls fail, each saying to add `link!` (the test
//! `a_server_that_forgot_link_refuses_calls_with_what_to_add` runs it).
//!
//! `server-unlinked [ADDR]`, as `server`.

#[path = "../server.rs"]
mod server;

#[tokio::main]
async fn main() -> Result<(), remote_scope::Error> {
    server::main().await
}

//! What the deployment example's clients share (each client binary includes this file).

use remote_scope::{remote, Error, Node, PeerId, Reconnect};

use crate::bodies::{jobs, reports};

/// Connects to the server at the URL the program's first argument gives (default
/// `ws://127.0.0.1:9400`), waiting for it if it is not up yet; returns the node and the
/// server's id.
pub async fn connect() -> Result<(Node, PeerId), Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9400".into());
    let node = Node::builder().id("client").build()?;
    // The server's id is known in advance: the client may start first.
    let server = node
        .connect_with_reconnect(&url, Reconnect::default().peer("server"))
        .await?;
    Ok((node, server))
}

/// The calls every version of the client (`me`) makes; prints each outcome on a line of its
/// own.
pub async fn calls(server: &PeerId, me: &PeerId) -> Result<(), Error> {
    println!("resize: {}", jobs::resize(server, 640).await?);
    println!(
        "words: {}",
        jobs::word_count(server, "one two three".into()).await?
    );
    // A body of the client's own, run on itself.
    println!(
        "own: {}",
        remote!(me, [], { String::from("ran here") }).await?
    );
    // Whichever implementation the server's version has.
    println!(
        "summary: {}",
        reports::summary("one two three".into())
            .on_peer(server)
            .await?
    );
    Ok(())
}

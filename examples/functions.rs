//! `#[remote_fn]` functions beside `remote!` blocks: a client peer has a server peer count and
//! compare words. Run it with `cargo run --example functions`.

use remote_scope::{remote, remote_fn, BodyError, Error, Node, PeerId};

/// Counts the words of `text` that have at least `min` letters, on the peer it is sent to.
#[remote_fn]
async fn count_words(text: String, min: usize) -> Result<usize, BodyError> {
    if min == 0 {
        return Err(BodyError::new("`min` must be at least 1"));
    }
    Ok(text.split_whitespace().filter(|w| w.len() >= min).count())
}

/// The longest of `words`, found on `peer` by a `remote!` block.
async fn longest(peer: PeerId, words: Vec<String>) -> Result<String, Error> {
    remote!(peer, [words: Vec<String>], {
        let longest = words.iter().max_by_key(|w| w.len()).cloned().unwrap_or_default();
        println!("  on {}: {longest} has {} letters", here(), longest.len());
        longest
    })
    .await
}

/// Which peer runs the code.
fn here() -> String {
    remote_scope::current_peer().map_or_else(|| "?".into(), |p| p.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let server = Node::builder().id("server").build()?;
    let listener = server.listen("127.0.0.1:0").await?;
    let client = Node::builder().id("client").build()?;
    let server_id = client.connect(&listener.url()).await?;

    let text = "a remote function runs on the peer it is sent to".to_owned();
    let counted = client
        .run(count_words(text.clone(), 4).on_peer(&server_id))
        .await??;
    println!("words of 4 letters or more: {counted}");
    match client.run(count_words(text, 0).on_peer(&server_id)).await? {
        Ok(n) => println!("unexpected: {n}"),
        Err(refused) => println!("with min = 0, the server said: {refused}"),
    }
    let words = ["peer", "function", "body"].map(String::from).to_vec();
    let found = client.run(longest(server_id, words)).await?;
    println!("longest word: {found}");
    Ok(())
}

//! What the deployment example's two server programs share (each includes this file).

use std::io::Read;
use std::time::Duration;

use remote_scope::{remote, Error, Node};

/// The server program: [`serve`] on the address its first argument gives (default
/// `127.0.0.1:9400`).
pub async fn main() -> Result<(), Error> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9400".into());
    serve(&addr).await
}

/// Listens on `addr` as the peer `server`, prints `url ws://…`, and serves until standard
/// input closes (the way the test and a supervisor stop it): then it shuts down gracefully,
/// letting running bodies finish for up to five seconds.
pub async fn serve(addr: &str) -> Result<(), Error> {
    let node = Node::builder().id("server").build()?;
    let listening = node.listen(addr).await?;
    // A body of the server's own, which no client has: it changes nothing for them.
    let me = node.id().clone();
    let pid = node.run(remote!(me, [], { std::process::id() })).await?;
    println!("url {}", listening.url());
    println!("self-check: pid {pid}");
    let (closed, stdin_closed) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = closed.send(());
    });
    tokio::spawn({
        let node = node.clone();
        async move {
            let _ = stdin_closed.await;
            node.shutdown_gracefully(Duration::from_secs(5)).await;
        }
    });
    listening.wait().await;
    Ok(())
}

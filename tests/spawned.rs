//! Calls made where no node is current: a task spawned with `tokio::spawn`, code outside
//! `Node::run`. With one node in the process the call goes out from it; `Node::spawn` carries a
//! node into a task whatever the process holds; with several nodes and none current the error
//! says which of these to use.
//!
//! `harness = false`, and one test after the other: how many nodes the process holds is the
//! subject, so no other test may build nodes meanwhile. The peer called is this binary run
//! again as a child process, so that the test process holds exactly the nodes it builds.

mod common;

use std::time::Duration;

use remote_scope::{remote, Error, Node, PeerId};

const CHILD: &str = "REMOTE_SCOPE_SPAWNED_CHILD";
const URL: &str = "url ";

fn main() {
    if std::env::var(CHILD).is_ok() {
        return child();
    }
    println!("\nrunning 1 test");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(calls_without_a_current_node());
    println!("test calls_without_a_current_node ... ok\n\ntest result: ok. 1 passed");
}

/// The peer: a server node that prints its URL and lives until the test process is gone.
fn child() {
    common::child::exit_with_parent();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let node = Node::builder().id("server").build().expect("node");
        let listening = node.listen("127.0.0.1:0").await.expect("listen");
        println!("{URL}{}", listening.url());
        std::future::pending::<()>().await;
    });
}

fn double(peer: &PeerId, n: u64) -> remote_scope::Call<u64> {
    remote!(peer, [n: u64], { n * 2 })
}

async fn calls_without_a_current_node() {
    // No node yet: the error says to build one.
    let result = double(&PeerId::new("server"), 1).await;
    assert!(
        matches!(&result, Err(Error::NoCurrentNode { nodes: 0 })),
        "{result:?}"
    );

    let (mut process, lines) = common::child::spawn_self(&[(CHILD, "1")]);
    let url = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the child prints its URL");
    let url = url.strip_prefix(URL).expect("a URL line").to_owned();

    let client = Node::builder().id("client").build().expect("node");
    let server = client.connect(&url).await.expect("connects");

    // One node in the process: a task spawned with tokio::spawn calls from it.
    let task = tokio::spawn({
        let server = server.clone();
        async move { double(&server, 21).await }
    });
    assert_eq!(task.await.expect("the task finishes"), Ok(42));
    // And so does code outside any `Node::run`.
    assert_eq!(double(&server, 5).await, Ok(10));

    // Two nodes: none is picked; the error names the ways to say which.
    let other = Node::builder().id("other").build().expect("node");
    let task = tokio::spawn({
        let server = server.clone();
        async move { double(&server, 1).await }
    });
    let result = task.await.expect("the task finishes");
    let Err(err @ Error::NoCurrentNode { nodes: 2 }) = &result else {
        panic!("expected NoCurrentNode with 2 nodes, got {result:?}");
    };
    let text = err.to_string();
    assert!(
        text.contains("node.spawn(..)")
            && text.contains("node.run(..)")
            && text.contains(".on(&node)"),
        "{text}"
    );
    // `Node::spawn` carries the node into the task, with any number of nodes.
    let spawned = client.spawn({
        let server = server.clone();
        async move { double(&server, 4).await }
    });
    assert_eq!(spawned.await, Some(Ok(8)));
    // So does `.on(&node)`, on one call.
    assert_eq!(double(&server, 3).on(&client).await, Ok(6));

    // A node shut down no longer counts: one is left, and calls go out from it again.
    other.shutdown();
    assert_eq!(double(&server, 50).await, Ok(100));

    client.shutdown();
    let _ = process.kill();
    let _ = process.wait();
}

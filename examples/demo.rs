//! The nested demo: a server peer and a client peer on 127.0.0.1, and bodies that hop between
//! them. Run it with `cargo run --example demo`.

use remote_scope::{remote, Error, Node, PeerId};

/// Which peer ran a step, for the printout.
fn here() -> String {
    // Each body runs on its own node; its id is the peer's name.
    remote_scope::current_peer().map_or_else(|| "?".into(), |p| p.to_string())
}

/// server: a = 42; client: a vector of a + 1 copies of 42; server: (that vector, a + 2).
async fn nested(server: PeerId, client: PeerId) -> Result<(Vec<u64>, u64), Error> {
    remote!(server, [server: PeerId, client: PeerId], {
        let a: u64 = 42;
        println!("  on {}: a = {a}", here());
        let b: Vec<u64> = remote!(client, [a: u64], {
            println!("  on {}: vec![42; {} + 1]", here(), a);
            vec![42_u64; a as usize + 1]
        })
        .await?;
        remote!(server, [a: u64, b: Vec<u64>], {
            println!("  on {}: ({} values, {a} + 2)", here(), b.len());
            (b, a + 2)
        })
        .await
    })
    .await?
}

/// One value computed on the client, one on the server: [43, 44].
async fn pair(server: PeerId, client: PeerId) -> Result<Vec<u64>, Error> {
    let base: u64 = 42;
    let on_client = remote!(client, [base: u64], {
        println!("  on {}: {base} + 1", here());
        base + 1
    })
    .await?;
    let on_server = remote!(server, [base: u64], {
        println!("  on {}: {base} + 2", here());
        base + 2
    })
    .await?;
    Ok(vec![on_client, on_server])
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let server = Node::builder().id("server").build()?;
    let listener = server.listen("127.0.0.1:0").await?;
    println!("server peer listening on {}", listener.url());

    let client = Node::builder().id("client").build()?;
    let server_id = client.connect(&listener.url()).await?;
    println!("client peer connected to `{server_id}`");

    println!("nested demo (server -> client -> server):");
    let (b, a2) = client
        .run(nested(server_id.clone(), client.id().clone()))
        .await?;
    assert_eq!((b.as_slice(), a2), (&[42; 43][..], 44));
    // 43 equal values, printed as the expression that makes them.
    println!("result: (vec![{}; {}], {a2})", b[0], b.len());

    println!("pair demo (client, then server):");
    let pair = client.run(pair(server_id, client.id().clone())).await?;
    println!("result: {pair:?}");
    assert_eq!(pair, [43, 44]);
    Ok(())
}

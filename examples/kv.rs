//! A key-value store on three peers, placed by key: each key lives on the two members that
//! weigh most for it (rendezvous hashing, `patterns::Placement`), a `put` writes both and a
//! `get` asks the owner, falling back to the next replica. One member leaves in the middle;
//! every key is still found, and only the keys it owned changed owner. Run it with
//! `cargo run --example kv`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use remote_scope::patterns::{self, Placement};
use remote_scope::{remote, Error, Node, PeerId, Server};

/// Copies of each key.
const REPLICAS: usize = 2;

/// The table of the peer running the body (the peers of this example share a process, so the
/// tables are kept by peer).
fn table() -> &'static Mutex<HashMap<(String, String), String>> {
    static TABLE: OnceLock<Mutex<HashMap<(String, String), String>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

fn here() -> String {
    remote_scope::current_peer().map_or_else(String::new, |p| p.to_string())
}

/// Writes `key` on every replica of it; the write succeeds once all of them took it.
async fn put(placement: &Placement, key: &str, value: &str) -> Result<(), Error> {
    let (key, value) = (key.to_owned(), value.to_owned());
    patterns::fan_out(placement.owners(&key, REPLICAS), |peer| {
        remote!(peer, [key: String, value: String], {
            if let Ok(mut table) = table().lock() {
                table.insert((here(), key), value);
            }
        })
    })
    .fail_fast()
    .await
    .map(|_| ())
}

/// Reads `key` from its owner, or from the next replica if the owner does not answer.
async fn get(placement: &Placement, key: &str) -> Result<Option<String>, Error> {
    let key = key.to_owned();
    patterns::retry(placement.owners(&key, REPLICAS), |peer| {
        remote!(peer, [key: String], {
            table()
                .lock()
                .ok()
                .and_then(|table| table.get(&(here(), key)).cloned())
        })
    })
    .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Node::builder().id("client").build()?;
    let mut members: Vec<(Node, Server)> = Vec::new();
    let mut ids: Vec<PeerId> = Vec::new();
    for id in ["kv-1", "kv-2", "kv-3"] {
        let node = Node::builder().id(id).build()?;
        let server = node.listen("127.0.0.1:0").await?;
        ids.push(client.connect(&server.url()).await?);
        members.push((node, server));
    }
    let mut placement = Placement::new(ids.clone());
    let keys: Vec<String> = (0..300).map(|i| format!("user:{i}")).collect();

    client
        .run(async {
            for key in &keys {
                put(&placement, key, &format!("profile of {key}")).await?;
            }
            Ok::<(), Error>(())
        })
        .await?;
    let owned = |placement: &Placement, member: &str| {
        keys.iter()
            .filter(|k| placement.owner(k.as_str()).map(PeerId::as_str) == Some(member))
            .count()
    };
    let shares: Vec<String> = ids
        .iter()
        .map(|id| format!("{id}: {}", owned(&placement, id.as_str())))
        .collect();
    println!(
        "put {} keys on 3 members, 2 copies each; owners: {}",
        keys.len(),
        shares.join(", ")
    );

    // kv-2 leaves: its node shuts down, and the placement forgets it.
    let before: Vec<Option<PeerId>> = keys.iter().map(|k| placement.owner(k).cloned()).collect();
    members[1].0.shutdown();
    placement.remove(&ids[1]);
    let moved = keys
        .iter()
        .zip(&before)
        .filter(|(k, was)| placement.owner(k.as_str()) != was.as_ref())
        .count();
    let only_its_own = keys.iter().zip(&before).all(|(k, was)| {
        was.as_ref().map(PeerId::as_str) == Some("kv-2")
            || placement.owner(k.as_str()) == was.as_ref()
    });
    println!("kv-2 left: {moved} keys changed owner, all of them kv-2's: {only_its_own}");

    let found = client
        .run(async {
            let mut found = 0;
            for key in &keys {
                if get(&placement, key).await? == Some(format!("profile of {key}")) {
                    found += 1;
                }
            }
            Ok::<usize, Error>(found)
        })
        .await?;
    println!("found after kv-2 left: {found} of {}", keys.len());
    if found != keys.len() || !only_its_own {
        return Err("the store lost keys".into());
    }
    Ok(())
}

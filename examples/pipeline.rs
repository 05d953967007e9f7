//! A pipeline across three peers and a fold around a ring of peers, both with nested
//! `remote!`. Run it with `cargo run --example pipeline`.
//!
//! - Pipeline: each line of text goes to `parse` (splits it into words), which hands its
//!   words to `score` (scores each word), which hands the scores to `total` (adds them up).
//!   Lines flow through the stages concurrently, 8 at a time (`patterns::gather`): while one
//!   line is being totalled, the next is being scored and the one after parsed.
//! - Ring fold: an accumulator starts on the first peer of a ring of four; each peer adds what
//!   it holds and passes the accumulator on to the next, and the last one's result comes back
//!   through every hop to the caller.

use std::future::Future;
use std::pin::Pin;

use remote_scope::{patterns, remote, Error, Node, PeerId, Server};

/// The id of the peer running the code.
fn here() -> String {
    remote_scope::current_peer().map_or_else(String::new, |p| p.to_string())
}

/// One line through the three stages: parse on `stages[0]`, score on `stages[1]`, total on
/// `stages[2]`; each stage calls the next from where it runs.
fn through_pipeline(
    stages: &[PeerId; 3],
    line: String,
) -> remote_scope::Call<Result<(u64, Vec<String>), Error>> {
    let [parse, score, total] = stages.clone();
    remote!(parse, [line: String, score: PeerId, total: PeerId], {
        let words: Vec<String> = line.split_whitespace().map(str::to_lowercase).collect();
        let parsed_on = here();
        let (sum, mut path) = remote!(score, [words: Vec<String>, total: PeerId], {
            // A word scores the sum of its letters' places in the alphabet.
            let scores: Vec<u64> = words
                .iter()
                .map(|w| w.bytes().filter(u8::is_ascii_lowercase).map(|b| u64::from(b - b'a' + 1)).sum())
                .collect();
            let scored_on = here();
            let (sum, totalled_on) = remote!(total, [scores: Vec<u64>], { (scores.iter().sum::<u64>(), here()) }).await?;
            Ok::<_, Error>((sum, vec![scored_on, totalled_on]))
        })
        .await??;
        path.insert(0, parsed_on);
        Ok::<_, Error>((sum, path))
    })
}

/// What each peer of the ring holds: the numbers 1 to 25 on the first, 26 to 50 on the
/// second, and so on, as if each had loaded a shard of its own.
fn shard_of(peer: &str) -> Vec<u64> {
    let i: u64 = peer.trim_start_matches("ring-").parse().unwrap_or(0);
    ((i - 1) * 25 + 1..=i * 25).collect()
}

/// The fold from peer `at` of the ring on: that peer adds its shard's sum to `acc` and passes
/// it to the next; the last peer's total comes back through every hop.
fn fold_from(
    ring: Vec<PeerId>,
    at: usize,
    acc: u64,
) -> Pin<Box<dyn Future<Output = Result<u64, Error>> + Send>> {
    Box::pin(async move {
        let peer = ring[at].clone();
        remote!(peer, [ring: Vec<PeerId>, at: usize, acc: u64], {
            let acc = acc + shard_of(&here()).iter().sum::<u64>();
            println!("  on {}: accumulator {acc}", here());
            if at + 1 == ring.len() {
                Ok(acc)
            } else {
                fold_from(ring, at + 1, acc).await
            }
        })
        .await?
    })
}

async fn peer(id: &str, hub: &Node) -> Result<(PeerId, Node, Server), Error> {
    let node = Node::builder().id(id).build()?;
    let server = node.listen("127.0.0.1:0").await?;
    let peer = hub.connect(&server.url()).await?;
    Ok((peer, node, server))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hub = Node::builder().id("hub").build()?;
    let mut nodes = Vec::new();
    let mut ids = Vec::new();
    for id in [
        "parse", "score", "total", "ring-1", "ring-2", "ring-3", "ring-4",
    ] {
        let (peer, node, server) = peer(id, &hub).await?;
        ids.push(peer);
        nodes.push((node, server));
    }
    // Each stage reaches the next, and each peer of the ring the one after it.
    for (from, to) in [(0, 2), (1, 2), (3, 4), (4, 5), (5, 6)] {
        nodes[from].0.connect(&nodes[to].1.url()).await?;
    }
    nodes[0].0.connect(&nodes[1].1.url()).await?;

    let stages = [ids[0].clone(), ids[1].clone(), ids[2].clone()];
    let text = "Lexical scope travels\nwith the body\nfrom peer to peer\nand back again";
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let expected: Vec<u64> = lines
        .iter()
        .map(|l| {
            l.to_lowercase()
                .bytes()
                .filter(u8::is_ascii_lowercase)
                .map(|b| u64::from(b - b'a' + 1))
                .sum()
        })
        .collect();
    let results = hub
        .run(
            patterns::gather(
                lines
                    .iter()
                    .map(|line| through_pipeline(&stages, line.clone())),
            )
            .in_flight(8)
            .fail_fast(),
        )
        .await?;
    println!("pipeline:");
    let mut sums = Vec::new();
    for (line, result) in lines.iter().zip(results) {
        let (sum, path) = result?;
        println!("  {line:?}: {sum} ({})", path.join(" -> "));
        sums.push(sum);
    }
    println!("pipeline totals as computed here: {}", sums == expected);

    println!("ring fold:");
    let ring = ids[3..].to_vec();
    let total = hub.run(fold_from(ring, 0, 0)).await?;
    println!(
        "ring total: {total} (1 + 2 + ... + 100 = {})",
        (1..=100).sum::<u64>()
    );
    if sums != expected || total != 5050 {
        return Err("the pipeline or the fold went wrong".into());
    }
    Ok(())
}

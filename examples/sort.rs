//! A distributed sort of a million numbers over four peers: sample the numbers, pick pivots
//! from the sample, partition by the pivots, sort each partition on a peer, and concatenate.
//! Run it with `cargo run --release --example sort`.
//!
//! The peers are nodes of this process on 127.0.0.1, each behind a WebSocket of its own, so
//! every partition travels as it would between machines. The result is checked against a sort
//! of the same numbers here.

use std::time::Instant;

use remote_scope::{patterns, remote, Error, Node, PeerId, Server};

const NUMBERS: usize = 1_000_000;
const PEERS: usize = 4;
/// Numbers sampled per partition: enough for pivots that split evenly within a few percent.
const SAMPLES_PER_PARTITION: usize = 256;

/// A xorshift stream from `seed`: the same numbers on every run.
fn numbers(seed: u64, n: usize) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

/// `PEERS - 1` pivots from a sample of `values`, evenly spaced in the sorted sample.
fn pivots(values: &[u64]) -> Vec<u64> {
    let count = SAMPLES_PER_PARTITION * PEERS;
    let step = (values.len() / count).max(1);
    let mut sample: Vec<u64> = values.iter().step_by(step).copied().collect();
    sample.sort_unstable();
    (1..PEERS)
        .map(|i| sample[i * sample.len() / PEERS])
        .collect()
}

/// The values split by `pivots`: partition `i` holds those between pivot `i - 1` and `i`.
fn partition(values: &[u64], pivots: &[u64]) -> Vec<Vec<u64>> {
    let mut parts = vec![Vec::with_capacity(values.len() / PEERS + 1); pivots.len() + 1];
    for &v in values {
        parts[pivots.partition_point(|&p| p <= v)].push(v);
    }
    parts
}

async fn start_peers() -> Result<(Node, Vec<PeerId>, Vec<(Node, Server)>), Error> {
    let coordinator = Node::builder().id("coordinator").build()?;
    let mut peers = Vec::new();
    let mut ids = Vec::new();
    for i in 1..=PEERS {
        let node = Node::builder().id(format!("sorter-{i}")).build()?;
        let server = node.listen("127.0.0.1:0").await?;
        ids.push(coordinator.connect(&server.url()).await?);
        peers.push((node, server));
    }
    Ok((coordinator, ids, peers))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (coordinator, ids, _peers) = start_peers().await?;
    let values = numbers(0x9e37_79b9_7f4a_7c15, NUMBERS);
    println!("{NUMBERS} numbers, {PEERS} peers");

    let started = Instant::now();
    let pivots = pivots(&values);
    let parts = partition(&values, &pivots);
    let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
    let sorted_parts = coordinator
        .run(
            // Partition `i` to peer `i`: one partition each, sorted where it lands.
            patterns::gather(parts.into_iter().zip(ids.iter()).map(|(part, peer)| {
                remote!(peer, [part: Vec<u64>], {
                    let mut part = part;
                    part.sort_unstable();
                    (remote_scope::current_peer().map(|p| p.to_string()), part)
                })
            }))
            .fail_fast(),
        )
        .await?;
    let mut sorted = Vec::with_capacity(NUMBERS);
    for (peer, part) in sorted_parts {
        eprintln!(
            "  {} sorted {} numbers",
            peer.unwrap_or_default(),
            part.len()
        );
        sorted.extend(part);
    }
    eprintln!("(sorted on the peers in {:?})", started.elapsed());

    let mut expected = values;
    expected.sort_unstable();
    let even = sizes
        .iter()
        .all(|&n| n.abs_diff(NUMBERS / PEERS) < NUMBERS / PEERS / 10);
    println!("partitions within 10% of a quarter each: {even}");
    println!("same as sorting on one machine: {}", sorted == expected);
    if sorted != expected || !even {
        return Err("the distributed sort went wrong".into());
    }
    Ok(())
}

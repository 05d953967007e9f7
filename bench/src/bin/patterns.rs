//! What the patterns cost: a fan-out of small tasks over 4 peers with `patterns::gather` and
//! `patterns::spread`, against the same fan-out written by hand (`remote!` calls in a
//! `FuturesUnordered`, the same bound on calls in flight, results put back in order),
//! interleaved round by round so that all three see the same machine.
//!
//! The 4 peers are nodes of this process, each behind a WebSocket on 127.0.0.1.
//!
//! ```text
//! cargo run --release -p remote-scope-bench --bin patterns -- [--smoke] [--rounds N] [--tasks N]
//! ```

mod shared;

use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use remote_scope::{patterns, remote, Error, Node, PeerId, Server};
use shared::{arg, median};

type Failure = Box<dyn std::error::Error + Send + Sync>;

const PEERS: usize = 4;
/// Calls in flight, for every way of fanning out.
const IN_FLIGHT: usize = 256;

/// The task: a small capture in, a small value out.
fn task(peer: &PeerId, i: u64) -> remote_scope::Call<u64> {
    remote!(peer, [i: u64], { i.wrapping_mul(3) })
}

/// By hand: a `FuturesUnordered` kept at `IN_FLIGHT`, peers in turn, results in order.
async fn by_hand(peers: &[PeerId], tasks: usize) -> Result<Vec<u64>, Error> {
    let mut results = vec![0_u64; tasks];
    let mut running = FuturesUnordered::new();
    for i in 0..tasks {
        if running.len() == IN_FLIGHT {
            if let Some((j, value)) = running.next().await {
                results[j] = value?;
            }
        }
        let call = task(&peers[i % peers.len()], i as u64);
        running.push(async move { (i, call.await) });
    }
    while let Some((j, value)) = running.next().await {
        results[j] = value?;
    }
    Ok(results)
}

async fn with_gather(peers: &[PeerId], tasks: usize) -> Result<Vec<u64>, Error> {
    let calls = (0..tasks).map(|i| task(&peers[i % peers.len()], i as u64));
    patterns::gather(calls)
        .in_flight(IN_FLIGHT)
        .fail_fast()
        .await
}

async fn with_spread(peers: &[PeerId], tasks: usize) -> Result<Vec<u64>, Error> {
    patterns::spread(peers.to_vec(), 0..tasks as u64, task)
        .in_flight(IN_FLIGHT)
        .fail_fast()
        .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let rounds = arg(&args, "--rounds").unwrap_or(if smoke { 1 } else { 7 });
    let tasks = arg(&args, "--tasks").unwrap_or(if smoke { 500 } else { 10_000 });

    let caller = Node::builder().id("caller").build()?;
    let mut workers: Vec<(Node, Server)> = Vec::new();
    let mut peers = Vec::new();
    for i in 1..=PEERS {
        let node = Node::builder().id(format!("worker-{i}")).build()?;
        let server = node.listen("127.0.0.1:0").await?;
        peers.push(caller.connect(&server.url()).await?);
        workers.push((node, server));
    }
    let expected: Vec<u64> = (0..tasks as u64).map(|i| i.wrapping_mul(3)).collect();

    type Way = (
        &'static str,
        fn(&[PeerId], usize) -> futures::future::BoxFuture<'_, Result<Vec<u64>, Error>>,
    );
    let ways: [Way; 3] = [
        ("by hand (FuturesUnordered)", |p, n| Box::pin(by_hand(p, n))),
        ("patterns::gather", |p, n| Box::pin(with_gather(p, n))),
        ("patterns::spread", |p, n| Box::pin(with_spread(p, n))),
    ];
    // A warm-up of each, then the rounds, the three ways in turn within each round.
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); ways.len()];
    for round in 0..=rounds {
        for (k, (_, way)) in ways.iter().enumerate() {
            let started = Instant::now();
            let results = caller.run(way(&peers, tasks)).await?;
            let rate = tasks as f64 / started.elapsed().as_secs_f64();
            if results != expected {
                return Err(format!("{} gave wrong results", ways[k].0).into());
            }
            if round > 0 {
                rates[k].push(rate);
            }
        }
    }
    println!("fan-out of {tasks} small tasks over {PEERS} peers, {IN_FLIGHT} in flight, median of {rounds} interleaved rounds:");
    let base = median(rates[0].clone());
    for ((name, _), rates) in ways.iter().zip(rates) {
        let rate = median(rates);
        println!(
            "  {name:<28} {rate:>9.0} tasks/s  {:.2}x by hand",
            rate / base
        );
    }
    Ok(())
}

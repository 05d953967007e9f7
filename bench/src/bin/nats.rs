//! `remote!` between two nodes on one NATS server against a raw `async-nats` request/reply
//! echo on the same server, interleaved round by round so that both see the same machine:
//! sequential latency (p50, p99) and pipelined throughput (a window of calls in flight).
//!
//! Starts its own `nats-server` (from `.ci/install-nats`) on a free port.
//!
//! With `--pool`, it measures instead a pool of 1, 2 and 4 worker processes (this binary
//! again) on the same server: pipelined calls of a body that spins for 100 µs of CPU, and of
//! one that does nothing, from one caller.
//!
//! ```text
//! cargo run --release -p remote-scope-bench --bin nats -- [--smoke] [--rounds N] [--pool]
//! ```

mod shared;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use remote_scope::{remote, Node, PeerId, Pool};
use shared::median;

type Failure = Box<dyn std::error::Error + Send + Sync>;

struct Counts {
    rounds: usize,
    sequential: usize,
    pipelined: usize,
    window: usize,
}

/// A `nats-server` on a free port, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Result<Server, Failure> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("nats-server does not start ({e}); run `bash .ci/install-nats`"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("nats-server did not listen within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Server {
        child,
        url: format!("nats://127.0.0.1:{port}"),
    })
}

/// One way of making a round trip with a `u64`.
#[derive(Clone)]
enum Rpc {
    Raw(async_nats::Client),
    Remote(Node, PeerId),
}

impl Rpc {
    async fn call(&self, i: u64) -> Result<u64, Failure> {
        match self {
            Rpc::Raw(client) => {
                let reply = client
                    .request("bench.echo", i.to_le_bytes().to_vec().into())
                    .await?;
                let bytes: [u8; 8] = reply.payload.as_ref().try_into()?;
                Ok(u64::from_le_bytes(bytes))
            }
            Rpc::Remote(node, peer) => {
                let peer = peer.clone();
                Ok(node.run(remote!(peer, [i: u64], { i })).await?)
            }
        }
    }
}

/// Sequential round trips: their latencies, sorted.
async fn sequential(rpc: &Rpc, n: usize) -> Result<Vec<Duration>, Failure> {
    let mut times = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let started = Instant::now();
        let back = rpc.call(i).await?;
        times.push(started.elapsed());
        assert_eq!(back, i);
    }
    times.sort_unstable();
    Ok(times)
}

/// `n` round trips with `window` in flight: calls per second.
async fn pipelined(rpc: &Rpc, n: usize, window: usize) -> Result<f64, Failure> {
    let started = Instant::now();
    let mut calls = futures::stream::iter(0..n as u64)
        .map(|i| {
            let rpc = rpc.clone();
            async move { rpc.call(i).await.map(|back| (i, back)) }
        })
        .buffer_unordered(window);
    while let Some(result) = calls.next().await {
        let (i, back) = result?;
        assert_eq!(back, i);
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

async fn bench(server: &Server, counts: &Counts) -> Result<(), Failure> {
    // The raw baseline: a responder that echoes, and a client of its own.
    let responder = async_nats::connect(&server.url).await?;
    let mut echo = responder.subscribe("bench.echo").await?;
    let answering = responder.clone();
    tokio::spawn(async move {
        while let Some(message) = echo.next().await {
            if let Some(reply) = message.reply {
                let _ = answering.publish(reply, message.payload).await;
            }
        }
    });
    responder.flush().await?;
    let raw = Rpc::Raw(async_nats::connect(&server.url).await?);

    let serving = Node::builder().id("server").build()?;
    serving.join_nats([&server.url]).await?;
    let client = Node::builder().id("client").build()?;
    client.join_nats([&server.url]).await?;
    let remote = Rpc::Remote(client, serving.id().clone());
    // Warm both up (and open the session).
    for rpc in [&raw, &remote] {
        sequential(rpc, 200).await?;
    }

    let (mut p50s, mut p99s, mut rates) = ([vec![], vec![]], [vec![], vec![]], [vec![], vec![]]);
    for round in 0..counts.rounds {
        for (k, rpc) in [&raw, &remote].into_iter().enumerate() {
            let times = sequential(rpc, counts.sequential).await?;
            p50s[k].push(percentile(&times, 0.5).as_secs_f64() * 1e6);
            p99s[k].push(percentile(&times, 0.99).as_secs_f64() * 1e6);
            rates[k].push(pipelined(rpc, counts.pipelined, counts.window).await?);
        }
        eprintln!(
            "round {round}: p50 raw {:.1} µs, remote! {:.1} µs; pipelined raw {:.0}/s, remote! {:.0}/s",
            p50s[0][round], p50s[1][round], rates[0][round], rates[1][round]
        );
    }
    let [p50_raw, p50_remote] = p50s.map(median);
    let [p99_raw, p99_remote] = p99s.map(median);
    let [rate_raw, rate_remote] = rates.map(median);
    println!(
        "NATS, one server on 127.0.0.1, u64 echo; medians of {} rounds",
        counts.rounds
    );
    println!("| | raw async-nats request/reply | remote! over NATS | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| sequential p50 | {p50_raw:.1} µs | {p50_remote:.1} µs | {:.2}x |",
        p50_remote / p50_raw
    );
    println!(
        "| sequential p99 | {p99_raw:.1} µs | {p99_remote:.1} µs | {:.2}x |",
        p99_remote / p99_raw
    );
    println!(
        "| pipelined, {} in flight | {rate_raw:.0} calls/s | {rate_remote:.0} calls/s | {:.2}x |",
        counts.window,
        rate_remote / rate_raw
    );
    Ok(())
}

/// A pool worker process: serves the pool until its stdin closes.
fn pool_worker(id: &str, url: &str) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let node = Node::builder().id(id).pool("bench").build()?;
        node.join_nats([url]).await?;
        println!("ready");
        tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_line(&mut String::new());
        })
        .await?;
        Ok(())
    })
}

/// Spins for `micros` of CPU.
fn spin(micros: u64) -> u64 {
    let until = Instant::now() + Duration::from_micros(micros);
    let mut n = 0_u64;
    while Instant::now() < until {
        n = n.wrapping_add(1);
    }
    n
}

/// `n` calls to the pool with `window` in flight, each spinning `micros`: calls per second.
async fn pool_rate(client: &Node, n: usize, window: usize, micros: u64) -> Result<f64, Failure> {
    let pool = Pool::new("bench");
    let started = Instant::now();
    let mut calls = futures::stream::iter(0..n)
        .map(|_| {
            let pool = pool.clone();
            client.run(async move {
                remote!(pool, [micros: u64], {
                    if micros > 0 {
                        spin(micros);
                    }
                })
                .await
            })
        })
        .buffer_unordered(window);
    while let Some(result) = calls.next().await {
        result?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn bench_pool(server: &Server, counts: &Counts) -> Result<(), Failure> {
    println!("| workers | no-op body, calls/s | 100 µs of CPU per call, calls/s |");
    println!("|---|---|---|");
    for workers in [1_usize, 2, 4] {
        let mut children = Vec::new();
        for i in 0..workers {
            let mut child = Command::new(std::env::current_exe()?)
                .args(["--pool-worker", &format!("worker-{i}"), &server.url])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let mut ready = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready)?;
            children.push(child);
        }
        let client = Node::builder().build()?;
        client.join_nats([&server.url]).await?;
        while client.members(&Pool::new("bench")).len() < workers {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pool_rate(&client, 500, counts.window, 0).await?;
        let mut noop = Vec::new();
        let mut busy = Vec::new();
        for _ in 0..counts.rounds {
            noop.push(pool_rate(&client, counts.pipelined, counts.window, 0).await?);
            busy.push(pool_rate(&client, counts.pipelined / 4, counts.window, 100).await?);
        }
        println!("| {workers} | {:.0} | {:.0} |", median(noop), median(busy));
        client.shutdown();
        for mut child in children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    Ok(())
}

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, id, url] = args.as_slice() {
        if flag == "--pool-worker" {
            return pool_worker(id, url);
        }
    }
    let mut counts = if args.iter().any(|a| a == "--smoke") {
        Counts {
            rounds: 1,
            sequential: 200,
            pipelined: 2_000,
            window: 64,
        }
    } else {
        Counts {
            rounds: 5,
            sequential: 5_000,
            pipelined: 50_000,
            window: 64,
        }
    };
    if let Some(at) = args.iter().position(|a| a == "--rounds") {
        counts.rounds = args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .ok_or("--rounds takes a number")?;
    }
    let server = start_server()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.iter().any(|a| a == "--pool") {
        return rt.block_on(bench_pool(&server, &counts));
    }
    rt.block_on(bench(&server, &counts))
}

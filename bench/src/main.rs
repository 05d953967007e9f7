//! remote! against a raw WebSocket echo, a hand-written WebSocket request/response protocol and
//! tarpc, all on 127.0.0.1 in one process, in one run. Prints one table of medians over the runs
//! with ratios against the raw WebSocket and tarpc rows, then idle-connection figures.
//!
//! ```text
//! cargo run --release -p remote-scope-bench            # the full run (about two minutes)
//! cargo run --release -p remote-scope-bench -- --smoke # tiny counts: checks that it all works
//! ```

mod idle;
mod raw_ws;
mod remote_impl;
mod stats;
mod tarpc_impl;
mod ws_rpc;

use std::fmt;
use std::time::Duration;

use stats::{median, micros, percentile};

/// Any failure of a benchmark: the run stops and says which.
#[derive(Debug)]
pub struct BenchError(String);

impl BenchError {
    pub fn msg(m: &str) -> BenchError {
        BenchError(m.to_owned())
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! from_error {
    ($($t:ty),*) => {$(
        impl From<$t> for BenchError {
            fn from(e: $t) -> BenchError {
                BenchError(e.to_string())
            }
        }
    )*};
}
from_error!(
    std::io::Error,
    remote_scope::Error,
    tokio_tungstenite::tungstenite::Error,
    rmp_serde::encode::Error,
    rmp_serde::decode::Error,
    tarpc::client::RpcError,
    tokio::sync::AcquireError
);

/// How much work each measurement does.
#[derive(Clone, Copy)]
struct Counts {
    runs: usize,
    sequential: usize,
    pipelined: usize,
    bulk: usize,
    bulk_size: usize,
    nested: usize,
    idle: usize,
}

const FULL: Counts = Counts {
    runs: 5,
    sequential: 20_000,
    pipelined: 200_000,
    bulk: 200,
    bulk_size: 1 << 20,
    nested: 5_000,
    idle: 10_000,
};

const SMOKE: Counts = Counts {
    runs: 1,
    sequential: 200,
    pipelined: 2_000,
    bulk: 5,
    bulk_size: 1 << 20,
    nested: 50,
    idle: 20,
};

/// One implementation's figures from one run.
#[derive(Default, Clone)]
struct Row {
    p50_us: f64,
    p99_us: f64,
    pipe64: f64,
    pipe1024: f64,
    bulk_mbs: f64,
}

const NAMES: [&str; 4] = [
    "remote!",
    "raw WebSocket echo",
    "WebSocket + rmp-serde ids",
    "tarpc (bincode)",
];

fn row(mut seq: Vec<Duration>, pipe64: f64, pipe1024: f64, bulk_mbs: f64) -> Row {
    Row {
        p50_us: micros(percentile(&mut seq, 50.0)),
        p99_us: micros(percentile(&mut seq, 99.0)),
        pipe64,
        pipe1024,
        bulk_mbs,
    }
}

async fn one_run(c: Counts) -> Result<(Vec<Row>, f64, f64), BenchError> {
    let mut rows = Vec::new();

    let remote = remote_impl::Remote::start().await?;
    rows.push(row(
        remote.sequential(c.sequential).await?,
        remote.pipelined(c.pipelined, 64).await?,
        remote.pipelined(c.pipelined, 1024).await?,
        remote.bulk(c.bulk, c.bulk_size).await?,
    ));
    let mut nested = remote.nested(c.nested).await?;
    let nested = (
        micros(percentile(&mut nested, 50.0)),
        micros(percentile(&mut nested, 99.0)),
    );
    drop(remote);

    let raw = raw_ws::RawWs::start().await?;
    rows.push(row(
        raw.sequential(c.sequential).await?,
        raw.pipelined(c.pipelined, 64).await?,
        raw.pipelined(c.pipelined, 1024).await?,
        raw.bulk(c.bulk, c.bulk_size).await?,
    ));

    let rpc = ws_rpc::WsRpc::start().await?;
    rows.push(row(
        rpc.sequential(c.sequential).await?,
        rpc.pipelined(c.pipelined, 64).await?,
        rpc.pipelined(c.pipelined, 1024).await?,
        rpc.bulk(c.bulk, c.bulk_size).await?,
    ));

    let tarpc = tarpc_impl::Tarpc::start().await?;
    rows.push(row(
        tarpc.sequential(c.sequential).await?,
        tarpc.pipelined(c.pipelined, 64).await?,
        tarpc.pipelined(c.pipelined, 1024).await?,
        tarpc.bulk(c.bulk, c.bulk_size).await?,
    ));
    Ok((rows, nested.0, nested.1))
}

fn medians(runs: &[Vec<Row>]) -> Vec<Row> {
    (0..NAMES.len())
        .map(|i| {
            let pick =
                |f: fn(&Row) -> f64| median(&mut runs.iter().map(|r| f(&r[i])).collect::<Vec<_>>());
            Row {
                p50_us: pick(|r| r.p50_us),
                p99_us: pick(|r| r.p99_us),
                pipe64: pick(|r| r.pipe64),
                pipe1024: pick(|r| r.pipe1024),
                bulk_mbs: pick(|r| r.bulk_mbs),
            }
        })
        .collect()
}

fn print_table(rows: &[Row]) {
    println!(
        "| {:<26} | {:>9} | {:>9} | {:>13} | {:>13} | {:>10} |",
        "", "seq p50 us", "seq p99 us", "pipe 64 rt/s", "pipe 1024 rt/s", "bulk MB/s"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|",
        "-".repeat(28),
        "-".repeat(12),
        "-".repeat(12),
        "-".repeat(15),
        "-".repeat(16),
        "-".repeat(12)
    );
    for (name, r) in NAMES.iter().zip(rows) {
        println!(
            "| {:<26} | {:>10.1} | {:>10.1} | {:>13.0} | {:>14.0} | {:>10.0} |",
            name, r.p50_us, r.p99_us, r.pipe64, r.pipe1024, r.bulk_mbs
        );
    }
    let (ours, raw, tarpc) = (&rows[0], &rows[1], &rows[3]);
    for (label, base) in [("remote! / raw WebSocket", raw), ("remote! / tarpc", tarpc)] {
        println!(
            "| {:<26} | {:>9.2}x | {:>9.2}x | {:>12.2}x | {:>13.2}x | {:>9.2}x |",
            label,
            ours.p50_us / base.p50_us,
            ours.p99_us / base.p99_us,
            ours.pipe64 / base.pipe64,
            ours.pipe1024 / base.pipe1024,
            ours.bulk_mbs / base.bulk_mbs
        );
    }
    let targets = [
        ("seq p50 <= 1.5x raw", ours.p50_us <= 1.5 * raw.p50_us),
        ("seq p50 <= 0.7x tarpc", ours.p50_us <= 0.7 * tarpc.p50_us),
        (
            "pipelined 1024 >= 0.4x raw",
            ours.pipe1024 >= 0.4 * raw.pipe1024,
        ),
        (
            "pipelined 1024 >= 2.5x tarpc",
            ours.pipe1024 >= 2.5 * tarpc.pipe1024,
        ),
        ("bulk >= 0.8x raw", ours.bulk_mbs >= 0.8 * raw.bulk_mbs),
        ("bulk >= tarpc", ours.bulk_mbs >= tarpc.bulk_mbs),
    ];
    println!();
    for (target, met) in targets {
        println!("target {target}: {}", if met { "met" } else { "NOT met" });
    }
}

fn main() -> Result<(), BenchError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(idle::SERVE_IDLE) {
        return idle::serve();
    }
    let counts = if args.iter().any(|a| a == "--smoke") {
        SMOKE
    } else {
        FULL
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // For a profiler: remote! alone, pipelined, for a long while.
    if args.iter().any(|a| a == "--profile-remote") {
        return rt.block_on(async {
            let remote = remote_impl::Remote::start().await?;
            let rate = remote.pipelined(2_000_000, 1024).await?;
            println!("remote! pipelined 1024: {rate:.0} rt/s");
            Ok(())
        });
    }
    let mut runs = Vec::new();
    let mut nested = Vec::new();
    for run in 1..=counts.runs {
        let (rows, p50, p99) = rt.block_on(one_run(counts))?;
        eprintln!("run {run}/{} done", counts.runs);
        runs.push(rows);
        nested.push((p50, p99));
    }
    println!(
        "\n{} run(s), medians; sequential: {} round trips of a u64; pipelined: {} round trips; bulk: {} x {} KiB echoed (MB/s of payload one way)\n",
        counts.runs, counts.sequential, counts.pipelined, counts.bulk, counts.bulk_size >> 10
    );
    print_table(&medians(&runs));
    let p50 = median(&mut nested.iter().map(|n| n.0).collect::<Vec<_>>());
    let p99 = median(&mut nested.iter().map(|n| n.1).collect::<Vec<_>>());
    println!(
        "\nremote! nested, client -> server -> client -> server: p50 {p50:.1} us, p99 {p99:.1} us"
    );

    let idle = rt.block_on(idle::measure(counts.idle))?;
    println!(
        "\nidle connections: {} of {} held by one server peer; server memory {:.1} KiB per idle connection (RSS {} KiB before, {} KiB after {} connections)",
        idle.held, counts.idle, idle.per_connection_kib, idle.rss_before_kib, idle.rss_after_kib, idle.measured
    );
    Ok(())
}

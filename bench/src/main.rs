//! remote! against a raw TCP echo (the floor), a raw WebSocket echo, a hand-written WebSocket
//! request/response protocol and tarpc, all on 127.0.0.1 in one process, in one run. Each
//! workload takes every implementation in turn (their order rotating from run to run), so that
//! a slow spell of the machine falls on all of them alike. Prints tables of medians over the
//! runs with ratios against the floor, the raw WebSocket and tarpc, then idle-connection
//! figures. The
//! clients run in a task on the runtime's workers, or with `--on-main-thread` on the thread
//! that calls `block_on`. Pipelined calls are kept in flight by [`window`], or with
//! `--futures-unordered` by a `FuturesUnordered` (which wakes a second worker every batch).
//!
//! ```text
//! cargo run --release -p remote-scope-bench            # the full run (about a minute)
//! cargo run --release -p remote-scope-bench -- --smoke # tiny counts: checks that it all works
//! ```

mod idle;
mod imp;
mod many;
mod raw_tcp;
mod raw_ws;
mod remote_impl;
mod remote_tws;
mod stats;
mod tarpc_impl;
mod window;
mod ws_rpc;

use imp::{Imp, NAMES, SHORT_NAMES};
use stats::{cpu_seconds, median, minor_faults, p50_p99_micros, Harness, Pipelined};
use std::fmt;

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
    tokio::task::JoinError
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
    /// Client peers and calls each of the two many-clients workloads.
    many: [(usize, usize); 2],
    harness: Harness,
}

const FULL: Counts = Counts {
    runs: 5,
    sequential: 20_000,
    pipelined: 200_000,
    bulk: 200,
    bulk_size: 1 << 20,
    nested: 5_000,
    idle: 10_000,
    many: [(64, 2_000), (1_000, 150)],
    harness: Harness::Window,
};

const SMOKE: Counts = Counts {
    runs: 1,
    sequential: 200,
    pipelined: 2_000,
    bulk: 5,
    bulk_size: 1 << 20,
    nested: 50,
    idle: 20,
    many: [(64, 5), (1_000, 1)],
    harness: Harness::Window,
};

/// One implementation's figures from one run.
#[derive(Default, Clone)]
struct Row {
    p50_us: f64,
    p99_us: f64,
    pipe64: f64,
    pipe1024: f64,
    bulk_mbs: f64,
    /// Minor page faults per bulk round trip, the whole process's.
    bulk_faults: f64,
    /// The process's CPU time per pipelined call (64 in flight), clients and server together.
    pipe64_cpu_us: f64,
    /// The two many-clients workloads: aggregate round trips/s, p99, CPU time per call.
    many: [(f64, f64, f64); 2],
}

/// Which implementations and workloads to run; everything unless the command line narrows it.
#[derive(Clone)]
struct Selection {
    only: Option<Vec<String>>,
    workloads: Option<Vec<String>>,
}

impl Selection {
    fn implementation(&self, index: usize) -> bool {
        self.only.as_ref().is_none_or(|only| {
            only.iter()
                .any(|o| SHORT_NAMES[index] == o || NAMES[index] == o)
        })
    }

    fn workload(&self, name: &str) -> bool {
        self.workloads
            .as_ref()
            .is_none_or(|w| w.iter().any(|x| x == name))
    }
}

/// The figures a workload was not run for stay NaN, and print as `-`.
const SKIPPED: Row = Row {
    p50_us: f64::NAN,
    p99_us: f64::NAN,
    pipe64: f64::NAN,
    pipe1024: f64::NAN,
    bulk_mbs: f64::NAN,
    bulk_faults: f64::NAN,
    pipe64_cpu_us: f64::NAN,
    many: [(f64::NAN, f64::NAN, f64::NAN); 2],
};

/// One run: every selected implementation started, then each workload through all of them, the
/// first in turn `run` places along (so that none is always first).
async fn one_run(
    c: Counts,
    sel: Selection,
    run: usize,
) -> Result<(Vec<Row>, f64, f64), BenchError> {
    let mut imps = Vec::new();
    for index in (0..NAMES.len()).filter(|&i| sel.implementation(i)) {
        imps.push((index, Imp::start(index).await?));
    }
    if !imps.is_empty() {
        let turn = run % imps.len();
        imps.rotate_left(turn);
    }
    let mut rows = vec![SKIPPED; NAMES.len()];
    if sel.workload("seq") {
        for (i, imp) in &imps {
            let mut seq = imp.sequential(c.sequential).await?;
            (rows[*i].p50_us, rows[*i].p99_us) = p50_p99_micros(&mut seq);
        }
    }
    if sel.workload("pipe") {
        let run = |window| Pipelined {
            total: c.pipelined,
            window,
            harness: c.harness,
        };
        for (i, imp) in &imps {
            let cpu = cpu_seconds();
            rows[*i].pipe64 = imp.pipelined(run(64)).await?;
            rows[*i].pipe64_cpu_us = (cpu_seconds() - cpu) * 1e6 / c.pipelined as f64;
        }
        for (i, imp) in &imps {
            rows[*i].pipe1024 = imp.pipelined(run(1024)).await?;
        }
    }
    if sel.workload("bulk") {
        for (i, imp) in &imps {
            let faults = minor_faults();
            rows[*i].bulk_mbs = imp.bulk(c.bulk, c.bulk_size).await?;
            rows[*i].bulk_faults = (minor_faults() - faults) / c.bulk as f64;
        }
    }
    if sel.workload("many") {
        for (w, &(clients, calls)) in c.many.iter().enumerate() {
            for (i, imp) in &imps {
                let measured = many::run(imp.clients(clients).await?, calls).await?;
                rows[*i].many[w] = (measured.rate, measured.p99_us, measured.cpu_us_per_call);
            }
        }
    }
    let mut nested = (f64::NAN, f64::NAN);
    if sel.workload("nested") {
        if let Some((_, Imp::Remote(remote))) = imps.iter().find(|(i, _)| *i == 0) {
            nested = p50_p99_micros(&mut remote.nested(c.nested).await?);
        }
    }
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
                bulk_faults: pick(|r| r.bulk_faults),
                pipe64_cpu_us: pick(|r| r.pipe64_cpu_us),
                many: [0, 1].map(|w| {
                    (
                        pick_many(runs, i, w, |m| m.0),
                        pick_many(runs, i, w, |m| m.1),
                        pick_many(runs, i, w, |m| m.2),
                    )
                }),
            }
        })
        .collect()
}

fn pick_many(runs: &[Vec<Row>], i: usize, w: usize, f: fn((f64, f64, f64)) -> f64) -> f64 {
    median(&mut runs.iter().map(|r| f(r[i].many[w])).collect::<Vec<_>>())
}

/// A figure, or `-` for one not measured.
fn figure(value: f64, decimals: usize, width: usize) -> String {
    if value.is_nan() {
        format!("{:>width$}", "-")
    } else {
        format!("{value:>width$.decimals$}")
    }
}

fn ratio(ours: f64, base: f64, width: usize) -> String {
    let r = ours / base;
    if r.is_nan() {
        format!("{:>width$}", "-")
    } else {
        format!("{:>w$.2}x", r, w = width - 1)
    }
}

fn print_table(rows: &[Row], many: [(usize, usize); 2]) {
    println!(
        "| {:<26} | {:>10} | {:>10} | {:>13} | {:>14} | {:>10} |",
        "", "seq p50 us", "seq p99 us", "pipe 64 rt/s", "pipe 1024 rt/s", "bulk MB/s"
    );
    let dashes = [28, 12, 12, 15, 16, 12].map(|n| "-".repeat(n));
    println!("|{}|", dashes.join("|"));
    for (name, r) in NAMES.iter().zip(rows) {
        println!(
            "| {:<26} | {} | {} | {} | {} | {} |",
            name,
            figure(r.p50_us, 1, 10),
            figure(r.p99_us, 1, 10),
            figure(r.pipe64, 0, 13),
            figure(r.pipe1024, 0, 14),
            figure(r.bulk_mbs, 0, 10)
        );
    }
    let (ours, raw, tarpc, tws, tcp) = (&rows[0], &rows[1], &rows[3], &rows[4], &rows[5]);
    for (label, base) in [
        ("remote! / raw TCP", tcp),
        ("remote! / raw WebSocket", raw),
        ("remote! / tarpc", tarpc),
        ("remote! / tokio-websockets", tws),
    ] {
        println!(
            "| {:<26} | {} | {} | {} | {} | {} |",
            label,
            ratio(ours.p50_us, base.p50_us, 10),
            ratio(ours.p99_us, base.p99_us, 10),
            ratio(ours.pipe64, base.pipe64, 13),
            ratio(ours.pipe1024, base.pipe1024, 14),
            ratio(ours.bulk_mbs, base.bulk_mbs, 10)
        );
    }
    if rows.iter().any(|r| !r.bulk_faults.is_nan()) {
        let faults: Vec<String> = NAMES
            .iter()
            .zip(rows)
            .map(|(name, r)| format!("{name} {}", figure(r.bulk_faults, 0, 0)))
            .collect();
        println!(
            "\nminor page faults per bulk round trip (whole process; 256 are a 1 MiB buffer faulted in anew): {}",
            faults.join(", ")
        );
    }

    let [(small, small_calls), (large, large_calls)] = many;
    println!(
        "\nmany clients into one server, each calling in sequence ({small} x {small_calls} and {large} x {large_calls} calls); CPU is the process's (clients and server) per call\n"
    );
    println!(
        "| {:<26} | {:>12} | {:>9} | {:>9} | {:>12} | {:>9} | {:>9} | {:>11} |",
        "",
        format!("{small} rt/s"),
        "p99 us",
        "CPU us",
        format!("{large} rt/s"),
        "p99 us",
        "CPU us",
        "pipe64 CPU"
    );
    let dashes = [28, 14, 11, 11, 14, 11, 11, 13].map(|n| "-".repeat(n));
    println!("|{}|", dashes.join("|"));
    let many_row = |label: &str, r: &Row, f: &dyn Fn(f64, f64, usize) -> String| {
        println!(
            "| {:<26} | {} | {} | {} | {} | {} | {} | {} |",
            label,
            f(r.many[0].0, 0.0, 12),
            f(r.many[0].1, 1.0, 9),
            f(r.many[0].2, 2.0, 9),
            f(r.many[1].0, 0.0, 12),
            f(r.many[1].1, 1.0, 9),
            f(r.many[1].2, 2.0, 9),
            f(r.pipe64_cpu_us, 2.0, 11)
        );
    };
    for (name, r) in NAMES.iter().zip(rows) {
        many_row(name, r, &|v, decimals, width| {
            figure(v, decimals as usize, width)
        });
    }
    for (label, base) in [("remote! / raw TCP", tcp), ("remote! / tarpc", tarpc)] {
        let ratios = Row {
            many: [0, 1].map(|w| {
                (
                    ours.many[w].0 / base.many[w].0,
                    ours.many[w].1 / base.many[w].1,
                    ours.many[w].2 / base.many[w].2,
                )
            }),
            pipe64_cpu_us: ours.pipe64_cpu_us / base.pipe64_cpu_us,
            ..SKIPPED
        };
        many_row(label, &ratios, &|v, _, width| ratio(v, 1.0, width));
    }

    // (name, ours, the bound, whether ours must be at most the bound)
    let targets = [
        (
            "seq p50 <= 1.10x raw TCP",
            ours.p50_us,
            1.10 * tcp.p50_us,
            true,
        ),
        (
            "many clients (small) >= 0.90x raw TCP",
            ours.many[0].0,
            0.90 * tcp.many[0].0,
            false,
        ),
        (
            "many clients (large) >= 0.85x raw TCP",
            ours.many[1].0,
            0.85 * tcp.many[1].0,
            false,
        ),
        (
            "bulk >= 0.95x raw TCP",
            ours.bulk_mbs,
            0.95 * tcp.bulk_mbs,
            false,
        ),
        (
            "pipelined 64 >= 0.5x raw WebSocket",
            ours.pipe64,
            0.5 * raw.pipe64,
            false,
        ),
        (
            "pipelined 64 >= 3x tarpc",
            ours.pipe64,
            3.0 * tarpc.pipe64,
            false,
        ),
        (
            "pipelined 1024 >= 0.5x raw WebSocket",
            ours.pipe1024,
            0.5 * raw.pipe1024,
            false,
        ),
        (
            "pipelined 1024 >= 3x tarpc",
            ours.pipe1024,
            3.0 * tarpc.pipe1024,
            false,
        ),
        (
            "CPU per pipelined call <= 0.5 us",
            ours.pipe64_cpu_us,
            0.5,
            true,
        ),
    ];
    println!();
    for (target, ours, bound, at_most) in targets {
        let verdict = if ours.is_nan() || bound.is_nan() {
            "not measured"
        } else if (at_most && ours <= bound) || (!at_most && ours >= bound) {
            "met"
        } else {
            "NOT met"
        };
        println!("target {target}: {verdict}");
    }
}

const USAGE: &str =
    "usage: remote-scope-bench [--smoke] [--runs N] [--only remote,raw,rpc,tarpc,remote-tws,tcp] \
                     [--workloads seq,pipe,bulk,many,nested,idle] [--sequential N] [--pipelined N] \
                     [--bulk N] [--on-main-thread] [--futures-unordered] [--middleware] [--tls] \
                     [--profile-remote [--window N]]";

/// The value after `flag`, if it is there.
fn value_of<'a>(args: &'a [String], flag: &str) -> Result<Option<&'a str>, BenchError> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .map(|v| Some(v.as_str()))
            .ok_or_else(|| BenchError(format!("{flag} needs a value; {USAGE}"))),
    }
}

/// The number after `flag`, if it is there.
fn number_of(args: &[String], flag: &str) -> Result<Option<usize>, BenchError> {
    value_of(args, flag)?
        .map(|n| {
            n.parse()
                .map_err(|_| BenchError(format!("{flag} takes a number; {USAGE}")))
        })
        .transpose()
}

fn list(value: Option<&str>) -> Option<Vec<String>> {
    value.map(|v| v.split(',').map(str::to_owned).collect())
}

/// Runs `work` to its end: in a task on the runtime's workers, or, `on_main_thread`, on the
/// thread that calls this, outside the workers.
fn drive<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    on_main_thread: bool,
    work: impl std::future::Future<Output = Result<T, BenchError>> + Send + 'static,
) -> Result<T, BenchError> {
    if on_main_thread {
        rt.block_on(work)
    } else {
        rt.block_on(rt.spawn(work))?
    }
}

fn main() -> Result<(), BenchError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(idle::SERVE_IDLE) {
        return idle::serve();
    }
    let mut counts = if args.iter().any(|a| a == "--smoke") {
        SMOKE
    } else {
        FULL
    };
    for (flag, count) in [
        ("--runs", &mut counts.runs),
        ("--sequential", &mut counts.sequential),
        ("--pipelined", &mut counts.pipelined),
        ("--bulk", &mut counts.bulk),
    ] {
        if let Some(n) = number_of(&args, flag)? {
            *count = n;
        }
    }
    // Calls per client of the two many-clients workloads, e.g. `--many-calls 200,20` (a
    // profiler counts instructions per call from two runs that differ only in this).
    if let Some(calls) = value_of(&args, "--many-calls")? {
        let parsed: Vec<usize> = calls
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| BenchError::msg("--many-calls: two numbers, e.g. 200,20"))?;
        let [small, large] = parsed[..] else {
            return Err(BenchError::msg("--many-calls: two numbers, e.g. 200,20"));
        };
        counts.many = [(counts.many[0].0, small), (counts.many[1].0, large)];
    }
    // The old harness of the pipelined workloads, for comparison (see `window`).
    if args.iter().any(|a| a == "--futures-unordered") {
        counts.harness = Harness::FuturesUnordered;
    }
    let sel = Selection {
        only: list(value_of(&args, "--only")?),
        workloads: list(value_of(&args, "--workloads")?),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The clients are driven from a task on the runtime's workers, as a service makes its
    // calls; or, with this flag, from the thread that called `block_on`, outside the workers,
    // so that every reply has to wake that thread.
    let on_main_thread = args.iter().any(|a| a == "--on-main-thread");
    if args.iter().any(|a| a == "--middleware") {
        remote_impl::WITH_MIDDLEWARE.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if args.iter().any(|a| a == "--tls") {
        remote_impl::OVER_TLS.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    // For a profiler: remote! alone, pipelined (1024 in flight unless `--window` says), for a
    // long while (2 000 000 round trips unless `--pipelined` says).
    if args.iter().any(|a| a == "--profile-remote") {
        let window = number_of(&args, "--window")?.unwrap_or(1024);
        let total = number_of(&args, "--pipelined")?.unwrap_or(2_000_000);
        return drive(&rt, on_main_thread, async move {
            let remote = remote_impl::Remote::start().await?;
            let run = Pipelined {
                total,
                window,
                harness: counts.harness,
            };
            let rate = remote.pipelined(run).await?;
            println!("remote! pipelined {window}: {rate:.0} rt/s");
            Ok(())
        });
    }
    let mut runs = Vec::new();
    let mut nested = Vec::new();
    for run in 1..=counts.runs {
        let (rows, p50, p99) = drive(&rt, on_main_thread, one_run(counts, sel.clone(), run))?;
        eprintln!("run {run}/{} done", counts.runs);
        runs.push(rows);
        nested.push((p50, p99));
    }
    println!(
        "\n{} run(s), medians; sequential: {} round trips of a u64; pipelined: {} round trips; bulk: {} x {} KiB echoed (MB/s of payload one way)\n",
        counts.runs, counts.sequential, counts.pipelined, counts.bulk, counts.bulk_size >> 10
    );
    print_table(&medians(&runs), counts.many);
    if sel.implementation(0) && sel.workload("nested") {
        let p50 = median(&mut nested.iter().map(|n| n.0).collect::<Vec<_>>());
        let p99 = median(&mut nested.iter().map(|n| n.1).collect::<Vec<_>>());
        println!(
            "\nremote! nested, client -> server -> client -> server: p50 {p50:.1} us, p99 {p99:.1} us"
        );
    }
    if sel.workload("idle") {
        let idle = rt.block_on(idle::measure(counts.idle))?;
        println!(
            "\nidle connections: {} of {} held by one server peer; server memory {:.1} KiB per idle connection (RSS {} KiB before, {} KiB after {} connections)",
            idle.held, counts.idle, idle.per_connection_kib, idle.rss_before_kib, idle.rss_after_kib, idle.measured
        );
    }
    Ok(())
}

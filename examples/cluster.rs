//! A word count over a pool of worker processes on a NATS cluster, with one worker killed in
//! the middle of the job. Run it with `cargo run --example cluster` (it needs `nats-server` on
//! the PATH: `bash .ci/install-nats`).
//!
//! The program starts what it needs: a `nats-server` on a free port, and three worker
//! processes (this program again, with `--worker`), each a member of the pool `words`. The
//! coordinator maps the chunks of the text onto the pool (`patterns::gather`, 16 in flight)
//! and adds up the counts that come back; a chunk whose worker dies is sent to
//! another member (the calls are idempotent: counting a chunk twice changes nothing, and the
//! idempotency key keeps any one worker from counting it twice). The totals come out the same
//! as counting on one machine.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use remote_scope::{patterns, remote, Error, Node, Pool};

const POOL: &str = "words";
const WORKERS: usize = 3;

const TEXT: &str = "the quick brown fox jumps over the lazy dog
a body runs on the peer the call names and its result comes back
the pool spreads the chunks over its workers and one of them dies
a chunk whose worker dies goes to another worker of the pool
the totals are the same as on one machine";

/// Counts the words of `chunk` on a member of the pool, taking its time like real work.
async fn count(pool: Pool, chunk: String) -> Result<(BTreeMap<String, u64>, String), Error> {
    remote!(pool, [chunk: String], {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut counts = BTreeMap::new();
        for word in chunk.split_whitespace() {
            *counts.entry(word.to_owned()).or_insert(0_u64) += 1;
        }
        let worker = remote_scope::current_peer().map_or_else(String::new, |p| p.to_string());
        (counts, worker)
    })
    .idempotent()
    .timeout(Duration::from_secs(20))
    .await
}

/// A `nats-server` on a free port; dropping it (or this process ending) stops it.
struct NatsServer {
    _shell: Child,
    _lifeline: Option<ChildStdin>,
    url: String,
}

fn start_nats() -> Result<NatsServer, Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    // The shell holds a pipe from this process and kills the server when it closes.
    let mut shell = Command::new("sh")
        .args([
            "-c",
            r#"nats-server -a 127.0.0.1 -p "$1" & s=$!; cat >/dev/null; kill $s"#,
        ])
        .args(["sh", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let lifeline = shell.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(
                "nats-server did not start; install it with `bash .ci/install-nats`".into(),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(NatsServer {
        _shell: shell,
        _lifeline: lifeline,
        url: format!("nats://127.0.0.1:{port}"),
    })
}

/// This program again, as worker `id` on `url`; returns once it has joined.
fn start_worker(id: &str, url: &str) -> Result<Child, Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--worker", id, url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut ready = String::new();
    std::io::BufReader::new(stdout).read_line(&mut ready)?;
    if ready.trim() != "ready" {
        return Err(format!("worker {id} did not start").into());
    }
    Ok(child)
}

/// A worker: a member of the pool until its parent goes (its stdin closes) or it is killed.
async fn worker(id: &str, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let node = Node::builder().id(id).pool(POOL).build()?;
    node.join_nats([url]).await?;
    println!("ready");
    tokio::task::spawn_blocking(|| std::io::stdin().lock().read_line(&mut String::new())).await??;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, id, url] = args.as_slice() {
        if flag == "--worker" {
            return worker(id, url).await;
        }
    }

    let nats = start_nats()?;
    let mut workers = Vec::new();
    for i in 1..=WORKERS {
        workers.push(start_worker(&format!("worker-{i}"), &nats.url)?);
    }
    let coordinator = Node::builder().id("coordinator").build()?;
    coordinator.join_nats([&nats.url]).await?;
    let pool = Pool::new(POOL);
    while coordinator.members(&pool).len() < WORKERS {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("{WORKERS} workers in pool `{POOL}` on {}", nats.url);

    // Each line, four times over, is a chunk of work.
    let chunks: Vec<String> = TEXT.lines().cycle().take(40).map(str::to_owned).collect();
    // Map on the pool's members, at most 16 chunks in flight; every result in chunk order.
    let job = coordinator.run({
        let pool = pool.clone();
        async move {
            let counts = chunks
                .into_iter()
                .map(move |chunk| count(pool.clone(), chunk));
            patterns::gather(counts).in_flight(16).await
        }
    });
    let job = tokio::spawn(job);
    // The first 16 chunks are in flight now, a third of them on worker-2.
    tokio::time::sleep(Duration::from_millis(150)).await;
    workers[1].kill()?;
    workers[1].wait()?;
    println!("killed worker-2 in the middle of the job");
    let killed = Instant::now();

    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_worker: BTreeMap<String, usize> = BTreeMap::new();
    for result in job.await? {
        let (counts, worker) = result?;
        *by_worker.entry(worker).or_insert(0) += 1;
        for (word, n) in counts {
            *totals.entry(word).or_insert(0) += n;
        }
    }
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for word in TEXT
        .lines()
        .cycle()
        .take(40)
        .flat_map(str::split_whitespace)
    {
        *expected.entry(word.to_owned()).or_insert(0) += 1;
    }
    let done: Vec<String> = by_worker.iter().map(|(w, n)| format!("{w}: {n}")).collect();
    println!("chunks counted by: {}", done.join(", "));
    eprintln!("(the job ended {:?} after the kill)", killed.elapsed());
    let mut top: Vec<(&String, &u64)> = totals.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = top
        .iter()
        .take(5)
        .map(|(w, n)| format!("{w} {n}"))
        .collect();
    println!("top words: {}", top.join(", "));
    println!("words in all: {}", totals.values().sum::<u64>());
    println!(
        "same totals as counting on one machine: {}",
        totals == expected
    );
    for mut child in workers {
        let _ = child.kill();
        let _ = child.wait();
    }
    if totals != expected {
        return Err("the totals differ".into());
    }
    Ok(())
}

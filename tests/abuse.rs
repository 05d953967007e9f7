//! A node in a process of its own against peers that abuse it: one that floods frames needing no
//! answer, one that pings and never reads, and values nested far deeper than any stack holds,
//! as captures and as results. Each attack runs against a child process (this binary run again
//! with `ABUSE_CHILD_ROLE` set), so that a node that crashed (a stack overflow aborts the whole
//! process) or stalled is seen, not hidden inside the test's own process.
//!
//! `harness = false`: the tests run one after another, each on a runtime of its own, with a
//! 2-worker server as on the 2-core machines this runs on.

mod common;

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use remote_scope::protocol::{self, Frame};
use remote_scope::{remote, Call, Error, Link, Middleware, Node, PeerId};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

const CHILD_ROLE: &str = "ABUSE_CHILD_ROLE";
const CHILD_URL: &str = "ABUSE_CHILD_URL";
const CHILD_MAX_QUEUED: &str = "ABUSE_CHILD_MAX_QUEUED";
/// How long set-up steps (a process start, a connection) may take.
const SETUP: Duration = Duration::from_secs(20);
/// The child server's timer period.
const TICK: Duration = Duration::from_millis(100);
/// The depths every deep-value attack tries.
const DEPTHS: [u32; 3] = [30_000, 100_000, 1_000_000];

/// A recursive enum, as a body might take or return (an expression tree).
#[derive(Debug, Serialize, Deserialize)]
enum Expr {
    Num(i64),
    Neg(Box<Expr>),
    Add(Box<Expr>, Box<Expr>),
}

impl Expr {
    fn depth(&self) -> u32 {
        match self {
            Expr::Num(_) => 1,
            Expr::Neg(e) => 1 + e.depth(),
            Expr::Add(a, b) => 1 + a.depth().max(b.depth()),
        }
    }
}

/// Nested vectors.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Nest(Vec<Nest>);

impl Nest {
    fn depth(&self) -> u32 {
        1 + self.0.iter().map(Nest::depth).max().unwrap_or(0)
    }
}

/// A linked list of optional boxes.
#[derive(Debug, Serialize, Deserialize)]
struct Chain {
    next: Option<Box<Chain>>,
}

impl Chain {
    fn depth(&self) -> u32 {
        1 + self.next.as_ref().map_or(0, |n| n.depth())
    }
}

/// The three shapes of deep value, by the number their attacks carry.
const SHAPES: [(u8, &str); 3] = [(0, "enum"), (1, "nested Vec"), (2, "Option<Box<..>>")];

/// `depth` levels of `shape` as MessagePack, written by hand: building the value itself (and
/// dropping it) would overflow this process's stack first.
fn deep(shape: u8, depth: u32) -> Vec<u8> {
    let levels = depth as usize - 1;
    match shape {
        // {"Neg": {"Neg": ... {"Num": 1}}}
        0 => {
            let mut bytes = b"\x81\xa3Neg".repeat(levels);
            bytes.extend_from_slice(b"\x81\xa3Num\x01");
            bytes
        }
        // [[[ ... [] ]]]
        1 => {
            let mut bytes = vec![0x91; levels];
            bytes.push(0x90);
            bytes
        }
        // [[[ ... [nil] ]]]: each struct an array of its one field.
        _ => {
            let mut bytes = vec![0x91; depth as usize];
            bytes.push(0xc0);
            bytes
        }
    }
}

/// A body taking a value of `shape`; its captures are `[shape, depth, value]`, which the
/// attacker's middleware rewrites into a deep value.
fn take_deep(server: &PeerId, shape: u8, depth: u32) -> Call<u32> {
    match shape {
        0 => {
            let value = Expr::Num(1);
            remote!(server, [shape: u8, depth: u32, value: Expr], {
                value.depth() + u32::from(shape) + depth - depth
            })
        }
        1 => {
            let value = Nest(Vec::new());
            remote!(server, [shape: u8, depth: u32, value: Nest], {
                value.depth() + u32::from(shape) + depth - depth
            })
        }
        _ => {
            let value = Chain { next: None };
            remote!(server, [shape: u8, depth: u32, value: Chain], {
                value.depth() + u32::from(shape) + depth - depth
            })
        }
    }
}

/// Rewrites the captures of every call made with [`take_deep`] into `depth` levels of its
/// shape: what a hostile client sends.
struct DeepCaptures;

impl Middleware for DeepCaptures {
    fn outbound(&self, _: &Link, frame: Frame) -> Option<Frame> {
        let Frame::Invoke(mut invoke) = frame else {
            return Some(frame);
        };
        if let Ok((shape, depth, _)) =
            rmp_serde::from_slice::<(u8, u32, serde::de::IgnoredAny)>(&invoke.captures)
        {
            let mut captures = vec![0x93, shape, 0xce];
            captures.extend_from_slice(&depth.to_be_bytes());
            captures.extend_from_slice(&deep(shape, depth));
            invoke.captures = captures.into();
        }
        Some(Frame::Invoke(invoke))
    }
}

/// Bodies whose results a hostile server makes deep, by shape.
fn give_deep_expr(server: &PeerId, shape: u8, depth: u32) -> Call<Expr> {
    remote!(server, [shape: u8, depth: u32], {
        Expr::Num(i64::from(shape) + i64::from(depth))
    })
}

fn give_deep_nest(server: &PeerId, shape: u8, depth: u32) -> Call<Nest> {
    remote!(server, [shape: u8, depth: u32], {
        Nest(vec![Nest(Vec::new()); usize::from(shape) + depth as usize % 2])
    })
}

fn give_deep_chain(server: &PeerId, shape: u8, depth: u32) -> Call<Chain> {
    remote!(server, [shape: u8, depth: u32], {
        Chain { next: (shape + (depth % 2) as u8 > 9).then(|| Box::new(Chain { next: None })) }
    })
}

/// A hostile server's middleware: the result of every call whose captures are
/// `[shape, depth]` becomes `depth` levels of that shape.
#[derive(Default)]
struct DeepResults {
    asked: Mutex<std::collections::HashMap<u64, (u8, u32)>>,
}

impl Middleware for DeepResults {
    fn inbound(&self, _: &Link, frame: Frame) -> Option<Frame> {
        if let Frame::Invoke(invoke) = &frame {
            if let Ok(asked) = rmp_serde::from_slice::<(u8, u32)>(&invoke.captures) {
                self.asked.lock().unwrap().insert(invoke.id, asked);
            }
        }
        Some(frame)
    }

    fn outbound(&self, _: &Link, frame: Frame) -> Option<Frame> {
        let Frame::Result(mut result) = frame else {
            return Some(frame);
        };
        if let Some((shape, depth)) = self.asked.lock().unwrap().remove(&result.id) {
            result.outcome = protocol::Outcome::Value(deep(shape, depth).into());
        }
        Some(Frame::Result(result))
    }
}

fn main() {
    match std::env::var(CHILD_ROLE) {
        Ok(role) => child(&role),
        Err(_) => tests(),
    }
}

/// A test: what it measured, for the report line.
type Test = fn() -> String;

fn tests() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tests: [(&str, Test); 4] = [
        (
            "a_peer_flooding_frames_that_need_no_answer_stalls_neither_other_peers_nor_timers",
            || run(flood_of_frames_that_need_no_answer()),
        ),
        (
            "a_peer_that_pings_and_never_reads_is_disconnected_within_the_queue_bound",
            || run(pings_never_read()),
        ),
        (
            "deep_captures_are_refused_and_the_serving_node_and_connection_live_on",
            || run(deep_captures()),
        ),
        (
            "deep_results_are_refused_and_the_calling_node_and_connection_live_on",
            || run(deep_results()),
        ),
    ];
    let chosen: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", chosen.len());
    for (name, test) in &chosen {
        let report = test();
        println!("test {name} ... ok ({report})");
    }
    println!("\ntest result: ok. {} passed; 0 failed\n", chosen.len());
}

/// Runs a test on a 2-worker runtime of its own.
fn run<T>(test: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(test)
}

/// The child process: killed when dropped, so it cannot outlive the test, and it exits by
/// itself when the test process goes away (its stdin, a pipe from the test, then closes).
struct Child {
    process: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Child {
    fn spawn(role: &str, env: &[(&str, String)]) -> Child {
        let mut all = vec![(CHILD_ROLE, role)];
        all.extend(env.iter().map(|(key, value)| (*key, value.as_str())));
        let (process, lines) = common::child::spawn_self(&all);
        Child { process, lines }
    }

    /// The rest of the next line the child prints that starts with `prefix`.
    fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + SETUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(e) => panic!(
                    "the child printed no `{prefix}` ({e:?}); it is {:?}",
                    self.process.try_wait()
                ),
            }
        }
    }

    /// Every line the child prints until it exits (within [`SETUP`]), and how it exited.
    fn finish(mut self) -> (Vec<String>, std::process::ExitStatus) {
        let deadline = Instant::now() + SETUP;
        let mut lines = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => lines.push(line),
                // Its stdout closed: it is exiting.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the child still runs after {SETUP:?}: {lines:?}")
                }
            }
        }
        let status = self.process.wait().expect("the child's status");
        (lines, status)
    }

    /// Every line printed so far.
    fn printed(&mut self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Panics if the child is no longer running (it crashed).
    fn assert_alive(&mut self) {
        let status = self.process.try_wait().expect("the child's status");
        assert!(status.is_none(), "the child node died: {status:?}");
    }

    /// Resident memory of the child, in bytes.
    fn rss(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))
            .expect("the child's /proc status");
        let kib: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status");
        kib << 10
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The child's side.
fn child(role: &str) {
    common::child::exit_with_parent();
    run(async {
        match role {
            "server" => serve().await,
            "deep-results-client" => call_for_deep_results().await,
            other => panic!("unknown child role `{other}`"),
        }
    });
}

/// A server node that prints its URL, a tick every [`TICK`] (with its own clock, in ms), and
/// what it holds (`stats <connections> <bytes queued>`) every 20 ms.
async fn serve() {
    let mut builder = Node::builder()
        .id("server")
        .handshake_timeout(Duration::from_secs(1));
    if let Ok(max) = std::env::var(CHILD_MAX_QUEUED) {
        builder = builder.max_queued_bytes(max.parse().expect("a byte count"));
    }
    let node = builder.build().expect("node");
    let listener = node.listen("127.0.0.1:0").await.expect("listen");
    println!("url {}", listener.url());
    let started = Instant::now();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(TICK).await;
            println!("tick {}", started.elapsed().as_millis());
        }
    });
    loop {
        let stats = node.stats();
        println!("stats {} {}", stats.connections, stats.bytes_queued);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!ticker.is_finished());
    }
}

/// Connects to the test's hostile server, calls each deep-result body and prints what came
/// back, then shows that the connection still serves.
async fn call_for_deep_results() {
    let url = std::env::var(CHILD_URL).expect("the server's URL");
    let node = Node::builder().id("client").build().expect("node");
    let server = node.connect(&url).await.expect("connects");
    for depth in DEPTHS {
        for (shape, _) in SHAPES {
            let got = match shape {
                0 => node
                    .run(give_deep_expr(&server, shape, depth))
                    .await
                    .map(|e| e.depth()),
                1 => node
                    .run(give_deep_nest(&server, shape, depth))
                    .await
                    .map(|n| n.depth()),
                _ => node
                    .run(give_deep_chain(&server, shape, depth))
                    .await
                    .map(|c| c.depth()),
            };
            match got {
                Err(Error::DecodeResult { reason, .. }) => {
                    println!("refused {shape} {depth} {reason}")
                }
                other => println!("unexpected {shape} {depth} {other:?}"),
            }
        }
    }
    let alive = node.run(remote!(server, [], { 6_u32 * 7 })).await;
    println!("alive {alive:?}");
}

/// A WebSocket to `url`, upgraded and past the handshake as peer `id`; what follows is written
/// raw, as fast as the socket takes it.
async fn raw_peer(url: &str, id: &str) -> tokio::net::TcpStream {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    let hello = protocol::encode(&common::RawPeer::hello(id)).expect("hello");
    ws.send(Message::binary(hello)).await.expect("hello sent");
    let answer = ws.next().await.expect("an answer").expect("read");
    let answer = protocol::decode(answer.into_data(), 1 << 16).expect("a frame");
    assert!(matches!(answer, Frame::Hello(_)), "{answer:?}");
    match ws.into_inner() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
        _ => unreachable!("a ws:// URL"),
    }
}

/// `count` copies of `frame` as masked client WebSocket frames (a zero mask key).
fn ws_frames(frame: &Frame, count: usize) -> Vec<u8> {
    let payload = protocol::encode(frame).expect("encoded");
    assert!(payload.len() < 126);
    let mut one = vec![0x82, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    one.extend_from_slice(&payload);
    one.repeat(count)
}

/// Writes `bytes` again and again until `until`, or until the socket fails; returns the bytes
/// written and whether the peer closed the socket.
async fn write_until(tcp: &mut tokio::net::TcpStream, bytes: &[u8], until: Instant) -> (u64, bool) {
    let mut written = 0;
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.write_all(bytes)).await {
            Ok(Ok(())) => written += bytes.len() as u64,
            Ok(Err(_)) => return (written, true),
            Err(_) => break,
        }
    }
    (written, false)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One peer floods the child server with `Cancel` frames for calls that do not exist, as fast
/// as it can, and never reads; a good client calls meanwhile. Its p99 stays under 200 ms and
/// the server's timer keeps its period.
async fn flood_of_frames_that_need_no_answer() -> String {
    const FLOOD: Duration = Duration::from_secs(5);
    let mut child = Child::spawn("server", &[]);
    let url = child.wait_line("url ");
    let good = Node::builder().id("good").build().expect("node");
    let server = good.connect(&url).await.expect("connects");

    let mut attacker = raw_peer(&url, "attacker").await;
    let cancels: Vec<u8> = (0..4096_u64)
        .flat_map(|id| ws_frames(&Frame::Cancel(1 << 40 | id), 1))
        .collect();
    let started = Instant::now();
    let until = started + FLOOD;
    let flood = tokio::spawn(async move { write_until(&mut attacker, &cancels, until).await });

    let mut latencies = Vec::new();
    while Instant::now() < until {
        let n = latencies.len() as u64;
        let sent = Instant::now();
        let answer = good
            .run(remote!(server, [n: u64], { n + 1 }).timeout(Duration::from_secs(10)))
            .await;
        latencies.push(sent.elapsed());
        assert_eq!(answer, Ok(n + 1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (flooded, closed) = flood.await.expect("the attacker's task");
    child.assert_alive();

    // The child's own clock stamps its ticks: the gaps between them are its timer's period.
    let ticks: Vec<u64> = child
        .printed()
        .iter()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    let widest = ticks
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(u64::MAX);
    latencies.sort();
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let report = format!(
        "{} MB of Cancel frames in {FLOOD:?} (closed by the server: {closed}); {} good calls, \
         p50 {p50:?}, p99 {p99:?}; {} ticks, widest gap {widest} ms",
        flooded >> 20,
        latencies.len(),
        ticks.len()
    );
    assert!(flooded > 50 << 20, "the attacker hardly flooded: {report}");
    assert!(p99 < Duration::from_millis(200), "{report}");
    assert!(latencies.len() > 100, "{report}");
    // A 100 ms timer over at least 5 s: it fired at its period, give or take the machine.
    assert!(
        ticks.len() as u32 >= FLOOD.as_millis() as u32 / 100 * 3 / 4,
        "{report}"
    );
    assert!(widest < 300, "{report}");
    report
}

/// One peer sends pings and never reads the pongs. The server queues no more for it than its
/// `max_queued_bytes`, in memory too, and disconnects it.
async fn pings_never_read() -> String {
    const LIMIT: usize = 4 << 20;
    let mut child = Child::spawn("server", &[(CHILD_MAX_QUEUED, LIMIT.to_string())]);
    let url = child.wait_line("url ");
    let mut attacker = raw_peer(&url, "attacker").await;
    let baseline = child.rss();
    let pings = ws_frames(&Frame::Ping, 8192);
    let until = Instant::now() + Duration::from_secs(60);
    let flood = tokio::spawn(async move { write_until(&mut attacker, &pings, until).await });

    // Watch the child's stats until it holds no connection any more.
    let (mut peak_rss, mut peak_queued, mut seen_connected) = (baseline, 0_usize, false);
    loop {
        peak_rss = peak_rss.max(child.rss());
        let mut gone = false;
        for line in child.printed() {
            let Some(stats) = line.strip_prefix("stats ") else {
                continue;
            };
            let mut fields = stats
                .split(' ')
                .map(|f| f.parse::<usize>().expect("a number"));
            let (connections, queued) = (fields.next().unwrap(), fields.next().unwrap());
            peak_queued = peak_queued.max(queued);
            seen_connected |= connections == 1;
            gone |= seen_connected && connections == 0;
        }
        if gone {
            break;
        }
        assert!(
            Instant::now() < until,
            "the attacker was never disconnected"
        );
        child.assert_alive();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (pinged, closed) = flood.await.expect("the attacker's task");
    child.assert_alive();
    let grown = peak_rss.saturating_sub(baseline);
    let report = format!(
        "{} MB of pings; queued at most {} KiB (limit {} KiB); resident memory grew by {} KiB \
         at most; the attacker's socket was closed: {closed}",
        pinged >> 20,
        peak_queued >> 10,
        LIMIT >> 10,
        grown >> 10
    );
    assert!(peak_queued <= LIMIT, "{report}");
    // The documented bound: up to about twice the limit, and a few MiB of the node's own.
    assert!(grown <= 2 * LIMIT + (8 << 20), "{report}");
    report
}

/// A hostile client sends captures nested 30 000 to 1 000 000 levels deep, in three shapes:
/// each call fails with `DecodeCaptures`, and the server process and the connection live on.
async fn deep_captures() -> String {
    let mut child = Child::spawn("server", &[]);
    let url = child.wait_line("url ");
    let hostile = Node::builder()
        .id("hostile")
        .middleware(DeepCaptures)
        .build()
        .expect("node");
    let server = hostile.connect(&url).await.expect("connects");
    let mut refused = 0;
    for depth in DEPTHS {
        for (shape, name) in SHAPES {
            let got = hostile.run(take_deep(&server, shape, depth)).await;
            match got {
                Err(Error::DecodeCaptures { reason, .. }) if reason.contains("deep") => {
                    refused += 1
                }
                other => panic!("{depth} levels of {name}: {other:?}"),
            }
            child.assert_alive();
        }
    }
    // A shallow value goes the same way and the body runs, on the same connection.
    let shallow = hostile.run(take_deep(&server, 1, 5)).await;
    assert_eq!(shallow, Ok(5 + 1), "5 levels of nested Vecs");
    let alive = hostile.run(remote!(server, [], { 6_u32 * 7 })).await;
    assert_eq!(alive, Ok(42));
    child.assert_alive();
    format!("{refused} deep captures refused with DecodeCaptures; the server lives on")
}

/// A hostile server answers with results nested 30 000 to 1 000 000 levels deep: the calling
/// child gets `DecodeResult` for each, and goes on calling over the same connection.
async fn deep_results() -> String {
    let hostile = Node::builder()
        .id("server")
        .middleware(Arc::new(DeepResults::default()))
        .build()
        .expect("node");
    let listener = hostile.listen("127.0.0.1:0").await.expect("listen");
    let child = Child::spawn("deep-results-client", &[(CHILD_URL, listener.url())]);
    let (lines, status) = tokio::task::spawn_blocking(move || child.finish())
        .await
        .expect("the child's lines");
    assert!(
        status.success(),
        "the calling node died: {status}; it printed {lines:?}"
    );
    let refused = lines.iter().filter(|l| l.starts_with("refused ")).count();
    assert_eq!(refused, DEPTHS.len() * SHAPES.len(), "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| !l.starts_with("refused ") || l.contains("deep")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "alive Ok(42)"), "{lines:?}");
    format!("the calling node refused {refused} deep results with DecodeResult and lived on")
}

//! Idle connections: how much memory one costs a server peer, and how many it holds.
//!
//! The server runs in a child process (this binary with `serve-idle`), so its memory is its own
//! and its file descriptors do not share the client's limit.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use remote_scope::Node;

use crate::BenchError;

pub const SERVE_IDLE: &str = "serve-idle";

pub struct Idle {
    pub held: usize,
    pub measured: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub per_connection_kib: f64,
}

/// The child: a server peer that prints its URL and stops when its stdin closes (or after ten
/// minutes, whichever is first).
pub fn serve() -> Result<(), BenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let node = Node::builder().id("idle-server").build()?;
        let listener = node.listen("127.0.0.1:0").await?;
        println!("{}", listener.url());
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        });
        let _ = tokio::time::timeout(Duration::from_secs(600), stdin_closed).await;
        drop(listener);
        Ok(())
    })
}

struct ChildServer(Child);

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> Result<u64, BenchError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| BenchError::msg("no VmRSS"))
}

/// Opens up to `max` idle connections (each from its own client node), stopping at the first
/// failure or after two minutes. Memory per connection is taken over the first `max / 10`
/// (at least 10) after warm-up.
pub async fn measure(max: usize) -> Result<Idle, BenchError> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg(SERVE_IDLE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::msg("no stdout"))?;
    let child = ChildServer(child);
    let mut url = String::new();
    BufReader::new(stdout).read_line(&mut url)?;
    let url = url.trim().to_owned();
    let pid = child.0.id();

    let warm_up = 10.min(max);
    let measured = (max / 10).max(10).min(max - warm_up);
    let mut clients = Vec::with_capacity(max);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut rss_before = 0;
    let mut rss_after = 0;
    while clients.len() < max && Instant::now() < deadline {
        if clients.len() == warm_up {
            tokio::time::sleep(Duration::from_millis(200)).await;
            rss_before = rss_kib(pid)?;
        }
        let node = Node::builder().build()?;
        match tokio::time::timeout(Duration::from_secs(10), node.connect(&url)).await {
            Ok(Ok(_)) => clients.push(node),
            Ok(Err(e)) => {
                eprintln!("idle connection {} failed: {e}", clients.len() + 1);
                break;
            }
            Err(_) => {
                eprintln!("idle connection {} timed out", clients.len() + 1);
                break;
            }
        }
        if clients.len() == warm_up + measured {
            tokio::time::sleep(Duration::from_millis(200)).await;
            rss_after = rss_kib(pid)?;
        }
    }
    let held = clients.len();
    for node in &clients {
        node.shutdown();
    }
    let counted = held.saturating_sub(warm_up).min(measured);
    Ok(Idle {
        held,
        measured: counted,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        per_connection_kib: rss_after.saturating_sub(rss_before) as f64 / counted.max(1) as f64,
    })
}

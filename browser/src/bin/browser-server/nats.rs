//! A NATS server of this process's own, and a pool of workers on it.

use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use remote_scope::{Node, Pool};
use remote_scope_browser_checks::WORD_POOL;

/// The server and the workers; dropping it stops them.
pub struct Cluster {
    _workers: Vec<Node>,
    _shell: Child,
    /// Closing it (this process ending, however) makes the shell kill the server.
    _lifeline: Option<ChildStdin>,
}

pub async fn start(server: &Node) -> Result<Cluster, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut shell = Command::new("sh")
        .arg("-c")
        .arg(r#"nats-server -a 127.0.0.1 -p "$1" & s=$!; cat >/dev/null; kill $s"#)
        .arg("sh")
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start nats-server ({e}); run `bash .ci/install-nats`"))?;
    let lifeline = shell.stdin.take();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("nats-server did not listen within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("nats://127.0.0.1:{port}");
    let mut workers = Vec::new();
    for i in 1..=2 {
        let worker = Node::builder()
            .id(format!("word-worker-{i}"))
            .pool(WORD_POOL)
            .build()
            .map_err(|e| e.to_string())?;
        worker.join_nats([&url]).await.map_err(|e| e.to_string())?;
        workers.push(worker);
    }
    server.join_nats([&url]).await.map_err(|e| e.to_string())?;
    // The pool's members are known once their heartbeats have come.
    let pool = Pool::new(WORD_POOL);
    while server.members(&pool).len() < workers.len() {
        if Instant::now() > deadline {
            return Err("the workers' heartbeats did not arrive".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("nats {url}");
    Ok(Cluster {
        _workers: workers,
        _shell: shell,
        _lifeline: lifeline,
    })
}

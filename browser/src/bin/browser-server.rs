//! The server peer browser pages and browser tests connect to.
//!
//! ```text
//! browser-server [--ws ADDR] [--static DIR [--http ADDR]] [--nats] [--lifetime SECONDS]
//! ```
//!
//! With `--nats`, it also starts a `nats-server` on a free port (stopped when this process
//! goes) and two worker nodes of the pool `checks::WORD_POOL` on it, and joins it: bodies the
//! browser calls on the server reach the pool through NATS. Prints `nats <url>`.
//!
//! Listens for peers on `--ws` (default `127.0.0.1:0`) and prints `ws <url>`. With `--static`,
//! also serves that directory over HTTP on `--http` (default `127.0.0.1:0`), with `__WS_URL__`
//! in `index.html` replaced by the peer URL, and prints `page <url>`. Stops by itself after
//! `--lifetime` seconds (default 900) so a forgotten server does not linger.

// This binary only serves these bodies, never calls them: link their modules in.
#[cfg(not(target_arch = "wasm32"))]
remote_scope::link!(
    remote_scope_browser::demo::nested,
    remote_scope_browser::checks::report,
    remote_scope_browser::checks::elsewhere::ask,
    remote_scope_browser_extra::ask,
);

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::{Component, Path, PathBuf};
    use std::time::Duration;

    use remote_scope::Node;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    struct Args {
        ws: String,
        http: String,
        static_dir: Option<PathBuf>,
        nats: bool,
        lifetime: Duration,
    }

    fn args() -> Result<Args, String> {
        let mut args = Args {
            ws: "127.0.0.1:0".into(),
            http: "127.0.0.1:0".into(),
            static_dir: None,
            nats: false,
            lifetime: Duration::from_secs(900),
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--ws" => args.ws = value()?,
                "--http" => args.http = value()?,
                "--static" => args.static_dir = Some(value()?.into()),
                "--nats" => args.nats = true,
                "--lifetime" => {
                    let secs = value()?;
                    let secs: u64 = secs.parse().map_err(|_| format!("bad --lifetime {secs}"))?;
                    args.lifetime = Duration::from_secs(secs);
                }
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(args)
    }

    pub async fn main() -> Result<(), String> {
        let args = args()?;
        // Browser test binaries may carry bodies of their own: peers with other bodies connect
        // and call what both have.
        let node = Node::builder()
            .id("server")
            .build()
            .map_err(|e| e.to_string())?;
        let listener = node
            .listen(args.ws.as_str())
            .await
            .map_err(|e| e.to_string())?;
        // Held to the end: dropping it stops the NATS server and its workers.
        let _cluster = if args.nats {
            Some(super::nats::start(&node).await?)
        } else {
            None
        };
        let ws_url = listener.url();
        println!("ws {ws_url}");
        if let Some(dir) = args.static_dir {
            let http = TcpListener::bind(args.http.as_str())
                .await
                .map_err(|e| format!("could not listen on {}: {e}", args.http))?;
            let addr = http.local_addr().map_err(|e| e.to_string())?;
            println!("page http://{addr}/");
            tokio::spawn(serve_static(http, dir, ws_url));
        }
        tokio::time::sleep(args.lifetime).await;
        println!("lifetime over; stopping");
        Ok(())
    }

    async fn serve_static(listener: TcpListener, dir: PathBuf, ws_url: String) {
        while let Ok((stream, _)) = listener.accept().await {
            let (dir, ws_url) = (dir.clone(), ws_url.clone());
            tokio::spawn(async move {
                let _ = respond(stream, &dir, &ws_url).await;
            });
        }
    }

    /// Answers one HTTP/1.1 GET with a file from `dir`, nothing else.
    async fn respond(mut stream: TcpStream, dir: &Path, ws_url: &str) -> std::io::Result<()> {
        let mut request = vec![0; 8192];
        let n = stream.read(&mut request).await?;
        let head = String::from_utf8_lossy(&request[..n]);
        let path = head
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("GET "))
            .and_then(|rest| rest.split_whitespace().next())
            .map(|p| p.split('?').next().unwrap_or(p));
        let (status, kind, body) = match path.and_then(|p| file_in(dir, p)) {
            Some(file) => match std::fs::read(&file) {
                Ok(bytes) => {
                    let kind = content_type(&file);
                    let bytes = if file.ends_with("index.html") {
                        String::from_utf8_lossy(&bytes)
                            .replace("__WS_URL__", ws_url)
                            .into_bytes()
                    } else {
                        bytes
                    };
                    ("200 OK", kind, bytes)
                }
                Err(_) => ("404 Not Found", "text/plain", b"not found".to_vec()),
            },
            None => ("404 Not Found", "text/plain", b"not found".to_vec()),
        };
        let header = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(header.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    }

    /// The file a URL path names inside `dir`; `None` for anything that would leave it.
    fn file_in(dir: &Path, url_path: &str) -> Option<PathBuf> {
        let relative = url_path.trim_start_matches('/');
        let relative = if relative.is_empty() {
            "index.html"
        } else {
            relative
        };
        let relative = Path::new(relative);
        relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then(|| dir.join(relative))
    }

    fn content_type(file: &Path) -> &'static str {
        match file.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript",
            Some("wasm") => "application/wasm",
            Some("png") => "image/png",
            _ => "application/octet-stream",
        }
    }
}

/// A NATS server of this process's own, and a pool of workers on it.
#[cfg(not(target_arch = "wasm32"))]
mod nats {
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::time::{Duration, Instant};

    use remote_scope::{Node, Pool};
    use remote_scope_browser::checks::WORD_POOL;

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
}

#[cfg(not(target_arch = "wasm32"))]
#[tokio::main]
async fn main() {
    if let Err(e) = native::main().await {
        eprintln!("browser-server: {e}");
        std::process::exit(2);
    }
}

// The server is native only; wasm builds of this package (for the browser tests) skip it.
#[cfg(target_arch = "wasm32")]
fn main() {}

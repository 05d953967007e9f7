//! The server peer browser pages and browser tests connect to: one axum app serving the demo
//! page and its peers on one port, beside the node's own listener.
//!
//! ```text
//! browser-server [--ws ADDR] [--http ADDR] [--static DIR] [--tls] [--nats] [--lifetime SECONDS]
//! ```
//!
//! Prints what it serves, a line each:
//!
//! - `ws <url>`: the node's own listener (`Node::listen`) on `--ws` (default `127.0.0.1:0`);
//! - `app <url>`: the axum app on `--http` (default `127.0.0.1:0`), `https://` with `--tls`.
//!   Its `/open` route takes any peer (`peer <url>` names it); its `/peer` route only the
//!   page's own, named by the session cookie the page got with `/`; with `--static DIR`, `/`
//!   is `DIR/index.html` (its `__PEER_ID__` filled in) and the rest of `DIR` is served as
//!   files (`page <url>`);
//! - `echo <url>`: a raw WebSocket echo, the browser benchmark's baseline;
//! - `stall <url>`: a WebSocket peer that reads nothing for two seconds, then counts what it
//!   reads (the browser tests' check of the page's send backpressure);
//! - with `--tls`, `spki <hash>`: the SHA-256 of the public key of the certificate authority
//!   made at start, for Chromium's `--ignore-certificate-errors-spki-list`;
//! - with `--nats`, `nats <url>`: a `nats-server` on a free port (stopped when this process
//!   goes) with two worker nodes of the pool `remote_scope_browser_checks::WORD_POOL`, which this node joins, so
//!   that bodies the browser calls on the server reach the pool through NATS.
//!
//! Stops by itself after `--lifetime` seconds (default 900) so a forgotten server does not
//! linger.

// This binary only serves these bodies, never calls them: link their modules in.
#[cfg(not(target_arch = "wasm32"))]
remote_scope::link!(
    remote_scope_browser::demo::nested,
    remote_scope_browser::demo::report,
    remote_scope_browser_checks::elsewhere::ask,
    remote_scope_browser_extra::ask,
);

#[cfg(not(target_arch = "wasm32"))]
mod app;
#[cfg(not(target_arch = "wasm32"))]
mod certificate;
#[cfg(not(target_arch = "wasm32"))]
mod echo;
#[cfg(not(target_arch = "wasm32"))]
mod nats;
#[cfg(not(target_arch = "wasm32"))]
mod raw_websocket;
#[cfg(not(target_arch = "wasm32"))]
mod stall;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::PathBuf;
    use std::time::Duration;

    use remote_scope::axum::TlsListener;
    use remote_scope::Node;

    struct Args {
        ws: String,
        http: String,
        static_dir: Option<PathBuf>,
        tls: bool,
        nats: bool,
        lifetime: Duration,
    }

    fn args() -> Result<Args, String> {
        let mut args = Args {
            ws: "127.0.0.1:0".into(),
            http: "127.0.0.1:0".into(),
            static_dir: None,
            tls: false,
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
                "--tls" => args.tls = true,
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
        println!("ws {}", listener.url());

        let echo = super::echo::start().await?;
        println!("echo {echo}");
        let stall = super::stall::start().await?;
        println!("stall {stall}");

        let app = super::app::router(&node, args.static_dir.clone(), args.tls);
        let cannot_listen =
            |e: &dyn std::fmt::Display| format!("could not listen on {}: {e}", args.http);
        let (addr, http, ws) = if args.tls {
            let made = super::certificate::make()?;
            println!("spki {}", made.authority_spki_sha256);
            let tls = TlsListener::bind(args.http.as_str(), &made.identity)
                .await
                .map_err(|e| cannot_listen(&e))?;
            let addr = axum::serve::Listener::local_addr(&tls).map_err(|e| cannot_listen(&e))?;
            tokio::spawn(async move { axum::serve(tls, app).await });
            (addr, "https", "wss")
        } else {
            let tcp = tokio::net::TcpListener::bind(args.http.as_str())
                .await
                .map_err(|e| cannot_listen(&e))?;
            let addr = tcp.local_addr().map_err(|e| cannot_listen(&e))?;
            tokio::spawn(async move { axum::serve(tcp, app).await });
            (addr, "http", "ws")
        };
        println!("app {http}://{addr}");
        println!("peer {ws}://{addr}/open");
        if args.static_dir.is_some() {
            println!("page {http}://{addr}/");
        }
        tokio::time::sleep(args.lifetime).await;
        println!("lifetime over; stopping");
        Ok(())
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

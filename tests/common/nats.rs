//! Real `nats-server` processes for the tests, on 127.0.0.1 with free ports: one server, or a
//! cluster of several. `.ci/install-nats` installs the server.
//!
//! Each server runs under a small shell that holds a pipe from the test: when the test process
//! goes (a panic, a kill), the pipe closes and the shell kills its server, so no server outlives
//! the test that started it. Dropping a [`NatsServer`] does the same at once.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One running `nats-server`.
pub struct NatsServer {
    shell: Child,
    /// Closing it kills the server.
    lifeline: Option<ChildStdin>,
    /// `nats://127.0.0.1:PORT`, for clients.
    pub url: String,
    /// The port for other servers' routes, when it is in a cluster.
    pub cluster_port: Option<u16>,
    log: PathBuf,
}

impl NatsServer {
    /// A server of its own.
    pub fn start() -> NatsServer {
        NatsServer::spawn(&[])
    }

    /// `n` servers routed to each other as one cluster; each client may connect to any.
    pub fn cluster(n: usize) -> Vec<NatsServer> {
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes = ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        ports
            .iter()
            .map(|&port| {
                let mut server = NatsServer::spawn(&[
                    "--cluster_name",
                    "tests",
                    "--cluster",
                    &format!("nats://127.0.0.1:{port}"),
                    "--routes",
                    &routes,
                ]);
                server.cluster_port = Some(port);
                server
            })
            .collect()
    }

    fn spawn(extra: &[&str]) -> NatsServer {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let log = std::env::temp_dir().join(format!(
            "remote-scope-nats-{}-{}.log",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&log);
        let mut args = vec!["-a", "127.0.0.1", "-p", "-1", "-l"];
        let log_arg = log.to_string_lossy().into_owned();
        args.push(&log_arg);
        args.extend_from_slice(extra);
        // `$@` is the server's command line; the shell waits on its stdin, then kills it.
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(r#"nats-server "$@" & server=$!; cat >/dev/null; exec 2>/dev/null; kill -9 $server; wait $server"#)
            .arg("nats-server")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sh starts (nats-server itself: `bash .ci/install-nats`)");
        let lifeline = shell.stdin.take();
        let port = wait_for_port(&log, &mut shell);
        NatsServer {
            shell,
            lifeline,
            url: format!("nats://127.0.0.1:{port}"),
            cluster_port: None,
            log,
        }
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port in the URL")
    }

    /// Kills the server at once, as a crash would, and waits until it is gone.
    pub fn kill(&mut self) {
        drop(self.lifeline.take());
        let _ = self.shell.wait();
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The client port the server logs once it listens.
fn wait_for_port(log: &PathBuf, shell: &mut Child) -> u16 {
    const LISTENING: &str = "Listening for client connections on 127.0.0.1:";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(port) = text
            .lines()
            .find_map(|line| line.split_once(LISTENING).map(|(_, port)| port.trim()))
            .and_then(|port| port.parse().ok())
        {
            return port;
        }
        if let Ok(Some(status)) = shell.try_wait() {
            panic!("nats-server exited ({status}) before listening; its log:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "nats-server did not listen within 10 s; its log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A port nothing listens on now (the OS's choice; a server started right after takes it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

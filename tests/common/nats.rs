//! Real `nats-server` processes for the tests, on 127.0.0.1 with free ports: one server, or a
//! cluster of several. `.ci/install-nats` installs the server.
//!
//! Each server runs under a small shell that holds a pipe from the test: when the test process
//! goes (a panic, a kill), the pipe closes and the shell kills its server, so no server outlives
//! the test that started it. Dropping a [`NatsServer`] does the same at once.

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
        let mut servers: Vec<NatsServer> = Vec::with_capacity(n);
        for _ in 0..n {
            // Each server takes a route port of its own choosing and routes to every one started
            // before it. A port picked here and bound by the server later could be taken in
            // between, and nats-server then exits just after saying it listens for clients.
            let routes = servers
                .iter()
                .filter_map(|server| server.cluster_port)
                .map(|port| format!("nats://127.0.0.1:{port}"))
                .collect::<Vec<_>>()
                .join(",");
            let mut args = vec![
                "--cluster_name",
                "tests",
                "--cluster",
                "nats://127.0.0.1:-1",
            ];
            if !routes.is_empty() {
                args.extend(["--routes", routes.as_str()]);
            }
            let mut server = NatsServer::spawn(&args);
            server.cluster_port = Some(wait_for_port(&server.log, &mut server.shell, ROUTES));
            servers.push(server);
        }
        servers
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
        let port = wait_for_port(&log, &mut shell, CLIENTS);
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

/// What nats-server logs, with the port, once it listens for clients; for other servers' routes.
const CLIENTS: &str = "Listening for client connections on 127.0.0.1:";
const ROUTES: &str = "Listening for route connections on 127.0.0.1:";

/// The port the server logs once it listens where `listening` says.
fn wait_for_port(log: &PathBuf, shell: &mut Child, listening: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(port) = text
            .lines()
            .find_map(|line| line.split_once(listening).map(|(_, port)| port.trim()))
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

//! A peer process killed mid-call (SIGKILL: no goodbye, the kernel closes its sockets): every
//! call the surviving peer has pending on it fails with `Disconnected` within a second of the
//! kill, the body the survivor was running for it is stopped, and the survivor is left holding
//! no connection, call, body or task.
//!
//! `harness = false`: this binary is the test and, run again by itself with `CHILD_ROLE` set,
//! the peer process the test kills. Both processes are the same build, so they serve the same
//! bodies. Each side calls a body on the other that runs until it is stopped, so at the kill the
//! survivor has both a call waiting on the child and a body running for it.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::LiveTasks;
use remote_scope::{remote, Call, Error, Node, NodeStats, PeerId};
use tokio::task::JoinHandle;

/// Set in the child: `client` (it connects to `CHILD_URL`) or `server` (it listens and prints
/// its URL).
const CHILD_ROLE: &str = "REMOTE_SCOPE_KILLED_CHILD_ROLE";
const CHILD_URL: &str = "REMOTE_SCOPE_KILLED_CHILD_URL";
const PARENT: &str = "parent";
const CHILD: &str = "child";
/// What the child prints when the test's call into it is running there.
const SERVING: &str = "serving";
/// What the child prints before its URL, as a server.
const URL: &str = "url ";
/// The bound: from the kill to every pending call failed.
const WITHIN: Duration = Duration::from_secs(1);
/// How long set-up steps (a process start, a connection) may take.
const SETUP: Duration = Duration::from_secs(20);

static IN_CHILD: AtomicBool = AtomicBool::new(false);
/// Bodies of `hang` alive in this process.
static HANGING: AtomicUsize = AtomicUsize::new(0);

/// Held by a running `hang` body; dropping it is the body being stopped.
struct Hanging;

impl Hanging {
    fn start() -> Hanging {
        HANGING.fetch_add(1, Ordering::SeqCst);
        if IN_CHILD.load(Ordering::SeqCst) {
            println!("{SERVING}");
        }
        Hanging
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        HANGING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A body that runs until it is stopped.
fn hang(peer: &PeerId) -> Call<()> {
    remote!(peer, [], {
        let _running = Hanging::start();
        std::future::pending::<()>().await
    })
}

fn main() {
    match std::env::var(CHILD_ROLE) {
        Ok(role) => child(&role),
        Err(_) => tests(),
    }
}

fn tests() {
    println!("\nrunning 2 tests");
    run(
        "a_client_killed_mid_call_fails_the_servers_calls_within_a_second_and_leaves_nothing_behind",
        client_killed(),
    );
    run(
        "a_server_killed_mid_call_fails_the_clients_calls_within_a_second_and_leaves_nothing_behind",
        server_killed(),
    );
    println!("\ntest result: ok. 2 passed; 0 failed\n");
}

/// Runs a test on a runtime of its own, so that the tasks it counts are its own.
fn run(name: &str, test: impl std::future::Future<Output = Report>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = rt.block_on(test);
    println!("test {name} ... ok ({report})");
}

/// When each check held, counted from the kill.
struct Report {
    failed: Duration,
    cleared: Duration,
    tasks_ended: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "after the kill: call failed in {:?}, body stopped and stats clear in {:?}, tasks \
             back to baseline in {:?}",
            self.failed, self.cleared, self.tasks_ended
        )
    }
}

/// The test process's node, on a runtime that counts its tasks.
fn parent_node() -> (Node, Arc<LiveTasks>) {
    let tasks = Arc::new(LiveTasks::default());
    let node = Node::builder()
        .id(PARENT)
        .runtime(tasks.clone())
        .build()
        .expect("node");
    (node, tasks)
}

/// The test process is the server; the child connects, calls a body here that hangs, and is
/// called back the same way; then it is killed.
async fn client_killed() -> Report {
    let (node, tasks) = parent_node();
    let listener = node.listen("127.0.0.1:0").await.expect("listen");
    let baseline = Baseline::now(&tasks);
    let mut child = ChildPeer::spawn("client", Some(&listener.url()));
    let child_id = PeerId::new(CHILD);
    eventually("the child connects and its call runs here", SETUP, || {
        node.is_connected(&child_id) && HANGING.load(Ordering::SeqCst) == 1
    })
    .await;
    let call = tokio::spawn(node.run(hang(&child_id)));
    child.wait_line(SERVING).await;
    let report = kill_and_check(&node, &tasks, &baseline, call, child).await;
    drop(listener);
    report
}

/// The child is the server; the test process connects, calls a body there that hangs, and is
/// called back the same way; then the child is killed.
async fn server_killed() -> Report {
    let (node, tasks) = parent_node();
    let baseline = Baseline::now(&tasks);
    let mut child = ChildPeer::spawn("server", None);
    let url = child.wait_line(URL).await;
    let child_id = tokio::time::timeout(SETUP, node.connect(url.trim_start_matches(URL)))
        .await
        .expect("the connection to the child is made in time")
        .expect("connects to the child");
    assert_eq!(child_id, PeerId::new(CHILD));
    let call = tokio::spawn(node.run(hang(&child_id)));
    child.wait_line(SERVING).await;
    eventually("the child's call runs here", SETUP, || {
        HANGING.load(Ordering::SeqCst) == 1
    })
    .await;
    kill_and_check(&node, &tasks, &baseline, call, child).await
}

/// Kills the child while `node` has `call` waiting on it and runs a body for it, and checks
/// that all of it ends within a second, and every task within a few.
async fn kill_and_check(
    node: &Node,
    tasks: &LiveTasks,
    baseline: &Baseline,
    call: JoinHandle<Result<(), Error>>,
    mut child: ChildPeer,
) -> Report {
    eventually(
        "the call and the body are in the node's stats",
        SETUP,
        || stats(node) == (1, 1, 1),
    )
    .await;

    let killed = child.kill();
    let deadline = tokio::time::Instant::from_std(killed + WITHIN);
    let result = tokio::time::timeout_at(deadline, call)
        .await
        .unwrap_or_else(|_| {
            panic!("the call to the killed peer still waits {WITHIN:?} after the kill")
        })
        .expect("the call's task");
    let failed = killed.elapsed();
    assert!(
        matches!(result, Err(Error::Disconnected { ref peer, .. }) if peer.as_str() == CHILD),
        "the call to the killed peer fails with Disconnected, not {result:?}"
    );
    eventually_by(
        "the body run for the killed peer is stopped, and the node holds no connection, call or body",
        killed + WITHIN,
        || HANGING.load(Ordering::SeqCst) == 0 && stats(node) == (0, 0, 0),
    )
    .await;
    let cleared = killed.elapsed();
    assert_eq!(HANGING.load(Ordering::SeqCst), 0, "a body is still alive");
    assert_eq!(stats(node), (0, 0, 0), "{:?}", node.stats());

    // A leak check, not a latency one: each task gets a few seconds to see the socket gone.
    let tasks_by = killed + Duration::from_secs(5);
    while !baseline.matches(tasks) {
        assert!(
            Instant::now() < tasks_by,
            "tasks left behind 5 s after the kill: {}",
            baseline.explain(tasks)
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Report {
        failed,
        cleared,
        tasks_ended: killed.elapsed(),
    }
}

/// (connections, calls waiting, bodies running)
fn stats(node: &Node) -> (usize, usize, usize) {
    let NodeStats {
        connections,
        calls_waiting,
        bodies_running,
        ..
    } = node.stats();
    (connections, calls_waiting, bodies_running)
}

/// The tasks alive before the child came: the node's (counted by its runtime) and every task
/// on the tokio runtime (the listener's, the handshakes', the test's own).
struct Baseline {
    node_tasks: usize,
    runtime_tasks: usize,
}

impl Baseline {
    fn now(tasks: &LiveTasks) -> Baseline {
        Baseline {
            node_tasks: tasks.live(),
            runtime_tasks: runtime_tasks(),
        }
    }

    fn matches(&self, tasks: &LiveTasks) -> bool {
        tasks.live() == self.node_tasks && runtime_tasks() == self.runtime_tasks
    }

    fn explain(&self, tasks: &LiveTasks) -> String {
        format!(
            "node tasks {} (before the child: {}), runtime tasks {} (before: {})",
            tasks.live(),
            self.node_tasks,
            runtime_tasks(),
            self.runtime_tasks
        )
    }
}

fn runtime_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Polls `cond` every few milliseconds until it holds; panics after `within`.
async fn eventually(what: &str, within: Duration, cond: impl FnMut() -> bool) {
    eventually_by(what, Instant::now() + within, cond).await;
}

async fn eventually_by(what: &str, deadline: Instant, mut cond: impl FnMut() -> bool) {
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("not reached in time: {what}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The child process. Killed when dropped, so it cannot outlive the test; and it exits by
/// itself when the test process goes away, as its stdin (a pipe from the test) then closes.
struct ChildPeer {
    process: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl ChildPeer {
    fn spawn(role: &str, url: Option<&str>) -> ChildPeer {
        let mut env = vec![(CHILD_ROLE, role)];
        env.extend(url.map(|url| (CHILD_URL, url)));
        let (process, lines) = common::child::spawn_self(&env);
        ChildPeer { process, lines }
    }

    /// The next line the child prints that starts with `prefix`.
    async fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + SETUP;
        loop {
            match self.lines.try_recv() {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => continue,
                Err(mpsc::TryRecvError::Disconnected) => {
                    panic!(
                        "the child exited before printing `{prefix}`: {:?}",
                        self.process.try_wait()
                    )
                }
                Err(mpsc::TryRecvError::Empty) => {}
            }
            assert!(
                Instant::now() < deadline,
                "the child did not print `{prefix}` within {SETUP:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// SIGKILLs the child and reaps it; returns when the kill was sent.
    fn kill(&mut self) -> Instant {
        let killed = Instant::now();
        self.process.kill().expect("the child is killed");
        let status = self.process.wait().expect("the child is reaped");
        assert!(
            !status.success(),
            "the child was killed, not done: {status}"
        );
        killed
    }
}

impl Drop for ChildPeer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The child peer: connects to the test (`client`) or lets the test connect (`server`), calls
/// `hang` on it, and waits to be killed.
fn child(role: &str) {
    IN_CHILD.store(true, Ordering::SeqCst);
    common::child::exit_with_parent();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let node = Node::builder().id(CHILD).build().expect("node");
        let parent = PeerId::new(PARENT);
        let _listener = match role {
            "client" => {
                let url = std::env::var(CHILD_URL).expect("the test's URL");
                let server = node.connect(&url).await.expect("connects to the test");
                assert_eq!(server, parent);
                None
            }
            "server" => {
                let listener = node.listen("127.0.0.1:0").await.expect("listen");
                println!("{URL}{}", listener.url());
                eventually("the test connects", SETUP, || node.is_connected(&parent)).await;
                Some(listener)
            }
            other => panic!("unknown child role `{other}`"),
        };
        // Waits until the kill; ends (by the call's default timeout) only if the test never
        // kills this process.
        let ended = node.run(hang(&parent)).await;
        eprintln!("child: the call to the test ended without a kill: {ended:?}");
        std::process::exit(2);
    });
}

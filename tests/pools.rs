//! Pools: calls spread over the members, on direct WebSockets and on a NATS cluster whose
//! workers are processes of their own; a worker killed mid-job: idempotent calls complete on
//! another member, the others fail with `Disconnected`, and no member runs a call twice.
//!
//! `harness = false`: this binary is the test and, run again with `WORKER` set, a worker
//! process of the pool on NATS.

mod common;

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::child::{exit_with_parent, spawn_self};
use common::nats::NatsServer;
use futures::StreamExt;
use remote_scope::{current_peer, remote, Call, Error, Node, PeerEvent, PeerId, Pool};

/// Set in a worker: its id; it joins the NATS servers in `NATS` (comma-separated).
const WORKER: &str = "REMOTE_SCOPE_POOLS_WORKER";
const NATS: &str = "REMOTE_SCOPE_POOLS_NATS";
const POOL: &str = "words";
/// How long set-up steps (a process start, heartbeats spreading) may take.
const SETUP: Duration = Duration::from_secs(20);

/// Counts the words of `line` on a member, after `ms` of pretended work; says which member.
/// On a worker process it prints `ran <tag>` first, so that the test sees every run.
fn count(pool: &Pool, tag: String, line: String, ms: u64) -> Call<(usize, PeerId)> {
    remote!(pool, [tag: String, line: String, ms: u64], {
        if std::env::var_os(WORKER).is_some() {
            println!("ran {tag}");
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let me = current_peer().expect("a body runs on a node");
        (line.split_whitespace().count(), me)
    })
}

fn main() {
    if let Ok(id) = std::env::var(WORKER) {
        return worker(&id);
    }
    println!("\nrunning 3 tests");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for (name, test) in [
        ("calls_to_a_pool_over_websockets_spread_over_its_members", 0),
        ("calls_to_a_pool_on_nats_spread_over_worker_processes", 1),
        (
            "a_worker_killed_mid_job_fails_over_idempotent_calls_only",
            2,
        ),
    ] {
        let started = Instant::now();
        match test {
            0 => rt.block_on(spread_over_websockets()),
            1 => rt.block_on(spread_on_nats()),
            _ => rt.block_on(worker_killed()),
        }
        println!("test {name} ... ok ({:?})", started.elapsed());
    }
    println!("\ntest result: ok. 3 passed; 0 failed");
}

/// A worker process: a member of the pool on NATS until the test goes.
fn worker(id: &str) {
    exit_with_parent();
    let urls: Vec<String> = std::env::var(NATS)
        .expect("NATS URLs")
        .split(',')
        .map(str::to_owned)
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let node = Node::builder().id(id).pool(POOL).build().expect("node");
        node.join_nats(&urls).await.expect("joins");
        println!("ready");
        std::future::pending::<()>().await;
    });
}

/// Runs 400 calls at once on `pool` from `client`; how many each member ran.
async fn spread(client: &Node, pool: &Pool) -> HashMap<PeerId, usize> {
    let calls = (0..400).map(|i| count(pool, format!("s{i}"), "one two three".into(), 2));
    let results = client.run(futures::future::join_all(calls)).await;
    let mut split = HashMap::new();
    for result in results {
        let (words, member) = result.expect("a member runs it");
        assert_eq!(words, 3);
        *split.entry(member).or_insert(0) += 1;
    }
    split
}

fn show(split: &HashMap<PeerId, usize>) -> String {
    let mut parts: Vec<String> = split.iter().map(|(p, n)| format!("{p}: {n}")).collect();
    parts.sort();
    parts.join(", ")
}

async fn spread_over_websockets() {
    let pool = Pool::new(POOL);
    for members in [1, 2, 4] {
        let mut workers = Vec::new();
        let client = Node::builder().build().expect("node");
        for i in 0..members {
            let worker = Node::builder()
                .id(format!("ws-worker-{i}"))
                .pool(POOL)
                .build()
                .expect("node");
            let server = worker.listen("127.0.0.1:0").await.expect("listens");
            client.connect(&server.url()).await.expect("connects");
            workers.push((worker, server));
        }
        assert_eq!(client.members(&pool).len(), members);
        let split = spread(&client, &pool).await;
        println!("  {members} member(s) over WebSockets: {}", show(&split));
        assert_eq!(split.len(), members, "every member ran some: {split:?}");
        // Fewest calls in flight first: no member gets more than twice its share.
        let share = 400 / members;
        assert!(split.values().all(|&n| n <= share * 2), "{split:?}");
        client.shutdown();
    }
    // No member at all: a clear error, nothing hangs.
    let alone = Node::builder().build().expect("node");
    let result = alone.run(count(&pool, "none".into(), "x".into(), 0)).await;
    assert!(
        matches!(&result, Err(Error::NoMembers { pool: p, .. }) if *p == pool),
        "{result:?}"
    );
}

/// Worker processes on `urls`, each ready (joined).
fn start_workers(
    ids: &[&str],
    urls: &[&str],
) -> Vec<(std::process::Child, mpsc::Receiver<String>)> {
    let joined = urls.join(",");
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            // Each worker on another server of the cluster, where there are several.
            let mine = format!("{},{joined}", urls[i % urls.len()]);
            let (child, lines) = spawn_self(&[(WORKER, id), (NATS, &mine)]);
            let ready = lines.recv_timeout(SETUP).expect("the worker starts");
            assert_eq!(ready, "ready");
            (child, lines)
        })
        .collect()
}

async fn wait_for_members(client: &Node, pool: &Pool, n: usize) {
    let deadline = Instant::now() + SETUP;
    while client.members(pool).len() != n {
        assert!(
            Instant::now() < deadline,
            "members: {:?}",
            client.members(pool)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn spread_on_nats() {
    let nats = NatsServer::start();
    let pool = Pool::new(POOL);
    for members in [1, 2, 4] {
        let ids: Vec<String> = (0..members).map(|i| format!("nats-worker-{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut workers = start_workers(&ids, &[&nats.url]);
        let client = Node::builder().build().expect("node");
        client.join_nats([&nats.url]).await.expect("joins");
        wait_for_members(&client, &pool, members).await;
        let split = spread(&client, &pool).await;
        println!("  {members} worker process(es) on NATS: {}", show(&split));
        assert_eq!(split.len(), members, "every worker ran some: {split:?}");
        client.shutdown();
        for (child, _) in &mut workers {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn worker_killed() {
    let cluster = NatsServer::cluster(3);
    let urls: Vec<&str> = cluster.iter().map(|s| s.url.as_str()).collect();
    let mut workers = start_workers(&["w0", "w1", "w2"], &urls);
    let client = Node::builder().id("client").build().expect("node");
    client.join_nats([urls[0]]).await.expect("joins");
    let pool = Pool::new(POOL);
    wait_for_members(&client, &pool, 3).await;
    let mut events = client.events();

    let deadline = Duration::from_secs(15);
    let job = |i: usize, idempotent: bool| {
        let tag = format!("{}{i}", if idempotent { "i" } else { "n" });
        let call = count(&pool, tag, "a b c d".into(), 1_500).timeout(deadline);
        if idempotent {
            call.idempotent()
        } else {
            call
        }
    };
    let idempotent =
        tokio::spawn(client.run(futures::future::join_all((0..30).map(|i| job(i, true)))));
    let plain = tokio::spawn(client.run(futures::future::join_all((0..30).map(|i| job(i, false)))));

    // Every worker has bodies running: kill w1 mid-job.
    let mut runs: Vec<Vec<String>> = vec![Vec::new(); 3];
    let started = Instant::now();
    while runs.iter().any(Vec::is_empty) {
        assert!(
            started.elapsed() < SETUP,
            "not every worker got work: {runs:?}"
        );
        for (i, (_, lines)) in workers.iter().enumerate() {
            while let Ok(line) = lines.try_recv() {
                runs[i].push(line);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed_at = Instant::now();
    let _ = workers[1].0.kill();
    let _ = workers[1].0.wait();
    let down_after = loop {
        match tokio::time::timeout(SETUP, events.next()).await {
            Ok(Some(PeerEvent::Down { peer })) if peer == "w1".into() => break killed_at.elapsed(),
            Ok(Some(_)) => continue,
            other => panic!("no down event for w1: {other:?}"),
        }
    };

    let idempotent = idempotent.await.expect("joins");
    let failed_over_after = killed_at.elapsed();
    let plain = plain.await.expect("joins");
    for result in &idempotent {
        let (words, member) = result
            .as_ref()
            .expect("an idempotent call completes elsewhere");
        assert_eq!(*words, 4);
        assert_ne!(*member, PeerId::new("w1"));
    }
    let lost = plain
        .iter()
        .filter(|r| matches!(r, Err(Error::Disconnected { peer, .. }) if *peer == "w1".into()))
        .count();
    for result in &plain {
        assert!(
            matches!(result, Ok((4, _)) | Err(Error::Disconnected { .. })),
            "{result:?}"
        );
    }
    assert!(lost > 0, "w1 had plain calls when it died");

    // What each worker ran: no worker ran a call twice, and no plain call ran twice anywhere.
    for (i, (_, lines)) in workers.iter().enumerate() {
        while let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            runs[i].push(line);
        }
    }
    let mut plain_runs: HashMap<&str, usize> = HashMap::new();
    for worker_runs in &runs {
        let mut seen = std::collections::HashSet::new();
        for run in worker_runs {
            assert!(seen.insert(run), "a worker ran {run} twice");
            if let Some(tag) = run.strip_prefix("ran n") {
                *plain_runs.entry(tag).or_insert(0) += 1;
            }
        }
    }
    assert!(plain_runs.values().all(|&n| n == 1), "{plain_runs:?}");
    println!(
        "  w1 killed: down event after {down_after:?}; idempotent calls all done {failed_over_after:?} after the kill; {lost} of 30 plain calls lost with it (Disconnected)"
    );
    for (child, _) in &mut workers {
        let _ = child.kill();
        let _ = child.wait();
    }
}

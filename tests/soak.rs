//! Soak: many calls from a client peer that keeps its connection over a link that drops,
//! delays, reorders and duplicates frames and is cut and restored again and again.
//!
//! Every call that succeeds must have run its body exactly once, no body may run twice, no
//! call may hang, and the memory held afterwards must be what it was before. The short run is
//! part of the test suite; the long one is
//!
//! ```text
//! SOAK_CALLS=100000 SOAK_CUT_EVERY=2000 cargo test --release --test soak -- --nocapture
//! ```

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use remote_scope::transport::faulty::{self, Control, FaultStats, Faults};
use remote_scope::{remote, Error, Node, Reconnect};

/// Counts the bytes allocated and not yet freed, for the whole test binary.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// How many times each call's body ran, by call number.
static RUNS: OnceLock<Vec<AtomicU8>> = OnceLock::new();

fn setting(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What happened to the calls.
#[derive(Debug, Default)]
struct Tally {
    ok: u32,
    disconnected: u32,
    timed_out: u32,
    not_connected: u32,
    other: Vec<String>,
}

/// The link in use, so the driver can cut it, and what the earlier ones did.
#[derive(Default)]
struct Links {
    current: Option<Control>,
    dialled: u32,
    earlier: FaultStats,
}

impl Links {
    /// A new link replaces the current one (which is dead by now).
    fn replace(&mut self, control: Control) {
        if let Some(old) = self.current.replace(control) {
            add(&mut self.earlier, old.stats());
        }
        self.dialled += 1;
    }

    fn stats(&self) -> FaultStats {
        let mut sum = self.earlier;
        if let Some(current) = &self.current {
            add(&mut sum, current.stats());
        }
        sum
    }
}

fn add(sum: &mut FaultStats, s: FaultStats) {
    sum.delivered += s.delivered;
    sum.dropped += s.dropped;
    sum.duplicated += s.duplicated;
    sum.reordered += s.reordered;
    sum.delayed += s.delayed;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_a_link_cut_again_and_again_run_at_most_once_and_leak_nothing() {
    let calls = setting("SOAK_CALLS", 10_000);
    let cut_every = setting("SOAK_CUT_EVERY", 1_000).max(1);
    let in_flight = 64;
    let runs = RUNS.get_or_init(|| (0..calls).map(|_| AtomicU8::new(0)).collect());

    let runtime = Arc::new(common::LiveTasks::default());
    let node = |id: &str| {
        Node::builder()
            .id(id)
            .handshake_timeout(Duration::from_millis(500))
            .keepalive(Some(Duration::from_millis(200)))
            .runtime(runtime.clone())
            .build()
            .unwrap()
    };
    let (server, client) = (node("server"), node("client"));
    let links = Arc::new(Mutex::new(Links::default()));
    let dial = {
        let (server, links, runtime) = (server.clone(), Arc::clone(&links), runtime.clone());
        move || {
            let mut links = links.lock().unwrap();
            let seed = 0x5eed_0000 + u64::from(links.dialled);
            let faults = Faults::new(seed)
                .drop(0.0005)
                .duplicate(0.002)
                .reorder(0.002)
                .delay(0.001, Duration::from_millis(3));
            let (ours, theirs, control) = faulty::pair(faults, runtime.clone());
            links.replace(control);
            let server = server.clone();
            tokio::spawn(async move { server.accept_transport(theirs).await });
            async move { Ok(ours) }
        }
    };
    let policy = Reconnect::default()
        .initial(Duration::from_millis(5))
        .max(Duration::from_millis(50));
    let server_id = client.keep_connected(policy, dial).await.unwrap();

    let call = |i: u32| {
        let server_id = server_id.clone();
        client.run(async move {
            remote!(server_id, [i: u32], {
                if let Some(runs) = RUNS.get().and_then(|r| r.get(i as usize)) {
                    runs.fetch_add(1, Ordering::SeqCst);
                }
                i + 1
            })
            .timeout(Duration::from_secs(2))
            .await
        })
    };

    let started = Instant::now();
    let mut tally = Tally::default();
    let mut results = futures::stream::iter(0..calls)
        .map(|i| async move { (i, call(i).await) })
        .buffer_unordered(in_flight);
    let mut done = 0_u32;
    let mut memory_before = None;
    let mut ok_calls = Vec::with_capacity(calls as usize);
    while let Some((i, result)) = results.next().await {
        match result {
            Ok(v) => {
                assert_eq!(v, i + 1, "call {i} got another call's value");
                tally.ok += 1;
                ok_calls.push(i);
            }
            Err(Error::Disconnected { .. }) => tally.disconnected += 1,
            Err(Error::Timeout { .. }) => tally.timed_out += 1,
            Err(Error::NotConnected { .. }) => tally.not_connected += 1,
            Err(e) => tally.other.push(e.to_string()),
        }
        done += 1;
        if done.is_multiple_of(cut_every) {
            if let Some(link) = &links.lock().unwrap().current {
                link.cut();
            }
        }
        // After the first cut and redial: every kind of state has been allocated once.
        if done == cut_every.saturating_mul(2).min(calls / 2) {
            memory_before = Some(settled(&client, &server).await);
        }
    }
    drop(results);
    let elapsed = started.elapsed();
    let memory_after = settled(&client, &server).await;
    let memory_before = memory_before.unwrap_or(memory_after);

    let ran_twice = runs.iter().filter(|r| r.load(Ordering::SeqCst) > 1).count();
    let lost = ok_calls
        .iter()
        .filter(|&&i| runs[i as usize].load(Ordering::SeqCst) != 1)
        .count();
    let ran = runs
        .iter()
        .filter(|r| r.load(Ordering::SeqCst) >= 1)
        .count();
    let (dialled, faults) = {
        let links = links.lock().unwrap();
        (links.dialled, links.stats())
    };
    println!(
        "soak: {calls} calls in {elapsed:.1?}, {} links ({} cuts); ok {}, disconnected {}, \
         timed out {}, not connected {}; bodies run {ran}, run twice {ran_twice}, ok but not \
         run exactly once {lost}; frames delivered {}, dropped {}, duplicated {}, reordered {}, \
         delayed {}; live heap {} KiB after warm-up, {} KiB at the end",
        dialled,
        dialled - 1,
        tally.ok,
        tally.disconnected,
        tally.timed_out,
        tally.not_connected,
        faults.delivered,
        faults.dropped,
        faults.duplicated,
        faults.reordered,
        faults.delayed,
        memory_before / 1024,
        memory_after / 1024,
    );
    assert!(
        tally.other.is_empty(),
        "unexpected errors: {:?}",
        tally.other
    );
    assert_eq!(ran_twice, 0, "a body ran twice");
    assert_eq!(
        lost, 0,
        "a call succeeded without its body running exactly once"
    );
    assert!(
        tally.ok as f64 >= calls as f64 * 0.9,
        "too few calls succeeded: {tally:?}"
    );
    assert!(
        dialled > calls / cut_every / 2,
        "the link was not cut and restored: {dialled} links"
    );
    assert!(faults.duplicated > 0 && faults.reordered > 0 && faults.dropped > 0);
    // Flat: what is held at the end is what was held after warm-up, give or take buffers
    // that grow with peaks of load (64 KiB), not a share of every call.
    assert!(
        memory_after <= memory_before + (64 << 10),
        "live heap grew from {memory_before} to {memory_after} bytes"
    );
    client.shutdown();
    server.shutdown();
    common::wait_until(|| runtime.live() == 0).await;
}

/// The live heap once both nodes are idle: no call waiting, no body running, connected.
async fn settled(client: &Node, server: &Node) -> usize {
    common::wait_until(|| {
        let (c, s) = (client.stats(), server.stats());
        c.connections == 1
            && s.connections == 1
            && c.calls_waiting + s.calls_waiting + c.bodies_running + s.bodies_running == 0
    })
    .await;
    // Let the tasks of closed links and finished bodies end.
    tokio::time::sleep(Duration::from_millis(100)).await;
    LIVE_BYTES.load(Ordering::Relaxed)
}

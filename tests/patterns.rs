//! The distributed patterns (`remote_scope::patterns`) between real peers on 127.0.0.1: each
//! helper's happy path, a peer dying mid-call, a peer that never answers, an empty set of
//! peers, and cancel on drop.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::wait_until;
use remote_scope::patterns::{self, Backoff, Placement};
use remote_scope::{remote, Error, Node, PeerId, Server};

/// A hub node connected to `n` worker nodes `w1`, `w2`, ...
struct Cluster {
    hub: Node,
    workers: Vec<(Node, Server)>,
    ids: Vec<PeerId>,
}

async fn cluster(n: usize) -> Cluster {
    let hub = Node::builder().id("hub").build().expect("hub");
    let mut workers = Vec::new();
    let mut ids = Vec::new();
    for i in 1..=n {
        let node = Node::builder().id(format!("w{i}")).build().expect("worker");
        let server = node.listen("127.0.0.1:0").await.expect("listen");
        ids.push(hub.connect(&server.url()).await.expect("connect"));
        workers.push((node, server));
    }
    Cluster { hub, workers, ids }
}

impl Cluster {
    fn worker(&self, id: &str) -> &Node {
        &self.workers[self
            .ids
            .iter()
            .position(|p| p.as_str() == id)
            .expect("a worker")]
        .0
    }

    /// Kills worker `id` once it runs a body (`running` counts the bodies that started).
    fn kill_when_running(&self, id: &str, running: &'static AtomicUsize, at_least: usize) {
        let worker = self.worker(id).clone();
        tokio::spawn(async move {
            wait_until(|| running.load(Ordering::SeqCst) >= at_least).await;
            worker.shutdown();
        });
    }
}

/// The id of the peer running the body.
fn me() -> String {
    remote_scope::current_peer().map_or_else(String::new, |p| p.to_string())
}

// Each test's statics carry its number: identical bodies in one module are one body, so two
// tests whose bodies differ only in the local static they name would share one.

/// Adds one to its counter when dropped: the body holding it ended, finished or stopped.
struct CountOnDrop(&'static AtomicUsize);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ---- gather and fan-out ----

#[tokio::test]
async fn fan_out_runs_one_body_on_every_peer_and_reports_each() {
    let c = cluster(4).await;
    let results = c
        .hub
        .run(patterns::fan_out(c.ids.clone(), |peer| {
            remote!(peer, [], { format!("{} ran it", me()) })
        }))
        .await;
    assert_eq!(results.len(), 4);
    for ((peer, result), id) in results.iter().zip(&c.ids) {
        assert_eq!(peer, id);
        assert_eq!(result.as_deref(), Ok(format!("{id} ran it").as_str()));
    }
}

#[tokio::test]
async fn gather_keeps_the_order_of_the_calls_and_the_bound_on_those_in_flight() {
    static RUNNING_2: AtomicUsize = AtomicUsize::new(0);
    static MOST_2: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(2).await;
    let peers = c.ids.clone();
    let values = c
        .hub
        .run(
            patterns::gather((0..40_u64).map(|n| {
                let peer = &peers[n as usize % 2];
                remote!(peer, [n: u64], {
                    let now = RUNNING_2.fetch_add(1, Ordering::SeqCst) + 1;
                    MOST_2.fetch_max(now, Ordering::SeqCst);
                    // Later items finish first.
                    tokio::time::sleep(Duration::from_millis(40 - n)).await;
                    RUNNING_2.fetch_sub(1, Ordering::SeqCst);
                    n * 10
                })
            }))
            .in_flight(5)
            .fail_fast(),
        )
        .await
        .expect("every call succeeds");
    assert_eq!(values, (0..40).map(|n| n * 10).collect::<Vec<u64>>());
    let most = MOST_2.load(Ordering::SeqCst);
    assert!((1..=5).contains(&most), "{most} bodies ran at once");
}

#[tokio::test]
async fn fan_out_reports_a_peer_that_dies_mid_call_and_the_others_results() {
    static STARTED_3: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(3).await;
    c.kill_when_running("w2", &STARTED_3, 3);
    let results = c
        .hub
        .run(patterns::fan_out(c.ids.clone(), |peer| {
            remote!(peer, [], {
                STARTED_3.fetch_add(1, Ordering::SeqCst);
                if me() == "w2" {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                me()
            })
        }))
        .await;
    let by_peer: Vec<(&str, &Result<String, Error>)> =
        results.iter().map(|(p, r)| (p.as_str(), r)).collect();
    assert_eq!(by_peer[0], ("w1", &Ok("w1".to_owned())));
    assert!(
        matches!(by_peer[1], ("w2", Err(Error::Disconnected { peer, .. })) if peer.as_str() == "w2"),
        "{by_peer:?}"
    );
    assert_eq!(by_peer[2], ("w3", &Ok("w3".to_owned())));
}

#[tokio::test]
async fn fail_fast_ends_at_the_first_failure_and_stops_the_other_bodies() {
    static STOPPED_4: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(3).await;
    let started = Instant::now();
    let result = c
        .hub
        .run(
            patterns::fan_out(c.ids.clone(), |peer| {
                remote!(peer, [], {
                    let _stop = CountOnDrop(&STOPPED_4);
                    if me() == "w2" {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        panic!("w2 gives up");
                    }
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    me()
                })
            })
            .fail_fast(),
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(&result, Err(Error::Panicked { peer, .. }) if peer.as_str() == "w2"),
        "{result:?}"
    );
    // w2's body ended in its panic; w1's and w3's were stopped.
    wait_until(|| STOPPED_4.load(Ordering::SeqCst) == 3).await;
}

#[tokio::test]
async fn a_peer_that_never_answers_times_out_in_its_place() {
    let c = cluster(3).await;
    let results = c
        .hub
        .run(patterns::fan_out(c.ids.clone(), |peer| {
            remote!(peer, [], {
                if me() == "w3" {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                me()
            })
            .timeout(Duration::from_secs(2))
        }))
        .await;
    assert!(results[0].1.is_ok() && results[1].1.is_ok(), "{results:?}");
    assert!(
        matches!(&results[2].1, Err(Error::Timeout { peer, .. }) if peer.as_str() == "w3"),
        "{results:?}"
    );
}

#[tokio::test]
async fn empty_sets_of_calls_and_peers_end_at_once() {
    let c = cluster(1).await;
    let none: Vec<PeerId> = Vec::new();
    let fanned = c
        .hub
        .run(patterns::fan_out(none.clone(), |peer| {
            remote!(peer, [], { 1_u8 })
        }))
        .await;
    assert!(fanned.is_empty());
    let gathered = c
        .hub
        .run(patterns::gather(Vec::<remote_scope::Call<u8>>::new()).fail_fast())
        .await;
    assert_eq!(gathered, Ok(Vec::new()));
    let spread = c
        .hub
        .run(
            patterns::spread(none, vec![1_u8, 2], |peer, n| remote!(peer, [n: u8], { n }))
                .fail_fast(),
        )
        .await;
    assert!(
        matches!(&spread, Err(Error::NoPeers { pattern }) if pattern == "spread"),
        "{spread:?}"
    );
}

#[tokio::test]
async fn dropping_a_fan_out_stops_every_body_on_its_peer() {
    static STARTED_7: AtomicUsize = AtomicUsize::new(0);
    static STOPPED_7: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(3).await;
    let fan_out = c.hub.run(patterns::fan_out(c.ids.clone(), |peer| {
        remote!(peer, [], {
            let _stop = CountOnDrop(&STOPPED_7);
            STARTED_7.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
    }));
    let dropped = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::select! {
            _ = fan_out => panic!("the bodies sleep for a minute"),
            () = wait_until(|| STARTED_7.load(Ordering::SeqCst) == 3) => {}
        }
    })
    .await;
    assert!(dropped.is_ok());
    wait_until(|| STOPPED_7.load(Ordering::SeqCst) == 3).await;
}

// ---- spread ----

#[tokio::test]
async fn spread_gives_a_slow_peer_fewer_items_and_keeps_their_order() {
    let c = cluster(2).await;
    let items: Vec<u64> = (0..60).collect();
    let results = c
        .hub
        .run(
            patterns::spread(c.ids.clone(), items, |peer, n| {
                remote!(peer, [n: u64], {
                    let slow = me() == "w1";
                    tokio::time::sleep(Duration::from_millis(if slow { 300 } else { 5 })).await;
                    (n, me())
                })
            })
            .in_flight(4)
            .fail_fast(),
        )
        .await
        .expect("every item runs");
    let order: Vec<u64> = results.iter().map(|(n, _)| *n).collect();
    assert_eq!(order, (0..60).collect::<Vec<u64>>());
    let on_slow = results.iter().filter(|(_, w)| w == "w1").count();
    assert!(on_slow < 20, "the slow peer ran {on_slow} of 60 items");
}

#[tokio::test]
async fn spread_weighted_by_health_favours_the_idle_peer() {
    static HOLD_9: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(2).await;
    let (w1, w2) = (c.ids[0].clone(), c.ids[1].clone());
    // w1 is busy with 7 bodies (started by another caller, which then lets them go).
    let other = Node::builder().id("other").build().expect("node");
    other.connect(&c.workers[0].1.url()).await.expect("connect");
    let busy: Vec<_> = (0..7)
        .map(|_| {
            other.spawn(remote!(w1, [], {
                while HOLD_9.load(Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }))
        })
        .collect();
    wait_until(|| c.worker("w1").stats().bodies_running == 7).await;
    let health = c
        .hub
        .run(patterns::gather(c.ids.clone().into_iter().map(patterns::health)).fail_fast())
        .await
        .expect("both answer");
    assert_eq!(health[0].load.running, 8, "{health:?}");
    assert_eq!(health[1].load.running, 1, "{health:?}");
    assert!(health
        .iter()
        .all(|h| h.rtt > Duration::ZERO && h.rtt < Duration::from_secs(5)));
    let results = c
        .hub
        .run(
            patterns::spread(c.ids.clone(), 0..40_u32, |peer, n| {
                remote!(peer, [n: u32], {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    (n, me())
                })
            })
            .weighted(&health)
            .in_flight(8)
            .fail_fast(),
        )
        .await
        .expect("every item runs");
    HOLD_9.store(1, Ordering::SeqCst);
    for held in busy {
        held.await.expect("spawned").expect("released");
    }
    let on_w2 = results.iter().filter(|(_, w)| w == w2.as_str()).count();
    assert!(on_w2 >= 30, "the idle peer ran {on_w2} of 40 items");
}

// ---- first success ----

#[tokio::test]
async fn first_success_takes_the_fastest_and_stops_the_others() {
    static STOPPED_10: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(3).await;
    let (winner, value) = c
        .hub
        .run(patterns::first_success(c.ids.clone(), |peer| {
            remote!(peer, [], {
                let _stop = CountOnDrop(&STOPPED_10);
                let wait = if me() == "w2" { 20 } else { 60_000 };
                tokio::time::sleep(Duration::from_millis(wait)).await;
                me()
            })
        }))
        .await
        .expect("w2 answers");
    assert_eq!((winner.as_str(), value.as_str()), ("w2", "w2"));
    // The winner's body ended, and the two losers' were stopped.
    wait_until(|| STOPPED_10.load(Ordering::SeqCst) == 3).await;
}

#[tokio::test]
async fn first_success_survives_a_peer_dying_and_reports_when_all_fail() {
    static STARTED_11: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(3).await;
    c.kill_when_running("w1", &STARTED_11, 3);
    let (winner, _) = c
        .hub
        .run(patterns::first_success(c.ids.clone(), |peer| {
            remote!(peer, [], {
                STARTED_11.fetch_add(1, Ordering::SeqCst);
                match me().as_str() {
                    "w1" => tokio::time::sleep(Duration::from_secs(60)).await,
                    "w2" => panic!("w2 fails"),
                    _ => tokio::time::sleep(Duration::from_millis(300)).await,
                }
            })
        }))
        .await
        .expect("w3 answers");
    assert_eq!(winner.as_str(), "w3");
    // w1 was killed in the middle; the next calls find it gone.
    wait_until(|| !c.hub.is_connected(&c.ids[0])).await;

    let all_fail = c
        .hub
        .run(patterns::first_success(c.ids.clone(), |peer| {
            remote!(peer, [], {
                if !me().is_empty() {
                    panic!("no luck on {}", me());
                }
            })
        }))
        .await;
    let Err(Error::AllFailed { errors }) = &all_fail else {
        panic!("{all_fail:?}")
    };
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors
        .iter()
        .all(|e| matches!(e, Error::Panicked { .. }) || matches!(e, Error::NotConnected { .. })));
}

#[tokio::test]
async fn first_success_with_deadlines_fails_with_every_timeout_and_with_no_peers_at_once() {
    let c = cluster(2).await;
    let started = Instant::now();
    let result = c
        .hub
        .run(patterns::first_success(c.ids.clone(), |peer| {
            remote!(peer, [], {
                tokio::time::sleep(Duration::from_secs(60)).await
            })
            .timeout(Duration::from_millis(200))
        }))
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let Err(Error::AllFailed { errors }) = &result else {
        panic!("{result:?}")
    };
    assert!(errors.iter().all(|e| matches!(e, Error::Timeout { .. })) && errors.len() == 2);

    let none = c
        .hub
        .run(patterns::first_success(Vec::new(), |peer| {
            remote!(peer, [], { 1_u8 })
        }))
        .await;
    assert!(matches!(none, Err(Error::NoPeers { .. })), "{none:?}");
}

#[tokio::test]
async fn a_hedge_calls_the_next_peer_only_when_the_first_is_slow() {
    static STARTED_13: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(3).await;
    let (winner, _) = c
        .hub
        .run(
            patterns::first_success(c.ids.clone(), |peer| {
                remote!(peer, [], {
                    STARTED_13.fetch_add(1, Ordering::SeqCst);
                    if me() == "w1" {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                })
            })
            .hedge(Duration::from_secs(1)),
        )
        .await
        .expect("w2 answers");
    assert_eq!(winner.as_str(), "w2");
    // w3 was never called: w2 answered within its hedge delay.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(STARTED_13.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn dropping_a_first_success_stops_every_body() {
    static STARTED_14: AtomicUsize = AtomicUsize::new(0);
    static STOPPED_14: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(3).await;
    let first = c.hub.run(patterns::first_success(c.ids.clone(), |peer| {
        remote!(peer, [], {
            let _stop = CountOnDrop(&STOPPED_14);
            STARTED_14.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
    }));
    tokio::select! {
        _ = first => panic!("the bodies sleep for a minute"),
        () = wait_until(|| STARTED_14.load(Ordering::SeqCst) == 3) => {}
    }
    wait_until(|| STOPPED_14.load(Ordering::SeqCst) == 3).await;
}

// ---- retry ----

#[tokio::test]
async fn retry_goes_to_the_next_peer_when_the_body_did_not_run() {
    static RAN_15: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(2).await;
    // w1 goes away before the call: nothing runs there.
    c.worker("w1").shutdown();
    wait_until(|| !c.hub.is_connected(&c.ids[0])).await;
    let peers = vec![PeerId::new("nowhere"), c.ids[0].clone(), c.ids[1].clone()];
    let ran_on = c
        .hub
        .run(
            patterns::retry(peers, |peer| {
                remote!(peer, [], {
                    RAN_15.fetch_add(1, Ordering::SeqCst);
                    me()
                })
            })
            .backoff(Backoff::exponential(
                Duration::from_millis(5),
                Duration::from_millis(20),
            )),
        )
        .await
        .expect("w2 runs it");
    assert_eq!(ran_on, "w2");
    assert_eq!(RAN_15.load(Ordering::SeqCst), 1);

    // Nowhere to go: every failure is reported.
    let gone = c
        .hub
        .run(patterns::retry(
            vec![PeerId::new("a"), PeerId::new("b")],
            |peer| remote!(peer, [], { me() }),
        ))
        .await;
    let Err(Error::AllFailed { errors }) = &gone else {
        panic!("{gone:?}")
    };
    assert_eq!(errors.len(), 2);
    assert!(!gone.as_ref().unwrap_err().body_may_have_run());
}

#[tokio::test]
async fn retry_never_runs_twice_a_body_that_may_have_run_unless_told_it_is_idempotent() {
    static STARTED_16: AtomicUsize = AtomicUsize::new(0);
    static RAN_16: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(3).await;
    c.kill_when_running("w1", &STARTED_16, 1);
    let body = |peer: &PeerId| {
        remote!(peer, [], {
            STARTED_16.fetch_add(1, Ordering::SeqCst);
            if me() == "w1" || me() == "w2" {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            RAN_16.fetch_add(1, Ordering::SeqCst);
            me()
        })
    };
    let lost = c.hub.run(patterns::retry(c.ids.clone(), body)).await;
    assert!(
        matches!(&lost, Err(Error::Disconnected { peer, .. }) if peer.as_str() == "w1"),
        "{lost:?}"
    );
    assert_eq!(RAN_16.load(Ordering::SeqCst), 0, "no other peer ran it");

    // Idempotent: w2 is lost while it runs the body, which goes on to w3.
    c.kill_when_running("w2", &STARTED_16, 2);
    let ran_on = c
        .hub
        .run(patterns::retry(c.ids[1..].to_vec(), body).idempotent())
        .await
        .expect("w3 runs it");
    assert_eq!(ran_on, "w3");
    assert_eq!(
        STARTED_16.load(Ordering::SeqCst),
        3,
        "w1, w2, then w3 started it"
    );
    assert_eq!(RAN_16.load(Ordering::SeqCst), 1, "only w3 finished it");

    // A body's own failure is an answer, never retried.
    static FAILED_16: AtomicUsize = AtomicUsize::new(0);
    let refused = c
        .hub
        .run(
            patterns::retry(c.ids[1..].to_vec(), |peer| {
                remote!(peer, [], {
                    FAILED_16.fetch_add(1, Ordering::SeqCst);
                    if !me().is_empty() {
                        panic!("bad input");
                    }
                })
            })
            .idempotent(),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::Panicked { .. })),
        "{refused:?}"
    );
    assert_eq!(FAILED_16.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retry_keeps_to_its_deadline_when_no_peer_answers() {
    let c = cluster(2).await;
    let started = Instant::now();
    let result = c
        .hub
        .run(
            patterns::retry(c.ids.clone(), |peer| {
                remote!(peer, [], {
                    tokio::time::sleep(Duration::from_secs(60)).await
                })
            })
            .idempotent()
            .attempts(10)
            .deadline(Duration::from_millis(400)),
        )
        .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let Err(Error::AllFailed { errors }) = &result else {
        panic!("{result:?}")
    };
    assert!(
        errors.iter().all(|e| matches!(e, Error::Timeout { .. })),
        "{errors:?}"
    );

    let none = c
        .hub
        .run(patterns::retry(Vec::new(), |peer| {
            remote!(peer, [], { 1_u8 })
        }))
        .await;
    assert!(matches!(none, Err(Error::NoPeers { .. })), "{none:?}");
}

#[tokio::test]
async fn dropping_a_retry_stops_its_body() {
    static STARTED_18: AtomicUsize = AtomicUsize::new(0);
    static STOPPED_18: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(1).await;
    let retry = c.hub.run(patterns::retry(c.ids.clone(), |peer| {
        remote!(peer, [], {
            let _stop = CountOnDrop(&STOPPED_18);
            STARTED_18.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
    }));
    tokio::select! {
        _ = retry => panic!("the body sleeps for a minute"),
        () = wait_until(|| STARTED_18.load(Ordering::SeqCst) == 1) => {}
    }
    wait_until(|| STOPPED_18.load(Ordering::SeqCst) == 1).await;
}

// ---- placement: a key-value store on three peers ----

/// Stores `value` under `key` on the peer running the body.
fn put(peer: &PeerId, key: String, value: String) -> remote_scope::Call<()> {
    remote!(peer, [key: String, value: String], {
        store().lock().expect("store").insert((me(), key), value);
    })
}

fn get(peer: &PeerId, key: String) -> remote_scope::Call<Option<String>> {
    remote!(peer, [key: String], {
        store().lock().expect("store").get(&(me(), key)).cloned()
    })
}

/// Every worker's table, by worker id (the workers of a test share this process).
fn store() -> &'static std::sync::Mutex<std::collections::HashMap<(String, String), String>> {
    static STORE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<(String, String), String>>,
    > = std::sync::OnceLock::new();
    STORE.get_or_init(Default::default)
}

#[tokio::test]
async fn a_key_value_store_placed_by_key_keeps_its_keys_when_a_member_leaves() {
    let c = cluster(3).await;
    let mut placement = Placement::new(c.ids.clone());
    let keys: Vec<String> = (0..60).map(|i| format!("kv-test:{i}")).collect();
    c.hub
        .run(async {
            for key in &keys {
                // Two replicas: the owner and the next heaviest member.
                let replicas = placement.owners(key, 2);
                let value = format!("value of {key}");
                let writes =
                    patterns::fan_out(replicas, |peer| put(peer, key.clone(), value.clone()))
                        .fail_fast()
                        .await?;
                assert_eq!(writes.len(), 2);
            }
            Ok::<(), Error>(())
        })
        .await
        .expect("every write lands");
    let owned_by_w2 = keys
        .iter()
        .filter(|k| placement.owner(k.as_str()).map(PeerId::as_str) == Some("w2"))
        .count();
    assert!(owned_by_w2 > 5, "w2 owns {owned_by_w2} of 60 keys");

    // w2 leaves; its keys now belong to their second replica, the others stay put.
    let before: Vec<Option<PeerId>> = keys.iter().map(|k| placement.owner(k).cloned()).collect();
    c.worker("w2").shutdown();
    placement.remove(&c.ids[1]);
    for (key, was) in keys.iter().zip(&before) {
        let is = placement.owner(key).cloned();
        if was.as_ref().map(PeerId::as_str) != Some("w2") {
            assert_eq!(&is, was, "{key} moved though its owner stayed");
        }
    }
    let found = c
        .hub
        .run(
            patterns::gather(keys.iter().map(|key| {
                let owner = placement.owner(key).cloned().expect("an owner");
                get(&owner, key.clone())
            }))
            .fail_fast(),
        )
        .await
        .expect("the owners answer");
    for (key, value) in keys.iter().zip(found) {
        assert_eq!(value, Some(format!("value of {key}")));
    }
}

// ---- quorum ----

#[tokio::test]
async fn quorum_agrees_and_names_the_replica_that_disagreed_or_failed() {
    let c = cluster(4).await;
    let agreed = c
        .hub
        .run(
            patterns::quorum(c.ids.clone(), |peer| {
                remote!(peer, [], {
                    match me().as_str() {
                        "w3" => 6_u64,
                        "w4" => panic!("replica broken"),
                        _ => 7_u64,
                    }
                })
            })
            .needing(2),
        )
        .await
        .expect("two agree");
    assert_eq!(agreed.value, 7);
    let mut agreed_by: Vec<&str> = agreed.agreed.iter().map(PeerId::as_str).collect();
    agreed_by.sort_unstable();
    assert_eq!(agreed_by, ["w1", "w2"]);
    assert_eq!(agreed.disagreed, vec![(c.ids[2].clone(), 6)]);
    assert!(matches!(agreed.failed.as_slice(), [Error::Panicked { .. }]));

    // A majority of four is three: two agreeing is not enough.
    let split = c
        .hub
        .run(patterns::quorum(c.ids.clone(), |peer| {
            remote!(peer, [], { me() == "w1" || me() == "w2" })
        }))
        .await;
    let Err(Error::NoQuorum {
        replicas: 4,
        needed: 3,
        agreed: 2,
        disagreed,
        errors,
    }) = &split
    else {
        panic!("{split:?}")
    };
    assert_eq!(disagreed.len(), 2);
    assert!(errors.is_empty());
}

#[tokio::test]
async fn quorum_survives_a_replica_dying_and_first_majority_does_not_wait_for_the_slow() {
    static STARTED_21: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(3).await;
    c.kill_when_running("w3", &STARTED_21, 3);
    let agreed = c
        .hub
        .run(patterns::quorum(c.ids.clone(), |peer| {
            remote!(peer, [], {
                STARTED_21.fetch_add(1, Ordering::SeqCst);
                if me() == "w3" {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                "v1".to_owned()
            })
        }))
        .await
        .expect("w1 and w2 agree");
    assert_eq!(agreed.agreed.len(), 2);
    assert!(matches!(
        agreed.failed.as_slice(),
        [Error::Disconnected { .. }]
    ));

    let c = cluster(3).await;
    let started = Instant::now();
    let early = c
        .hub
        .run(
            patterns::quorum(c.ids.clone(), |peer| {
                remote!(peer, [], {
                    if me() == "w1" {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    1_u8
                })
            })
            .first_majority(),
        )
        .await
        .expect("w2 and w3 agree");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(early.unheard, vec![c.ids[0].clone()]);

    // Without `first_majority`, the slow replica's own timeout ends the wait.
    let waited = c
        .hub
        .run(patterns::quorum(c.ids.clone(), |peer| {
            remote!(peer, [], {
                if me() == "w1" {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                1_u8
            })
            .timeout(Duration::from_secs(2))
        }))
        .await
        .expect("w2 and w3 agree");
    assert!(matches!(waited.failed.as_slice(), [Error::Timeout { .. }]));

    let none = c
        .hub
        .run(patterns::quorum(Vec::new(), |peer| {
            remote!(peer, [], { 1_u8 })
        }))
        .await;
    assert!(matches!(none, Err(Error::NoPeers { .. })), "{none:?}");
}

#[tokio::test]
async fn dropping_a_quorum_stops_every_body() {
    static STARTED_22: AtomicUsize = AtomicUsize::new(0);
    static STOPPED_22: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(3).await;
    let quorum = c.hub.run(patterns::quorum(c.ids.clone(), |peer| {
        remote!(peer, [], {
            let _stop = CountOnDrop(&STOPPED_22);
            STARTED_22.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(60)).await;
        })
    }));
    tokio::select! {
        _ = quorum => panic!("the bodies sleep for a minute"),
        () = wait_until(|| STARTED_22.load(Ordering::SeqCst) == 3) => {}
    }
    wait_until(|| STOPPED_22.load(Ordering::SeqCst) == 3).await;
}

// ---- health ----

#[tokio::test]
async fn health_of_a_peer_that_died_is_an_error_naming_it() {
    let c = cluster(2).await;
    c.worker("w1").shutdown();
    wait_until(|| !c.hub.is_connected(&c.ids[0])).await;
    let health = c
        .hub
        .run(patterns::gather(
            c.ids.clone().into_iter().map(patterns::health),
        ))
        .await;
    assert!(
        matches!(&health[0], Err(Error::NotConnected { peer }) if peer.as_str() == "w1"),
        "{health:?}"
    );
    let w2 = health[1].as_ref().expect("w2 answers");
    assert_eq!((w2.peer.as_str(), w2.load.connections), ("w2", 1));
}

#[tokio::test]
async fn health_of_a_silent_peer_times_out_and_of_one_lost_mid_probe_is_disconnected() {
    let hub = Node::builder()
        .id("hub")
        .default_timeout(Duration::from_secs(1))
        .build()
        .expect("hub");
    // A peer that completes the handshake, then never answers.
    let silent = common::RawPeer::connected_to(&hub, "silent").await;
    let started = Instant::now();
    let timed_out = hub.run(patterns::health(PeerId::new("silent"))).await;
    assert!(
        matches!(&timed_out, Err(Error::Timeout { peer, .. }) if peer.as_str() == "silent"),
        "{timed_out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));

    // Lost while the probe waits: dropping the peer's end closes the connection.
    let probe = tokio::spawn(hub.run(patterns::health(PeerId::new("silent"))));
    wait_until(|| hub.stats().calls_waiting == 1).await;
    drop(silent);
    let lost = probe.await.expect("the probe's task");
    assert!(matches!(lost, Err(Error::Disconnected { .. })), "{lost:?}");
}

// ---- spread: the failures every helper must handle ----

#[tokio::test]
async fn spread_reports_a_peer_dying_and_one_never_answering_in_their_items_places() {
    static STARTED_30: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(3).await;
    c.kill_when_running("w1", &STARTED_30, 3);
    let results = c
        .hub
        .run(
            patterns::spread(c.ids.clone(), 0..3_u32, |peer, n| {
                remote!(peer, [n: u32], {
                    STARTED_30.fetch_add(1, Ordering::SeqCst);
                    match me().as_str() {
                        // w1 dies, w2 never answers, w3 answers.
                        "w1" | "w2" => tokio::time::sleep(Duration::from_secs(60)).await,
                        _ => {}
                    }
                    (n, me())
                })
                .timeout(Duration::from_secs(2))
            })
            .in_flight(3),
        )
        .await;
    // Three items over three idle peers: one each, in turn.
    assert!(
        matches!(&results[0], Err(Error::Disconnected { peer, .. }) if peer.as_str() == "w1"),
        "{results:?}"
    );
    assert!(
        matches!(&results[1], Err(Error::Timeout { peer, .. }) if peer.as_str() == "w2"),
        "{results:?}"
    );
    assert_eq!(results[2], Ok((2, "w3".to_owned())));
}

#[tokio::test]
async fn dropping_a_spread_stops_every_body() {
    static STARTED_31: AtomicUsize = AtomicUsize::new(0);
    static STOPPED_31: AtomicUsize = AtomicUsize::new(0);
    let c = cluster(2).await;
    let spread = c
        .hub
        .run(patterns::spread(c.ids.clone(), 0..6_u32, |peer, n| {
            remote!(peer, [n: u32], {
                let _stop = CountOnDrop(&STOPPED_31);
                STARTED_31.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(60 + u64::from(n))).await;
            })
        }));
    tokio::select! {
        _ = spread => panic!("the bodies sleep for a minute"),
        () = wait_until(|| STARTED_31.load(Ordering::SeqCst) == 6) => {}
    }
    wait_until(|| STOPPED_31.load(Ordering::SeqCst) == 6).await;
}

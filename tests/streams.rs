//! Streams out of remote bodies (`remote_stream!`) between real peers on 127.0.0.1: order and
//! completeness, flow control against a slow consumer, cancel, errors and lost peers,
//! deadlines, both directions and nesting.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{connected_peers, wait_until};
use futures::StreamExt;
use remote_scope::{remote, remote_stream, Error, PeerId};

/// Adds one to its counter when dropped: the body holding it ended, finished or stopped.
struct CountOnDrop(&'static AtomicUsize);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_small_items_arrive_in_order_and_none_is_lost() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let n: u64 = 1_000_000;
    let started = Instant::now();
    let (count, sum, in_order) = p
        .client
        .run(async {
            let mut items =
                remote_stream!(server, [n: u64], { futures::stream::iter(0..n) }).window(1024);
            let (mut count, mut sum, mut next, mut in_order) = (0_u64, 0_u64, 0_u64, true);
            while let Some(item) = items.next().await {
                let item = item.expect("every item arrives");
                in_order &= item == next;
                next = item + 1;
                count += 1;
                sum += item;
            }
            (count, sum, in_order)
        })
        .await;
    assert_eq!(count, n);
    assert!(in_order);
    assert_eq!(sum, n * (n - 1) / 2);
    eprintln!("1 M items in {:?}", started.elapsed());
}

#[tokio::test]
async fn a_slow_consumer_holds_the_producer_to_its_window() {
    static PRODUCED: AtomicUsize = AtomicUsize::new(0);
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let window = 16;
    p.client
        .run(async {
            // The producer could make items without end; the consumer takes one every 50 ms.
            let mut items = remote_stream!(server, [], {
                futures::stream::iter(0_u64..).map(|i| {
                    PRODUCED.fetch_add(1, Ordering::SeqCst);
                    i
                })
            })
            .window(window);
            for expected in 0..10_u64 {
                assert_eq!(items.next().await.map(Result::ok), Some(Some(expected)));
                tokio::time::sleep(Duration::from_millis(50)).await;
                let produced = PRODUCED.load(Ordering::SeqCst);
                // Taken, plus a window waiting here, plus one batch being made there.
                let bound = expected as usize + 1 + 2 * window;
                assert!(
                    produced <= bound,
                    "{produced} items made for {} taken",
                    expected + 1
                );
            }
        })
        .await;
}

#[tokio::test]
async fn dropping_the_stream_stops_the_producing_body() {
    static PRODUCED: AtomicUsize = AtomicUsize::new(0);
    static STOPPED: AtomicUsize = AtomicUsize::new(0);
    let p = connected_peers().await;
    let server = p.server_id.clone();
    p.client
        .run(async {
            let mut items = remote_stream!(server, [], {
                let stop = CountOnDrop(&STOPPED);
                futures::stream::unfold(0_u64, move |i| {
                    let _held = &stop;
                    async move {
                        PRODUCED.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        Some((i, i + 1))
                    }
                })
            })
            .window(4);
            for _ in 0..10 {
                items.next().await.expect("an item").expect("no error");
            }
        })
        .await;
    wait_until(|| STOPPED.load(Ordering::SeqCst) == 1).await;
    let produced = PRODUCED.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        PRODUCED.load(Ordering::SeqCst),
        produced,
        "the producer went on"
    );
}

#[tokio::test]
async fn a_producer_that_panics_ends_the_stream_with_its_error_after_its_items() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let items: Vec<Result<u32, Error>> = p
        .client
        .run(async {
            remote_stream!(server, [], {
                futures::stream::iter(0_u32..10).map(|i| {
                    if i == 3 {
                        panic!("no item 3");
                    }
                    i
                })
            })
            .collect()
            .await
        })
        .await;
    assert_eq!(items.len(), 4, "{items:?}");
    assert_eq!(items[..3], [Ok(0), Ok(1), Ok(2)]);
    assert!(
        matches!(&items[3], Err(Error::Panicked { message, .. }) if message.contains("no item 3")),
        "{items:?}"
    );
}

#[tokio::test]
async fn a_producer_lost_mid_stream_ends_it_with_disconnected() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let server_node = p.server.clone();
    let items: Vec<Result<u64, Error>> = p
        .client
        .run(async {
            let items = remote_stream!(server, [], {
                futures::stream::unfold(0_u64, |i| async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Some((i, i + 1))
                })
            });
            let kill = async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                server_node.shutdown();
            };
            let (items, ()) = futures::join!(items.collect::<Vec<_>>(), kill);
            items
        })
        .await;
    let (last, before) = items.split_last().expect("items, then the error");
    assert!(
        !before.is_empty() && before.iter().all(Result::is_ok),
        "{items:?}"
    );
    assert!(matches!(last, Err(Error::Disconnected { .. })), "{last:?}");
}

#[tokio::test]
async fn deadlines_cover_the_whole_stream_or_each_item() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let started = Instant::now();
    let whole: Vec<Result<u64, Error>> = p
        .client
        .run(async {
            remote_stream!(server, [], {
                futures::stream::unfold(0_u64, |i| async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((i, i + 1))
                })
            })
            .timeout(Duration::from_millis(300))
            .collect()
            .await
        })
        .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(whole.len() > 3, "{whole:?}");
    assert!(
        matches!(whole.last(), Some(Err(Error::Timeout { .. }))),
        "{whole:?}"
    );

    // Each item within 1 s: the first four come every 10 ms, the fifth never.
    let per_item: Vec<Result<u64, Error>> = p
        .client
        .run(async {
            remote_stream!(server, [], {
                futures::stream::unfold(0_u64, |i| async move {
                    let wait = if i < 4 { 10 } else { 60_000 };
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    Some((i, i + 1))
                })
            })
            .item_timeout(Duration::from_secs(1))
            .collect()
            .await
        })
        .await;
    assert_eq!(per_item[..4], [Ok(0), Ok(1), Ok(2), Ok(3)]);
    assert!(
        matches!(per_item[4], Err(Error::Timeout { .. })),
        "{per_item:?}"
    );
    assert_eq!(per_item.len(), 5);
}

#[tokio::test]
async fn streams_go_both_ways_and_a_streaming_body_streams_from_another_peer() {
    let p = connected_peers().await;
    let (server, client) = (p.server_id.clone(), p.client_id.clone());
    // The client streams from the server, whose body streams from the client and doubles.
    let doubled: Vec<u64> = p
        .client
        .run(async {
            remote_stream!(server, [client: PeerId], {
                remote_stream!(client, [], { futures::stream::iter(1_u64..=5) })
                    .map(|item| item.map(|n| n * 2).unwrap_or(0))
            })
            .map(|item| item.expect("an item"))
            .collect()
            .await
        })
        .await;
    assert_eq!(doubled, [2, 4, 6, 8, 10]);

    // The server consumes a stream from the client, inside a call from the client.
    let sum: u64 = p
        .client
        .run(async {
            remote!(server, [client: PeerId], {
                let mut total = 0;
                let mut items = remote_stream!(client, [], { futures::stream::iter(1_u64..=100) });
                while let Some(item) = items.next().await {
                    total += item?;
                }
                Ok::<u64, Error>(total)
            })
            .await
        })
        .await
        .expect("the call")
        .expect("the stream");
    assert_eq!(sum, 5050);
}

#[tokio::test]
async fn a_stream_with_no_items_ends_at_once_and_a_stream_to_no_peer_fails() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let none: Vec<Result<u8, Error>> = p
        .client
        .run(remote_stream!(server, [], { futures::stream::empty::<u8>() }).collect())
        .await;
    assert!(none.is_empty());
    let nobody = PeerId::new("nobody");
    let failed: Vec<Result<u8, Error>> = p
        .client
        .run(remote_stream!(nobody, [], { futures::stream::iter([1_u8]) }).collect())
        .await;
    assert!(
        matches!(failed.as_slice(), [Err(Error::NotConnected { .. })]),
        "{failed:?}"
    );
}

/// What a producer's captures start with: the stream it feeds.
#[derive(serde::Deserialize)]
struct Sink {
    id: u64,
}

/// A producer that does not follow the protocol: the stream ends with a protocol error, the
/// consumer's node goes on serving.
#[tokio::test]
async fn a_hostile_producer_ends_only_its_own_stream() {
    use remote_scope::protocol::{Frame, Invoke};
    use remote_scope::Node;

    let client = Node::builder().id("client").build().expect("node");
    let mut raw = common::RawPeer::connected_to(&client, "raw").await;
    let delivery = remote_scope::streams::delivery_body();
    let mut next_request = 0_u64;
    // Out of order (delivery 5 first); more items than the room (a window of 2); a second
    // delivery before its turn while one waits for it (1, then 1 again).
    for deliveries in [vec![(5_u64, 1_usize)], vec![(0, 4)], vec![(1, 1), (1, 1)]] {
        let consumer = tokio::spawn(client.run(async {
            let raw_id = PeerId::new("raw");
            remote_stream!(raw_id, [], { futures::stream::iter([1_u8]) })
                .window(2)
                .collect::<Vec<Result<u8, Error>>>()
                .await
        }));
        // Past the answers to the last round's deliveries and its stream's cancel.
        let invoke = loop {
            match raw.recv().await {
                Some(Frame::Invoke(invoke)) => break invoke,
                Some(_) => {}
                None => panic!("the node closed the connection"),
            }
        };
        let (sink,): (Sink,) = rmp_serde::from_slice(&invoke.captures).expect("the sink");
        for (number, items) in deliveries {
            let batch: Vec<serde_bytes::ByteBuf> = (0..items)
                .map(|_| serde_bytes::ByteBuf::from(vec![7_u8]))
                .collect();
            let captures = rmp_serde::to_vec(&(sink.id, number, batch)).expect("encode");
            next_request += 1;
            raw.send(&Frame::Invoke(Invoke {
                id: next_request,
                body: delivery.into(),
                timeout_ms: 5_000,
                captures: captures.into(),
            }))
            .await;
        }
        let items = consumer.await.expect("the consumer's task");
        assert!(
            matches!(items.as_slice(), [Err(Error::Protocol { reason, .. })] if reason.contains("stream's producer")),
            "{items:?}"
        );
    }
    // The node still serves: the raw peer can call it.
    assert!(client.is_connected(&PeerId::new("raw")));
}

#[tokio::test]
async fn large_items_go_in_batches_a_peer_accepts() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    // 60 items of 300 KiB: the default window (256) in one batch would be 18 MiB, over a peer's
    // default capture limit of 16 MiB.
    let sizes: Vec<usize> = p
        .client
        .run(async {
            remote_stream!(server, [], {
                futures::stream::iter(0..60_u32)
                    .map(|i| serde_bytes::ByteBuf::from(vec![i as u8; 300 << 10]))
            })
            .map(|item| item.map(|b| b.len()).unwrap_or(0))
            .collect()
            .await
        })
        .await;
    assert_eq!(sizes, vec![300 << 10; 60]);
}

/// Encodes as its number, but refuses to encode 3.
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct NotThree(u32);

impl serde::Serialize for NotThree {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 == 3 {
            return Err(serde::ser::Error::custom("three does not encode"));
        }
        serializer.serialize_u32(self.0)
    }
}

#[tokio::test]
async fn an_item_that_does_not_encode_ends_the_stream_after_the_items_before_it() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let items: Vec<Result<u32, Error>> = p
        .client
        .run(async {
            remote_stream!(server, [], { futures::stream::iter((0..10).map(NotThree)) })
                .map(|item| item.map(|n| n.0))
                .collect()
                .await
        })
        .await;
    assert_eq!(items[..3], [Ok(0), Ok(1), Ok(2)], "{items:?}");
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(
        matches!(&items[3], Err(Error::EncodeResult { reason, .. }) if reason.contains("three")),
        "{items:?}"
    );
}

//! Authentication at connect time, authorization per call, and the limits on what a peer can
//! make a node decode or hold: a refused peer gets a clear error and the body never runs.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::SinkExt;

use common::RawPeer;
use remote_scope::protocol::{Failure, Frame, Invoke, Outcome, Reject};
use remote_scope::{remote, Allowlist, Error, Node, PeerId};

static API_RUNS: AtomicU32 = AtomicU32::new(0);
static ADMIN_RUNS: AtomicU32 = AtomicU32::new(0);

mod api {
    use super::*;

    pub fn ping(peer: &PeerId) -> remote_scope::Call<u32> {
        remote!(peer, [], { API_RUNS.fetch_add(1, Ordering::SeqCst) + 1 })
    }
}

mod admin {
    use super::*;

    pub fn wipe(peer: &PeerId) -> remote_scope::Call<u32> {
        remote!(peer, [], { ADMIN_RUNS.fetch_add(1, Ordering::SeqCst) + 1 })
    }
}

async fn client(id: &str, token: Option<&str>, url: &str) -> Result<(Node, PeerId), Error> {
    let mut builder = Node::builder().id(id);
    if let Some(token) = token {
        builder = builder.token(token);
    }
    let node = builder.build()?;
    let server = node.connect(url).await?;
    Ok((node, server))
}

#[tokio::test]
async fn only_a_peer_with_the_token_connects() {
    let server = Node::builder()
        .id("server")
        .require_token("s3cret")
        .build()
        .unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let url = listener.url();

    for token in [None, Some("wrong"), Some("s3cre"), Some("")] {
        let refused = client("intruder", token, &url).await.map(|_| ());
        assert!(
            matches!(&refused, Err(Error::NotAuthenticated { .. })),
            "{token:?}: {refused:?}"
        );
    }
    assert!(
        server.peers().is_empty(),
        "no refused peer holds a connection"
    );

    let (node, server_id) = client("friend", Some("s3cret"), &url).await.unwrap();
    let n = node.run(api::ping(&server_id)).await.unwrap();
    assert!(n >= 1);
}

#[tokio::test]
async fn a_refused_peer_can_invoke_nothing() {
    let server = Node::builder()
        .id("server")
        .require_token("s3cret")
        .build()
        .unwrap();
    let mut raw = RawPeer::accepted_by(&server);
    raw.send(&RawPeer::hello_with_token("raw", Some("guess")))
        .await;
    assert_eq!(
        raw.recv().await,
        Some(Frame::Reject(Reject::NotAuthenticated))
    );
    // Invoking anyway: the connection is closed, nothing runs.
    let before = ADMIN_RUNS.load(Ordering::SeqCst);
    let peer = PeerId::new("unused");
    let invoke = remote_scope::protocol::encode(&Frame::Invoke(Invoke {
        id: 1,
        body: admin::wipe(&peer).body_name().into(),
        timeout_ms: 1_000,
        captures: vec![0x90].into(),
    }))
    .unwrap();
    // The node has dropped its end: the send fails, or finds nobody reading.
    if raw.end.send(invoke).await.is_ok() {
        assert_eq!(raw.recv().await, None, "the connection is closed");
    }
    assert_eq!(ADMIN_RUNS.load(Ordering::SeqCst), before);
    assert!(server.peers().is_empty());
}

#[tokio::test]
async fn the_connecting_peer_can_require_a_token_of_the_server() {
    let server = Node::builder().id("server").build().unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let client = Node::builder()
        .id("client")
        .require_token("server-proof")
        .build()
        .unwrap();
    let refused = client.connect(&listener.url()).await;
    assert!(
        matches!(&refused, Err(Error::NotAuthenticated { peer }) if peer.as_str() == "server"),
        "{refused:?}"
    );
    assert!(client.peers().is_empty());
    common::wait_until(|| server.peers().is_empty()).await;
}

#[tokio::test]
async fn tokens_bound_to_peer_ids_make_ids_trustworthy_for_authorization() {
    let server = Node::builder()
        .id("server")
        .peer_tokens([("ops", "key-of-ops"), ("guest", "key-of-guest")])
        .authorize(Allowlist::new().module_for("ops", format!("{}::admin", module_path!())))
        .build()
        .unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let url = listener.url();
    // The guest's key does not let it claim to be ops, nor does any key an unlisted id.
    for (id, token) in [
        ("ops", Some("key-of-guest")),
        ("ops", None),
        ("ops", Some("key-of-op")),
        ("stranger", Some("key-of-ops")),
    ] {
        let refused = client(id, token, &url).await.map(|_| ());
        assert!(
            matches!(refused, Err(Error::NotAuthenticated { .. })),
            "{id} with {token:?}: {refused:?}"
        );
    }
    let (guest, server_id) = client("guest", Some("key-of-guest"), &url).await.unwrap();
    assert!(matches!(
        guest.run(admin::wipe(&server_id)).await,
        Err(Error::NotAuthorized { .. })
    ));
    let (ops, server_id) = client("ops", Some("key-of-ops"), &url).await.unwrap();
    assert!(ops.run(admin::wipe(&server_id)).await.is_ok());
}

#[tokio::test]
async fn a_peer_claiming_an_overlong_or_control_character_id_is_refused() {
    let server = Node::builder().id("server").build().unwrap();
    for id in [
        "x".repeat(PeerId::MAX_LEN + 1),
        "evil\nlog line".into(),
        String::new(),
    ] {
        let mut raw = RawPeer::accepted_by(&server);
        raw.send(&RawPeer::hello(&id)).await;
        assert_eq!(
            raw.recv().await,
            Some(Frame::Reject(Reject::InvalidPeerId)),
            "{id:?}"
        );
        assert!(server.peers().is_empty());
    }
    // The longest id allowed is accepted.
    let longest = "y".repeat(PeerId::MAX_LEN);
    let _raw = RawPeer::connected_to(&server, &longest).await;
    assert_eq!(server.peers(), [PeerId::new(longest)]);
}

#[tokio::test]
async fn a_node_cannot_be_built_with_an_id_it_would_refuse() {
    for id in [
        String::new(),
        "a\tb".into(),
        "z".repeat(PeerId::MAX_LEN + 1),
    ] {
        let built = Node::builder().id(id.as_str()).build();
        assert!(matches!(built, Err(Error::Setup { .. })), "{id:?}");
    }
}

#[tokio::test]
async fn an_allowlist_decides_per_peer_which_bodies_run() {
    let allow = Allowlist::new()
        .module(format!("{}::api", module_path!()))
        .module_for("ops", format!("{}::admin", module_path!()));
    let server = Node::builder()
        .id("server")
        .authorize(allow)
        .build()
        .unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let url = listener.url();

    let (guest, server_id) = client("guest", None, &url).await.unwrap();
    assert!(guest.run(api::ping(&server_id)).await.is_ok());
    let admin_before = ADMIN_RUNS.load(Ordering::SeqCst);
    let denied = guest.run(admin::wipe(&server_id)).await;
    match denied {
        Err(e @ Error::NotAuthorized { .. }) => assert!(!e.body_may_have_run()),
        other => panic!("expected NotAuthorized, got {other:?}"),
    }
    assert_eq!(ADMIN_RUNS.load(Ordering::SeqCst), admin_before);

    let (ops, server_id) = client("ops", None, &url).await.unwrap();
    assert!(ops.run(admin::wipe(&server_id)).await.is_ok());
    // A node's calls to itself are its own code: not checked.
    assert!(server.run(admin::wipe(server.id())).await.is_ok());
}

#[tokio::test]
async fn a_denied_call_is_answered_before_its_captures_are_decoded() {
    let server = Node::builder()
        .id("server")
        .authorize(|_: &PeerId, _: &str| false)
        .build()
        .unwrap();
    let mut raw = RawPeer::connected_to(&server, "raw").await;
    let peer = PeerId::new("unused");
    raw.send(&Frame::Invoke(Invoke {
        id: 1,
        body: api::ping(&peer).body_name().into(),
        timeout_ms: 1_000,
        // Not MessagePack of `()`: decoding would fail with DecodeCaptures.
        captures: vec![0xc1, 0xc1].into(),
    }))
    .await;
    let Some(Frame::Result(result)) = raw.recv().await else {
        panic!("no result");
    };
    assert_eq!(result.outcome, Outcome::Failure(Failure::NotAuthorized));
}

#[tokio::test]
async fn oversized_captures_are_refused_and_the_body_does_not_run() {
    let server = Node::builder()
        .id("server")
        .max_capture_size(1024)
        .build()
        .unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let (node, server_id) = client("client", None, &listener.url()).await.unwrap();
    let (small, big) = (vec![1_u8; 100], vec![1_u8; 2048]);
    let len = |data: Vec<u8>| remote!(&server_id, [data: Vec<u8>], { data.len() });
    assert_eq!(node.run(len(small)).await, Ok(100));
    let refused = node.run(len(big)).await;
    assert!(
        matches!(refused, Err(Error::CapturesTooLarge { limit: 1024, .. })),
        "{refused:?}"
    );
}

static RESULTS_SERVED: AtomicU32 = AtomicU32::new(0);

#[tokio::test]
async fn a_peer_that_stops_reading_is_disconnected_not_buffered_for() {
    let server = Node::builder()
        .id("server")
        .max_queued_bytes(16 << 10)
        .build()
        .unwrap();
    let mut raw = RawPeer::connected_to(&server, "raw").await;
    // The server's writes block from now on, as when the peer's receive window is full.
    raw.ends.b.store(common::STALLED, Ordering::SeqCst);
    let peer = PeerId::new("unused");
    let kilobyte = remote!(peer, [], {
        RESULTS_SERVED.fetch_add(1, Ordering::SeqCst);
        vec![7_u8; 1024]
    })
    .body_name();
    for id in 1..=200 {
        let invoke = Frame::Invoke(Invoke {
            id,
            body: kilobyte.into(),
            timeout_ms: 60_000,
            captures: vec![0x90].into(),
        });
        if raw
            .end
            .send(remote_scope::protocol::encode(&invoke).unwrap())
            .await
            .is_err()
        {
            break;
        }
    }
    common::wait_until(|| server.peers().is_empty()).await;
    // It stopped after about 16 KiB of unsent results, not after all 200.
    let served = RESULTS_SERVED.load(Ordering::SeqCst);
    assert!(served < 100, "{served} bodies ran");
}

#[tokio::test]
async fn calls_beyond_the_send_queue_fail_at_once_instead_of_queueing() {
    let node = Node::builder()
        .id("node")
        .max_queued_bytes(16 << 10)
        .build()
        .unwrap();
    let mut raw = RawPeer::connected_to(&node, "raw").await;
    raw.ends.b.store(common::STALLED, Ordering::SeqCst);
    let raw_id = PeerId::new("raw");
    let call = |data: Vec<u8>| {
        node.run(remote!(&raw_id, [data: Vec<u8>], { data.len() }).timeout(Duration::from_secs(60)))
    };
    // Each call carries 6 KiB: the third does not fit behind the first two.
    let first = tokio::spawn(call(vec![1; 6 << 10]));
    let second = tokio::spawn(call(vec![1; 6 << 10]));
    common::wait_until(|| node.stats().calls_waiting == 2).await;
    let third = tokio::time::timeout(Duration::from_secs(1), call(vec![1; 6 << 10]))
        .await
        .expect("refused at once");
    match third {
        Err(e @ Error::QueueFull { limit: 16384, .. }) => assert!(!e.body_may_have_run()),
        other => panic!("expected QueueFull, got {other:?}"),
    }
    assert!(!first.is_finished() && !second.is_finished());
    assert_eq!(
        node.stats().calls_waiting,
        2,
        "the refused call left nothing behind"
    );
    // The peer reads again; the two calls are dropped. It was sent two invokes, and is told to
    // stop those two: nothing about the refused call, which it never got.
    raw.ends.b.store(common::FLOWING, Ordering::SeqCst);
    first.abort();
    second.abort();
    let (mut invoked, mut cancelled) = (Vec::new(), Vec::new());
    while cancelled.len() < 2 {
        match raw.recv().await {
            Some(Frame::Invoke(invoke)) => invoked.push(invoke.id),
            Some(Frame::Cancel(id)) => cancelled.push(id),
            Some(_) => {}
            None => break,
        }
    }
    cancelled.sort_unstable();
    assert_eq!(invoked.len(), 2);
    assert_eq!(cancelled, invoked, "cancels only for the calls sent");
}

/// A peer sending faster than the node's rate limit is slowed down, not cut off: every call
/// is answered, and 600 calls against 200 frames a second (a second's worth as a burst) take
/// as long as the rate allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_rate_limit_is_throttled_not_disconnected() {
    let server = Node::builder()
        .id("server")
        .rate_limit(remote_scope::RateLimit::default().frames_per_second(200))
        .build()
        .unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let client = Node::builder().id("client").build().unwrap();
    let server_id = client.connect(&listener.url()).await.unwrap();
    let started = std::time::Instant::now();
    let calls = (0..600_u32).map(|n| {
        client.run(remote!(server_id, [n: u32], { n * 2 }).timeout(Duration::from_secs(30)))
    });
    let answers = futures::future::join_all(calls).await;
    let took = started.elapsed();
    for (n, answer) in (0..600_u32).zip(answers) {
        assert_eq!(answer, Ok(n * 2));
    }
    // The reader counts a turn (up to 128 frames) after reading it, so a peer gets a burst of
    // a second's worth and one turn ahead before it waits: at least (600 - 200 - 128) frames
    // at 200 a second, 1.36 s, less the clock's slack.
    assert!(took >= Duration::from_millis(1250), "took {took:?}");
    assert!(server.is_connected(&PeerId::new("client")));
    assert_eq!(client.run(api::ping(&server_id)).await.map(|_| ()), Ok(()));
}

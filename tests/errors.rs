//! Every error a caller can see, each asserted by variant, over real peers where the fault can
//! be produced for real and over a scripted raw peer where only a broken or foreign peer could
//! produce it.

mod common;

use std::time::{Duration, Instant};

use common::{connected_peers, RawPeer};
use remote_scope::protocol::{Failure, Frame, Invoke, InvokeResult, Outcome};
use remote_scope::{remote, Error, Node, PeerId};
use serde::{Deserialize, Serialize, Serializer};

/// Serializes into an error at run time, as a type with a fallible `Serialize` impl can.
#[derive(Debug, Deserialize)]
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("Unencodable refuses"))
    }
}

#[tokio::test]
async fn panicking_body_is_reported_and_the_server_keeps_serving() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let (panicked, panicked_at_once, after) = p
        .client
        .run(async move {
            let n: u64 = 3;
            let panicked: Result<u64, Error> = remote!(server, [n: u64], {
                if n == 3 {
                    panic!("body gave up at {n}");
                }
                n
            })
            .await;
            // No `.await` and no macro call: served without a future, its panic caught alike.
            let panicked_at_once: Result<u64, Error> =
                remote!(server, [n: u64], { [1_u64, 2][n as usize] }).await;
            let after = remote!(server, [n: u64], { n * 2 }).await;
            (panicked, panicked_at_once, after)
        })
        .await;
    match panicked {
        Err(Error::Panicked { peer, message, .. }) => {
            assert_eq!(peer.as_str(), "server");
            assert_eq!(message, "body gave up at 3");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    match panicked_at_once {
        Err(Error::Panicked { peer, message, .. }) => {
            assert_eq!(peer.as_str(), "server");
            assert!(message.contains("index out of bounds"), "{message}");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(after, Ok(6));
}

#[tokio::test]
async fn timeout_per_call_and_default_timeout_are_reported() {
    let server = Node::builder().id("server").build().unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let client = Node::builder()
        .id("client")
        .default_timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let server_id = client.connect(&listener.url()).await.unwrap();

    let started = Instant::now();
    let per_call = client
        .run(
            remote!(server_id, [], {
                tokio::time::sleep(Duration::from_secs(30)).await;
            })
            .timeout(Duration::from_millis(50)),
        )
        .await;
    assert!(
        matches!(per_call, Err(Error::Timeout { after, .. }) if after == Duration::from_millis(50)),
        "{per_call:?}"
    );

    let by_default = client
        .run(async {
            remote!(server_id, [], {
                tokio::time::sleep(Duration::from_secs(30)).await;
            })
            .await
        })
        .await;
    assert!(
        matches!(by_default, Err(Error::Timeout { after, .. }) if after == Duration::from_millis(150)),
        "{by_default:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(by_default.unwrap_err().body_may_have_run());
}

#[tokio::test]
async fn call_to_a_peer_that_is_not_connected_fails_at_once() {
    let p = connected_peers().await;
    let stranger = PeerId::new("nobody");
    let result = p
        .client
        .run(async move { remote!(stranger, [], { 1_u8 }).await })
        .await;
    assert_eq!(
        result,
        Err(Error::NotConnected {
            peer: PeerId::new("nobody")
        })
    );
}

#[tokio::test]
async fn call_on_an_explicit_node_needs_no_run() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let n = remote!(server, [], { 5_u8 }).on(&p.client).await;
    assert_eq!(n, Ok(5));
}

#[tokio::test]
async fn captures_that_fail_to_encode_are_reported_before_sending() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let result = p
        .client
        .run(async move {
            let u = Unencodable;
            remote!(server, [u: Unencodable], {
                let _ = u;
            })
            .await
        })
        .await;
    match result {
        Err(Error::EncodeCaptures { reason, .. }) => {
            assert!(reason.contains("Unencodable refuses"))
        }
        other => panic!("expected EncodeCaptures, got {other:?}"),
    }
}

#[tokio::test]
async fn result_that_fails_to_encode_is_reported() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    let result = p
        .client
        .run(async move { remote!(server, [], { Unencodable }).await })
        .await;
    match result {
        Err(Error::EncodeResult { peer, reason, .. }) => {
            assert_eq!(peer.as_str(), "server");
            assert!(reason.contains("Unencodable refuses"), "{reason}");
        }
        other => panic!("expected EncodeResult, got {other:?}"),
    }
}

/// The name of a real body, taken from a call that is never awaited.
fn a_real_body_name() -> &'static str {
    let peer = PeerId::new("unused");
    let a: u64 = 0;
    remote!(peer, [a: u64], { a + 1 }).body_name()
}

#[tokio::test]
async fn unknown_body_and_undecodable_captures_are_answered_not_hung() {
    let node = Node::builder().id("server").build().unwrap();
    let mut raw = RawPeer::connected_to(&node, "raw").await;

    raw.send(&Frame::Invoke(Invoke {
        id: 1,
        body: "no::such::body".into(),
        timeout_ms: 5_000,
        captures: vec![0x90].into(),
    }))
    .await;
    raw.send(&Frame::Invoke(Invoke {
        id: 2,
        body: a_real_body_name().into(),
        timeout_ms: 5_000,
        captures: b"not msgpack of (u64,)"[..].into(),
    }))
    .await;
    raw.send(&Frame::Invoke(Invoke {
        id: 3,
        body: a_real_body_name().into(),
        timeout_ms: 5_000,
        captures: rmp_serde::to_vec(&(41_u64,)).unwrap().into(),
    }))
    .await;

    let mut answers = Vec::new();
    for _ in 0..3 {
        match raw.recv().await {
            Some(Frame::Result(InvokeResult { id, outcome })) => answers.push((id, outcome)),
            other => panic!("expected a result, got {other:?}"),
        }
    }
    answers.sort_by_key(|(id, _)| *id);
    assert_eq!(answers[0], (1, Outcome::Failure(Failure::UnknownBody)));
    assert!(
        matches!(
            &answers[1],
            (2, Outcome::Failure(Failure::DecodeCaptures { .. }))
        ),
        "{:?}",
        answers[1]
    );
    assert_eq!(
        answers[2],
        (
            3,
            Outcome::Value(rmp_serde::to_vec(&42_u64).unwrap().into())
        )
    );
}

/// A client calling a scripted server that answers each call with `outcome`.
async fn call_against(outcome: Outcome) -> Result<u64, Error> {
    let client = Node::builder().id("client").build().unwrap();
    let (mut raw, connect) = RawPeer::dialed_by(&client);
    assert!(matches!(raw.recv().await, Some(Frame::Hello(_))));
    raw.send(&RawPeer::hello("fake-server")).await;
    let server = connect.await.unwrap().expect("handshake");

    let answer = tokio::spawn(async move {
        let Some(Frame::Invoke(invoke)) = raw.recv().await else {
            panic!("expected an invoke")
        };
        raw.send(&Frame::Result(InvokeResult {
            id: invoke.id,
            outcome,
        }))
        .await;
        raw
    });
    let result = client
        .run(async move { remote!(server, [], { 1_u64 }).await })
        .await;
    drop(answer.await);
    result
}

#[tokio::test]
async fn every_failure_from_the_serving_peer_becomes_its_error_variant() {
    assert!(matches!(
        call_against(Outcome::Failure(Failure::UnknownBody)).await,
        Err(Error::UnknownBody { peer, site: Some(site), missing: remote_scope::Missing::Unknown, .. })
            if peer.as_str() == "fake-server" && site.starts_with("tests/errors.rs:")
    ));
    assert!(matches!(
        call_against(Outcome::Failure(Failure::DecodeCaptures { reason: "bad".into() })).await,
        Err(Error::DecodeCaptures { reason, .. }) if reason == "bad"
    ));
    assert!(matches!(
        call_against(Outcome::Failure(Failure::Panicked { message: "p".into() })).await,
        Err(Error::Panicked { message, .. }) if message == "p"
    ));
    assert!(matches!(
        call_against(Outcome::Value(b"\xc1 not a u64"[..].into())).await,
        Err(Error::DecodeResult { .. })
    ));
    assert_eq!(
        call_against(Outcome::Value(rmp_serde::to_vec(&9_u64).unwrap().into())).await,
        Ok(9)
    );
}

#[tokio::test]
async fn malformed_frame_closes_only_that_connection() {
    let p = connected_peers().await;
    let mut raw = RawPeer::connected_to(&p.server, "raw").await;
    common::wait_until(|| p.server.is_connected(&PeerId::new("raw"))).await;

    raw.send_bytes(vec![0xc1, 0xff, 0x00]).await;
    assert_eq!(raw.recv().await, None, "the node closes the connection");
    common::wait_until(|| !p.server.is_connected(&PeerId::new("raw"))).await;

    // The server still serves its other peer.
    let server = p.server_id.clone();
    let n = p
        .client
        .run(async move { remote!(server, [], { 7_u8 }).await })
        .await;
    assert_eq!(n, Ok(7));
}

#[tokio::test]
async fn oversized_frame_is_refused_and_closes_the_connection() {
    let node = Node::builder()
        .id("server")
        .max_frame_size(1024)
        .build()
        .unwrap();
    let mut raw = RawPeer::connected_to(&node, "raw").await;
    raw.send(&Frame::Message(vec![0; 4096].into())).await;
    assert_eq!(raw.recv().await, None);
}

#[tokio::test]
async fn other_protocol_version_is_refused_at_connect_time() {
    let client = Node::builder().id("client").build().unwrap();
    let (mut raw, connect) = RawPeer::dialed_by(&client);
    assert!(matches!(raw.recv().await, Some(Frame::Hello(_))));
    let Frame::Hello(mut hello) = RawPeer::hello("future") else {
        unreachable!()
    };
    hello.version = 99;
    raw.send(&Frame::Hello(hello)).await;
    assert!(matches!(
        connect.await.unwrap(),
        Err(Error::ProtocolVersion { theirs: 99, .. })
    ));
}

#[tokio::test]
async fn a_second_peer_cannot_take_a_connected_peers_id() {
    let p = connected_peers().await;
    let impostor = Node::builder().id("client").build().unwrap();
    let err = impostor
        .connect(&p.listener.url())
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::DuplicatePeer { .. }), "{err}");
    // The real client is unaffected.
    let server = p.server_id.clone();
    assert_eq!(
        p.client
            .run(async move { remote!(server, [], { 1_u8 }).await })
            .await,
        Ok(1)
    );
}

#[tokio::test]
async fn silent_peer_fails_the_handshake_in_time() {
    let node = Node::builder()
        .id("client")
        .handshake_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let (_raw, connect) = RawPeer::dialed_by(&node);
    let err = connect.await.unwrap().expect_err("no hello");
    assert!(matches!(err, Error::Handshake { .. }), "{err}");
}

#[tokio::test]
async fn literal_typed_differently_at_the_call_site_fails_before_sending() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    // Compiled on its own the body's sum is an i32; the caller wants a u64.
    let result: Result<u64, Error> = p
        .client
        .run(remote!(server, [], {
            let mut sum = 0;
            for i in 0..100_000 {
                sum += i;
            }
            sum
        }))
        .await;
    match result {
        Err(Error::ResultType {
            produced, expected, ..
        }) => assert_eq!((produced.as_str(), expected.as_str()), ("i32", "u64")),
        other => panic!("expected ResultType, got {other:?}"),
    }
    // With the literal typed, both copies agree and the call runs.
    let server = p.server_id.clone();
    let typed: Result<u64, Error> = p
        .client
        .run(remote!(server, [], {
            let mut sum = 0_u64;
            for i in 0..100_000 {
                sum += i;
            }
            sum
        }))
        .await;
    assert_eq!(typed, Ok(4_999_950_000));
}

static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn a_counting_body_name() -> &'static str {
    let peer = PeerId::new("unused");
    remote!(peer, [], {
        tokio::time::sleep(Duration::from_millis(50)).await;
        RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    })
    .body_name()
}

#[tokio::test]
async fn a_repeated_request_id_never_runs_its_body_twice() {
    let node = Node::builder().id("server").build().unwrap();
    let mut raw = RawPeer::connected_to(&node, "raw").await;
    let invoke = |id| {
        Frame::Invoke(Invoke {
            id,
            body: a_counting_body_name().into(),
            timeout_ms: 60_000,
            captures: rmp_serde::to_vec(&()).unwrap().into(),
        })
    };
    // Twice while it runs, then again after its result was sent.
    raw.send(&invoke(7)).await;
    raw.send(&invoke(7)).await;
    let Some(Frame::Result(first)) = raw.recv().await else {
        panic!("no result");
    };
    assert_eq!(first.id, 7);
    raw.send(&invoke(7)).await;
    raw.send(&invoke(8)).await;
    let Some(Frame::Result(second)) = raw.recv().await else {
        panic!("no result");
    };
    assert_eq!(second.id, 8, "request 7 is answered once");
    assert_eq!(RUNS.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(
        node.peers(),
        [PeerId::new("raw")],
        "the connection stays up"
    );
}

/// A transport that receives normally but can never send: the acceptor's `Hello` hangs.
struct CannotSend(remote_scope::transport::memory::MemoryTransport);

impl futures::Stream for CannotSend {
    type Item = Result<remote_scope::transport::Bytes, Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.0).poll_next(cx)
    }
}

impl futures::Sink<remote_scope::transport::Bytes> for CannotSend {
    type Error = Error;
    fn poll_ready(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Pending
    }
    fn start_send(
        self: std::pin::Pin<&mut Self>,
        _: remote_scope::transport::Bytes,
    ) -> Result<(), Error> {
        Ok(())
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Pending
    }
    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn a_first_frame_that_is_no_hello_fails_the_handshake_with_the_decoders_error_beneath() {
    use std::error::Error as _;
    let node = Node::builder().id("client").build().unwrap();
    let (mut raw, connect) = RawPeer::dialed_by(&node);
    raw.send_bytes(vec![0x93, 0xc1, 0xc1, 0xc1]).await;
    let err = connect.await.unwrap().expect_err("not a hello");
    let Error::Handshake {
        peer: None,
        source: Some(source),
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(
        matches!(
            source.downcast_ref::<Error>(),
            Some(Error::Protocol {
                source: Some(_),
                ..
            })
        ),
        "{err:?}"
    );
    // What `main() -> Result<(), Error>` prints: the message, then each cause.
    let printed = format!("{err:?}");
    assert!(
        printed.starts_with(
            "handshake with the other peer failed: the first frame is not a protocol-5 hello\n\n\
             Caused by:\n    protocol error: malformed frame (4 bytes)\n    "
        ),
        "{printed}"
    );
    assert!(err.source().and_then(|s| s.source()).is_some(), "{printed}");
}

#[tokio::test]
async fn handshake_that_cannot_finish_leaves_no_half_connected_peer() {
    use futures::SinkExt;
    let node = Node::builder()
        .id("server")
        .handshake_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let hello = remote_scope::protocol::encode(&RawPeer::hello("stuck")).unwrap();

    // Timed out while answering the hello.
    let (mut ours, theirs) = remote_scope::transport::memory::pair();
    ours.send(hello.clone()).await.unwrap();
    let err = node
        .accept_transport(CannotSend(theirs))
        .await
        .expect_err("stuck");
    assert!(matches!(err, Error::Handshake { .. }), "{err}");
    assert!(node.peers().is_empty(), "{:?}", node.peers());

    // Cancelled while answering the hello.
    let (mut ours, theirs) = remote_scope::transport::memory::pair();
    ours.send(hello).await.unwrap();
    let accepting = {
        let node = node.clone();
        tokio::spawn(async move { node.accept_transport(CannotSend(theirs)).await })
    };
    // In the table, its handshake not finished.
    common::wait_until(|| node.peers().contains(&PeerId::new("stuck"))).await;
    accepting.abort();
    let _ = accepting.await;
    assert!(node.peers().is_empty(), "{:?}", node.peers());

    // The id is free again.
    let _raw = RawPeer::connected_to(&node, "stuck").await;
}

static SLOW_BODIES_STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[tokio::test]
async fn calls_beyond_the_bodies_limit_are_refused_at_once_as_busy() {
    let server = Node::builder()
        .id("server")
        .max_bodies_per_connection(2)
        .build()
        .unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let client = Node::builder().id("client").build().unwrap();
    let sid = client.connect(&listener.url()).await.unwrap();

    let slow = |sid: PeerId| {
        client.run(remote!(sid, [], {
            SLOW_BODIES_STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(500)).await;
            1_u8
        }))
    };
    let (a, b) = (
        tokio::spawn(slow(sid.clone())),
        tokio::spawn(slow(sid.clone())),
    );
    common::wait_until(|| SLOW_BODIES_STARTED.load(std::sync::atomic::Ordering::SeqCst) == 2).await;

    let third = client.run(remote!(sid, [], { 3_u8 })).await;
    assert!(
        matches!(&third, Err(Error::Busy { limit: 2, .. })),
        "{third:?}"
    );
    assert!(!third.unwrap_err().body_may_have_run());

    assert_eq!(a.await.unwrap(), Ok(1));
    assert_eq!(b.await.unwrap(), Ok(1));
    let sid2 = sid.clone();
    assert_eq!(client.run(remote!(sid2, [], { 4_u8 })).await, Ok(4));
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_at_connect_time() {
    let server = Node::builder()
        .id("server")
        .max_connections(1)
        .build()
        .unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let first = Node::builder().id("first").build().unwrap();
    first.connect(&listener.url()).await.expect("room for one");
    let second = Node::builder().id("second").build().unwrap();
    let refused = second.connect(&listener.url()).await;
    assert!(
        matches!(refused, Err(Error::TooManyConnections { limit: 1, .. })),
        "{refused:?}"
    );
    assert_eq!(server.peers(), [PeerId::new("first")]);
}

/// A body's own error type, as applications write them.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum QuotaError {
    Exceeded { used: u32 },
}

#[tokio::test]
async fn application_errors_travel_with_their_type_and_convert_with_question_marks() {
    let p = connected_peers().await;
    let server = p.server_id.clone();
    // Any std error, with `?`: the caller gets its message and type.
    let text = String::from("12x");
    let parsed = p
        .client
        .run(remote!(server, [text: String], {
            let n: u64 = text.trim().parse()?;
            Ok::<_, remote_scope::BodyError>(n + 1)
        }))
        .await
        .expect("the call itself succeeds");
    let err = parsed.expect_err("12x is no number");
    assert!(err.is::<std::num::ParseIntError>(), "{err:?}");
    assert_eq!(err.message(), "invalid digit found in string");

    // `??` in a function that returns the runtime's `Error`.
    async fn total(server: PeerId, text: String) -> Result<u64, Error> {
        let n = remote!(server, [text: String], {
            Ok::<_, remote_scope::BodyError>(text.parse::<u64>()?)
        })
        .await??;
        Ok(n)
    }
    let server2 = p.server_id.clone();
    let result = p.client.run(total(server2, "nope".into())).await;
    assert!(
        matches!(&result, Err(Error::Body { error }) if error.is::<std::num::ParseIntError>()),
        "{result:?}"
    );
    assert!(result.unwrap_err().body_may_have_run());

    // A typed error of the application's own still works as before.
    let used = 7_u32;
    let quota = p
        .client
        .run(remote!(server, [used: u32], {
            if used > 5 {
                Err(QuotaError::Exceeded { used })
            } else {
                Ok(used)
            }
        }))
        .await;
    assert_eq!(quota, Ok(Err(QuotaError::Exceeded { used: 7 })));
}

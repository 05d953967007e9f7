//! Middleware stacks and user messages sharing a connection with calls.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use remote_scope::protocol::Frame;
use remote_scope::{remote, Link, Middleware, Node, PeerId};

/// Counts frames by kind in each direction, as a logging layer would.
#[derive(Default)]
struct Counter {
    invokes_in: AtomicUsize,
    results_out: AtomicUsize,
    messages_in: AtomicUsize,
}

impl Middleware for Counter {
    fn inbound(&self, _: &Link, frame: Frame) -> Option<Frame> {
        match &frame {
            Frame::Invoke(_) => self.invokes_in.fetch_add(1, Ordering::SeqCst),
            Frame::Message(_) => self.messages_in.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        Some(frame)
    }

    fn outbound(&self, _: &Link, frame: Frame) -> Option<Frame> {
        if let Frame::Result(_) = &frame {
            self.results_out.fetch_add(1, Ordering::SeqCst);
        }
        Some(frame)
    }
}

/// Answers `ping` messages itself and lets everything else through.
struct Ponger;

impl Middleware for Ponger {
    fn inbound(&self, link: &Link, frame: Frame) -> Option<Frame> {
        match frame {
            Frame::Message(bytes) if bytes == b"ping"[..] => {
                link.send_message(b"pong".to_vec()).expect("connected");
                None
            }
            other => Some(other),
        }
    }
}

/// User messages received, with their sender.
type Inbox = Vec<(PeerId, Vec<u8>)>;

#[tokio::test]
async fn stacked_middleware_sees_calls_and_consumes_user_messages() {
    let counter = Arc::new(Counter::default());
    let server = Node::builder()
        .id("server")
        .middleware(Arc::clone(&counter))
        .middleware(Ponger)
        .on_message(|_, bytes| panic!("Ponger consumes every message, got {bytes:?}"))
        .build()
        .unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();

    let received: Arc<Mutex<Inbox>> = Arc::default();
    let inbox = Arc::clone(&received);
    let client = Node::builder()
        .id("client")
        .on_message(move |peer, bytes| inbox.lock().unwrap().push((peer.clone(), bytes)))
        .build()
        .unwrap();
    let server_id = client.connect(&listener.url()).await.unwrap();

    // A call in flight while messages go both ways on the same connection.
    let sid = server_id.clone();
    let slow = tokio::spawn(client.run(remote!(sid, [], {
        tokio::time::sleep(Duration::from_millis(200)).await;
        7_u8
    })));
    for _ in 0..3 {
        client.send_message(&server_id, b"ping".to_vec()).unwrap();
    }
    common::wait_until(|| received.lock().unwrap().len() == 3).await;
    assert_eq!(slow.await.unwrap(), Ok(7));
    for n in 0..4_u8 {
        let sid = server_id.clone();
        assert_eq!(client.run(remote!(sid, [n: u8], { n })).await, Ok(n));
    }
    // Captures too long to go inline, in a frame the middleware has rebuilt.
    let text = "ab".repeat(100);
    let sid = server_id.clone();
    let back = client.run(remote!(sid, [text: String], { text })).await;
    assert_eq!(back.as_deref(), Ok("ab".repeat(100).as_str()));

    let got = received.lock().unwrap().clone();
    assert!(
        got.iter()
            .all(|(peer, bytes)| peer == &server_id && bytes == b"pong"),
        "{got:?}"
    );
    assert_eq!(counter.invokes_in.load(Ordering::SeqCst), 6);
    assert_eq!(counter.results_out.load(Ordering::SeqCst), 6);
    assert_eq!(counter.messages_in.load(Ordering::SeqCst), 3);
}

/// Drops every outbound user message: a layer can filter as well as observe.
struct Mute;

impl Middleware for Mute {
    fn outbound(&self, _: &Link, frame: Frame) -> Option<Frame> {
        match frame {
            Frame::Message(_) => None,
            other => Some(other),
        }
    }
}

#[tokio::test]
async fn outbound_middleware_can_drop_frames() {
    let got = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&got);
    let server = Node::builder()
        .id("server")
        .on_message(move |_, _| {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let listener = server.listen("127.0.0.1:0").await.unwrap();
    let client = Node::builder()
        .id("client")
        .middleware(Mute)
        .build()
        .unwrap();
    let server_id = client.connect(&listener.url()).await.unwrap();

    client.send_message(&server_id, b"muted".to_vec()).unwrap();
    // Calls still pass; a call after the message proves the message was not merely late.
    let sid = server_id.clone();
    assert_eq!(client.run(remote!(sid, [], { 1_u8 })).await, Ok(1));
    assert_eq!(got.load(Ordering::SeqCst), 0);
}

static CANCELLED_BODY_RAN: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Lets the first `Invoke` through and turns the next one into a `Cancel` of the first: a layer
/// may change a frame into another kind.
#[derive(Default)]
struct SecondInvokeCancelsTheFirst {
    seen: AtomicUsize,
    first: std::sync::atomic::AtomicU64,
}

impl Middleware for SecondInvokeCancelsTheFirst {
    fn inbound(&self, _: &Link, frame: Frame) -> Option<Frame> {
        match frame {
            Frame::Invoke(invoke) => {
                if self.seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    self.first.store(invoke.id, Ordering::SeqCst);
                    Some(Frame::Invoke(invoke))
                } else {
                    Some(Frame::Cancel(self.first.load(Ordering::SeqCst)))
                }
            }
            other => Some(other),
        }
    }
}

/// The reader hands the bodies of one read to the body task together, and any frame but an
/// `Invoke` hands them over first, so a `Cancel` finds the bodies read before it. That holds for
/// the frame the middleware made, not only the one that came off the wire: here both calls go
/// out in one batch and are read in one go, and the second arrives as a `Cancel` of the first.
#[tokio::test]
async fn a_cancel_made_by_middleware_stops_a_body_read_just_before_it() {
    let a = Node::builder().id("a").build().unwrap();
    let b = Node::builder()
        .id("b")
        .middleware(SecondInvokeCancelsTheFirst::default())
        .build()
        .unwrap();
    let (ta, tb) = remote_scope::transport::memory::pair();
    futures::try_join!(a.connect_transport(ta), b.accept_transport(tb)).unwrap();
    let (p1, p2) = (PeerId::new("b"), PeerId::new("b"));
    let wait = Duration::from_millis(200);
    let first = a.run(
        remote!(p1, [], {
            CANCELLED_BODY_RAN.store(true, std::sync::atomic::Ordering::SeqCst);
        })
        .timeout(wait),
    );
    let second = a.run(remote!(p2, [], { 2_u8 }).timeout(wait));
    let (first, second) = futures::join!(first, second);
    // Neither body ran, so neither call got an answer.
    assert!(
        matches!(first, Err(remote_scope::Error::Timeout { .. })),
        "{first:?}"
    );
    assert!(
        matches!(second, Err(remote_scope::Error::Timeout { .. })),
        "{second:?}"
    );
    assert!(
        !CANCELLED_BODY_RAN.load(Ordering::SeqCst),
        "the cancelled body ran"
    );
}

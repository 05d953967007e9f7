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
            Frame::Message(bytes) if bytes == b"ping" => {
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

    let got = received.lock().unwrap().clone();
    assert!(
        got.iter()
            .all(|(peer, bytes)| peer == &server_id && bytes == b"pong"),
        "{got:?}"
    );
    assert_eq!(counter.invokes_in.load(Ordering::SeqCst), 5);
    assert_eq!(counter.results_out.load(Ordering::SeqCst), 5);
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

//! The tasks that drive an established connection: the reader (the inbound path: frames off
//! the transport, handled in turns of bounded work), the writer (the outbound path), the server
//! (polls the bodies the reader starts) and the timers (deadlines and keep-alive).

mod reader;
mod server;
mod timers;
mod writer;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{AbortHandle, Abortable};
use futures::{Sink, Stream};
use tracing::Instrument;

use crate::bodies::Queue;
use crate::connection::Connection;
use crate::error::Error;
use crate::node::Node;
use crate::sync::lock;

/// Starts the tasks of an established connection.
// On wasm32 bodies are not `Send`, so neither is their queue; the `Arc` is still what the
// tasks share.
#[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
pub(crate) fn spawn_tasks<Tx, Rx>(node: &Node, conn: &Arc<Connection>, sink: Tx, stream: Rx)
where
    Tx: Sink<Bytes, Error = Error> + Unpin + crate::runtime::MaybeSend + 'static,
    Rx: Stream<Item = Result<Bytes, Error>> + Unpin + crate::runtime::MaybeSend + 'static,
{
    // The connection's tasks do not keep the node up.
    let node = &node.internal();
    // Every poll of the connection's tasks enters it: none at all when nothing listens.
    let span = call_span!("connection", peer = %conn.peer());
    node.runtime().spawn(Box::pin(
        writer::run(node.clone(), Arc::clone(conn), sink).instrument(span.clone()),
    ));
    let bodies = Arc::new(Queue::default());
    conn.stop_bodies_on_close(bodies.clone());
    node.runtime().spawn(Box::pin(
        server::run(node.clone(), Arc::clone(conn), Arc::clone(&bodies)).instrument(span.clone()),
    ));

    let (handle, registration) = AbortHandle::new_pair();
    *lock(&conn.reader) = Some(handle);
    // A `close` that ran before the handle was stored could not stop the reader; stop it here.
    if conn.closing.load(Ordering::Acquire) {
        if let Some(reader) = lock(&conn.reader).take() {
            reader.abort();
        }
    }
    let reader = reader::run(node.clone(), Arc::clone(conn), bodies, stream);
    let done = {
        let node = node.clone();
        let conn = Arc::clone(conn);
        async move {
            let _ = Abortable::new(reader, registration).await;
            node.forget_connection(&conn);
        }
    };
    node.runtime()
        .spawn(Box::pin(done.instrument(span.clone())));
    node.runtime().spawn(Box::pin(
        timers::run(node.clone(), Arc::clone(conn)).instrument(span),
    ));
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::time::Duration;

    use crate::error::Error;
    use crate::node::Node;
    use crate::peer_id::PeerId;
    use crate::remote;
    use crate::transport::memory;

    static BODY_STOPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// Held by a body: its drop shows the body was stopped, not left running.
    struct SetOnDrop;

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            BODY_STOPPED.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    async fn linked() -> (Node, Node) {
        let a = Node::builder().id("a").build().expect("node a");
        let b = Node::builder().id("b").build().expect("node b");
        let (ta, tb) = memory::pair();
        let (_, _) =
            futures::try_join!(a.connect_transport(ta), b.accept_transport(tb)).expect("handshake");
        (a, b)
    }

    fn in_flight(node: &Node, peer: &str) -> (usize, usize) {
        node.connection(&PeerId::new(peer))
            .expect("connected")
            .load()
    }

    #[tokio::test]
    async fn finished_calls_leave_nothing_behind_on_either_side() {
        let (a, b) = linked().await;
        let peer = PeerId::new("b");
        for n in 0..10_u32 {
            assert_eq!(a.run(remote!(peer, [n: u32], { n + 1 })).await, Ok(n + 1));
        }
        assert_eq!(in_flight(&a, "b"), (0, 0));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(in_flight(&b, "a"), (0, 0));
    }

    #[tokio::test]
    async fn dropped_and_timed_out_calls_leave_no_pending_entry() {
        let (a, _b) = linked().await;
        let peer = PeerId::new("b");
        let slow = a.run(remote!(peer, [], {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }));
        // Polled once (so it is sent), then dropped.
        let dropped = tokio::time::timeout(Duration::from_millis(20), slow).await;
        assert!(dropped.is_err());
        assert_eq!(in_flight(&a, "b").0, 0);

        let timed_out = a
            .run(
                remote!(peer, [], {
                    tokio::time::sleep(Duration::from_secs(60)).await
                })
                .timeout(Duration::from_millis(20)),
            )
            .await;
        assert!(matches!(timed_out, Err(Error::Timeout { .. })));
        assert_eq!(in_flight(&a, "b").0, 0);
    }

    #[tokio::test]
    async fn calls_time_out_whatever_the_keep_alive_interval() {
        for keepalive in [None, Some(Duration::from_millis(1)), Some(Duration::MAX)] {
            let a = Node::builder()
                .id("a")
                .keepalive(keepalive)
                .build()
                .expect("a");
            let b = Node::builder().id("b").build().expect("b");
            let (ta, tb) = memory::pair();
            futures::try_join!(a.connect_transport(ta), b.accept_transport(tb)).expect("linked");
            let peer = PeerId::new("b");
            let call = a.run(
                remote!(peer, [], { std::future::pending::<()>().await })
                    .timeout(Duration::from_millis(50)),
            );
            let result = tokio::time::timeout(Duration::from_secs(5), call)
                .await
                .expect("the call's own timeout fires");
            assert!(
                matches!(result, Err(Error::Timeout { .. })),
                "{keepalive:?}: {result:?}"
            );
        }
    }

    /// Deadlines follow the runtime's clock: paused, a call times out after its timeout of
    /// virtual time, however much real time went by before.
    #[tokio::test(start_paused = true)]
    async fn a_paused_clock_times_calls_out_in_its_own_time() {
        let (a, _b) = linked().await;
        std::thread::sleep(Duration::from_millis(300));
        let peer = PeerId::new("b");
        let started = tokio::time::Instant::now();
        let call = a.run(
            remote!(peer, [], { std::future::pending::<()>().await })
                .timeout(Duration::from_millis(50)),
        );
        assert!(matches!(call.await, Err(Error::Timeout { .. })));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(50) && waited < Duration::from_millis(200),
            "timed out after {waited:?} of the paused clock"
        );
    }

    #[tokio::test]
    async fn closing_fails_pending_calls_and_stops_served_bodies() {
        let (a, b) = linked().await;
        let peer = PeerId::new("b");
        let call = tokio::spawn(a.run(remote!(peer, [], {
            let _stopped = SetOnDrop;
            tokio::time::sleep(Duration::from_secs(60)).await;
        })));
        for _ in 0..100 {
            if in_flight(&b, "a").1 == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(in_flight(&b, "a"), (0, 1), "b serves the body");
        let conn_b = b.connection(&PeerId::new("a")).expect("connected");
        b.shutdown();
        assert_eq!(conn_b.load(), (0, 0));
        for _ in 0..200 {
            if BODY_STOPPED.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            BODY_STOPPED.load(std::sync::atomic::Ordering::SeqCst),
            "the body's future was not dropped"
        );
        let result = tokio::time::timeout(Duration::from_secs(1), call)
            .await
            .expect("the caller hears of it")
            .expect("task");
        assert!(
            matches!(result, Err(Error::Disconnected { .. })),
            "{result:?}"
        );
    }
}

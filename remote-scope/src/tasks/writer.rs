//! The outbound path: the writer task sends what the outbox holds, a batch at a time with one
//! flush; frames that are not encoded yet go through the outbound middleware first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Sink, SinkExt};

use crate::connection::Connection;
use crate::error::Error;
use crate::node::Node;
use crate::outbox::Outgoing;
use crate::protocol::{self, Frame};

/// The most frames the writer sends without finding the outbox empty before it yields to the
/// node's other work: a peer that reads as fast as this node answers could keep it busy for good.
const FRAMES_PER_TURN: usize = 128;

/// The queue capacity a connection keeps between bursts.
const OUTBOX_KEEP: usize = 1024;

pub(super) async fn run<Tx>(node: Node, conn: Arc<Connection>, mut sink: Tx)
where
    Tx: Sink<Bytes, Error = Error> + Unpin,
{
    // A closing connection sends what it still has queued, but a peer that does not read
    // would keep the writer (and the socket, and the queue) forever: once closing, it is given
    // up when a whole handshake time limit passes without a frame going out.
    let grace = node.config().handshake_timeout;
    let frames_out = AtomicU64::new(0);
    let finished = {
        let writing = async {
            let mut batch = Vec::new();
            // Everything queued goes out with one flush.
            // Frames written since the queue was last found empty: a peer that reads as fast
            // as this node answers could keep it from ever being empty, and the writer from
            // ever letting other tasks run.
            let mut turn = 0;
            while futures::future::poll_fn(|cx| {
                let taken = conn.link.outbox().poll_take(cx, &mut batch);
                if taken.is_pending() {
                    turn = 0;
                }
                taken
            })
            .await
            {
                turn += batch.len();
                if turn >= FRAMES_PER_TURN {
                    turn = 0;
                    crate::runtime::yield_now().await;
                }
                let mut bytes = 0;
                let mut frames = batch.drain(..);
                let mut next = frames.next();
                while let Some(frame) = next.take() {
                    bytes += frame.size();
                    let frame = match frame {
                        Outgoing::Encoded(first) => {
                            next = write_encoded(
                                &mut sink,
                                first,
                                &mut frames,
                                &mut bytes,
                                &frames_out,
                            )
                            .await?;
                            continue;
                        }
                        Outgoing::Frame(frame) => frame,
                    };
                    write_frame(&node, &conn, &mut sink, frame).await?;
                    frames_out.fetch_add(1, Ordering::Relaxed);
                    next = frames.next();
                }
                drop(frames);
                // The two queues take turns here: a burst does not leave them large for good.
                if batch.capacity() > OUTBOX_KEEP {
                    batch = Vec::new();
                }
                sink.flush().await?;
                conn.link.outbox().written(bytes);
            }
            Ok::<(), Error>(())
        };
        let cut_off = {
            let (closed, node, frames_out) = (conn.closed(), node.clone(), &frames_out);
            async move {
                closed.await;
                loop {
                    let before = frames_out.load(Ordering::Relaxed);
                    node.runtime().sleep(grace).await;
                    if frames_out.load(Ordering::Relaxed) == before {
                        return;
                    }
                }
            }
        };
        futures::pin_mut!(writing, cut_off);
        match futures::future::select(writing, cut_off).await {
            futures::future::Either::Left((result, _)) => result.map(|()| true),
            futures::future::Either::Right(_) => Ok(false),
        }
    };
    // Nothing more will be written: free what is still queued.
    conn.link.outbox().discard();
    match finished {
        Ok(true) => {
            let _ = futures::future::select(sink.close(), node.runtime().sleep(grace)).await;
        }
        Ok(false) => {
            tracing::warn!(within = ?grace, "the peer did not take what was left to send; dropping the connection");
        }
        Err(e) => tracing::warn!(error = %e, "writing failed; closing the connection"),
    }
    drop(sink);
    node.forget_connection(&conn);
}

/// Sends `first` and the encoded frames that follow it in `frames` from one poll loop, without
/// a future per frame (most batches are all encoded frames, and the frames are small). Returns
/// the first frame that is not encoded, if one comes; `bytes` counts those sent after `first`,
/// and `frames_out` every frame sent.
async fn write_encoded<Tx>(
    sink: &mut Tx,
    first: Bytes,
    frames: &mut impl Iterator<Item = Outgoing>,
    bytes: &mut usize,
    frames_out: &AtomicU64,
) -> Result<Option<Outgoing>, Error>
where
    Tx: Sink<Bytes, Error = Error> + Unpin,
{
    let mut item = Some(first);
    let mut other = None;
    futures::future::poll_fn(|cx| {
        let mut sent = 0;
        let result = loop {
            if item.is_none() {
                match frames.next() {
                    Some(Outgoing::Encoded(frame)) => {
                        *bytes += Outgoing::encoded_size(&frame);
                        item = Some(frame);
                    }
                    not_encoded => {
                        other = not_encoded;
                        break Ok(());
                    }
                }
            }
            match sink.poll_ready_unpin(cx) {
                std::task::Poll::Ready(Ok(())) => {}
                std::task::Poll::Ready(Err(e)) => break Err(e),
                std::task::Poll::Pending => {
                    frames_out.fetch_add(sent, Ordering::Relaxed);
                    return std::task::Poll::Pending;
                }
            }
            if let Some(frame) = item.take() {
                if let Err(e) = sink.start_send_unpin(frame) {
                    break Err(e);
                }
                sent += 1;
            }
        };
        frames_out.fetch_add(sent, Ordering::Relaxed);
        std::task::Poll::Ready(result)
    })
    .await?;
    Ok(other)
}

/// Sends a frame that is not encoded yet: through the middleware's outbound stack, then
/// encoded.
async fn write_frame<Tx>(
    node: &Node,
    conn: &Connection,
    sink: &mut Tx,
    frame: Frame,
) -> Result<(), Error>
where
    Tx: Sink<Bytes, Error = Error> + Unpin,
{
    let Some(frame) = node
        .middleware()
        .iter()
        .rev()
        .try_fold(frame, |frame, m| m.outbound(conn.link(), frame))
    else {
        return Ok(());
    };
    sink.feed(Bytes::from(protocol::encode(&frame)?)).await
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use crate::error::Error;

    /// A sink that is not ready at every third `poll_ready` (and wakes its task, as a socket
    /// that drained would), and fails once it holds `fail_after` frames.
    struct Choppy {
        sent: Vec<bytes::Bytes>,
        polls: u32,
        fail_after: Option<usize>,
    }

    impl futures::Sink<bytes::Bytes> for Choppy {
        type Error = Error;

        fn poll_ready(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Error>> {
            if self.fail_after.is_some_and(|n| self.sent.len() >= n) {
                return std::task::Poll::Ready(Err(Error::transport("the socket broke")));
            }
            self.polls += 1;
            if self.polls.is_multiple_of(3) {
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            std::task::Poll::Ready(Ok(()))
        }

        fn start_send(
            mut self: std::pin::Pin<&mut Self>,
            frame: bytes::Bytes,
        ) -> Result<(), Error> {
            self.sent.push(frame);
            Ok(())
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_close(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Error>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    fn encoded(n: u8, len: usize) -> super::Outgoing {
        super::Outgoing::Encoded(bytes::Bytes::from(vec![n; len]))
    }

    /// The writer's run of encoded frames: in order across a sink that keeps saying "not
    /// yet", up to the first frame the middleware has to see (handed back), with every byte
    /// and frame counted; and after an error, the frames sent before it still counted.
    #[tokio::test]
    async fn encoded_frames_go_out_in_order_and_counted_until_a_frame_of_another_kind() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let mut sink = Choppy {
            sent: Vec::new(),
            polls: 0,
            fail_after: None,
        };
        let frames_out = AtomicU64::new(0);
        let mut bytes = 0;
        let mut rest = (1..=9_u8)
            .map(|n| encoded(n, usize::from(n)))
            .chain([super::Outgoing::Frame(crate::protocol::Frame::Ping)])
            .chain([encoded(10, 10)]);
        let first = bytes::Bytes::from(vec![0; 3]);
        let other = super::write_encoded(&mut sink, first, &mut rest, &mut bytes, &frames_out)
            .await
            .expect("written");
        assert!(matches!(
            other,
            Some(super::Outgoing::Frame(crate::protocol::Frame::Ping))
        ));
        let firsts: Vec<u8> = sink.sent.iter().map(|frame| frame[0]).collect();
        assert_eq!(firsts, (0..=9).collect::<Vec<u8>>());
        // `bytes` counts what followed the first frame: 1 + 2 + ... + 9, and their slots.
        let slot = super::Outgoing::encoded_size(&bytes::Bytes::new());
        assert_eq!(bytes, 45 + 9 * slot);
        assert_eq!(frames_out.load(Ordering::Relaxed), 10);
        // What comes after the other frame is still there for the writer's next turn.
        assert!(matches!(rest.next(), Some(super::Outgoing::Encoded(_))));

        let mut broken = Choppy {
            sent: Vec::new(),
            polls: 0,
            fail_after: Some(4),
        };
        let mut rest = (1..10_u8).map(|n| encoded(n, 1));
        let failed = super::write_encoded(
            &mut broken,
            bytes::Bytes::from_static(b"x"),
            &mut rest,
            &mut bytes,
            &frames_out,
        )
        .await;
        assert!(matches!(failed, Err(Error::Transport { .. })), "{failed:?}");
        assert_eq!(broken.sent.len(), 4);
        assert_eq!(frames_out.load(Ordering::Relaxed), 14);
    }
}

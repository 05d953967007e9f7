//! The outbound path: the writer task sends what the outbox holds, a batch at a time from one
//! poll loop and with one flush; frames that are not encoded yet go through the outbound
//! middleware and the codec on the way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Sink, SinkExt};

use crate::buffers::BATCH_KEEP;
use crate::connection::Connection;
use crate::error::Error;
use crate::node::Node;
use crate::outbox::Outgoing;
use crate::protocol::{self, Frame};

/// The most frames the writer sends without finding the outbox empty before it yields to the
/// node's other work: a peer that reads as fast as this node answers could keep it busy for good.
const FRAMES_PER_TURN: usize = 128;

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
                let encode = |frame| through_middleware(&node, &conn, frame);
                send_all(&mut sink, &mut frames, encode, &mut bytes, &frames_out).await?;
                drop(frames);
                // The two queues take turns here: a burst does not leave them large for good.
                if batch.capacity() > BATCH_KEEP {
                    batch = Vec::new();
                }
                sink.flush().await?;
                conn.link.outbox().written(bytes);
            }
            Ok::<(), Error>(())
        };
        let cut_off = {
            let (conn, node, frames_out) = (&conn, node.clone(), &frames_out);
            async move {
                conn.closing().await;
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

/// A frame that is not encoded yet, as it goes on the wire: through the outbound middleware
/// (`None` if a layer consumed it), then encoded. Synchronous, so every frame of a batch goes
/// out from one poll loop, encoded or not.
#[cold]
fn through_middleware(
    node: &Node,
    conn: &Connection,
    frame: Frame,
) -> Result<Option<Bytes>, Error> {
    let through = node
        .middleware()
        .iter()
        .rev()
        .try_fold(frame, |frame, m| m.outbound(conn.link(), frame));
    match through {
        Some(frame) => protocol::encode(&frame).map(Some),
        None => Ok(None),
    }
}

/// Sends every frame of `frames` from one poll loop, without a future per frame (the frames of
/// a batch are many and small); one not yet encoded is handed to `encode` on the way. `bytes`
/// counts what the outbox counted for each frame taken, also those middleware consumed (a
/// failure ends the writer, and the outbox with it); `frames_out` counts those sent, also when
/// a later one fails.
async fn send_all<Tx>(
    sink: &mut Tx,
    frames: &mut impl Iterator<Item = Outgoing>,
    mut encode: impl FnMut(Frame) -> Result<Option<Bytes>, Error>,
    bytes: &mut usize,
    frames_out: &AtomicU64,
) -> Result<(), Error>
where
    Tx: Sink<Bytes, Error = Error> + Unpin,
{
    let mut item = None;
    futures::future::poll_fn(|cx| {
        let mut sent = 0;
        let result = loop {
            if item.is_none() {
                let Some(frame) = frames.next() else {
                    break Ok(());
                };
                *bytes += frame.size();
                item = match frame {
                    Outgoing::Encoded(frame) => Some(frame),
                    Outgoing::Frame(frame) => match encode(frame) {
                        Ok(Some(frame)) => Some(frame),
                        Ok(None) => continue,
                        Err(e) => break Err(e),
                    },
                };
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
    .await
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use crate::error::Error;
    use crate::protocol::Frame;

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

    /// Stands for the outbound middleware and the codec: a ping is consumed, a cancel fails to
    /// encode, any other frame is encoded as its kind's first byte.
    fn encode(frame: Frame) -> Result<Option<bytes::Bytes>, Error> {
        match frame {
            Frame::Ping => Ok(None),
            Frame::Cancel(_) => Err(Error::protocol("could not encode a frame")),
            _ => Ok(Some(bytes::Bytes::from_static(&[200]))),
        }
    }

    /// A batch goes out in order across a sink that keeps saying "not yet": encoded frames as
    /// they are, others encoded on the way or consumed, every frame counted in `bytes` as the
    /// outbox counted it; a frame that fails to encode stops the batch there; and after a
    /// failure of the sink the frames sent before it are still counted.
    #[tokio::test]
    async fn a_batch_goes_out_in_order_and_every_frame_sent_is_counted_even_after_a_failure() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let mut sink = Choppy {
            sent: Vec::new(),
            polls: 0,
            fail_after: None,
        };
        let frames_out = AtomicU64::new(0);
        let mut bytes = 0;
        let batch: Vec<super::Outgoing> = (0..5_u8)
            .map(|n| encoded(n, usize::from(n) + 1))
            .chain([
                super::Outgoing::Frame(Frame::Pong),
                super::Outgoing::Frame(Frame::Ping),
            ])
            .chain((5..10_u8).map(|n| encoded(n, usize::from(n) + 1)))
            .collect();
        let counted: usize = batch.iter().map(super::Outgoing::size).sum();
        super::send_all(
            &mut sink,
            &mut batch.into_iter(),
            encode,
            &mut bytes,
            &frames_out,
        )
        .await
        .expect("written");
        let firsts: Vec<u8> = sink.sent.iter().map(|frame| frame[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 3, 4, 200, 5, 6, 7, 8, 9]);
        assert_eq!(bytes, counted);
        assert_eq!(frames_out.load(Ordering::Relaxed), 11);

        let mut rest = [
            encoded(10, 1),
            encoded(11, 1),
            super::Outgoing::Frame(Frame::Cancel(1)),
        ]
        .into_iter()
        .chain([encoded(12, 1)]);
        let failed = super::send_all(&mut sink, &mut rest, encode, &mut bytes, &frames_out).await;
        assert!(matches!(failed, Err(Error::Protocol { .. })), "{failed:?}");
        assert_eq!(sink.sent.len(), 13);
        assert_eq!(frames_out.load(Ordering::Relaxed), 13);
        assert!(rest.next().is_some(), "the frame after the failure is left");

        let mut broken = Choppy {
            sent: Vec::new(),
            polls: 0,
            fail_after: Some(4),
        };
        let mut batch = (0..10_u8).map(|n| encoded(n, 1));
        let failed =
            super::send_all(&mut broken, &mut batch, encode, &mut bytes, &frames_out).await;
        assert!(matches!(failed, Err(Error::Transport { .. })), "{failed:?}");
        assert_eq!(broken.sent.len(), 4);
        assert_eq!(frames_out.load(Ordering::Relaxed), 17);
    }
}

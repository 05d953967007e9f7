//! The inbound path: the reader task takes frames off the transport, in turns of bounded work
//! and within the peer's rate, and handles each: answers, cancels, pings, and the bodies it
//! starts, which it hands to the connection's server task.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::bodies::{Queue, Queued};
use crate::connection::Connection;
use crate::error::Error;
use crate::node::Node;
use crate::outbox::Outgoing;
use crate::pending::Reply;
use crate::protocol::{self, Frame, Invoke, InvokeResult, Outcome, Received};
use crate::rate::Throttle;
use crate::registry::LastBody;
use crate::serve;
use crate::sync::lock;
use crate::trace_context::TraceContext;

impl Connection {
    /// Handles one inbound frame after the handshake; returns the body it starts, if any. The
    /// reader holds the bodies of its current read in `held`; any frame but an `Invoke`, as the
    /// middleware made it, hands them to the body task first, so a `Cancel` finds the bodies
    /// read before it. `last_body` is the body the reader looked up last. An error closes the
    /// connection.
    fn receive(
        self: &Arc<Self>,
        node: &Node,
        bodies: &Queue,
        frame: Frame,
        held: &mut Vec<Queued>,
        last_body: &mut LastBody,
    ) -> Result<Option<Queued>, Error> {
        let frame = if self.direct {
            frame
        } else {
            let through = node
                .middleware()
                .iter()
                .try_fold(frame, |frame, m| m.inbound(&self.link, frame));
            match through {
                Some(frame) => frame,
                None => return Ok(None),
            }
        };
        if !matches!(
            frame,
            Frame::Invoke(_) | Frame::InvokeOnce(_) | Frame::InvokeTraced(_)
        ) {
            bodies.push(held);
        }
        match frame {
            Frame::Invoke(invoke) => self.start(node, invoke, last_body, None),
            Frame::InvokeTraced(traced) => {
                let protocol::InvokeTraced { trace, invoke } = *traced;
                self.start(node, invoke, last_body, Some(trace))
            }
            Frame::InvokeOnce(protocol::InvokeOnce { key, invoke }) => {
                let id = invoke.id;
                let begin = node
                    .once()
                    .begin(self.peer(), key, (Arc::downgrade(self), id));
                match begin {
                    crate::once::Begin::Run => {
                        self.keyed(id, key);
                        let started = self.start(node, invoke, last_body, None);
                        // Refused without an answer (a repeated request id): not a run.
                        if !matches!(started, Ok(Some(_))) {
                            self.keyed_over(id, None);
                        }
                        started
                    }
                    crate::once::Begin::Answer(result) => {
                        self.answer(id, result);
                        Ok(None)
                    }
                    crate::once::Begin::Joined => Ok(None),
                }
            }
            Frame::Result(InvokeResult { id, outcome }) => {
                let reply = || match outcome {
                    Outcome::Value(v) => Reply::Value(received(v)),
                    Outcome::Failure(f) => Reply::Failure(f),
                };
                // No caller: it gave up (timeout, dropped future); the answer is moot.
                let caller = lock(&self.pending).answer(id, reply);
                if let Some(caller) = caller {
                    caller.wake();
                }
                Ok(None)
            }
            Frame::Message(bytes) => {
                node.deliver_message(self.peer(), bytes.into());
                Ok(None)
            }
            Frame::Cancel(id) => {
                // Unknown ids are calls that already finished: nothing to stop.
                bodies.cancel(id);
                Ok(None)
            }
            Frame::Ping => {
                self.send_owed(Outgoing::Frame(Frame::Pong));
                Ok(None)
            }
            // Hearing it is all keep-alive needs.
            Frame::Pong => Ok(None),
            // The connector refuses this side's bodies after this side is done.
            Frame::Reject(protocol::Reject::MissingBodies { missing }) => {
                Err(Error::RequiredBodies {
                    peer: Some(self.peer().clone()),
                    missing,
                })
            }
            Frame::Hello(_) | Frame::Bodies(_) | Frame::Reject(_) => {
                Err(Error::protocol("handshake frame after the handshake"))
            }
        }
    }

    /// Starts the body of an `Invoke`, unless the peer may not run it, sent too much, or sent
    /// this request id before: a request runs its body at most once, so a repeated frame is
    /// ignored (the first one's result answers it).
    fn start(
        &self,
        node: &Node,
        invoke: Invoke,
        last_body: &mut LastBody,
        trace: Option<TraceContext>,
    ) -> Result<Option<Queued>, Error> {
        let id = invoke.id;
        {
            let mut running = lock(&self.running);
            if running.closed {
                return Ok(None);
            }
            if !running.seen.first_time(id) {
                tracing::debug!(request = id, peer = %self.peer(), "repeated request ignored");
                return Ok(None);
            }
            if node.is_draining() {
                drop(running);
                self.answer(id, Err(protocol::Failure::ShuttingDown));
                return Ok(None);
            }
            if !node.authorizes(self.peer(), &invoke.body) {
                drop(running);
                tracing::warn!(body = &*invoke.body, peer = %self.peer(), "call not authorized");
                self.answer(id, Err(protocol::Failure::NotAuthorized));
                return Ok(None);
            }
            let capture_limit = node.config().max_capture_size;
            if invoke.captures.len() > capture_limit {
                drop(running);
                let limit = u64::try_from(capture_limit).unwrap_or(u64::MAX);
                self.answer(id, Err(protocol::Failure::CapturesTooLarge { limit }));
                return Ok(None);
            }
            let limit = node.config().max_bodies_per_connection;
            if self.started.load(Ordering::Acquire) >= limit {
                drop(running);
                let limit = u32::try_from(limit).unwrap_or(u32::MAX);
                self.answer(id, Err(protocol::Failure::Busy { limit }));
                return Ok(None);
            }
            self.started.fetch_add(1, Ordering::AcqRel);
        }
        let span = call_span!(
            "serve",
            body = &*invoke.body,
            request = id,
            peer = %self.peer(),
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            parent_id = tracing::field::Empty,
        );
        // The body's span: a child of the caller's, in the caller's trace (before the span is
        // first entered, which starts it).
        let body = trace.map(|caller| {
            let caller = caller.bounded();
            let body = crate::trace_context::for_body(&span, &caller);
            crate::trace_context::record(&span, &body, Some(caller.span_id));
            body
        });
        let handler = node.registry().handler_after(&invoke.body, last_body);
        let captures = received(invoke.captures);
        let mut work = crate::trace::in_span(&span, || serve::dispatch(node, handler, captures));
        if let Some(body) = body {
            work = serve::Served::traced(body, work);
        }
        let deadline = Duration::from_millis(invoke.timeout_ms);
        Ok(Some(Queued {
            id,
            work,
            deadline,
            span,
        }))
    }
}

/// The most frames one turn of the reader takes before it yields to the node's other work
/// (the connection's body task, other connections, timers), however fast frames keep coming.
/// Without it a peer that sends without pause, frames that need no answer say, would hold a
/// worker thread for as long as it keeps sending.
const FRAMES_PER_TURN: usize = 128;

/// The most bytes of frames one turn of the reader takes (a larger frame is still taken whole).
/// Far above one large frame: a yield after each 1 MiB frame would cost bulk transfers a third
/// of their rate, as the reader would run again before the body let go of the frame's buffer.
const BYTES_PER_TURN: usize = 16 << 20;

/// Why a turn of the reader ended.
enum Turn {
    /// It took its share: yield, then go on.
    Done,
    /// The peer is over its [`RateLimit`](crate::RateLimit): stop reading this long.
    Throttled(Duration),
    /// The stream ended, or failed.
    End(Option<Error>),
}

pub(super) async fn run<Rx>(node: Node, conn: Arc<Connection>, bodies: Arc<Queue>, mut stream: Rx)
where
    Rx: Stream<Item = Result<Bytes, Error>> + Unpin,
{
    let max = node.config().max_frame_size;
    let mut throttle = Throttle::new(node.config().rate_limit);
    // The bodies of what was read in one turn, handed to the server task together (see
    // `crate::bodies`) when the turn ends: one lock and one wake-up for them all instead of
    // one each. The frame count keep-alive watches moves then too.
    let mut started = Vec::new();
    let mut last_body = LastBody::default();
    let mut heard = 0;
    // Frames and bytes read since the throttle last counted them.
    let (mut frames, mut bytes) = (0_u64, 0_u64);
    let hand_over = |started: &mut Vec<Queued>, heard: &mut u64| {
        bodies.push(started);
        conn.heard
            .fetch_add(std::mem::take(heard), Ordering::Relaxed);
    };
    // Reads the clock only when something was read: a wake-up that finds nothing costs none.
    let mut over_rate = |frames: &mut u64, bytes: &mut u64| {
        let (f, b) = (std::mem::take(frames), std::mem::take(bytes));
        (f > 0).then(|| throttle.count(node.runtime().now(), f, b))?
    };
    let end = loop {
        let turn = futures::future::poll_fn(|cx| {
            let (mut turn_frames, mut turn_bytes) = (0, 0);
            loop {
                if turn_frames >= FRAMES_PER_TURN || turn_bytes >= BYTES_PER_TURN {
                    hand_over(&mut started, &mut heard);
                    return std::task::Poll::Ready(match over_rate(&mut frames, &mut bytes) {
                        Some(wait) => Turn::Throttled(wait),
                        None => Turn::Done,
                    });
                }
                let message = match stream.poll_next_unpin(cx) {
                    std::task::Poll::Pending => {
                        hand_over(&mut started, &mut heard);
                        return match over_rate(&mut frames, &mut bytes) {
                            Some(wait) => std::task::Poll::Ready(Turn::Throttled(wait)),
                            None => std::task::Poll::Pending,
                        };
                    }
                    std::task::Poll::Ready(None) => return std::task::Poll::Ready(Turn::End(None)),
                    std::task::Poll::Ready(Some(Err(e))) => {
                        return std::task::Poll::Ready(Turn::End(Some(e)))
                    }
                    std::task::Poll::Ready(Some(Ok(message))) => message,
                };
                heard += 1;
                turn_frames += 1;
                turn_bytes += message.len();
                frames += 1;
                bytes += message.len() as u64;
                let received = protocol::decode_with(message, max, |name| {
                    node.registry().name_after(name, &mut last_body)
                })
                .and_then(|frame| {
                    conn.receive(&node, &bodies, frame, &mut started, &mut last_body)
                });
                match received {
                    Ok(Some(body)) => started.push(body),
                    Ok(None) => {}
                    Err(e) => return std::task::Poll::Ready(Turn::End(Some(e))),
                }
            }
        })
        .await;
        // Taken apart before waiting, so the turn (with room for an error) is not kept in the
        // reader's state while it waits: every idle connection holds that state.
        let paused = match turn {
            Turn::Done => None,
            Turn::Throttled(wait) => Some(wait),
            Turn::End(end) => break end,
        };
        match paused {
            None => crate::runtime::yield_now().await,
            Some(wait) => {
                tracing::debug!(
                    ?wait,
                    "the peer sends faster than its rate limit; reading paused"
                );
                node.runtime().sleep(wait).await;
            }
        }
    };
    // Handed over as they would have been had the end come later; the close that follows the
    // end then stops them with any other body not yet run.
    hand_over(&mut started, &mut heard);
    match end {
        None => tracing::debug!("peer closed the connection"),
        Some(e) => tracing::warn!(error = %e, "closing the connection"),
    }
}

/// A part of a received frame (a value for a waiting call, a body's captures) as bytes to keep:
/// inline when a few, so the thread it goes to does not touch the message's reference count;
/// as it is when large, or when it is nobody else's (middleware made it); else copied, so that
/// a caller or a body not yet polled does not keep the transport's whole read buffer alive for
/// a few bytes of it.
fn received(part: Bytes) -> Received {
    Received::inline(&part).unwrap_or_else(|| {
        Received::Bytes(
            if part.len() >= crate::buffers::SHARE_ABOVE || part.is_unique() {
                part
            } else {
                protocol::copy(&part)
            },
        )
    })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::{received, Bytes, Received};

    #[test]
    fn a_received_part_shares_the_message_only_when_large_or_its_own() {
        use crate::buffers::{INLINE_RECEIVED, SHARE_ABOVE};

        let message = Bytes::from(vec![7; 2 * SHARE_ABOVE]);
        let inside = |part: &Received| message.as_ptr_range().contains(&part.as_ptr());
        let few = received(message.slice(..INLINE_RECEIVED));
        assert!(matches!(few, Received::Inline { .. }));
        let some = received(message.slice(..=INLINE_RECEIVED));
        assert!(
            matches!(some, Received::Bytes(_)) && !inside(&some),
            "copied out"
        );
        let many = received(message.slice(1..=SHARE_ABOVE));
        assert!(inside(&many), "shared");
        // Made by middleware and held by no one else: kept as it is, whatever its size.
        let own = Bytes::from(vec![8; INLINE_RECEIVED + 1]);
        let at = own.as_ptr();
        let kept = received(own);
        assert_eq!(kept.as_ptr(), at);
        assert_eq!(
            (&*few, &*some, &*many, &*kept),
            (
                &message[..INLINE_RECEIVED],
                &message[..=INLINE_RECEIVED],
                &message[1..=SHARE_ABOVE],
                &[8; INLINE_RECEIVED + 1][..]
            )
        );
    }
}

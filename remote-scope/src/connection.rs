//! One connection to one peer: the calls in flight, the bodies being served for it, and the two
//! tasks that move its frames. Transport-agnostic: anything that is a stream and sink of binary
//! messages will do (see [`crate::transport`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::{AbortHandle, Abortable, FutureExt, Shared};
use futures::task::AtomicWaker;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tracing::Instrument;

use crate::bodies::Queued;
use crate::middleware::{Link, Outgoing};
use crate::outbox::NodeQueue;
pub(crate) use crate::pending::Reply;
use crate::pending::{Closed, Ended, Pending};
use crate::protocol::Encoded;
use crate::protocol::{
    self, Frame, FrameRef, InvokeRef, InvokeResult, InvokeResultRef, Outcome, OutcomeRef, Received,
};
use crate::rate::Throttle;
use crate::registry::LastBody;
use crate::seen::Seen;
use crate::{serve, Error, Node, PeerId};

/// The queue capacity a connection keeps between bursts.
const OUTBOX_KEEP: usize = 1024;

/// Locks a mutex whose data stays consistent even if a holder panicked (every critical section
/// here is a single map operation).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) struct Connection {
    link: Link,
    /// Calls this side made, by request id. Guarded together with `closed`, so a call is either
    /// registered before the connection closes (and then failed by `close`) or refused.
    pending: Mutex<Pending>,
    /// Which requests the peer sent already. Guarded together with its own `closed`, so a
    /// body either starts before the connection closes (and is then stopped by `close`) or not
    /// at all.
    running: Mutex<Running>,
    /// Bodies started for the peer and not over yet, queued, polled or spawned.
    started: AtomicUsize,
    next_id: AtomicU64,
    reader: Mutex<Option<AbortHandle>>,
    /// Bodies queued for the server task.
    bodies: crate::bodies::Queue,
    closing: AtomicBool,
    /// Dropped by `close`, which completes `closed`.
    on_close: Mutex<Option<oneshot::Sender<()>>>,
    closed: Shared<oneshot::Receiver<()>>,
    /// Frames received so far: keep-alive watches it move.
    heard: AtomicU64,
    /// Wakes the connection's timer task (see [`crate::timers`]) when a call's deadline comes
    /// before the one it sleeps towards.
    timer: AtomicWaker,
    rearm: AtomicBool,
    /// No middleware: frames are encoded where they are made and decoded without copies.
    direct: bool,
}

struct Running {
    closed: bool,
    seen: Seen,
}

impl Connection {
    // On wasm32 bodies are not `Send` (the page has one thread), so neither is a connection
    // holding queued ones; the `Arc` is still what the tasks share.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub(crate) fn new(
        peer: PeerId,
        direct: bool,
        max_queued_bytes: usize,
        node_queue: Arc<NodeQueue>,
    ) -> Arc<Connection> {
        let outbox = Arc::new(crate::outbox::Outbox::new(max_queued_bytes, node_queue));
        let (on_close, closed) = oneshot::channel();
        Arc::new(Connection {
            link: Link::new(peer, outbox),
            pending: Mutex::new(Pending::new()),
            running: Mutex::new(Running {
                closed: false,
                seen: Seen::default(),
            }),
            started: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            reader: Mutex::new(None),
            bodies: crate::bodies::Queue::default(),
            closing: AtomicBool::new(false),
            on_close: Mutex::new(Some(on_close)),
            closed: closed.shared(),
            heard: AtomicU64::new(0),
            timer: AtomicWaker::new(),
            rearm: AtomicBool::new(false),
            direct,
        })
    }

    pub(crate) fn peer(&self) -> &PeerId {
        self.link.peer()
    }

    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    /// Sends an `Invoke` and returns the call's handle; dropping the handle forgets the call.
    /// The call fails with [`Reply::TimedOut`] at `deadline` (on the runtime's clock), which is
    /// `wait` from now: the peer is told `wait`, so it stops the body then. `caller` is woken
    /// when the call ends: its reply, its deadline or the connection's close.
    pub(crate) fn start_call(
        self: &Arc<Self>,
        body: &'static str,
        captures: Encoded,
        deadline: Duration,
        wait: Duration,
        caller: &Waker,
    ) -> Result<PendingCall, Error> {
        let timeout_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let rearm = lock(&self.pending)
            .register(id, deadline, caller)
            .map_err(|Closed| Error::NotConnected {
                peer: self.peer().clone(),
            })?;
        if rearm {
            self.rearm.store(true, Ordering::Release);
            self.timer.wake();
        }
        let sent = if self.direct {
            let frame = protocol::invoke_frame(id, body, timeout_ms, captures);
            self.link.enqueue(Outgoing::Encoded(frame))
        } else {
            self.link.send(Frame::Invoke(protocol::Invoke {
                id,
                body: body.to_owned(),
                timeout_ms,
                captures: captures.as_slice().to_vec(),
            }))
        };
        if let Err(e) = sent {
            // Not sent, so there is nothing for the peer to stop: forgotten without a `Cancel`.
            lock(&self.pending).forget(id);
            return Err(e);
        }
        Ok(PendingCall {
            conn: Arc::clone(self),
            id,
            answered: false,
        })
    }

    /// Handles one inbound frame after the handshake; returns the body it starts, if any. The
    /// reader holds the bodies of its current read in `held`; any frame but an `Invoke`, as the
    /// middleware made it, hands them to the body task first, so a `Cancel` finds the bodies
    /// read before it. `last_body` is the body the reader looked up last. An error closes the
    /// connection.
    fn receive(
        self: &Arc<Self>,
        node: &Node,
        message: &Bytes,
        frame: FrameRef<'_>,
        held: &mut Vec<Queued>,
        last_body: &mut LastBody,
    ) -> Result<Option<Queued>, Error> {
        let owned;
        let frame = if self.direct {
            frame
        } else {
            let through = node
                .middleware()
                .iter()
                .try_fold(frame.into_owned(), |frame, m| m.inbound(&self.link, frame));
            match through {
                Some(frame) => {
                    owned = frame;
                    owned.as_ref()
                }
                None => return Ok(None),
            }
        };
        if !matches!(frame, FrameRef::Invoke(_)) {
            self.bodies.push(held);
        }
        match frame {
            FrameRef::Invoke(invoke) => self.start(node, message, invoke, last_body),
            FrameRef::Result(InvokeResultRef { id, outcome }) => {
                let reply = || match outcome {
                    OutcomeRef::Value(v) => Reply::Value(received(message, v)),
                    OutcomeRef::Failure(f) => Reply::Failure(f),
                };
                // No caller: it gave up (timeout, dropped future); the answer is moot.
                let caller = lock(&self.pending).answer(id, reply);
                if let Some(caller) = caller {
                    caller.wake();
                }
                Ok(None)
            }
            FrameRef::Message(bytes) => {
                node.deliver_message(self.peer(), bytes.to_vec());
                Ok(None)
            }
            FrameRef::Cancel(id) => {
                // Unknown ids are calls that already finished: nothing to stop.
                self.bodies.cancel(id);
                Ok(None)
            }
            FrameRef::Ping => {
                self.send_owed(Outgoing::Frame(Frame::Pong));
                Ok(None)
            }
            // Hearing it is all keep-alive needs.
            FrameRef::Pong => Ok(None),
            FrameRef::Hello(_) | FrameRef::Reject(_) => Err(Error::Protocol {
                reason: "handshake frame after the handshake".into(),
            }),
        }
    }

    /// Starts the body of an `Invoke`, unless the peer may not run it, sent too much, or sent
    /// this request id before: a request runs its body at most once, so a repeated frame is
    /// ignored (the first one's result answers it).
    fn start(
        &self,
        node: &Node,
        message: &Bytes,
        invoke: InvokeRef<'_>,
        last_body: &mut LastBody,
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
            if !node.authorizes(self.peer(), invoke.body) {
                drop(running);
                tracing::warn!(body = invoke.body, peer = %self.peer(), "call not authorized");
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
        let span = call_span!("serve", body = invoke.body, request = id, peer = %self.peer());
        let captures = received(message, invoke.captures);
        let handler = node.registry().handler_after(invoke.body, last_body);
        let work = crate::in_span(&span, || serve::dispatch(node, handler, captures));
        let deadline = Duration::from_millis(invoke.timeout_ms);
        Ok(Some(Queued {
            id,
            work,
            deadline,
            span,
        }))
    }

    pub(crate) fn bodies(&self) -> &crate::bodies::Queue {
        &self.bodies
    }

    /// A body is over: it no longer counts as running, and its result (if it was not stopped)
    /// goes to the peer.
    pub(crate) fn finish(&self, id: u64, result: Option<Result<Encoded, protocol::Failure>>) {
        // `close` already counted every body as over.
        let _ = self
            .started
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if let Some(result) = result {
            self.answer(id, result);
        }
    }

    /// Queues the answer to request `id`.
    fn answer(&self, id: u64, result: Result<Encoded, protocol::Failure>) {
        self.send_owed(match result {
            Ok(value) if self.direct => Outgoing::Encoded(protocol::value_frame(id, value)),
            Ok(value) => Outgoing::Frame(Frame::Result(InvokeResult {
                id,
                outcome: Outcome::Value(value.as_slice().to_vec()),
            })),
            Err(failure) => Outgoing::Frame(Frame::Result(InvokeResult {
                id,
                outcome: Outcome::Failure(failure),
            })),
        });
    }

    /// Queues a frame that must reach the peer whatever it does: an answer, a pong, the cancel
    /// of a call it serves, a keep-alive ping. One that does not fit in the queue means the peer leaves that much
    /// unread: it is disconnected, whatever kind of frame it leaves.
    fn send_owed(&self, frame: Outgoing) {
        if let Err(Error::QueueFull { limit, .. }) = self.link.enqueue(frame) {
            tracing::warn!(peer = %self.peer(), limit, "the peer does not read what it is sent; closing the connection");
            self.close();
        }
    }

    /// Asks the peer whether it is still there (keep-alive).
    pub(crate) fn ping(&self) {
        self.send_owed(Outgoing::Frame(Frame::Ping));
    }

    /// Tells the peer to stop the body of call `id`, which this side no longer waits for.
    pub(crate) fn cancel(&self, id: u64) {
        self.send_owed(Outgoing::Frame(Frame::Cancel(id)));
    }

    /// Ends the connection: fails every call still waiting with `Disconnected` (one answered
    /// already keeps its answer for its caller), stops the bodies being
    /// served for the peer, stops reading and lets the writer close the transport. Idempotent.
    pub(crate) fn close(&self) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        // Each waiting call finds itself gone when woken: `Disconnected`.
        let callers = lock(&self.pending).close();
        for caller in callers {
            caller.wake();
        }
        lock(&self.running).closed = true;
        self.bodies.close();
        self.started.store(0, Ordering::Release);
        if let Some(reader) = lock(&self.reader).take() {
            reader.abort();
        }
        self.link.close();
        drop(lock(&self.on_close).take());
        self.timer.wake();
    }

    /// Fails the calls whose deadline is at or before `now` with [`Reply::TimedOut`] and tells
    /// the peer to stop their bodies. Returns when to look again (the next deadline, or one
    /// of an answered call that is no sooner), which the timer task then sleeps towards.
    pub(crate) fn expire_calls(&self, now: Duration) -> Option<Duration> {
        let expired = match lock(&self.pending).expire(now) {
            Ok(expired) => expired,
            Err(when) => return when,
        };
        for (id, caller) in expired.calls {
            caller.wake();
            self.cancel(id);
        }
        expired.next
    }

    /// Registers the timer task; true if a call with a sooner deadline arrived since the last
    /// time it asked.
    pub(crate) fn poll_rearm(&self, cx: &mut std::task::Context<'_>) -> bool {
        self.timer.register(cx.waker());
        self.rearm.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Frames received so far.
    pub(crate) fn heard(&self) -> u64 {
        self.heard.load(Ordering::Relaxed)
    }

    /// Completes once the connection has closed.
    pub(crate) fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.closed.clone().map(|_| ())
    }

    /// (calls whose end their callers have not taken yet, bodies running for the peer)
    pub(crate) fn load(&self) -> (usize, usize) {
        (
            lock(&self.pending).len(),
            self.started.load(Ordering::Acquire),
        )
    }
}

/// A call waiting for its result. Dropping it removes the call from the connection.
pub(crate) struct PendingCall {
    conn: Arc<Connection>,
    id: u64,
    /// The call's end was taken: nothing to remove on drop.
    answered: bool,
}

impl PendingCall {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn peer(&self) -> &PeerId {
        self.conn.peer()
    }

    /// `Ok(reply)`, or `Err(())` when the connection closed first.
    pub(crate) fn poll_outcome(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Reply, ()>> {
        let outcome = match lock(&self.conn.pending).poll(self.id, cx) {
            std::task::Poll::Pending => return std::task::Poll::Pending,
            std::task::Poll::Ready(outcome) => outcome,
        };
        self.answered = true;
        std::task::Poll::Ready(match outcome {
            Ended::Reply(reply) => Ok(reply),
            Ended::Disconnected => Err(()),
        })
    }
}

impl Drop for PendingCall {
    /// A call still waiting when it is dropped (its future was dropped) tells the serving peer
    /// to stop its body.
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let unanswered = lock(&self.conn.pending).forget(self.id);
        if unanswered {
            self.conn.cancel(self.id);
        }
    }
}

/// Starts the reader and writer tasks of an established connection.
pub(crate) fn spawn_tasks<Tx, Rx>(node: &Node, conn: &Arc<Connection>, sink: Tx, stream: Rx)
where
    Tx: Sink<Bytes, Error = Error> + Unpin + crate::runtime::MaybeSend + 'static,
    Rx: Stream<Item = Result<Bytes, Error>> + Unpin + crate::runtime::MaybeSend + 'static,
{
    // Every poll of the connection's tasks enters it: none at all when nothing listens.
    let span = call_span!("connection", peer = %conn.peer());
    node.runtime().spawn(Box::pin(
        write_loop(node.clone(), Arc::clone(conn), sink).instrument(span.clone()),
    ));
    node.runtime().spawn(Box::pin(
        crate::bodies::serve(node.clone(), Arc::clone(conn)).instrument(span.clone()),
    ));

    let (handle, registration) = AbortHandle::new_pair();
    *lock(&conn.reader) = Some(handle);
    // A `close` that ran before the handle was stored could not stop the reader; stop it here.
    if conn.closing.load(Ordering::Acquire) {
        if let Some(reader) = lock(&conn.reader).take() {
            reader.abort();
        }
    }
    let reader = read_loop(node.clone(), Arc::clone(conn), stream);
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
        crate::timers::run(node.clone(), Arc::clone(conn)).instrument(span),
    ));
}

/// The most frames one turn of the reader takes before it yields to the node's other work
/// (the connection's body task, other connections, timers), however fast frames keep coming.
/// Without it a peer that sends without pause, frames that need no answer say, would hold a
/// worker thread for as long as it keeps sending.
const FRAMES_PER_TURN: usize = 128;

/// The most bytes of frames one turn of the reader takes (a larger frame is still taken whole).
/// Far above one large frame: a yield after each 1 MiB frame cost bulk transfers a third of
/// their rate, as the reader then ran again before the body had let go of the frame's buffer.
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

async fn read_loop<Rx>(node: Node, conn: Arc<Connection>, mut stream: Rx)
where
    Rx: Stream<Item = Result<Bytes, Error>> + Unpin,
{
    let max = node.config().max_frame_size;
    let runtime = node.runtime();
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
        conn.bodies.push(started);
        conn.heard
            .fetch_add(std::mem::take(heard), Ordering::Relaxed);
    };
    let mut over_rate = |frames: &mut u64, bytes: &mut u64| {
        let (f, b) = (std::mem::take(frames), std::mem::take(bytes));
        throttle.count(runtime.now(), f, b)
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
                let received =
                    protocol::decode_ref(&message, max, last_body.name()).and_then(|frame| {
                        conn.receive(&node, &message, frame, &mut started, &mut last_body)
                    });
                match received {
                    Ok(Some(body)) => started.push(body),
                    Ok(None) => {}
                    Err(e) => return std::task::Poll::Ready(Turn::End(Some(e))),
                }
            }
        })
        .await;
        match turn {
            Turn::Done => crate::runtime::yield_now().await,
            Turn::Throttled(wait) => {
                tracing::debug!(
                    ?wait,
                    "the peer sends faster than its rate limit; reading paused"
                );
                runtime.sleep(wait).await;
            }
            Turn::End(end) => break end,
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

/// `part` of a received frame (a value for a waiting call, a body's captures) as bytes of its
/// own: inline when a few, so the thread it goes to does not touch `message`'s reference
/// count; shared with `message` when large and within it (the frame as read, not one that
/// middleware rebuilt); else copied, so that a caller or a body not yet polled does not keep
/// the transport's whole read buffer alive for a few bytes of it.
fn received(message: &Bytes, part: &[u8]) -> Received {
    Received::new(part, || {
        let within = message.as_ptr_range();
        let range = part.as_ptr_range();
        if part.len() >= protocol::SHARE_ABOVE
            && within.start <= range.start
            && range.end <= within.end
        {
            message.slice_ref(part)
        } else {
            protocol::copy(part)
        }
    })
}

async fn write_loop<Tx>(node: Node, conn: Arc<Connection>, mut sink: Tx)
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
    use std::time::Duration;

    use crate::transport::memory;
    use crate::{remote, Error, Node, PeerId};

    #[test]
    fn a_received_part_shares_the_message_only_when_large_and_inside_it() {
        use super::{received, Bytes, Received};
        use crate::protocol::{INLINE_RECEIVED, SHARE_ABOVE};

        let message = Bytes::from(vec![7; 2 * SHARE_ABOVE]);
        let inside = |part: &Received| message.as_ptr_range().contains(&part.as_ptr());
        let few = received(&message, &message[..INLINE_RECEIVED]);
        assert!(matches!(few, Received::Inline { .. }));
        let some = received(&message, &message[..INLINE_RECEIVED + 1]);
        assert!(
            matches!(some, Received::Bytes(_)) && !inside(&some),
            "copied out"
        );
        let many = received(&message, &message[1..=SHARE_ABOVE]);
        assert!(inside(&many), "shared");
        // Rewritten by middleware: not in the message, so copied whatever its size.
        let elsewhere = vec![8; SHARE_ABOVE];
        let rewritten = received(&message, &elsewhere);
        assert!(!inside(&rewritten) && rewritten.as_ptr() != elsewhere.as_ptr());
        assert_eq!(
            (&*few, &*some, &*many, &*rewritten),
            (
                &message[..INLINE_RECEIVED],
                &message[..INLINE_RECEIVED + 1],
                &message[1..=SHARE_ABOVE],
                &elsewhere[..]
            )
        );
    }

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
                return std::task::Poll::Ready(Err(Error::Transport {
                    reason: "the socket broke".into(),
                }));
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

//! One connection to one peer: the calls this side made and waits on, the requests the peer
//! sent, the bodies running for it and the queue of frames going to it; and how it closes.
//! Transport-agnostic: the tasks that move its frames ([`crate::tasks`]) take any stream and
//! sink of binary messages (see [`crate::transport`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Waker;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{AbortHandle, FutureExt, Shared};
use futures::task::AtomicWaker;

use crate::contract::PeerBodies;
use crate::error::Error;
use crate::middleware::Link;
use crate::outbox::{NodeQueue, Outgoing};
use crate::peer_id::PeerId;
use crate::pending::{Closed, Ended, Pending, Reply};
use crate::protocol::{self, Encoded, Frame, InvokeResult, Limits, Outcome};
use crate::seen::Seen;
use crate::sync::lock;
use crate::trace_context::TraceContext;

/// What stops the bodies a connection's tasks run for its peer (the queue they live in is the
/// tasks', above this room).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) trait StopBodies: Send + Sync {
    fn stop(&self);
}

/// What stops the bodies a connection's tasks run for its peer (on wasm32 bodies are not
/// `Send`).
#[cfg(target_arch = "wasm32")]
pub(crate) trait StopBodies {
    fn stop(&self);
}

/// The node's table of idempotency keys: a repeat waits as its connection and request id.
pub(crate) type Once = crate::once::OnceTable<(std::sync::Weak<Connection>, u64)>;

pub(crate) struct Connection {
    pub(crate) link: Link,
    /// Calls this side made, by request id. Guarded together with `closed`, so a call is either
    /// registered before the connection closes (and then failed by `close`) or refused.
    pub(crate) pending: Mutex<Pending>,
    /// Which requests the peer sent already. Guarded together with its own `closed`, so a
    /// body either starts before the connection closes (and is then stopped by `close`) or not
    /// at all.
    pub(crate) running: Mutex<Running>,
    /// Bodies started for the peer and not over yet, queued, polled or spawned.
    pub(crate) started: AtomicUsize,
    pub(crate) next_id: AtomicU64,
    pub(crate) reader: Mutex<Option<AbortHandle>>,
    /// Bodies queued for the server task.
    /// The bodies the connection's tasks run for the peer, stopped when it closes.
    stop_bodies: Mutex<Option<Arc<dyn StopBodies>>>,
    pub(crate) closing: AtomicBool,
    /// The writer, waiting for the connection to close (see [`Connection::closing`]): polled
    /// at every wake-up of the writer, so an atomic waker rather than the shared `closed`.
    closing_waker: AtomicWaker,
    /// Dropped by `close`, which completes `closed`.
    pub(crate) on_close: Mutex<Option<oneshot::Sender<()>>>,
    pub(crate) closed: Shared<oneshot::Receiver<()>>,
    /// Frames received so far: keep-alive watches it move.
    pub(crate) heard: AtomicU64,
    /// Wakes the connection's timer task (see [`crate::timers`]) when a call's deadline comes
    /// before the one it sleeps towards.
    pub(crate) timer: AtomicWaker,
    pub(crate) rearm: AtomicBool,
    /// No middleware: `Invoke`s and values are encoded where they are made, into the headroom
    /// in front of their payload, instead of queued as [`Frame`]s for middleware to see.
    pub(crate) direct: bool,
    /// A web app's session check named the peer (feature `axum`): a later connection named by
    /// a session may replace this one if it falls silent, and nothing else may.
    pub(crate) by_session: AtomicBool,
    /// What the peer accepts, from its `Hello`.
    limits: PeerLimits,
    /// The pools the peer is a member of, from its `Hello`.
    pools: Vec<crate::pool::Pool>,
    /// The node's table of idempotency keys, and how many of this connection's requests
    /// carry one (their answers go through the table; other answers skip it).
    once: Arc<Once>,
    keyed_count: AtomicUsize,
    /// What the peer serves, once the handshake has told; until then a call goes out and the
    /// peer answers for itself.
    peer_bodies: OnceLock<PeerBodies>,
}

/// What the peer accepts, as it told in its `Hello`.
pub(crate) struct PeerLimits {
    told: Limits,
    /// Captures of at most this many bytes fit both limits with any body name of up to
    /// [`NAME_ROOM`] bytes: checked with one comparison on every call.
    surely_fits: usize,
    /// The largest value an answer can carry within the peer's frame limit.
    result_fits: usize,
}

/// The longest body name [`PeerLimits::surely_fits`] allows for.
const NAME_ROOM: usize = 4 << 10;

impl PeerLimits {
    fn new(told: Limits) -> PeerLimits {
        let header = (protocol::invoke_headroom("") + NAME_ROOM) as u64;
        let fits = told
            .max_capture_size
            .min(told.max_frame_size.saturating_sub(header));
        let result_fits = told
            .max_frame_size
            .saturating_sub(protocol::RESULT_HEADROOM as u64);
        PeerLimits {
            told,
            surely_fits: usize::try_from(fits).unwrap_or(usize::MAX),
            result_fits: usize::try_from(result_fits).unwrap_or(usize::MAX),
        }
    }
}

pub(crate) struct Running {
    pub(crate) closed: bool,
    pub(crate) seen: Seen,
    /// Requests with an idempotency key, running: (request id, key).
    pub(crate) keyed: Vec<(u64, u64)>,
}

/// What some calls carry beside their body and captures.
#[derive(Default)]
pub(crate) struct Marks<'a> {
    /// An idempotent call's key (a call to a pool the application may send again).
    pub(crate) key: Option<u64>,
    /// The trace the call is part of, with the call's own span.
    pub(crate) trace: Option<&'a TraceContext>,
}

impl Connection {
    // On wasm32 bodies are not `Send` (the page has one thread), so neither is a connection
    // holding queued ones; the `Arc` is still what the tasks share.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    pub(crate) fn new(
        peer: PeerId,
        direct: bool,
        limits: Limits,
        pools: Vec<crate::pool::Pool>,
        once: Arc<Once>,
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
                keyed: Vec::new(),
            }),
            started: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            reader: Mutex::new(None),
            stop_bodies: Mutex::new(None),
            closing: AtomicBool::new(false),
            closing_waker: AtomicWaker::new(),
            on_close: Mutex::new(Some(on_close)),
            closed: closed.shared(),
            heard: AtomicU64::new(0),
            timer: AtomicWaker::new(),
            rearm: AtomicBool::new(false),
            direct,
            by_session: AtomicBool::new(false),
            limits: PeerLimits::new(limits),
            pools,
            once,
            keyed_count: AtomicUsize::new(0),
            peer_bodies: OnceLock::new(),
        })
    }

    /// Why the peer would refuse a call of `body` with `captures`, if it would: a body it does
    /// not serve (from the list it gave when it connected), captures over its limits (from its
    /// `Hello`). Checked before anything is sent; one comparison for a call well within them.
    #[inline]
    pub(crate) fn refusal(&self, body: &'static str, captures: &Encoded) -> Option<Error> {
        let surely = self.peer_bodies().is_none_or(|bodies| bodies.serves(body))
            && captures.as_slice().len() <= self.limits.surely_fits
            && body.len() <= NAME_ROOM;
        if surely {
            None
        } else {
            self.looked_at_closely(body, captures)
        }
    }

    #[cold]
    fn looked_at_closely(&self, body: &'static str, captures: &Encoded) -> Option<Error> {
        if let Some(bodies) = self.peer_bodies() {
            if !bodies.serves(body) {
                return Some(match crate::registry::Registry::global() {
                    Ok(registry) => bodies.unknown_body(registry, self.peer(), body),
                    Err(e) => e,
                });
            }
        }
        let size = u64::try_from(captures.as_slice().len()).unwrap_or(u64::MAX);
        let header = protocol::invoke_headroom(body) as u64;
        let limits = &self.limits.told;
        let limit = if size > limits.max_capture_size {
            limits.max_capture_size
        } else if size.saturating_add(header) > limits.max_frame_size {
            limits.max_frame_size.saturating_sub(header)
        } else {
            return None;
        };
        Some(Error::CapturesTooLarge {
            peer: self.peer().clone(),
            body: body.to_owned(),
            limit,
        })
    }

    /// What the peer serves, as the handshake found (set once).
    pub(crate) fn set_peer_bodies(&self, bodies: PeerBodies) {
        let _ = self.peer_bodies.set(bodies);
    }

    pub(crate) fn peer_bodies(&self) -> Option<&PeerBodies> {
        self.peer_bodies.get()
    }

    pub(crate) fn peer(&self) -> &PeerId {
        self.link.peer()
    }

    /// Whether the peer said it is a member of `pool`.
    pub(crate) fn in_pool(&self, pool: &crate::pool::Pool) -> bool {
        self.pools.contains(pool)
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
        marks: Marks<'_>,
        caller: &Waker,
    ) -> Result<PendingCall, Error> {
        let Marks { key, trace } = marks;
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
        let sent = if let Some(key) = key {
            // Rare (idempotent calls to pools): the general encoder, through middleware.
            self.link.send(Frame::InvokeOnce(protocol::InvokeOnce {
                key,
                invoke: protocol::Invoke {
                    id,
                    body: body.into(),
                    timeout_ms,
                    captures: captures.into_bytes(),
                },
            }))
        } else if let Some(trace) = trace {
            // Traced calls take the general encoder too: they are made where something
            // records traces, which costs more than the encoder does.
            self.link
                .send(Frame::InvokeTraced(Box::new(protocol::InvokeTraced {
                    trace: trace.clone(),
                    invoke: protocol::Invoke {
                        id,
                        body: body.into(),
                        timeout_ms,
                        captures: captures.into_bytes(),
                    },
                })))
        } else if self.direct {
            let frame = protocol::invoke_frame(id, body, timeout_ms, captures);
            self.link.enqueue(Outgoing::Encoded(frame))
        } else {
            self.link.send(Frame::Invoke(protocol::Invoke {
                id,
                body: body.into(),
                timeout_ms,
                captures: captures.into_bytes(),
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
    /// Hands the connection what stops the bodies its tasks run for the peer, for `close`;
    /// stops them at once if it closed already.
    pub(crate) fn stop_bodies_on_close(&self, bodies: Arc<dyn StopBodies>) {
        *lock(&self.stop_bodies) = Some(bodies);
        if self.is_closing() {
            self.stop_served_bodies();
        }
    }

    fn stop_served_bodies(&self) {
        let bodies = lock(&self.stop_bodies).take();
        if let Some(bodies) = bodies {
            bodies.stop();
        }
    }

    /// A body is over: it no longer counts as running, and its result (if it was not stopped)
    /// goes to the peer.
    pub(crate) fn finish(&self, id: u64, result: Option<Result<Encoded, protocol::Failure>>) {
        // `close` already counted every body as over.
        let _ = self
            .started
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        match result {
            Some(result) => self.answer(id, result),
            None => self.keyed_over(id, None),
        }
    }

    /// Answers the repeats that waited on a keyed run, now over with `result`.
    fn answer_joined(
        &self,
        joined: Vec<(std::sync::Weak<Connection>, u64)>,
        result: Option<&Result<Encoded, protocol::Failure>>,
    ) {
        for (conn, id) in joined {
            if let Some(conn) = conn.upgrade() {
                conn.answer(id, crate::once::answer_for(result));
            }
        }
    }

    /// Request `id` carries idempotency `key`: its answer goes through the node's table.
    pub(crate) fn keyed(&self, id: u64, key: u64) {
        lock(&self.running).keyed.push((id, key));
        self.keyed_count.fetch_add(1, Ordering::AcqRel);
    }

    /// The run of request `id` is over (with `result`, or stopped): if it carried a key, the
    /// node's table keeps its result and answers the repeats that waited on it.
    #[inline]
    pub(crate) fn keyed_over(&self, id: u64, result: Option<&Result<Encoded, protocol::Failure>>) {
        // One load for the calls without a key, which are nearly all.
        if self.keyed_count.load(Ordering::Acquire) != 0 {
            self.keyed_over_slow(id, result);
        }
    }

    #[cold]
    fn keyed_over_slow(&self, id: u64, result: Option<&Result<Encoded, protocol::Failure>>) {
        let key = {
            let mut running = lock(&self.running);
            // A peer may reuse a request id only after its answer, so the id is the request.
            let at = running.keyed.iter().position(|&(keyed, _)| keyed == id);
            at.map(|at| running.keyed.swap_remove(at).1)
        };
        if let Some(key) = key {
            self.keyed_count.fetch_sub(1, Ordering::AcqRel);
            self.answer_joined(self.once.finish(self.peer(), key, result), result);
        }
    }

    #[cold]
    fn too_large(&self, value: &Encoded) -> protocol::Failure {
        protocol::Failure::EncodeResult {
            reason: format!(
                "the value is {} bytes, more than the {} the caller accepts in a frame",
                value.as_slice().len(),
                self.limits.result_fits
            ),
        }
    }

    /// Queues the answer to request `id`.
    pub(crate) fn answer(&self, id: u64, result: Result<Encoded, protocol::Failure>) {
        // A value the peer would refuse as a frame (and close the connection over) is told as
        // a failure of this call instead.
        let result = match result {
            Ok(value) if value.as_slice().len() > self.limits.result_fits => {
                Err(self.too_large(&value))
            }
            other => other,
        };
        self.keyed_over(id, Some(&result));
        self.send_owed(match result {
            Ok(value) if self.direct => Outgoing::Encoded(protocol::value_frame(id, value)),
            Ok(value) => Outgoing::Frame(Frame::Result(InvokeResult {
                id,
                outcome: Outcome::Value(value.into_bytes()),
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
    pub(crate) fn send_owed(&self, frame: Outgoing) {
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
        let keyed = {
            let mut running = lock(&self.running);
            running.closed = true;
            std::mem::take(&mut running.keyed)
        };
        self.stop_served_bodies();
        // Keyed bodies stopped, or queued and never started, did not finish: a repeat of
        // their keys runs them (and the repeats waiting on them hear so).
        self.keyed_count.store(0, Ordering::Release);
        for (_, key) in keyed {
            self.answer_joined(self.once.finish(self.peer(), key, None), None);
        }
        self.started.store(0, Ordering::Release);
        if let Some(reader) = lock(&self.reader).take() {
            reader.abort();
        }
        self.link.close();
        drop(lock(&self.on_close).take());
        self.timer.wake();
        self.closing_waker.wake();
    }

    /// Completes once the connection closes; cheap to poll again and again.
    pub(crate) fn closing(&self) -> impl std::future::Future<Output = ()> + '_ {
        futures::future::poll_fn(move |cx| {
            if self.is_closing() {
                return std::task::Poll::Ready(());
            }
            self.closing_waker.register(cx.waker());
            // Closed between the look and the registration: its wake may have gone before.
            if self.is_closing() {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
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

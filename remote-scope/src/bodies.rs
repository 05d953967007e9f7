//! The bodies a connection runs for its peer. The reader queues them; the connection's server
//! task polls each once and spawns only those that wait. Most bodies finish at that first poll,
//! so they cost no task, no abort handle and no table entry of their own; and however long a
//! body computes before it first waits, it holds up the server task, never the reader, so the
//! connection keeps reading (results of this node's own calls included) meanwhile.
//!
//! A `Cancel` finds its body wherever it is: still queued (it is dropped unpolled), at its
//! first poll (it is dropped instead of spawned), or spawned (it is aborted). All three states
//! live under one lock, so a cancel cannot slip between them.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{AbortHandle, Abortable};
use futures::task::AtomicWaker;
use tracing::Instrument;

use crate::connection::{lock, Connection};
use crate::serve::Served;
use crate::Node;

/// A body started for the peer, not yet polled.
pub(crate) struct Queued {
    pub(crate) id: u64,
    pub(crate) work: Served,
    /// How long the caller waits; the body is stopped after that.
    pub(crate) deadline: Duration,
    pub(crate) span: tracing::Span,
}

#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
    server: AtomicWaker,
}

#[derive(Default)]
struct State {
    queued: Vec<Queued>,
    closed: bool,
    /// The ids of the batch the server task is polling now.
    polling: Vec<u64>,
    /// Those of them the caller cancelled meanwhile.
    cancelled: Vec<u64>,
    /// Bodies that waited at their first poll and run in a task of their own.
    spawned: HashMap<u64, AbortHandle>,
}

/// Where a cancelled body was.
pub(crate) enum Cancelled {
    /// Still queued: dropped without running.
    Queued,
    /// Being polled, or running in its task: it stops.
    Stopping,
    /// Not here: it finished already.
    Unknown,
}

impl Queue {
    pub(crate) fn push(&self, body: Queued) {
        {
            let mut state = lock(&self.state);
            if state.closed {
                return;
            }
            state.queued.push(body);
        }
        self.server.wake();
    }

    /// Stops body `id`, wherever it is.
    pub(crate) fn cancel(&self, id: u64) -> Cancelled {
        let mut state = lock(&self.state);
        if let Some(handle) = state.spawned.remove(&id) {
            handle.abort();
            return Cancelled::Stopping;
        }
        if let Some(at) = state.queued.iter().position(|body| body.id == id) {
            let body = state.queued.remove(at);
            drop(state);
            drop(body);
            return Cancelled::Queued;
        }
        if state.polling.contains(&id) && !state.cancelled.contains(&id) {
            state.cancelled.push(id);
            return Cancelled::Stopping;
        }
        Cancelled::Unknown
    }

    /// Drops what is queued, aborts what is spawned, and ends the server task.
    pub(crate) fn close(&self) {
        let (queued, spawned) = {
            let mut state = lock(&self.state);
            state.closed = true;
            (
                std::mem::take(&mut state.queued),
                std::mem::take(&mut state.spawned),
            )
        };
        drop(queued);
        for handle in spawned.into_values() {
            handle.abort();
        }
        self.server.wake();
    }

    /// Moves everything queued into `batch`; `Ready(false)` once closed.
    fn poll_take(&self, cx: &mut Context<'_>, batch: &mut Vec<Queued>) -> Poll<bool> {
        self.server.register(cx.waker());
        let mut state = lock(&self.state);
        state.polling.clear();
        state.cancelled.clear();
        if state.closed {
            Poll::Ready(false)
        } else if state.queued.is_empty() {
            Poll::Pending
        } else {
            std::mem::swap(&mut state.queued, batch);
            let ids: Vec<u64> = batch.iter().map(|body| body.id).collect();
            state.polling = ids;
            Poll::Ready(true)
        }
    }

    /// A body of the batch waited at its first poll: unless it was cancelled meanwhile (or the
    /// connection closed), it becomes a spawned body, stopped by `handle`.
    fn keep(&self, id: u64, handle: AbortHandle) -> bool {
        let mut state = lock(&self.state);
        if state.closed || state.cancelled.contains(&id) {
            return false;
        }
        state.spawned.insert(id, handle);
        true
    }

    /// A spawned body is over.
    fn forget(&self, id: u64) {
        lock(&self.state).spawned.remove(&id);
    }
}

/// The connection's server task: polls each queued body once, answers those that finish and
/// spawns the others.
pub(crate) async fn serve(node: Node, conn: Arc<Connection>) {
    let mut batch = Vec::new();
    while futures::future::poll_fn(|cx| conn.bodies().poll_take(cx, &mut batch)).await {
        futures::future::poll_fn(|cx| {
            for mut body in batch.drain(..) {
                match body.span.in_scope(|| Pin::new(&mut body.work).poll(cx)) {
                    Poll::Ready(done) => conn.finish(body.id, Some(done)),
                    Poll::Pending => spawn_rest(&node, &conn, body),
                }
            }
            Poll::Ready(())
        })
        .await;
    }
}

/// Runs a body that waited at its first poll in a task of its own, until it finishes, its
/// caller cancels, the connection closes, or the caller's wait is over (its result could no
/// longer be used; then no result is sent).
fn spawn_rest(node: &Node, conn: &Arc<Connection>, body: Queued) {
    let Queued {
        id,
        work,
        deadline,
        span,
    } = body;
    let (handle, registration) = AbortHandle::new_pair();
    if !conn.bodies().keep(id, handle) {
        drop(work);
        conn.finish(id, None);
        return;
    }
    let work = Abortable::new(work, registration);
    let expiry = node.runtime().sleep(deadline);
    let conn = Arc::clone(conn);
    node.runtime().spawn(Box::pin(
        async move {
            let finished = match futures::future::select(work, expiry).await {
                futures::future::Either::Left((done, _)) => done.ok(),
                futures::future::Either::Right(_) => {
                    tracing::debug!("the caller's wait is over; body stopped");
                    None
                }
            };
            conn.bodies().forget(id);
            conn.finish(id, finished);
        }
        .instrument(span),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(id: u64) -> Queued {
        Queued {
            id,
            work: Served::Done(None),
            deadline: Duration::from_secs(1),
            span: tracing::Span::none(),
        }
    }

    #[test]
    fn a_cancel_finds_its_body_queued_being_polled_or_spawned() {
        let queue = Queue::default();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        queue.push(queued(1));
        assert!(matches!(queue.cancel(1), Cancelled::Queued));
        assert!(matches!(queue.cancel(1), Cancelled::Unknown));

        queue.push(queued(2));
        queue.push(queued(3));
        let mut batch = Vec::new();
        assert_eq!(queue.poll_take(&mut cx, &mut batch), Poll::Ready(true));
        // 2 is cancelled while its batch is being polled: it is not kept.
        assert!(matches!(queue.cancel(2), Cancelled::Stopping));
        let (handle, registration) = AbortHandle::new_pair();
        assert!(!queue.keep(2, handle));
        // 3 is kept, then cancelled in its task.
        let (handle, registration_3) = AbortHandle::new_pair();
        assert!(queue.keep(3, handle));
        assert!(matches!(queue.cancel(3), Cancelled::Stopping));
        assert!(registration_3.handle().is_aborted());
        assert!(!registration.handle().is_aborted());
        // Once the batch is over, an id from it is unknown.
        assert!(queue.poll_take(&mut cx, &mut batch).is_pending());
        assert!(matches!(queue.cancel(2), Cancelled::Unknown));
    }

    #[test]
    fn closing_drops_the_queued_and_aborts_the_spawned() {
        let queue = Queue::default();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        queue.push(queued(1));
        let mut batch = Vec::new();
        assert_eq!(queue.poll_take(&mut cx, &mut batch), Poll::Ready(true));
        let (handle, registration) = AbortHandle::new_pair();
        assert!(queue.keep(1, handle));
        queue.push(queued(2));
        queue.close();
        assert!(registration.handle().is_aborted());
        assert!(lock(&queue.state).queued.is_empty());
        assert_eq!(queue.poll_take(&mut cx, &mut batch), Poll::Ready(false));
        let (handle, _registration) = AbortHandle::new_pair();
        assert!(!queue.keep(3, handle), "nothing is kept after close");
    }
}

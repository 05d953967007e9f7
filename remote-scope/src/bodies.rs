//! The bodies a connection runs for its peer. The reader queues them; the connection's server
//! task polls each once and spawns only those that wait. Most bodies finish at that first poll,
//! so they cost no task of their own; and however long a body computes before it first waits,
//! it holds up the server task, never the reader, so the connection keeps reading (results of
//! this node's own calls included) meanwhile.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::Abortable;
use futures::task::AtomicWaker;
use tracing::Instrument;

use crate::connection::{lock, Connection};
use crate::registry::HandlerFuture;
use crate::Node;

/// A body started for the peer and registered as running, not yet polled.
pub(crate) struct Queued {
    pub(crate) id: u64,
    pub(crate) work: Abortable<HandlerFuture>,
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

    /// Drops what is queued and ends the server task.
    pub(crate) fn close(&self) {
        let dropped = {
            let mut state = lock(&self.state);
            state.closed = true;
            std::mem::take(&mut state.queued)
        };
        drop(dropped);
        self.server.wake();
    }

    /// Moves everything queued into `batch`; `Ready(false)` once closed.
    fn poll_take(&self, cx: &mut Context<'_>, batch: &mut Vec<Queued>) -> Poll<bool> {
        self.server.register(cx.waker());
        let mut state = lock(&self.state);
        if state.closed {
            Poll::Ready(false)
        } else if state.queued.is_empty() {
            Poll::Pending
        } else {
            std::mem::swap(&mut state.queued, batch);
            Poll::Ready(true)
        }
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
                    Poll::Ready(done) => conn.finish(body.id, done.ok()),
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
            conn.finish(id, finished);
        }
        .instrument(span),
    ));
}

//! The connection's server task: polls each body the reader queued once, answers those that
//! finish and spawns the others (see [`crate::bodies`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures::future::{AbortHandle, Abortable};
use tracing::Instrument;

use crate::bodies::{Queue, Queued};
use crate::connection::Connection;
use crate::context::Called;
use crate::node::Node;

/// The most bodies the server task polls before it yields to the node's other work.
const BODIES_PER_TURN: usize = 256;

/// The connection's server task: polls each queued body once, answers those that finish and
/// spawns the others.
pub(super) async fn run(node: Node, conn: Arc<Connection>, bodies: Arc<Queue>) {
    let mut batch = Vec::new();
    // Bodies polled since the queue was last found empty: while the reader keeps queueing,
    // it never is, and the task would never let other tasks run.
    let mut turn = 0;
    // The peer's id, lent to the bodies while they are polled, for `crate::caller`: cloned
    // once for the task, not for each body.
    let mut caller = Some(conn.peer().clone());
    while futures::future::poll_fn(|cx| {
        let taken = bodies.poll_take(cx, &mut batch);
        if taken.is_pending() {
            turn = 0;
        }
        taken
    })
    .await
    {
        turn += batch.len();
        futures::future::poll_fn(|cx| {
            crate::context::with_caller(&mut caller, || {
                poll_batch(&node, &conn, &bodies, &mut batch, cx)
            })
        })
        .await;
        if turn >= BODIES_PER_TURN {
            turn = 0;
            crate::runtime::yield_now().await;
        }
    }
}

/// Polls each body of `batch` once: answers those that finish, spawns the others.
fn poll_batch(
    node: &Node,
    conn: &Arc<Connection>,
    bodies: &Arc<Queue>,
    batch: &mut Vec<Queued>,
    cx: &mut std::task::Context<'_>,
) -> Poll<()> {
    for mut body in batch.drain(..) {
        if bodies.skipped(body.id) {
            let id = body.id;
            drop(body);
            conn.finish(id, None);
            continue;
        }
        match crate::trace::in_span(&body.span, || Pin::new(&mut body.work).poll(cx)) {
            Poll::Ready(done) => conn.finish(body.id, Some(done)),
            Poll::Pending => spawn_rest(node, conn, bodies, body),
        }
    }
    Poll::Ready(())
}

/// Runs a body that waited at its first poll in a task of its own, until it finishes, its
/// caller cancels, the connection closes, or the caller's wait is over (its result could no
/// longer be used; then no result is sent).
fn spawn_rest(node: &Node, conn: &Arc<Connection>, bodies: &Arc<Queue>, body: Queued) {
    let Queued {
        id,
        work,
        deadline,
        span,
    } = body;
    let (handle, registration) = AbortHandle::new_pair();
    if !bodies.keep(id, handle) {
        drop(work);
        conn.finish(id, None);
        return;
    }
    let work = Abortable::new(Called::new(Some(conn.peer().clone()), work), registration);
    let expiry = node.runtime().sleep(deadline);
    let conn = Arc::clone(conn);
    let bodies = Arc::clone(bodies);
    node.runtime().spawn(Box::pin(
        async move {
            let finished = match futures::future::select(work, expiry).await {
                futures::future::Either::Left((done, _)) => done.ok(),
                futures::future::Either::Right(_) => {
                    tracing::debug!("the caller's wait is over; body stopped");
                    None
                }
            };
            bodies.forget(id);
            conn.finish(id, finished);
        }
        .instrument(span),
    ));
}

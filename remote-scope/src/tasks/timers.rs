//! A connection's timers: the deadlines of the calls waiting on it, and keep-alive.
//!
//! One task and one sleep per connection, not a timer per call: a call only records its
//! deadline (see `Connection::start_call`), and this task wakes for the soonest one. While calls
//! come and go with the same timeout, each new deadline is later than the one the task already
//! sleeps towards, so a call costs no timer at all; only a call due sooner wakes the task to
//! re-arm it.

use std::sync::Arc;
use std::task::Poll;

use crate::connection::Connection;
use crate::node::Node;

/// Runs until the connection closes (or keep-alive closes it).
pub(super) async fn run(node: Node, conn: Arc<Connection>) {
    let runtime = node.runtime();
    let keepalive = node.config().keepalive;
    let mut next_ping = keepalive.map(|interval| runtime.now().saturating_add(interval));
    let (mut last_heard, mut quiet) = (conn.heard(), 0_u32);
    loop {
        if conn.is_closing() {
            return;
        }
        let now = runtime.now();
        if let (Some(interval), Some(at)) = (keepalive, next_ping) {
            if now >= at {
                // A peer that vanished without closing (a cut cable, a frozen host) would
                // otherwise hold its callers until their deadlines.
                let heard = conn.heard();
                if heard != last_heard {
                    (last_heard, quiet) = (heard, 0);
                } else {
                    quiet += 1;
                    if quiet >= 2 {
                        tracing::warn!(silent_for = ?interval.saturating_mul(quiet), "the peer stopped answering; closing the connection");
                        node.forget_connection(&conn);
                        return;
                    }
                    conn.ping();
                }
                next_ping = Some(now.saturating_add(interval));
            }
        }
        let next_deadline = conn.expire_calls(now);
        let wake_at = next_ping.into_iter().chain(next_deadline).min();
        let mut sleep = wake_at.map(|at| runtime.sleep(at.saturating_sub(now)));
        futures::future::poll_fn(|cx| {
            if conn.poll_rearm(cx) || conn.is_closing() {
                return Poll::Ready(());
            }
            match &mut sleep {
                Some(sleep) => sleep.as_mut().poll(cx),
                None => Poll::Pending,
            }
        })
        .await;
    }
}

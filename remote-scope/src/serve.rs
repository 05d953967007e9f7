//! Serving: run a registered body for a caller, whether the caller is remote or this very node.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::context::{with_node, Scoped};
use crate::node::Node;
use crate::protocol::{Encoded, Failure, Received};
use crate::registry::{Handled, Handler, HandlerFuture, HandlerInput};
use crate::trace_context::{with_trace, TraceContext};

/// A body to be run with `captures`, on `node`. Nothing runs until it is first polled:
/// then the captures are decoded and the body started, with `node` as its current node (so
/// nested `remote!` calls go out from here), and a panic in it becomes [`Failure::Panicked`]
/// instead of unwinding into the node. Whoever read the call (a connection's reader) so only
/// looks its body up; the decoding is the work of whoever polls.
///
/// `handler` is the body's, looked up by the caller: `None` if there is no such body. Whoever
/// polls it says who called it ([`crate::context::with_caller`]), for [`crate::caller`].
pub(crate) fn dispatch(node: &Node, handler: Option<Handler>, captures: Received) -> Served {
    match handler {
        Some(handler) => Served::Start {
            node: node.internal(),
            handler,
            captures,
        },
        None => Served::Done(Some(Failure::UnknownBody)),
    }
}

/// A body being served (see [`dispatch`]). A type of its own rather than a boxed combinator,
/// so serving a body costs at most the one allocation its handler makes, and none for a body
/// that cannot wait.
pub(crate) enum Served {
    /// Not started yet.
    Start {
        node: Node,
        handler: Handler,
        captures: Received,
    },
    Running(Scoped<HandlerFuture>),
    /// Runs in a trace: the body's calls carry it on (boxed: rare, and large).
    Traced(Box<(Option<TraceContext>, Served)>),
    /// Over, or failed before it ran (taken when polled).
    Done(Option<Failure>),
}

impl Served {
    /// `served`, run with `ctx` as its current trace context.
    pub(crate) fn traced(ctx: TraceContext, served: Served) -> Served {
        Served::Traced(Box::new((Some(ctx), served)))
    }
}

impl Future for Served {
    type Output = Result<Encoded, Failure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Served::Traced(traced) = this {
            let (ctx, inner) = &mut **traced;
            return with_trace(ctx, || Pin::new(inner).poll(cx));
        }
        let mut body = match std::mem::replace(this, Served::Done(None)) {
            Served::Start {
                node,
                handler,
                captures,
            } => {
                let mut node = Some(node);
                let started = with_node(&mut node, || {
                    catch_unwind(|| handler(HandlerInput::Run(&captures)))
                });
                match started {
                    Ok(Handled::Running(body)) => Scoped::new(node, body),
                    Ok(Handled::Finished(done)) => return Poll::Ready(done),
                    Ok(Handled::OutputType(_)) => return Poll::Ready(Err(Failure::UnknownBody)),
                    Err(panic) => return Poll::Ready(Err(panicked(panic))),
                }
            }
            Served::Running(body) => body,
            Served::Traced(_) => unreachable!("polled above"),
            Served::Done(Some(failure)) => return Poll::Ready(Err(failure)),
            // As std's futures do: the server task never polls a finished body again.
            Served::Done(None) => panic!("a served body was polled after it finished"),
        };
        // `Scoped` restores the previous current node even when the poll panics.
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut body).poll(cx))) {
            Ok(Poll::Pending) => {
                *this = Served::Running(body);
                Poll::Pending
            }
            Ok(Poll::Ready(done)) => Poll::Ready(done),
            Err(panic) => Poll::Ready(Err(panicked(panic))),
        }
    }
}

fn panicked(panic: Box<dyn Any + Send>) -> Failure {
    let message = if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    };
    Failure::Panicked { message }
}

//! Serving: run a registered body for a caller, whether the caller is remote or this very node.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::context::Scoped;
use crate::protocol::{Encoded, Failure};
use crate::registry::{Handled, HandlerFuture, HandlerInput};
use crate::Node;

/// The future of body `name` run with `captures`, on `node`: it has `node` as its current node
/// (so nested `remote!` calls go out from here), and a panic in it becomes
/// [`Failure::Panicked`] instead of unwinding into the node.
pub(crate) fn dispatch(node: &Node, name: &str, captures: &[u8]) -> Served {
    let Some(handler) = node.registry().handler(name) else {
        return Served::Done(Some(Failure::UnknownBody));
    };
    match catch_unwind(|| handler(HandlerInput::Run(captures))) {
        Ok(Handled::Running(body)) => Served::Running(Scoped::new(node.clone(), body)),
        Ok(Handled::OutputType(_)) => Served::Done(Some(Failure::UnknownBody)),
        Err(panic) => Served::Done(Some(panicked(panic))),
    }
}

/// A body being served (see [`dispatch`]). A type of its own rather than a boxed combinator,
/// so serving a body costs the one allocation its handler makes.
pub(crate) enum Served {
    Running(Scoped<HandlerFuture>),
    /// Failed before it ran (taken when polled).
    Done(Option<Failure>),
}

impl Future for Served {
    type Output = Result<Encoded, Failure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut *self {
            Served::Running(body) => {
                // `Scoped` restores the previous current node even when the poll panics.
                match catch_unwind(AssertUnwindSafe(|| Pin::new(body).poll(cx))) {
                    Ok(poll) => poll,
                    Err(panic) => Poll::Ready(Err(panicked(panic))),
                }
            }
            Served::Done(failure) => {
                Poll::Ready(Err(failure.take().unwrap_or(Failure::Panicked {
                    message: "a body was polled after it finished".into(),
                })))
            }
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

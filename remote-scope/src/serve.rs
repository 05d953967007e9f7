//! Serving: run a registered body for a caller, whether the caller is remote or this very node.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use futures::FutureExt;

use crate::context::Scoped;
use crate::protocol::Failure;
use crate::registry::{Handled, HandlerFuture, HandlerInput};
use crate::Node;

/// The future of body `name` run with `captures`, on `node`: it has `node` as its current node
/// (so nested `remote!` calls go out from here), and a panic in it becomes
/// [`Failure::Panicked`] instead of unwinding into the node.
pub(crate) fn dispatch(node: &Node, name: &str, captures: &[u8]) -> HandlerFuture {
    let Some(handler) = node.registry().handler(name) else {
        return Box::pin(futures::future::ready(Err(Failure::UnknownBody)));
    };
    match catch_unwind(|| handler(HandlerInput::Run(captures))) {
        Ok(Handled::Running(body)) => Box::pin(Scoped::new(
            node.clone(),
            AssertUnwindSafe(body)
                .catch_unwind()
                .map(|finished| finished.unwrap_or_else(|panic| Err(panicked(panic)))),
        )),
        Ok(Handled::OutputType(_)) => Box::pin(futures::future::ready(Err(Failure::UnknownBody))),
        Err(panic) => Box::pin(futures::future::ready(Err(panicked(panic)))),
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

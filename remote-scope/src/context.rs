//! The current node: the peer a `remote!` is called from.
//!
//! A body never receives a node handle, yet a nested `remote!` inside it must go out from the
//! peer running it. The node is therefore ambient: set for the duration of each poll of a future
//! wrapped by [`Scoped`] (the runtime wraps every body it serves; `Node::run` wraps the caller's
//! future). This works on any executor, native or browser, without task-locals of a particular
//! runtime.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::Node;

thread_local! {
    static CURRENT: RefCell<Option<Node>> = const { RefCell::new(None) };
}

/// The node whose future is being polled on this thread, if any.
pub(crate) fn current() -> Option<Node> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Polls `inner` with `node` as the current node.
pub(crate) struct Scoped<F> {
    node: Node,
    inner: F,
}

impl<F> Scoped<F> {
    pub(crate) fn new(node: Node, inner: F) -> Self {
        Scoped { node, inner }
    }
}

impl<F: Future + Unpin> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        with_current(&this.node, || Pin::new(&mut this.inner).poll(cx))
    }
}

/// Runs `f` with `node` as the current node, restoring the one before afterwards (even if `f`
/// panics).
pub(crate) fn with_current<R>(node: &Node, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.replace(Some(node.clone())));
    struct Restore(Option<Node>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    f()
}

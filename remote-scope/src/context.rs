//! The current node: the peer a `remote!` is called from.
//!
//! A body never receives a node handle, yet a nested `remote!` inside it must go out from the
//! peer running it. The node is therefore ambient: set for the duration of each poll of a future
//! wrapped by [`Scoped`] (the runtime wraps every body it serves; `Node::run` wraps the caller's
//! future). This works on any executor, native or browser, without task-locals of a particular
//! runtime.

use std::cell::RefCell;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::node::Node;

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

impl Node {
    /// The node running the current body, or the node of the surrounding [`Node::run`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use remote_scope::Node;
    /// let node = Node::builder().id("me").build()?;
    /// assert!(Node::current().is_none());
    /// let id = node.run(async { Node::current().map(|n| n.id().clone()) }).await;
    /// assert_eq!(id.map(|id| id.to_string()).as_deref(), Some("me"));
    /// # Ok(()) }
    /// ```
    pub fn current() -> Option<Node> {
        current()
    }

    /// Runs `future` with this node as the current node, so the `remote!` calls in it go out
    /// from this peer. A single call can be passed directly: `node.run(remote!(..))`.
    pub fn run<F: IntoFuture>(&self, future: F) -> impl Future<Output = F::Output> {
        Scoped::new(self.clone(), Box::pin(future.into_future()))
    }
}

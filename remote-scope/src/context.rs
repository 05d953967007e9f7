//! The current node, the peer a `remote!` is called from, and the caller of the body running.
//!
//! A body never receives a node handle, yet a nested `remote!` inside it must go out from the
//! peer running it, and the body may want to know who called it. Both are therefore ambient:
//! set for the duration of each poll of a future wrapped by [`Scoped`] (the runtime wraps every
//! body it serves; `Node::run` wraps the caller's future). This works on any executor, native or
//! browser, without task-locals of a particular runtime.

use std::cell::RefCell;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::Error;
use crate::node::{Node, WeakNode};
use crate::peer_id::PeerId;
use crate::runtime::MaybeSend;

thread_local! {
    /// The current node of this thread.
    static NODE: RefCell<Option<Node>> = const { RefCell::new(None) };
    /// The caller of the body being polled on this thread.
    static CALLER: RefCell<Option<PeerId>> = const { RefCell::new(None) };
}

/// The node whose future is being polled on this thread, if any, as a handle that does not
/// keep it up (a call takes one for its while).
pub(crate) fn current() -> Option<Node> {
    NODE.with(|s| s.borrow().as_ref().map(Node::internal))
}

// Every node built in this process: a call made where no node is current (a task spawned with
// `tokio::spawn`, say) goes out from the only one, if there is only one.
#[cfg(not(target_arch = "wasm32"))]
static NODES: std::sync::Mutex<Vec<WeakNode>> = std::sync::Mutex::new(Vec::new());

#[cfg(target_arch = "wasm32")]
thread_local! {
    static NODES: RefCell<Vec<WeakNode>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the process's list of nodes.
fn nodes<R>(f: impl FnOnce(&mut Vec<WeakNode>) -> R) -> R {
    #[cfg(not(target_arch = "wasm32"))]
    return f(&mut crate::sync::lock(&NODES));
    #[cfg(target_arch = "wasm32")]
    return NODES.with(|nodes| f(&mut nodes.borrow_mut()));
}

/// Adds a node just built to the process's list (dropping those gone).
pub(crate) fn register(node: &Node) {
    nodes(|nodes| {
        nodes.retain(|n| n.live().is_some());
        nodes.push(node.downgrade());
    });
}

/// The node a call made here goes out from: the current one, else the process's only node.
#[inline]
pub(crate) fn calling_node() -> Result<Node, Error> {
    match current() {
        Some(node) => Ok(node),
        None => only_node(),
    }
}

/// The process's only node, or the error that says there is not one.
#[cold]
fn only_node() -> Result<Node, Error> {
    let mut live: Vec<Node> = nodes(|nodes| nodes.iter().filter_map(WeakNode::live).collect());
    match live.len() {
        1 => Ok(live.remove(0)),
        nodes => Err(Error::NoCurrentNode { nodes }),
    }
}

/// A thread-local that a poll lends a value to.
pub(crate) trait Slot: 'static {
    type Value: 'static;
    fn key() -> &'static std::thread::LocalKey<RefCell<Option<Self::Value>>>;
}

/// The current node.
pub(crate) struct NodeSlot;

impl Slot for NodeSlot {
    type Value = Node;
    fn key() -> &'static std::thread::LocalKey<RefCell<Option<Node>>> {
        &NODE
    }
}

/// The caller of the bodies being polled.
pub(crate) struct CallerSlot;

impl Slot for CallerSlot {
    type Value = PeerId;
    fn key() -> &'static std::thread::LocalKey<RefCell<Option<PeerId>>> {
        &CALLER
    }
}

/// Polls `inner` with `value` lent to the thread-local `S` (see [`lend`]).
pub(crate) struct Lent<S: Slot, F> {
    value: Option<S::Value>,
    inner: F,
}

/// Polls `inner` with a node as the current node.
pub(crate) type Scoped<F> = Lent<NodeSlot, F>;

/// Polls `inner` with a peer as the caller of the bodies it polls (see [`with_caller`]).
pub(crate) type Called<F> = Lent<CallerSlot, F>;

impl<S: Slot, F> Lent<S, F> {
    pub(crate) fn new(value: Option<S::Value>, inner: F) -> Self {
        Lent { value, inner }
    }
}

impl<S: Slot, F: Future + Unpin> Future for Lent<S, F>
where
    S::Value: Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let inner = &mut this.inner;
        lend(S::key(), &mut this.value, || Pin::new(inner).poll(cx))
    }
}

/// Runs `f` with `value` moved into `slot` for the while and back out afterwards, the value
/// before restored (even if `f` panics): setting the scope of a poll clones no handle.
#[inline]
fn lend<T: 'static, R>(
    slot: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    value: &mut Option<T>,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore<'a, T: 'static>(
        &'static std::thread::LocalKey<RefCell<Option<T>>>,
        &'a mut Option<T>,
    );
    impl<T> Drop for Restore<'_, T> {
        fn drop(&mut self) {
            self.0
                .with(|s| std::mem::swap(&mut *s.borrow_mut(), self.1));
        }
    }
    slot.with(|s| std::mem::swap(&mut *s.borrow_mut(), value));
    let _restore = Restore(slot, value);
    f()
}

/// Runs `f` with `node` as this thread's current node.
#[inline]
pub(crate) fn with_node<R>(node: &mut Option<Node>, f: impl FnOnce() -> R) -> R {
    lend(&NODE, node, f)
}

/// Runs `f` with `caller` as the caller of the bodies it polls: the connection's server task
/// lends its peer's id for a whole batch of bodies, so a body costs no clone of it.
#[inline]
pub(crate) fn with_caller<R>(caller: &mut Option<PeerId>, f: impl FnOnce() -> R) -> R {
    lend(&CALLER, caller, f)
}

/// The peer that called the body running now: its id as the connection proved or claimed it
/// at connect time, or this node's own when the body was called from this node. `None` outside
/// a body (in [`Node::run`], say). A body's nested calls see their own callers: a body on
/// `server` that the browser called sees the browser; the body it calls on the browser in turn
/// sees `server`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use remote_scope::{caller, remote, Node, PeerId};
///
/// let server = Node::builder().id("server").build()?;
/// let listening = server.listen("127.0.0.1:0").await?;
/// let client = Node::builder().id("alice").build()?;
/// let peer = client.connect(&listening.url()).await?;
/// let who: Option<PeerId> = client.run(remote!(peer, [], { caller() })).await?;
/// assert_eq!(who, Some(PeerId::new("alice")));
/// assert_eq!(caller(), None);
/// # Ok(()) }
/// ```
pub fn caller() -> Option<PeerId> {
    CALLER.with(|c| c.borrow().clone())
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
        current().map(|node| node.handle())
    }

    /// Runs `future` with this node as the current node, so the `remote!` calls in it go out
    /// from this peer. A single call can be passed directly: `node.run(remote!(..))`.
    pub fn run<F: IntoFuture>(&self, future: F) -> impl Future<Output = F::Output> {
        Scoped::new(Some(self.clone()), Box::pin(future.into_future()))
    }

    /// Runs `future` in a task of its own on the node's runtime, with this node as its current
    /// node, and gives its output: what `tokio::spawn` would, plus the node (a task spawned
    /// with `tokio::spawn` has no current node; in a process with one node its calls still go
    /// out from that node, with several they fail with [`Error::NoCurrentNode`]). The output is
    /// `None` if the task did not finish: it panicked, or the runtime stopped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use remote_scope::{remote, Node};
    ///
    /// let node = Node::builder().id("worker").build()?;
    /// let me = node.id().clone();
    /// let task = node.spawn(async move { remote!(me, [], { 6_u8 * 7 }).await });
    /// assert_eq!(task.await, Some(Ok(42)));
    /// # Ok(()) }
    /// ```
    pub fn spawn<F>(&self, future: F) -> impl Future<Output = Option<F::Output>>
    where
        F: Future + MaybeSend + 'static,
        F::Output: MaybeSend + 'static,
    {
        let (done, output) = futures::channel::oneshot::channel();
        let task = self.run(future);
        self.runtime().spawn(Box::pin(async move {
            let _ = done.send(task.await);
        }));
        async move { output.await.ok() }
    }
}

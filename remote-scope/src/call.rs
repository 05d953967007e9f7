//! A call in progress: what `remote!(..)` evaluates to.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::bounds::{AsPeer, Decoder};
use crate::connection::PendingCall;
use crate::context;
use crate::error::Error;
use crate::node::Node;
use crate::peer_id::PeerId;
use crate::pending::Reply;
use crate::pool::{Pool, Target};
use crate::protocol::{Encoded, Received};
use crate::runtime::BoxFuture;
use crate::serve;

/// A remote call, ready to be awaited. `remote!(..)` evaluates to one; `.await` it for the
/// body's value.
///
/// Nothing is sent until it is awaited. Dropping the future stops waiting; the body may still
/// run on the peer.
///
/// ```
/// # use remote_scope::{remote, Node, PeerId};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// # let node = Node::builder().build()?;
/// # let peer: PeerId = node.id().clone();
/// use std::time::Duration;
///
/// let n: u64 = node
///     .run(async {
///         let a = 20_u64;
///         remote!(peer, [a: u64], { a * 2 + 2 })
///             .timeout(Duration::from_secs(2))
///             .await
///     })
///     .await?;
/// assert_eq!(n, 42);
/// # Ok(()) }
/// ```
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<R> {
    state: State,
    body: &'static str,
    decode: Decoder<R>,
    /// A call to a pool: which member gets it, and another if it cannot take it.
    pool: Option<Box<PoolCall>>,
}

/// What a call to a pool keeps beside its state, to send the call to another member.
struct PoolCall {
    pool: Pool,
    /// The members that could not take the call, or lost it.
    tried: Vec<PeerId>,
    /// Members still to try after the current one.
    retries: u32,
    /// The application says running the body twice is harmless.
    idempotent: bool,
    /// Sent with every attempt of an idempotent call, so that a member that gets it twice
    /// runs it once.
    key: Option<u64>,
    /// A copy of the captures, for the next member.
    captures: Option<Encoded>,
    node: Option<Node>,
    /// When the call gives up, across all members, once it has begun.
    deadline_at: Option<Duration>,
    after: Duration,
}

/// Members a call to a pool tries, after the first, when one cannot take it.
const POOL_RETRIES: u32 = 2;

impl<R> Call<R> {
    pub(crate) fn new(
        target: Target,
        body: &'static str,
        captures: Result<Encoded, Error>,
        decode: Decoder<R>,
    ) -> Self {
        match target {
            Target::Peer(peer) => Call::to(Some(peer), body, captures, decode),
            Target::Pool(pool) => {
                let mut call = Call::to(None, body, captures, decode);
                call.pool = Some(Box::new(PoolCall {
                    pool,
                    tried: Vec::new(),
                    retries: POOL_RETRIES,
                    idempotent: false,
                    key: None,
                    captures: None,
                    node: None,
                    deadline_at: None,
                    after: Duration::ZERO,
                }));
                call
            }
        }
    }

    /// For a call to a [`Pool`]: running the body twice is harmless, so a call whose member
    /// is lost while it runs ([`Error::Disconnected`]) is sent to another member, within the
    /// call's deadline. Without it, only a call that provably never started there (the member
    /// is gone, busy, shutting down, or does not serve the body) goes to another member; one
    /// that may have run fails with `Disconnected`, which says so. No effect on a call to one
    /// peer.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), remote_scope::Error> {
    /// use remote_scope::{remote, Node, Pool};
    ///
    /// let worker = Node::builder().pool("lookup").build()?;
    /// let server = worker.listen("127.0.0.1:0").await?;
    /// let client = Node::builder().build()?;
    /// client.connect(&server.url()).await?;
    /// let pool = Pool::new("lookup");
    /// let n = client.run(remote!(pool, [], { 2 + 2 }).idempotent()).await?;
    /// assert_eq!(n, 4);
    /// # Ok(()) }
    /// ```
    pub fn idempotent(mut self) -> Self {
        if let Some(pool) = &mut self.pool {
            pool.idempotent = true;
            pool.key = Some(crate::random::random_u64());
        }
        self
    }

    /// For a call to a [`Pool`]: [`idempotent`](Call::idempotent), and tried on up to
    /// `members` more members after the first (2 unless set). No effect on a call to one peer.
    pub fn retry(mut self, members: u32) -> Self {
        if let Some(pool) = &mut self.pool {
            pool.idempotent = true;
            pool.key = Some(crate::random::random_u64());
            pool.retries = members;
        }
        self
    }

    /// A call of `body` on `peer`, or on the calling node itself.
    #[inline]
    fn to(
        peer: Option<PeerId>,
        body: &'static str,
        captures: Result<Encoded, Error>,
        decode: Decoder<R>,
    ) -> Self {
        Call {
            state: State::Start(Start {
                peer,
                captures: captures.map_err(Box::new),
                timeout: None,
                node: None,
            }),
            body,
            decode,
            pool: None,
        }
    }

    /// Waits at most `timeout` for the result instead of the node's default, then fails with
    /// [`Error::Timeout`]. (Set before the call is first polled; later it changes nothing.)
    pub fn timeout(mut self, timeout: Duration) -> Self {
        if let State::Start(start) = &mut self.state {
            start.timeout = Some(timeout);
        }
        self
    }

    /// Cuts the call's timeout to `most` if it is longer (`default`: the node's, when the call
    /// has none of its own). Before the call is first polled, as `timeout`.
    pub(crate) fn timeout_at_most(mut self, most: Duration, default: Duration) -> Self {
        if let State::Start(start) = &mut self.state {
            start.timeout = Some(start.timeout.unwrap_or(default).min(most));
        }
        self
    }

    /// Calls from `node` instead of the current node (useful outside [`Node::run`]). (Set
    /// before the call is first polled; later it changes nothing.)
    pub fn on(mut self, node: &Node) -> Self {
        if let State::Start(start) = &mut self.state {
            start.node = Some(node.clone());
        }
        self
    }

    /// The stable name of the body this call runs.
    pub fn body_name(&self) -> &'static str {
        self.body
    }

    /// The node the call goes out from, if [`Call::on`] named one (before it is sent).
    pub(crate) fn node(&self) -> Option<&Node> {
        match &self.state {
            State::Start(start) => start.node.as_ref(),
            _ => None,
        }
    }

    /// The peer the call goes to, before it is sent: `None` for the calling node itself or a
    /// pool.
    pub(crate) fn peer(&self) -> Option<&PeerId> {
        match (&self.state, &self.pool) {
            (State::Start(start), None) => start.peer.as_ref(),
            _ => None,
        }
    }
}

impl<R> std::fmt::Debug for Call<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

/// A call of a [`#[remote_fn]`](crate::remote_fn), its arguments encoded: say which peer
/// runs it with [`on_peer`](Unsent::on_peer), then await the [`Call`] that gives; or await it
/// as it is to run it on the calling node.
///
/// ```
/// # use remote_scope::{Node, PeerId};
/// #[remote_scope::remote_fn]
/// async fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// # let node = Node::builder().build()?;
/// # let peer: PeerId = node.id().clone();
/// let call = add(40, 2);
/// assert_eq!(call.body_name(), add::NAME);
/// let sum = node.run(call.on_peer(&peer)).await?;
/// assert_eq!(sum, 42);
/// // Without a peer, on the calling node:
/// assert_eq!(node.run(async { add(1, 2).await }).await?, 3);
/// # Ok(()) }
/// ```
#[must_use = "a call does nothing until it is sent to a peer (`.on_peer(&peer)`) and awaited"]
pub struct Unsent<R> {
    body: &'static str,
    captures: Result<Encoded, Error>,
    decode: Decoder<R>,
}

impl<R> Unsent<R> {
    pub(crate) fn new(
        body: &'static str,
        captures: Result<Encoded, Error>,
        decode: Decoder<R>,
    ) -> Self {
        Unsent {
            body,
            captures,
            decode,
        }
    }

    /// The call, to run on `peer`: await it, after `.timeout(..)` or `.on(&node)` if need be.
    pub fn on_peer(self, peer: impl AsPeer) -> Call<R> {
        Call::new(peer.target(), self.body, self.captures, self.decode)
    }

    /// The call, to run on the calling node itself: what awaiting the `Unsent` does. The
    /// arguments are encoded and decoded as for a peer, so the function behaves the same
    /// wherever it runs.
    pub fn here(self) -> Call<R> {
        Call::to(None, self.body, self.captures, self.decode)
    }

    /// The stable name of the function's body.
    pub fn body_name(&self) -> &'static str {
        self.body
    }
}

/// Awaiting a call that names no peer runs it on the calling node ([`Unsent::here`]).
impl<R> std::future::IntoFuture for Unsent<R> {
    type Output = Result<R, Error>;
    type IntoFuture = Call<R>;

    fn into_future(self) -> Call<R> {
        self.here()
    }
}

impl<R> std::fmt::Debug for Unsent<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsent")
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

struct Start {
    /// `None`: the calling node itself.
    peer: Option<PeerId>,
    captures: Result<Encoded, Box<Error>>,
    timeout: Option<Duration>,
    node: Option<Node>,
}

/// The state of a call. What only some calls reach is boxed, and so is an error made before
/// the call began: the state lives in the caller's future, which moves it while it is built,
/// and a large one showed in profiles as copies.
enum State {
    Start(Start),
    /// The peer is away and being redialled ([`Node::keep_connected`]); the call is sent when it
    /// is back.
    Waiting(Box<Waiting>),
    /// The body runs on another peer; the connection keeps its deadline.
    Remote {
        call: PendingCall,
        after: Duration,
        span: tracing::Span,
    },
    /// The body runs on this node, in this task.
    Local(Box<Local>),
    Done,
}

struct Waiting {
    node: Node,
    peer: PeerId,
    captures: Encoded,
    /// The peer, once it is connected (for a call to a pool, the member chosen).
    back: futures::channel::oneshot::Receiver<Result<PeerId, Error>>,
    /// When the call gives up, on the runtime's clock.
    deadline_at: Duration,
    deadline: BoxFuture<'static, ()>,
    after: Duration,
    /// The idempotency key of a call to a pool.
    key: Option<u64>,
}

struct Local {
    peer: PeerId,
    work: crate::serve::Served,
    deadline: BoxFuture<'static, ()>,
    after: Duration,
    span: tracing::Span,
}

impl<R> Future for Call<R> {
    type Output = Result<R, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let (peer, bytes) = match poll_reply(&mut this.state, this.body, &mut this.pool, cx) {
            Poll::Ready(Ok(reply)) => reply,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        Poll::Ready((this.decode)(&bytes).map_err(|reason| {
            failed(Error::DecodeResult {
                peer,
                body: this.body.to_owned(),
                reason,
            })
        }))
    }
}

/// A call's reply, not decoded yet, and the peer that gave it: all of polling a call but the
/// decoding, which alone depends on the call's type, so that each type adds only that.
fn poll_reply(
    state: &mut State,
    body: &'static str,
    pool: &mut Option<Box<PoolCall>>,
    cx: &mut Context<'_>,
) -> Poll<Result<(PeerId, Received), Error>> {
    // Only a call that has not begun is taken apart; a running one stays in place (its
    // state is large, and moving it on every poll showed in profiles).
    if matches!(state, State::Start(_)) {
        if let State::Start(start) = std::mem::replace(state, State::Done) {
            let begun = match pool.as_deref_mut() {
                None => begin(body, start, cx.waker()),
                Some(pool) => begin_pool(body, start, pool, cx.waker()),
            };
            match begun {
                Ok(begun) => {
                    let sent = matches!(begun, State::Remote { .. });
                    *state = begun;
                    // Registered with the connection, which wakes it when the call ends.
                    if sent {
                        return Poll::Pending;
                    }
                }
                Err(e) => return fail(state, pool, None, e, cx).map(Err),
            }
        }
    }
    if let State::Waiting(_) = state {
        match poll_waiting(state, body, cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => {
                *state = State::Done;
                return fail(state, pool, None, e, cx).map(Err);
            }
            Poll::Pending => return Poll::Pending,
        }
    }
    let outcome = match state {
        State::Remote { call, after, span } => {
            let _entered = crate::trace::entered(span);
            match call.poll_outcome(cx) {
                Poll::Ready(Ok(Reply::Value(value))) => Ok((call.peer().clone(), value)),
                Poll::Ready(Ok(Reply::Failure(f))) => {
                    Err(with_site(f.into_error(call.peer().clone(), body)))
                }
                Poll::Ready(Ok(Reply::TimedOut)) => Err(Error::Timeout {
                    peer: call.peer().clone(),
                    body: body.to_owned(),
                    after: *after,
                }),
                Poll::Ready(Err(())) => Err(Error::Disconnected {
                    peer: call.peer().clone(),
                    body: body.to_owned(),
                }),
                Poll::Pending => return Poll::Pending,
            }
        }
        // This node called the body: its id is the caller, lent for the poll (a clone per
        // poll of a local call keeps the state of every call small).
        State::Local(local) => {
            let Local {
                peer,
                work,
                deadline,
                after,
                span,
            } = &mut **local;
            let _entered = crate::trace::entered(span);
            match crate::context::with_caller(&mut Some(peer.clone()), || Pin::new(work).poll(cx)) {
                Poll::Ready(Ok(value)) => Ok((peer.clone(), Received::Bytes(value.into_bytes()))),
                Poll::Ready(Err(f)) => Err(f.into_error(peer.clone(), body)),
                Poll::Pending => match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Err(Error::Timeout {
                        peer: peer.clone(),
                        body: body.to_owned(),
                        after: *after,
                    }),
                    Poll::Pending => return Poll::Pending,
                },
            }
        }
        // As std's futures do: polling after completion is a bug in the caller.
        State::Start(_) | State::Waiting(_) | State::Done => {
            panic!("a remote call was polled after it completed")
        }
    };
    *state = State::Done;
    let outcome = match outcome {
        Err(e) if pool.is_some() => {
            let member = e.peer().cloned();
            return fail(state, pool, member, e, cx).map(Err);
        }
        other => other,
    };
    Poll::Ready(outcome.map_err(failed))
}

/// Ends the call with `error`, or, for a call to a pool that another member may take, starts it
/// again there (and asks to be polled).
fn fail(
    state: &mut State,
    pool: &mut Option<Box<PoolCall>>,
    member: Option<PeerId>,
    error: Error,
    cx: &mut Context<'_>,
) -> Poll<Error> {
    let Some(pool) = pool.as_deref_mut() else {
        return Poll::Ready(failed(error));
    };
    // An error raised before sending names the member too.
    let member = member.or_else(|| error.peer().cloned());
    let never_ran = matches!(
        error,
        Error::NotConnected { .. }
            | Error::Busy { .. }
            | Error::ShuttingDown { .. }
            | Error::UnknownBody { .. }
            | Error::NotAuthenticated { .. }
            | Error::TooManyConnections { .. }
            | Error::Handshake { .. }
            | Error::Transport { .. }
    );
    let lost = pool.idempotent && matches!(error, Error::Disconnected { .. });
    let time_left = match (&pool.node, pool.deadline_at) {
        (Some(node), Some(at)) => node.runtime().now() < at,
        _ => true,
    };
    let again = (never_ran || lost) && pool.retries > 0 && time_left;
    // The kept copy goes out; `begin_pool` keeps a copy of it in turn.
    let (Some(captures), true) = (pool.captures.take(), again) else {
        return Poll::Ready(failed(error));
    };
    pool.retries -= 1;
    if let Some(member) = member {
        tracing::debug!(pool = %pool.pool, %member, error = %error, "sending the call to another member");
        pool.tried.push(member);
    }
    *state = State::Start(Start {
        peer: None,
        captures: Ok(captures),
        timeout: None,
        node: pool.node.clone(),
    });
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// `error`, logged as the end of a call.
#[cold]
fn failed(error: Error) -> Error {
    tracing::debug!(error = %error, "call failed");
    error
}

/// An [`Error::UnknownBody`] the peer answered, with the body's site in this build.
fn with_site(error: Error) -> Error {
    match (error, crate::registry::Registry::global()) {
        (
            Error::UnknownBody {
                peer,
                body,
                site: None,
                missing,
            },
            Ok(registry),
        ) => crate::contract::unknown_body(registry, &peer, &body, missing),
        (other, _) => other,
    }
}

fn begin(body: &'static str, start: Start, caller: &Waker) -> Result<State, Error> {
    let node = match start.node {
        Some(node) => node,
        None => context::calling_node()?,
    };
    let captures = start.captures.map_err(|e| *e)?;
    let after = start.timeout.unwrap_or(node.config().default_timeout);
    let peer = start.peer.unwrap_or_else(|| node.id().clone());
    if peer == *node.id() {
        let span = call_span!(
            "call",
            body,
            peer = %peer,
            local = true,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
            parent_id = tracing::field::Empty,
        );
        let handler = node.registry().handler(body);
        let mut work = crate::trace::in_span(&span, || {
            serve::dispatch(&node, handler, Received::Bytes(captures.into_bytes()))
        });
        // Run here, the body's span is the call's.
        if let Some((ctx, parent)) = crate::trace_context::for_call(&span) {
            crate::trace_context::record(&span, &ctx, parent);
            work = serve::Served::traced(ctx, work);
        }
        let state = State::Local(Box::new(Local {
            peer,
            work,
            deadline: node.runtime().sleep(after),
            after,
            span,
        }));
        return Ok(state);
    }
    let deadline_at = node.runtime().now().saturating_add(after);
    let conn = match node.connection(&peer) {
        Ok(conn) => conn,
        Err(not_connected) => {
            let back = node
                .reconnected(&peer)
                .or_else(|| node.dial_on_demand(&peer))
                .ok_or(not_connected)?;
            tracing::debug!(body, peer = %peer, "waiting for the peer to reconnect");
            let state = State::Waiting(Box::new(Waiting {
                deadline: node.runtime().sleep(after),
                node,
                peer,
                captures,
                back,
                deadline_at,
                after,
                key: None,
            }));
            return Ok(state);
        }
    };
    let deadline = Deadline {
        at: deadline_at,
        wait: after,
        after,
    };
    send(&conn, body, captures, deadline, None, caller)
}

/// Begins a call to a pool: on the connected member with the fewest calls in flight, else on
/// one the node's directory (a NATS cluster) picks, once connected.
fn begin_pool(
    body: &'static str,
    start: Start,
    pool: &mut PoolCall,
    caller: &Waker,
) -> Result<State, Error> {
    let node = match start.node.or_else(|| pool.node.clone()) {
        Some(node) => node,
        None => context::calling_node()?,
    };
    let captures = start.captures.map_err(|e| *e)?;
    let now = node.runtime().now();
    if pool.deadline_at.is_none() {
        pool.after = start.timeout.unwrap_or(node.config().default_timeout);
        pool.deadline_at = Some(now.saturating_add(pool.after));
    }
    let deadline_at = pool.deadline_at.unwrap_or(now);
    let after = pool.after;
    let wait = deadline_at.saturating_sub(now);
    pool.node = Some(node.clone());
    pool.captures = Some(captures.duplicate());
    let mut connected = node.least_busy_member(&pool.pool, body, &pool.tried);
    // A member on the cluster this node holds no session with yet has no calls in flight.
    let mut unconnected = node.unconnected_member(&pool.pool, &pool.tried);
    if connected.is_none() && unconnected.is_none() && pool.key.is_some() {
        // Every member was tried: an idempotent call may go again to one whose link was
        // lost (its key keeps that member from running it twice).
        connected = node.least_busy_member(&pool.pool, body, &[]);
        unconnected = node.unconnected_member(&pool.pool, &[]);
    }
    let (back, waiting_for) = match (connected, unconnected) {
        (Some(conn), Some(other)) if conn.load().0 > 0 => (node.dial_on_demand(&other), other),
        (Some(conn), _) => {
            let deadline = Deadline {
                at: deadline_at,
                wait,
                after,
            };
            return send(&conn, body, captures, deadline, pool.key, caller);
        }
        (None, Some(other)) => (node.dial_on_demand(&other), other),
        (None, None) => (
            node.pick_member(&pool.pool, &pool.tried),
            PeerId::new(pool.pool.name()),
        ),
    };
    let back = back.ok_or_else(|| Error::NoMembers {
        pool: pool.pool.clone(),
        tried: pool.tried.clone(),
    })?;
    tracing::debug!(body, pool = %pool.pool, "asking the directory for a member");
    Ok(State::Waiting(Box::new(Waiting {
        deadline: node.runtime().sleep(wait),
        node,
        peer: waiting_for,
        captures,
        back,
        deadline_at,
        after,
        key: pool.key,
    })))
}

/// When a call gives up: at `at` on the runtime's clock, `wait` from now; `after` is the whole
/// timeout, which its error reports.
#[derive(Clone, Copy)]
struct Deadline {
    at: Duration,
    wait: Duration,
    after: Duration,
}

/// Sends the call, with its idempotency `key` if it has one; `caller` is woken when it ends.
fn send(
    conn: &std::sync::Arc<crate::connection::Connection>,
    body: &'static str,
    captures: Encoded,
    deadline: Deadline,
    key: Option<u64>,
    caller: &Waker,
) -> Result<State, Error> {
    if let Some(refused) = conn.refusal(body, &captures) {
        return Err(refused);
    }
    let Deadline { at, wait, after } = deadline;
    let span = call_span!(
        "call",
        body,
        peer = %conn.peer(),
        request = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_id = tracing::field::Empty,
    );
    // An idempotent call's frame carries its key and no trace.
    let trace = match key {
        None => crate::trace_context::for_call(&span),
        Some(_) => None,
    };
    let marks = crate::connection::Marks {
        key,
        trace: trace.as_ref().map(|(ctx, _)| ctx),
    };
    let call = conn.start_call(body, captures, at, wait, marks, caller)?;
    if !span.is_none() {
        span.record("request", call.id());
    }
    if let Some((ctx, parent)) = &trace {
        crate::trace_context::record(&span, ctx, *parent);
    }
    Ok(State::Remote { call, after, span })
}

/// Polls a call waiting for its peer to come back: once it is, sends the call (the state
/// becomes `Remote`); fails with `NotConnected` if the deadline passes first or the node stops
/// redialling.
fn poll_waiting(
    state: &mut State,
    body: &'static str,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Error>> {
    let State::Waiting(waiting) = state else {
        return Poll::Ready(Ok(()));
    };
    let reconnected = match Pin::new(&mut waiting.back).poll(cx) {
        Poll::Ready(Ok(Ok(peer))) => Some(peer),
        Poll::Ready(Ok(Err(refused))) => {
            *state = State::Done;
            return Poll::Ready(Err(refused));
        }
        Poll::Ready(Err(_)) => None,
        Poll::Pending => match waiting.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => None,
            Poll::Pending => return Poll::Pending,
        },
    };
    let State::Waiting(waiting) = std::mem::replace(state, State::Done) else {
        return Poll::Ready(Ok(()));
    };
    let Waiting {
        node,
        peer,
        captures,
        deadline_at,
        after,
        key,
        ..
    } = *waiting;
    let not_connected = Error::NotConnected { peer: peer.clone() };
    let Some(peer) = reconnected else {
        return Poll::Ready(Err(not_connected));
    };
    // The deadline keeps running from when the call began: the peer is given what is left.
    let wait = deadline_at.saturating_sub(node.runtime().now());
    let sent = node
        .connection(&peer)
        .map_err(|_| not_connected)
        .and_then(|conn| {
            let deadline = Deadline {
                at: deadline_at,
                wait,
                after,
            };
            send(&conn, body, captures, deadline, key, cx.waker())
        });
    Poll::Ready(sent.map(|next| *state = next))
}

//! Streams out of remote bodies: [`remote_stream!`](crate::remote_stream) runs a body on a peer
//! whose value is a [`Stream`], and the caller consumes its items as they come, as a
//! [`RemoteStream`].
//!
//! A stream is made of calls, so it needs nothing of the protocol that calls do not have: the
//! caller's call runs the body, and the body delivers the items back to the caller in batches,
//! each a call of a body every peer serves. A delivery carries no more items than the caller
//! has room for (its window, 256 items unless [`RemoteStream::window`] says otherwise) and is answered
//! when there is room for more, so a slow consumer holds its producer back instead of making it
//! buffer. Everything a call has, a stream has: its body's captures are checked as a
//! `remote!`'s, it runs with the caller's identity and authorization, it can call other peers
//! (or stream from them), it works between browsers and servers, and dropping it cancels the
//! call, which stops the body on its peer.

mod queue;
mod sink;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;

use crate::call::Call;
use crate::error::Error;
use crate::peer_id::PeerId;
use crate::runtime::BoxFuture;
use queue::Queue;

pub use queue::delivery_body;
pub use sink::StreamBody;
#[doc(hidden)]
pub use sink::{drain, Drained, StreamSink};

/// Items a stream's consumer takes before its producer must wait, unless
/// [`RemoteStream::window`] says otherwise.
const WINDOW: usize = 256;

/// How long a stream may last unless [`RemoteStream::timeout`] says otherwise: a day.
const STREAM_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Runs a block on another peer whose value is a [`Stream`], and evaluates to a
/// [`RemoteStream`] of its items.
///
/// `remote_stream!(peer, [name: Type, ...], { body })` checks its captures as
/// [`remote!`](crate::remote) does; the body may `.await` before it gives its stream (of items
/// serde can encode and decode), which it then runs on the peer, a window of items ahead of
/// the caller at most.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// use futures::StreamExt;
/// use remote_scope::{remote_stream, Node};
///
/// let server = Node::builder().build()?;
/// let listener = server.listen("127.0.0.1:0").await?;
/// let client = Node::builder().build()?;
/// let peer = client.connect(&listener.url()).await?;
///
/// let squares: Vec<u64> = client
///     .run(async {
///         let up_to = 5_u64;
///         remote_stream!(peer, [up_to: u64], {
///             futures::stream::iter(1..=up_to).map(|n| n * n)
///         })
///         .map(|item| item.expect("the peer sent it"))
///         .collect()
///         .await
///     })
///     .await;
/// assert_eq!(squares, [1, 4, 9, 16, 25]);
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! remote_stream {
    ($peer:expr, [$($captures:tt)*], $body:block) => {
        $crate::__private::stream(|__remote_scope_sink: $crate::__private::StreamSink| {
            $crate::remote!(
                $peer,
                [__remote_scope_sink: $crate::__private::StreamSink, $($captures)*],
                { $crate::__private::drain(__remote_scope_sink, $body).await }
            )
        })
    };
}

/// The items of a [`remote_stream!`](crate::remote_stream)'s body, as they come from its peer:
/// a [`Stream`] of `Result<T, Error>`.
///
/// The stream ends after the body's last item, or with one `Err` if the call fails: the body
/// panicked, its peer was lost ([`Error::Disconnected`]), its items do not decode, or a
/// deadline passed. [`timeout`](RemoteStream::timeout) bounds the whole stream (as it bounds a
/// call), [`item_timeout`](RemoteStream::item_timeout) the wait for each item. Dropping it
/// stops the body on its peer.
#[must_use = "a stream does nothing until it is polled"]
pub struct RemoteStream<T> {
    /// The call running the body; `None` once it ended.
    call: Option<Call<Result<Drained<T>, Error>>>,
    id: u64,
    queue: Arc<Queue>,
    registered: bool,
    /// How the call ended, given out once the items before it are taken.
    end: Option<Result<(), Error>>,
    item_timeout: Option<Duration>,
    /// Ends when the next item is late.
    timer: Option<BoxFuture<'static, ()>>,
    peer: Option<PeerId>,
    body: &'static str,
    done: bool,
}

/// Opens a stream: `make` gives the call of the producing body, with the sink it feeds.
#[doc(hidden)]
pub fn stream<T, F>(make: F) -> RemoteStream<T>
where
    F: FnOnce(StreamSink) -> Call<Result<Drained<T>, Error>>,
{
    let id = crate::random::random_u64();
    // A stream lasts as long as its consumer reads, unless told otherwise: not the node's
    // default timeout, which is for calls.
    let call = make(StreamSink { id }).timeout(STREAM_TIMEOUT);
    let peer = call.peer().cloned();
    let body = call.body_name();
    RemoteStream {
        queue: Queue::new(WINDOW, peer.clone()),
        call: Some(call),
        id,
        registered: false,
        end: None,
        item_timeout: None,
        timer: None,
        peer,
        body,
        done: false,
    }
}

impl<T> RemoteStream<T> {
    /// Lets the producer run at most `items` ahead of the consumer (256 unless set; at least
    /// 1). The window counts items, so what waits here is at most a window of them: with large
    /// items, a smaller window bounds the memory. Set before the stream is first polled.
    pub fn window(self, items: usize) -> Self {
        self.queue.set_window(items);
        self
    }

    /// Ends the stream with [`Error::Timeout`] if it is not over within `timeout` (a day
    /// unless set: a stream lasts as long as its consumer reads, not the node's default
    /// timeout for calls), and stops the body. Set before the stream is first polled.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.call = self.call.take().map(|call| call.timeout(timeout));
        self
    }

    /// Ends the stream with [`Error::Timeout`] if an item (or the end) takes longer than
    /// `timeout` to come, and stops the body. The wait runs on the current node's clock: a
    /// stream polled outside [`Node::run`](crate::Node::run) and outside a body has none, and
    /// waits without it.
    pub fn item_timeout(mut self, timeout: Duration) -> Self {
        self.item_timeout = Some(timeout);
        self
    }

    /// The stable name of the body producing the stream.
    pub fn body_name(&self) -> &'static str {
        self.body
    }

    /// Ends the stream with `error` (once) and stops the body.
    fn fail(&mut self, error: Error) -> Poll<Option<Result<T, Error>>> {
        self.call = None;
        self.queue.close();
        self.done = true;
        Poll::Ready(Some(Err(error)))
    }
}

impl<T> Stream for RemoteStream<T>
where
    T: serde::de::DeserializeOwned,
{
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if !this.registered {
            queue::register(this.id, &this.queue);
            this.registered = true;
        }
        loop {
            // Registered before anything is looked at, so that whatever comes after the look
            // (an item, a refused delivery, the call's end) wakes this poll's caller.
            this.queue.consumer.register(cx.waker());
            if let Some(bytes) = this.queue.pop() {
                this.timer = None;
                let item =
                    crate::protocol::decode_payload(&bytes).map_err(|e| Error::DecodeResult {
                        peer: this.peer.clone().unwrap_or_else(|| PeerId::new("")),
                        body: this.body.to_owned(),
                        reason: format!("an item of the stream: {e}"),
                    });
                return match item {
                    Ok(item) => Poll::Ready(Some(Ok(item))),
                    Err(e) => this.fail(e),
                };
            }
            if let Some(failure) = this.queue.take_failure() {
                return this.fail(failure);
            }
            if let Some(end) = this.end.take() {
                this.done = true;
                this.call = None;
                this.queue.close();
                return Poll::Ready(end.err().map(Err));
            }
            let Some(call) = this.call.as_mut() else {
                this.done = true;
                this.queue.close();
                return Poll::Ready(None);
            };
            match Pin::new(call).poll(cx) {
                // Every item was delivered before the body returned: take them, then end.
                Poll::Ready(result) => {
                    this.call = None;
                    this.end = Some(result.and_then(|inner| inner.map(|_| ())));
                    continue;
                }
                Poll::Pending => {}
            }
            // An item (or a refusal) may have come in while the call was polled.
            if this.queue.has_items() || this.queue.has_failed() {
                continue;
            }
            if let Some(after) = this.item_timeout {
                let timer =
                    this.timer
                        .get_or_insert_with(|| match crate::context::calling_node() {
                            Ok(node) => node.runtime().sleep(after),
                            Err(_) => Box::pin(futures::future::pending()),
                        });
                if timer.as_mut().poll(cx).is_ready() {
                    let error = Error::Timeout {
                        peer: this.peer.clone().unwrap_or_else(|| PeerId::new("")),
                        body: this.body.to_owned(),
                        after,
                    };
                    return this.fail(error);
                }
            }
            return Poll::Pending;
        }
    }
}

impl<T> Drop for RemoteStream<T> {
    fn drop(&mut self) {
        // The call, dropped with the stream, tells the producing peer to stop its body.
        self.queue.close();
        if self.registered {
            queue::unregister(self.id);
        }
    }
}

impl<T> std::fmt::Debug for RemoteStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStream")
            .field("body", &self.body)
            .field("peer", &self.peer)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

//! The producer's side of a stream: the body's stream, taken item by item and delivered to the
//! consumer in batches as large as the consumer has room for.

use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::call::Call;
use crate::error::Error;
use crate::peer_id::PeerId;
use crate::protocol::Encoded;
use crate::streams::queue::{delivery, DELIVERIES};

/// Which stream a producing body feeds: sent along with its captures.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct StreamSink {
    pub(super) id: u64,
}

/// What a streaming body's call returns once every item is delivered: nothing but the item
/// type, which ties the caller's stream to the body's.
#[doc(hidden)]
pub struct Drained<T>(PhantomData<fn() -> T>);

impl<T> Serialize for Drained<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de, T> Deserialize<'de> for Drained<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer).map(|()| Drained(PhantomData))
    }
}

/// A value a `remote_stream!` body can evaluate to: a [`Stream`] of items that serde can
/// encode and decode.
#[diagnostic::on_unimplemented(
    message = "the body of `remote_stream!` must evaluate to a `Stream` of serializable items, \
               not `{Self}`",
    label = "this is the body's value",
    note = "make a stream of the items: `futures::stream::iter(items)` for a collection, \
            `futures::stream::unfold(..)` to compute them one by one"
)]
pub trait StreamBody {
    /// The items.
    type Item: Serialize;
    /// The stream.
    type Stream: Stream<Item = Self::Item>;
    #[doc(hidden)]
    fn into_stream(self) -> Self::Stream;
}

impl<S> StreamBody for S
where
    S: Stream,
    S::Item: Serialize,
{
    type Item = S::Item;
    type Stream = S;

    fn into_stream(self) -> S {
        self
    }
}

/// Runs on the producing peer: takes the items of `body` and delivers them to the peer that
/// called, never more than it has room for. Returns once every item is delivered, or when the
/// consumer is gone.
pub async fn drain<B>(sink: StreamSink, body: B) -> Result<Drained<B::Item>, Error>
where
    B: StreamBody,
{
    let consumer = crate::context::caller().ok_or_else(|| {
        Error::protocol("a stream's body ran without a caller to deliver its items to")
    })?;
    Drain {
        consumer,
        id: sink.id,
        items: Box::pin(body.into_stream()),
        batch: Vec::new(),
        batch_bytes: 0,
        sending: VecDeque::new(),
        next: 0,
        room: 1,
        most: 1,
        ended: false,
        panicked: None,
        failed: None,
        item: PhantomData,
    }
    .await
}

/// The bytes of items a delivery carries at most (more only when one item is larger): far
/// below a peer's default capture limit (16 MiB), and, with two under way, what bounds the
/// producer's memory whatever room the consumer reports.
const BATCH_BYTES: usize = 1 << 20;

/// A delivery under way.
struct Delivery {
    call: Call<u32>,
    items: usize,
    /// Its answer, once it came (answers are taken in the order of the deliveries).
    answer: Option<Result<u32, Error>>,
}

/// The state of [`drain`].
struct Drain<S: Stream> {
    consumer: PeerId,
    id: u64,
    items: Pin<Box<S>>,
    /// Items taken from the stream, encoded, not sent yet, and their bytes.
    batch: Vec<Bytes>,
    batch_bytes: usize,
    /// The deliveries under way, oldest first.
    sending: VecDeque<Delivery>,
    /// The number of the next delivery: the consumer takes them in this order.
    next: u64,
    /// Room at the consumer not yet used by a delivery under way: what the next may carry.
    /// The first delivery carries one item: the consumer's answer says how much room it has.
    room: usize,
    /// The most items one delivery carries.
    most: usize,
    ended: bool,
    /// The stream panicked: raised again once the items before it are delivered.
    panicked: Option<Box<dyn std::any::Any + Send>>,
    /// An item did not encode: the stream's error once the items before it are delivered.
    failed: Option<Error>,
    item: PhantomData<fn() -> S::Item>,
}

impl<S> Future for Drain<S>
where
    S: Stream,
    S::Item: Serialize,
{
    type Output = Result<Drained<S::Item>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            for delivery in this.sending.iter_mut().filter(|d| d.answer.is_none()) {
                if let Poll::Ready(answer) = Pin::new(&mut delivery.call).poll(cx) {
                    delivery.answer = Some(answer);
                }
            }
            while let Some(answer) = this.sending.front_mut().and_then(|d| d.answer.take()) {
                this.sending.pop_front();
                match answer {
                    // The consumer dropped its stream.
                    Ok(0) => return Poll::Ready(Ok(Drained(PhantomData))),
                    // The room there now, less what the deliveries still under way carry.
                    Ok(room) => {
                        let behind: usize = this.sending.iter().map(|d| d.items).sum();
                        this.room = (room as usize).saturating_sub(behind);
                        // A share of the room each, so that the next goes while one is answered.
                        this.most = (room as usize / DELIVERIES).max(1);
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            // Take what the stream has ready, up to the room there is, and a batch's bytes.
            while !this.ended
                && this.batch.len() < this.room.min(this.most)
                && this.batch_bytes < BATCH_BYTES
            {
                let items = &mut this.items;
                let next = catch_unwind(AssertUnwindSafe(|| items.as_mut().poll_next(cx)));
                let next = match next {
                    Ok(next) => next,
                    Err(panic) => {
                        // The items made before the panic go first; the panic then ends the
                        // body, and reaches the caller after them.
                        this.panicked = Some(panic);
                        this.ended = true;
                        break;
                    }
                };
                match next {
                    Poll::Ready(Some(item)) => match Encoded::new(&item, 0) {
                        Ok(encoded) => {
                            let bytes = encoded.into_bytes();
                            this.batch_bytes += bytes.len();
                            this.batch.push(bytes);
                        }
                        Err(e) => {
                            // The items before it go first, as with a panic.
                            this.failed = Some(Error::EncodeResult {
                                peer: crate::current_peer().unwrap_or_else(|| PeerId::new("")),
                                body: "a stream's item".to_owned(),
                                reason: e.to_string(),
                            });
                            this.ended = true;
                        }
                    },
                    Poll::Ready(None) => this.ended = true,
                    Poll::Pending => break,
                }
            }
            if !this.batch.is_empty() && this.sending.len() < DELIVERIES {
                let batch = std::mem::take(&mut this.batch);
                this.batch_bytes = 0;
                this.room = this.room.saturating_sub(batch.len());
                let items = batch.len();
                let call = delivery(&this.consumer, this.id, this.next, batch);
                this.next += 1;
                this.sending.push_back(Delivery {
                    call,
                    items,
                    answer: None,
                });
                // Polled at the top of the loop, which sends it.
                continue;
            }
            if this.sending.is_empty() && this.batch.is_empty() {
                if let Some(panic) = this.panicked.take() {
                    resume_unwind(panic);
                }
                if let Some(failed) = this.failed.take() {
                    return Poll::Ready(Err(failed));
                }
                if this.ended {
                    return Poll::Ready(Ok(Drained(PhantomData)));
                }
            }
            return Poll::Pending;
        }
    }
}

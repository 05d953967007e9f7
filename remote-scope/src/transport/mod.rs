//! Transports: how frames travel between two peers.
//!
//! A transport is anything that is a [`Stream`] of received binary messages and a [`Sink`] of
//! binary messages to send, one frame per message. The node does the rest (handshake, calls,
//! middleware), so the same logic runs over a native WebSocket (`websocket`, on tokio, with
//! tungstenite for the HTTP upgrade), a browser WebSocket (`browser`, on wasm32), or an
//! in-memory pair ([`memory`]); for tests, [`faulty`] is an in-memory pair that drops, delays,
//! reorders, duplicates and cuts.

pub use bytes::Bytes;
use futures::{Sink, Stream};

use crate::error::Error;
use crate::runtime::MaybeSend;

#[cfg(target_arch = "wasm32")]
pub mod browser;
pub mod faulty;
pub mod memory;
#[cfg(all(feature = "nats", not(target_arch = "wasm32")))]
pub mod nats;
#[cfg(not(target_arch = "wasm32"))]
pub mod websocket;

#[cfg(target_arch = "wasm32")]
pub(crate) use browser::dialer;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use websocket::dialer;

/// A bidirectional channel of binary messages to one peer.
///
/// Implemented for every type that is both a `Stream<Item = Result<Bytes, Error>>` and a
/// `Sink<Bytes, Error = Error>`; see [`memory::pair`] for one. Messages are [`Bytes`] both ways
/// so that the node can send and hand out parts of buffers without copying them.
pub trait Transport:
    Stream<Item = Result<Bytes, Error>> + Sink<Bytes, Error = Error> + Unpin + MaybeSend + 'static
{
}

impl<T> Transport for T where
    T: Stream<Item = Result<Bytes, Error>>
        + Sink<Bytes, Error = Error>
        + Unpin
        + MaybeSend
        + 'static
{
}

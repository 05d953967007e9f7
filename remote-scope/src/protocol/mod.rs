//! The wire protocol, version [`PROTOCOL_VERSION`].
//!
//! Peers exchange **frames**, one per binary WebSocket message (or per message of any other
//! transport), each a MessagePack encoding of [`Frame`]: a one-entry map from the variant's name
//! to its fields, structs as arrays, byte fields as MessagePack `bin`. A `Hello` is
//! `{"Hello": [version, peer, digest, bodies, token, limits]}`.
//!
//! | frame | when | fields |
//! |---|---|---|
//! | [`Frame::Hello`] (register-scope) | first frame each way | protocol version, peer id, digest of the bodies served, body count, token, limits |
//! | [`Frame::Bodies`] | after the `Hello`s, when the digests differ: the connector's, then the acceptor's | the bodies the sender serves |
//! | [`Frame::Reject`] | instead of the acceptor's `Hello` or its `Bodies`, or the connector's `Bodies` | why the connection is refused |
//! | [`Frame::Invoke`] | a call | request id, body name, how long the caller waits, encoded captures |
//! | [`Frame::InvokeOnce`] | a call the caller may send again (an idempotent call to a pool) | idempotency key, and the `Invoke` |
//! | [`Frame::InvokeTraced`] | a call made as part of a trace | W3C trace context (trace id, the calling span's id, flags, `tracestate`), and the `Invoke` |
//! | [`Frame::Result`] | its answer | request id, encoded value or a [`Failure`] |
//! | [`Frame::Message`] | any time after the handshake | user bytes, for middleware |
//! | [`Frame::Cancel`] | the caller gave up on a call | request id |
//! | [`Frame::Ping`], [`Frame::Pong`] | keep-alive, when a connection has been quiet | none |
//!
//! The connecting peer sends `Hello` first; the accepting peer checks it and answers with its own
//! `Hello` or with `Reject`. Peers that serve the same bodies (equal digests) are done; others
//! tell each other what they serve: the connector sends its [`Bodies`], the acceptor checks them
//! against what it requires and answers with its own or with `Reject`, and the connector checks
//! those. A call to a body the peer does not serve then fails on the caller's side, before
//! anything is sent. After that both sides may send `Invoke` at any time: calls are
//! multiplexed, each `Result` names the request it answers, and results come back in the order
//! the bodies finish. Captures and results are themselves MessagePack (rmp-serde) of the
//! capture tuple and of the body's value, and decode only if they nest at most [`MAX_DEPTH`]
//! levels deep, so a hostile value cannot overflow the decoder's stack. A caller that stops
//! waiting (its timeout passed, or its future was dropped) sends `Cancel`, and the serving peer
//! stops the body; the serving peer also stops a body by itself once the caller's wait
//! (`timeout_ms`) is over. A request id runs its body at most once per connection: a repeated
//! `Invoke` is ignored.
//!
//! A peer that has heard nothing for the keep-alive interval sends `Ping`; the other answers
//! `Pong`. One that hears nothing for two intervals takes the connection for dead and closes it.
//!
//! [`Frame`] is the one form a frame takes in memory: what [`encode`] writes, what [`decode`]
//! reads, what middleware sees. Its byte fields are [`Bytes`] that share the message they were
//! decoded from; the frames every call sends are written and read by a hand-written fast path
//! behind `encode` and `decode`, which gives the same bytes and frames as serde.
//!
//! Frames larger than the configured limit are rejected before they are decoded, and a frame
//! that does not decode closes the connection with [`Error::Protocol`]; it never panics.

use std::borrow::Cow;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::peer_id::PeerId;

mod arena;
pub(crate) use arena::copy;
mod decoder;
pub(crate) use decoder::decode_payload;
pub use decoder::MAX_DEPTH;
mod hot;
use hot::{Header, Hot};
mod read;
mod serializer;
pub(crate) use serializer::EncodeError;
mod received;
pub(crate) use received::Received;

/// The version this build speaks; a peer with another version is refused at connect time.
pub const PROTOCOL_VERSION: u32 = 5;

/// The default largest frame a peer accepts: 64 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 64 << 20;

/// One message on the wire.
///
/// ```
/// use remote_scope::protocol::{decode, encode, Frame, Invoke};
///
/// let frame = Frame::Invoke(Invoke {
///     id: 7,
///     body: "demo::0123456789abcdef".into(),
///     timeout_ms: 30_000,
///     captures: vec![0x2a].into(),
/// });
/// let bytes = encode(&frame).unwrap();
/// assert_eq!(decode(bytes, 1024).unwrap(), frame);
/// // The decoded frame's byte fields are parts of `bytes`, not copies.
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// register-scope: who this peer is and what it serves.
    Hello(Hello),
    /// The bodies the sender serves, when the `Hello`s' digests differ.
    Bodies(Bodies),
    /// The accepting peer refuses the connection.
    Reject(Reject),
    /// Run a body.
    Invoke(Invoke),
    /// Run a body at most once for this caller and key: a repeat (sent again after the
    /// caller lost its connection) gets the first run's result instead of a second run.
    InvokeOnce(InvokeOnce),
    /// An `Invoke` made as part of a trace: the body runs in a span whose parent is the
    /// caller's (see [`TraceContext`](crate::TraceContext)). Boxed: it is rare, and every
    /// frame in memory is as large as the largest kind.
    InvokeTraced(Box<InvokeTraced>),
    /// The answer to an `Invoke`.
    Result(InvokeResult),
    /// Bytes for user middleware, sharing the connection with calls.
    Message(Bytes),
    /// The caller no longer waits for request `id`: stop its body.
    Cancel(u64),
    /// Are you there? Sent on a quiet connection; answered with `Pong`.
    Ping,
    /// The answer to `Ping`.
    Pong,
}

impl Frame {
    /// The frame's kind, its variant's name: what an error names when a frame came where
    /// another was due (its content may be large, and is the peer's).
    ///
    /// ```
    /// use remote_scope::protocol::Frame;
    ///
    /// assert_eq!(Frame::Cancel(7).kind(), "Cancel");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "Hello",
            Frame::Bodies(_) => "Bodies",
            Frame::Reject(_) => "Reject",
            Frame::Invoke(_) => "Invoke",
            Frame::InvokeOnce(_) => "InvokeOnce",
            Frame::InvokeTraced(_) => "InvokeTraced",
            Frame::Result(_) => "Result",
            Frame::Message(_) => "Message",
            Frame::Cancel(_) => "Cancel",
            Frame::Ping => "Ping",
            Frame::Pong => "Pong",
        }
    }
}

/// register-scope: the first frame each way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u32,
    /// The sender's peer id.
    pub peer: PeerId,
    /// The sender's [`Registry::digest`](crate::Registry::digest).
    pub digest: u64,
    /// How many bodies the sender serves.
    pub bodies: u32,
    /// The sender's token ([`NodeBuilder::token`](crate::NodeBuilder::token)), checked by the
    /// receiver's [`NodeBuilder::authenticate`](crate::NodeBuilder::authenticate).
    #[serde(default)]
    pub token: Option<String>,
    /// What the sender accepts, so that a call it would refuse fails on the caller's side.
    #[serde(default)]
    pub limits: Limits,
    /// The pools the sender is a member of ([`NodeBuilder::pool`](crate::NodeBuilder::pool)).
    #[serde(default)]
    pub pools: Vec<crate::pool::Pool>,
}

/// What a peer accepts from the other, told in its [`Hello`]. Both count encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The largest frame it reads ([`NodeBuilder::max_frame_size`](crate::NodeBuilder::max_frame_size)).
    pub max_frame_size: u64,
    /// The largest captures it decodes ([`NodeBuilder::max_capture_size`](crate::NodeBuilder::max_capture_size)).
    pub max_capture_size: u64,
}

impl Default for Limits {
    /// No limits known: a peer that did not say.
    fn default() -> Limits {
        Limits {
            max_frame_size: u64::MAX,
            max_capture_size: u64::MAX,
        }
    }
}

/// The bodies a peer serves, sent after the `Hello`s when their digests differ: for each body,
/// 12 bytes, the FNV-1a 64 of its name and the FNV-1a 32 of its site (`file:line:column`),
/// big-endian. A name says which body (its module and a fingerprint of its captures and code);
/// the site lets the other peer tell "built from other source there" from "not there at all".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bodies {
    /// The entries, 12 bytes each.
    pub entries: Bytes,
}

/// Why an accepting peer refused a connection.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reject {
    /// The acceptor speaks protocol version `ours`.
    ProtocolVersion {
        /// This peer's protocol version.
        ours: u32,
    },
    /// The other peer lacks bodies the refusing peer requires
    /// ([`NodeBuilder::require_module`](crate::NodeBuilder::require_module)).
    MissingBodies {
        /// How many bodies it lacks.
        missing: u32,
    },
    /// A peer with the connector's id is already connected.
    DuplicatePeer,
    /// The acceptor holds as many connections as it is configured to.
    TooManyConnections {
        /// The limit.
        limit: u32,
    },
    /// The connector's token was missing or wrong.
    NotAuthenticated,
    /// The connector's id is not one the acceptor accepts (see `PeerId::is_valid`).
    InvalidPeerId,
}

/// A call: run `body` with `captures`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoke {
    /// Chosen by the caller, unique among its calls in flight on this connection.
    pub id: u64,
    /// The body's stable name: borrowed from the registry when the receiver serves it.
    pub body: Cow<'static, str>,
    /// How long the caller waits for the result, in milliseconds; the serving peer stops the
    /// body after that.
    pub timeout_ms: u64,
    /// MessagePack of the capture tuple.
    pub captures: Bytes,
}

/// An [`Invoke`] with the caller's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeOnce {
    /// Chosen by the caller at random, the same for every time it sends the call.
    pub key: u64,
    /// The call.
    pub invoke: Invoke,
}

/// An [`Invoke`] with the caller's trace context: the trace, and the caller's span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeTraced {
    /// The trace, with the calling span's id.
    pub trace: crate::trace_context::TraceContext,
    /// The call.
    pub invoke: Invoke,
}

/// The answer to [`Invoke`] `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeResult {
    /// The request id of the `Invoke` it answers.
    pub id: u64,
    /// The value, or why there is none.
    pub outcome: Outcome,
}

/// A body's value, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// MessagePack of the body's value.
    Value(Bytes),
    /// The body did not give a value.
    Failure(Failure),
}

/// What went wrong on the serving peer; the caller turns it into an [`Error`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// The serving peer has no body of this name.
    UnknownBody,
    /// The body panicked.
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// The serving peer could not decode the captures.
    DecodeCaptures {
        /// What went wrong.
        reason: String,
    },
    /// The body's value could not be encoded.
    EncodeResult {
        /// What went wrong.
        reason: String,
    },
    /// The serving peer is already running as many bodies for this connection as it allows.
    Busy {
        /// The limit.
        limit: u32,
    },
    /// The serving peer does not let the caller run this body.
    NotAuthorized,
    /// The captures are larger than the serving peer accepts.
    CapturesTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The serving peer is shutting down and starts no more bodies.
    ShuttingDown,
    /// The call repeats an [`InvokeOnce`] whose first run was stopped before it finished (its
    /// caller's connection closed): it may have partly run.
    Interrupted,
}

impl Failure {
    /// The caller's view of this failure of `body` on `peer`.
    pub(crate) fn into_error(self, peer: PeerId, body: &str) -> Error {
        let body = body.to_owned();
        match self {
            Failure::UnknownBody => Error::UnknownBody {
                peer,
                body,
                site: None,
                missing: crate::error::Missing::Unknown,
            },
            Failure::Panicked { message } => Error::Panicked {
                peer,
                body,
                message,
            },
            Failure::DecodeCaptures { reason } => Error::DecodeCaptures { peer, body, reason },
            Failure::EncodeResult { reason } => Error::EncodeResult { peer, body, reason },
            Failure::Busy { limit } => Error::Busy { peer, body, limit },
            Failure::NotAuthorized => Error::NotAuthorized { peer, body },
            Failure::CapturesTooLarge { limit } => Error::CapturesTooLarge { peer, body, limit },
            Failure::ShuttingDown => Error::ShuttingDown { peer, body },
            Failure::Interrupted => Error::Disconnected { peer, body },
        }
    }
}

/// A MessagePack payload (captures or a value) encoded after `start` bytes of headroom, so the
/// frame around it can be written in front of it instead of copying it into a new buffer.
#[doc(hidden)]
#[derive(Debug)]
pub struct Encoded {
    buf: BytesMut,
    start: usize,
}

impl Encoded {
    /// A copy, to send again (a call to a pool keeps one for another member).
    pub(crate) fn duplicate(&self) -> Encoded {
        Encoded {
            buf: self.buf.clone(),
            start: self.start,
        }
    }

    /// Encodes `value` (maps for structs, as serde's self-describing form; a `Vec<u8>` or
    /// `&[u8]` anywhere in it as one MessagePack `bin`, a byte a byte, not as an array of
    /// integers of up to two bytes each) after `headroom` bytes. The decoder reads a `Vec<u8>`
    /// from either form.
    pub(crate) fn new<T: Serialize + ?Sized>(
        value: &T,
        headroom: usize,
    ) -> Result<Encoded, EncodeError> {
        let buf = arena::cut(headroom + 64, |buf| {
            buf.put_bytes(0, headroom);
            serializer::encode(value, buf)
        })?;
        // A frame carries the payload as one MessagePack bin, whose length is 32 bits.
        if buf.len() - headroom > u32::MAX as usize {
            return Err(EncodeError::TooLong {
                what: "a payload",
                len: buf.len() - headroom,
            });
        }
        Ok(Encoded {
            buf,
            start: headroom,
        })
    }

    /// The payload.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The payload, as the bytes it already is.
    pub(crate) fn into_bytes(self) -> Bytes {
        let mut bytes = self.buf.freeze();
        bytes.advance(self.start);
        bytes
    }

    /// The payload wrapped in a frame that starts with `header`. The header goes into the
    /// headroom (it always fits for the headroom this module asks for), so the frame is the
    /// payload's own buffer: the payload is not copied.
    fn framed(mut self, header: Header<'_>) -> Bytes {
        let payload = self.buf.len() - self.start;
        // `Encoded::new` refuses larger payloads.
        let len = u32::try_from(payload).unwrap_or(u32::MAX);
        let written = header.len(len);
        if written > self.start {
            // Too little headroom: the frame is built apart, by copying.
            let mut frame = vec![0; written];
            header.write(&mut frame, len);
            frame.extend_from_slice(self.as_slice());
            return Bytes::from(frame);
        }
        let at = self.start - written;
        header.write(&mut self.buf[at..self.start], len);
        let mut frame = self.buf.freeze();
        frame.advance(at);
        frame
    }
}

/// Headroom for an `Invoke` of a body named `body`: map, variant name, array, id, name,
/// timeout, bin header.
pub(crate) fn invoke_headroom(body: &str) -> usize {
    48 + body.len()
}

/// Headroom for a `Result` with a value.
pub(crate) const RESULT_HEADROOM: usize = 32;

/// `{"Invoke": [id, body, timeout_ms, bin(captures)]}`, the same bytes as [`encode`] of
/// [`Frame::Invoke`].
pub(crate) fn invoke_frame(id: u64, body: &str, timeout_ms: u64, captures: Encoded) -> Bytes {
    captures.framed(Header::Invoke {
        id,
        body,
        timeout_ms,
    })
}

/// `{"Result": [id, {"Value": bin(value)}]}`, the same bytes as [`encode`] of a
/// [`Frame::Result`] with [`Outcome::Value`].
pub(crate) fn value_frame(id: u64, value: Encoded) -> Bytes {
    value.framed(Header::Value { id })
}

/// Decodes a frame of at most `max_size` bytes, its body name from `names` where it has it:
/// given a name's bytes, `names` gives the same name as a `&'static str` when it has it (the
/// registry's, for a node), which saves an allocation per `Invoke`; else the decoder makes a
/// `String` of it. The payload of a frame the fast path reads is `message` itself, its header
/// cut off: no copy, and no reference count touched.
#[inline]
pub(crate) fn decode_with(
    mut message: Bytes,
    max_size: usize,
    names: impl FnOnce(&[u8]) -> Option<&'static str>,
) -> Result<Frame, Error> {
    check_size(&message, max_size)?;
    let fast = hot::decode(&message).and_then(|(hot, at)| Some((named(hot, names)?, at)));
    if let Some((hot, at)) = fast {
        message.advance(at);
        return Ok(match hot {
            Hot::Invoke {
                id,
                body,
                timeout_ms,
            } => Frame::Invoke(Invoke {
                id,
                body,
                timeout_ms,
                captures: message,
            }),
            Hot::Value { id } => Frame::Result(InvokeResult {
                id,
                outcome: Outcome::Value(message),
            }),
            Hot::Message => Frame::Message(message),
        });
    }
    decode_general(&message)
}

/// The frames the fast path does not read, by [`read`].
#[inline(never)]
pub(crate) fn decode_general(message: &Bytes) -> Result<Frame, Error> {
    read::frame(message).map_err(|e| {
        Error::protocol_caused(format!("malformed frame ({} bytes)", message.len()), e)
    })
}

/// `hot` with its body name: `names`' own when it has it, else a new `String`; `None` when the
/// name is not UTF-8, for the general decoder to refuse.
#[inline]
fn named(
    hot: Hot<&[u8]>,
    names: impl FnOnce(&[u8]) -> Option<&'static str>,
) -> Option<Hot<Cow<'static, str>>> {
    Some(match hot {
        Hot::Invoke {
            id,
            body,
            timeout_ms,
        } => Hot::Invoke {
            id,
            body: match names(body) {
                Some(known) => Cow::Borrowed(known),
                None => Cow::Owned(std::str::from_utf8(body).ok()?.to_owned()),
            },
            timeout_ms,
        },
        Hot::Value { id } => Hot::Value { id },
        Hot::Message => Hot::Message,
    })
}

#[inline]
fn check_size(bytes: &[u8], max_size: usize) -> Result<(), Error> {
    if bytes.len() > max_size {
        return Err(Error::protocol(format!(
            "frame of {} bytes exceeds the limit of {max_size} bytes",
            bytes.len()
        )));
    }
    Ok(())
}

/// Encodes a frame. The frames every call sends (an `Invoke`, a `Result` with a value) and
/// user messages are written by hand, the others by serde (structs as arrays, as rmp-serde's
/// default form has them); the bytes are the same either way.
pub fn encode(frame: &Frame) -> Result<Bytes, Error> {
    let (header, payload) = match frame {
        Frame::Invoke(invoke) => (
            Header::Invoke {
                id: invoke.id,
                body: &invoke.body,
                timeout_ms: invoke.timeout_ms,
            },
            &invoke.captures,
        ),
        Frame::Result(InvokeResult {
            id,
            outcome: Outcome::Value(value),
        }) => (Header::Value { id: *id }, value),
        Frame::Message(bytes) => (Header::Message, bytes),
        other => {
            return arena::cut(64, |buf| serializer::encode_frame(other, buf))
                .map(BytesMut::freeze)
                .map_err(|e| Error::protocol_caused("could not encode a frame", e))
        }
    };
    let len = u32::try_from(payload.len()).map_err(|_| {
        Error::protocol(format!(
            "could not encode a frame: a payload of {} bytes; a frame holds at most 4 GiB",
            payload.len()
        ))
    })?;
    let mut bytes = BytesMut::with_capacity(header.len(len) + payload.len());
    bytes.resize(header.len(len), 0);
    header.write(&mut bytes, len);
    bytes.extend_from_slice(payload);
    Ok(bytes.freeze())
}

/// Decodes a frame of at most `max_size` bytes. The payload of an `Invoke`, of a `Result` with
/// a value and of a `Message` is `message` itself, its header cut off, not a copy. Oversized
/// input is refused before decoding. Every frame is read by hand, in the form [`encode`]
/// writes; serde's derive reads the same frame from those bytes (it also reads forms no peer
/// writes, which are refused here).
pub fn decode(message: Bytes, max_size: usize) -> Result<Frame, Error> {
    decode_with(message, max_size, |_| None)
}

/// Encodes a control message (a NATS heartbeat) as a frame is: structs as arrays.
#[cfg(feature = "nats")]
pub(crate) fn encode_control<T: Serialize>(message: &T) -> Result<Bytes, EncodeError> {
    arena::cut(64, |buf| serializer::encode_frame(message, buf)).map(BytesMut::freeze)
}

/// How deeply a serde-decoded control message may nest, as [`MAX_DEPTH`] counts levels: a frame
/// is at most seven levels deep (a `Failure` in a `Result`, its field's name beside its text);
/// what goes deeper is an unknown field a peer added, which the decoder skips by recursion.
#[cfg(any(test, feature = "nats", feature = "fuzzing"))]
const FRAME_DEPTH: usize = 24;

/// Decodes a control message by serde: a NATS heartbeat, and a frame by the derive, which the
/// tests and the fuzz target hold [`read`] to.
#[cfg(any(test, feature = "nats", feature = "fuzzing"))]
pub(crate) fn decode_frame<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<T, decoder::DecodeError> {
    decoder::decode(bytes, FRAME_DEPTH)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn hello() -> Frame {
        Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            peer: PeerId::new("p"),
            digest: 0x0102,
            bodies: 3,
            token: None,
            limits: Limits {
                max_frame_size: 1 << 20,
                max_capture_size: 300,
            },
            pools: Vec::new(),
        })
    }

    /// A frame of every kind, and every kind of `Reject` and `Failure`.
    pub(super) fn every_kind() -> Vec<Frame> {
        let mut frames = vec![
            hello(),
            Frame::Reject(Reject::MissingBodies { missing: 9 }),
            Frame::Bodies(Bodies {
                entries: Bytes::from_static(&[7; 24]),
            }),
            Frame::Reject(Reject::DuplicatePeer),
            Frame::Invoke(Invoke {
                id: u64::MAX,
                body: "m::0000000000000000".into(),
                timeout_ms: 5,
                captures: Bytes::from_static(&[1, 2, 3]),
            }),
            Frame::Result(InvokeResult {
                id: 1,
                outcome: Outcome::Value(Bytes::from_static(&[0xc0])),
            }),
            Frame::Result(InvokeResult {
                id: 2,
                outcome: Outcome::Failure(Failure::Panicked {
                    message: "boom".into(),
                }),
            }),
            Frame::Message(Bytes::from_static(b"hi")),
            Frame::InvokeTraced(Box::new(InvokeTraced {
                trace: crate::trace_context::TraceContext {
                    trace_id: u128::MAX - 1,
                    span_id: 0x00f0_67aa_0ba9_02b7,
                    flags: 1,
                    state: Some("vendor=value".into()),
                },
                invoke: Invoke {
                    id: 3,
                    body: "m::0000000000000000".into(),
                    timeout_ms: 5,
                    captures: Bytes::from_static(&[1, 2, 3]),
                },
            })),
            Frame::Cancel(17),
            Frame::Ping,
            Frame::Pong,
            Frame::Reject(Reject::NotAuthenticated),
            Frame::Hello(Hello {
                version: PROTOCOL_VERSION,
                peer: PeerId::new("p"),
                digest: 1,
                bodies: 0,
                token: Some("s3cret".into()),
                limits: Limits::default(),
                pools: vec![crate::pool::Pool::new("resize")],
            }),
        ];
        let rejects = [
            Reject::ProtocolVersion { ours: 5 },
            Reject::TooManyConnections { limit: 70_000 },
            Reject::InvalidPeerId,
        ];
        frames.extend(rejects.map(Frame::Reject));
        let failures = [
            Failure::UnknownBody,
            Failure::DecodeCaptures { reason: "r".into() },
            Failure::EncodeResult { reason: "".into() },
            Failure::Busy { limit: 4096 },
            Failure::NotAuthorized,
            Failure::CapturesTooLarge { limit: u64::MAX },
            Failure::ShuttingDown,
            Failure::Interrupted,
        ];
        frames.extend(failures.into_iter().enumerate().map(|(id, failure)| {
            Frame::Result(InvokeResult {
                id: id as u64,
                outcome: Outcome::Failure(failure),
            })
        }));
        frames.push(Frame::InvokeOnce(InvokeOnce {
            key: 0xdead_beef,
            invoke: Invoke {
                id: 300,
                body: "m::once".into(),
                timeout_ms: 0,
                captures: Bytes::new(),
            },
        }));
        frames
    }

    #[test]
    fn every_frame_is_written_as_rmp_serde_writes_it() {
        for frame in every_kind() {
            let expected = rmp_serde::to_vec(&frame).expect("encodes");
            assert_eq!(encode(&frame).expect("encodes"), expected, "{frame:?}");
        }
    }

    #[test]
    fn every_frame_kind_round_trips() {
        let frames = every_kind();
        for frame in frames {
            let bytes = encode(&frame).expect("encodes");
            assert_eq!(decode(bytes, 1 << 10).expect("decodes"), frame);
        }
    }

    #[test]
    fn frames_written_into_headroom_are_the_frames_serde_writes() {
        // Ids at every boundary of MessagePack's integer forms.
        let ids: Vec<u64> = decoder::tests::BOUNDARIES
            .iter()
            .filter_map(|&n| u64::try_from(n).ok())
            .collect();
        // Names of every string width.
        let names: Vec<String> = [0, 4, 31, 32, 255, 256, 300, 65_535, 65_536]
            .iter()
            .map(|&n| "n".repeat(n))
            .collect();
        let sizes = [0_usize, 3, 255, 256, 65_535, 65_536, 70_000];
        let cases = ids.iter().enumerate().flat_map(|(i, &id)| {
            let names = &names;
            sizes
                .iter()
                .map(move |&size| (id, names[(i + size) % names.len()].as_str(), size))
        });
        for (id, body, size) in cases {
            let captures: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let payload = serde_bytes::ByteBuf::from(captures);
            let encoded = Encoded::new(&payload, invoke_headroom(body)).expect("encodes");
            let plain = Bytes::copy_from_slice(encoded.as_slice());
            let framed = invoke_frame(id, body, id / 3, encoded);
            // serde's bytes are the reference, for the frame written into the headroom and for
            // `encode`, which writes these two frames by hand too.
            let frame = Frame::Invoke(Invoke {
                id,
                body: body.to_owned().into(),
                timeout_ms: id / 3,
                captures: plain.clone(),
            });
            let expected = rmp_serde::to_vec(&frame).expect("serde encodes");
            assert_eq!(&framed[..], &expected[..]);
            assert_eq!(encode(&frame).expect("encodes"), expected);

            let value = Encoded::new(&payload, RESULT_HEADROOM).expect("encodes");
            let frame = Frame::Result(InvokeResult {
                id,
                outcome: Outcome::Value(plain),
            });
            let expected = rmp_serde::to_vec(&frame).expect("serde encodes");
            assert_eq!(encode(&frame).expect("encodes"), expected);
            assert_eq!(&value_frame(id, value)[..], &expected[..]);
        }
        // Too little headroom still gives the right frame, by copying.
        let small = Encoded::new(&7_u8, 0).expect("encodes");
        let expected = encode(&Frame::Invoke(Invoke {
            id: 1,
            body: "b".into(),
            timeout_ms: 0,
            captures: Bytes::from_static(&[7]),
        }))
        .expect("encodes");
        assert_eq!(&invoke_frame(1, "b", 0, small)[..], &expected[..]);
    }

    #[test]
    fn byte_vectors_encode_as_bin_and_decode_from_either_form() {
        let value = (
            vec![200_u8; 1000],
            7_u64,
            vec![1_u64, 2, 300],
            Vec::<u8>::new(),
        );
        let encoded = Encoded::new(&value, 0).expect("encodes");
        // A bin (3-byte header) of 1 000 bytes, not 1 000 two-byte integers.
        assert!(
            encoded.as_slice().len() < 1_020,
            "{}",
            encoded.as_slice().len()
        );
        type Value = (Vec<u8>, u64, Vec<u64>, Vec<u8>);
        assert_eq!(
            decode_payload::<Value>(encoded.as_slice()).ok(),
            Some(value.clone())
        );
        // A peer that writes byte vectors as arrays of integers is read the same.
        let as_arrays = rmp_serde::to_vec(&value).expect("encodes");
        assert!(as_arrays.len() > 2_000);
        assert_eq!(decode_payload::<Value>(&as_arrays).ok(), Some(value));
    }

    #[test]
    fn wire_layout_of_hello_is_pinned() {
        // Changing this layout is a protocol change: bump PROTOCOL_VERSION with it.
        let bytes = encode(&hello()).expect("encodes");
        assert_eq!(
            &bytes[..],
            &[
                0x81, 0xa5, b'H', b'e', b'l', b'l', b'o', // {"Hello":
                0x97, 0x05, 0xa1, b'p', 0xcd, 0x01, 0x02, 0x03, // [5, "p", 0x0102, 3,
                0xc0, // no token,
                0x92, 0xce, 0x00, 0x10, 0x00, 0x00, 0xcd, 0x01, 0x2c, // [1 MiB, 300],
                0x90, // no pools]}
            ][..],
            "{bytes:02x?}"
        );
    }

    /// A hello as protocol 2 had it.
    #[derive(Debug, Serialize, Deserialize)]
    struct HelloV2 {
        version: u32,
        peer: PeerId,
        digest: u64,
        bodies: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    enum FrameV2 {
        Hello(HelloV2),
    }

    #[test]
    fn an_older_peers_hello_reads_far_enough_to_refuse_it_by_its_version() {
        // A protocol-2 hello reads here with its version, for a `Reject::ProtocolVersion`.
        let old = rmp_serde::to_vec(&FrameV2::Hello(HelloV2 {
            version: 2,
            peer: PeerId::new("old"),
            digest: 1,
            bodies: 0,
            token: None,
        }))
        .expect("encodes");
        let Ok(Frame::Hello(read)) = decode(Bytes::from(old), 1 << 10) else {
            panic!("an old hello does not read");
        };
        assert_eq!((read.version, read.limits), (2, Limits::default()));
        // A protocol-2 peer cannot read this one's (it has more fields): it closes the
        // connection, and the handshake error says what that may mean.
        let new = encode(&hello()).expect("encodes");
        assert!(rmp_serde::from_slice::<FrameV2>(&new).is_err());
    }

    #[test]
    fn oversized_frames_are_refused_before_decoding() {
        let bytes = encode(&hello()).expect("encodes");
        let err = decode(bytes.clone(), bytes.len() - 1).expect_err("too large");
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
    }

    #[test]
    fn a_frame_nested_deep_in_a_field_it_does_not_know_is_refused_within_a_small_stack() {
        // {"Hello": {"x": [[[...1000 levels...]]]}}: a field the decoder skips.
        let mut bytes = b"\x81\xa5Hello\x81\xa1x".to_vec();
        bytes.extend(std::iter::repeat_n(0x91, 1000));
        bytes.push(0x90);
        let bytes = Bytes::from(bytes);
        let decoded = std::thread::Builder::new()
            .stack_size(128 << 10)
            .spawn(move || {
                (
                    decode(bytes.clone(), usize::MAX).map(|_| ()),
                    decode_with(bytes, usize::MAX, |_| Some("x")).map(|_| ()),
                )
            })
            .expect("a thread")
            .join()
            .expect("no stack overflow");
        assert!(
            matches!(decoded.0, Err(Error::Protocol { .. })),
            "{decoded:?}"
        );
        assert!(
            matches!(decoded.1, Err(Error::Protocol { .. })),
            "{decoded:?}"
        );
    }

    #[test]
    fn malformed_and_truncated_frames_are_errors_not_panics() {
        let good = encode(&Frame::Invoke(Invoke {
            id: 5,
            body: "body".into(),
            timeout_ms: 1000,
            captures: Bytes::from(vec![7; 40]),
        }))
        .expect("encodes");
        for cut in 0..good.len() {
            assert!(
                decode(good.slice(..cut), 1 << 10).is_err(),
                "prefix of {cut} bytes"
            );
        }
        // A bin header announcing 4 GiB with 3 bytes behind it.
        let hostile = [
            0x81, 0x02, 0x93, 0x05, 0xa1, b'b', 0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3,
        ];
        assert!(decode(Bytes::copy_from_slice(&hostile), 1 << 10).is_err());
        assert!(decode(Bytes::from_static(&[0xc1]), 1 << 10).is_err());
        assert!(decode(Bytes::new(), 1 << 10).is_err());
    }
}

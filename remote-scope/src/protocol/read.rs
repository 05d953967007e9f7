//! The frames the fast path ([`hot`](super::hot)) does not read, read by hand in the form
//! [`encode`](super::encode) writes them: a one-entry map from the variant's name to its
//! content (a unit variant as its name alone), structs as arrays, byte fields as bins.
//!
//! serde's derive reads these frames too, and still does for the other users of
//! [`decode_frame`](super::decode_frame). But it compiles a visitor for every frame type, field
//! name and variant into each program, where this is a few small functions over the decoder's
//! one token reader: in the browser's page that was a tenth of the wasm.
//!
//! What this reads, the derive reads as the same frame, and every frame the derive reads,
//! encoded again, this reads (the fuzz target `frame` and a test hold it to both). It refuses
//! the forms no peer of this protocol writes, which the derive would accept: a struct as a map,
//! a variant by its index, a unit variant as a map to nil. Byte fields are parts of the
//! message, not copies.

use std::borrow::Cow;

use bytes::Bytes;

use super::decoder::token::{Input, Token};
use super::decoder::DecodeError;
use super::{
    Bodies, Failure, Frame, Hello, Invoke, InvokeOnce, InvokeResult, InvokeTraced, Limits, Outcome,
    Reject,
};
use crate::peer_id::PeerId;
use crate::pool::Pool;
use crate::trace_context::TraceContext;

/// Reads the frame at the start of `message`; what follows it is ignored, as serde ignores it.
pub(super) fn frame(message: &Bytes) -> Result<Frame, DecodeError> {
    Reader {
        input: Input::new(message),
        message,
    }
    .frame()
}

struct Reader<'a> {
    input: Input<'a>,
    message: &'a Bytes,
}

/// An enum's variant: its name, and whether content follows (a map) or not (the name alone).
type Variant<'a> = (&'a str, bool);

impl<'a> Reader<'a> {
    fn frame(&mut self) -> Result<Frame, DecodeError> {
        Ok(match self.variant("a frame")? {
            ("Hello", true) => Frame::Hello(self.hello()?),
            ("Bodies", true) => {
                self.fields(1, 1, "Bodies: an array of 1")?;
                Frame::Bodies(Bodies {
                    entries: self.bytes()?,
                })
            }
            ("Reject", true) => Frame::Reject(self.reject()?),
            ("Invoke", true) => Frame::Invoke(self.invoke()?),
            ("InvokeOnce", true) => {
                self.fields(2, 2, "InvokeOnce: an array of 2")?;
                let key = self.u64()?;
                Frame::InvokeOnce(InvokeOnce {
                    key,
                    invoke: self.invoke()?,
                })
            }
            ("InvokeTraced", true) => {
                self.fields(2, 2, "InvokeTraced: an array of 2")?;
                let trace = self.trace()?;
                Frame::InvokeTraced(Box::new(InvokeTraced {
                    trace,
                    invoke: self.invoke()?,
                }))
            }
            ("Result", true) => {
                self.fields(2, 2, "Result: an array of 2")?;
                let id = self.u64()?;
                Frame::Result(InvokeResult {
                    id,
                    outcome: self.outcome()?,
                })
            }
            ("Message", true) => Frame::Message(self.bytes()?),
            ("Cancel", true) => Frame::Cancel(self.u64()?),
            ("Ping", false) => Frame::Ping,
            ("Pong", false) => Frame::Pong,
            variant => return Err(unknown(variant, "frame")),
        })
    }

    fn hello(&mut self) -> Result<Hello, DecodeError> {
        // The last three fields are `#[serde(default)]`: an older peer's hello may end before.
        let fields = self.fields(4, 7, "Hello: an array of 4 to 7")?;
        let version = self.u32()?;
        let peer = PeerId::new(self.string()?);
        let digest = self.u64()?;
        let bodies = self.u32()?;
        let token = match fields > 4 {
            true => self.optional_string()?,
            false => None,
        };
        let limits = match fields > 5 {
            true => {
                self.fields(2, 2, "Limits: an array of 2")?;
                Limits {
                    max_frame_size: self.u64()?,
                    max_capture_size: self.u64()?,
                }
            }
            false => Limits::default(),
        };
        let pools = match fields > 6 {
            true => self.pools()?,
            false => Vec::new(),
        };
        Ok(Hello {
            version,
            peer,
            digest,
            bodies,
            token,
            limits,
            pools,
        })
    }

    fn pools(&mut self) -> Result<Vec<Pool>, DecodeError> {
        let len = match self.input.token()? {
            Token::Array(len) => len,
            other => return Err(mismatch(other, "the pools: an array")),
        };
        let mut pools = Vec::with_capacity(room_for(len, self.input.left()));
        for _ in 0..len {
            pools.push(Pool::new(self.string()?));
        }
        Ok(pools)
    }

    fn reject(&mut self) -> Result<Reject, DecodeError> {
        Ok(match self.variant("a Reject")? {
            ("ProtocolVersion", true) => Reject::ProtocolVersion {
                ours: self.field()?,
            },
            ("MissingBodies", true) => Reject::MissingBodies {
                missing: self.field()?,
            },
            ("DuplicatePeer", false) => Reject::DuplicatePeer,
            ("TooManyConnections", true) => Reject::TooManyConnections {
                limit: self.field()?,
            },
            ("NotAuthenticated", false) => Reject::NotAuthenticated,
            ("InvalidPeerId", false) => Reject::InvalidPeerId,
            variant => return Err(unknown(variant, "Reject")),
        })
    }

    fn invoke(&mut self) -> Result<Invoke, DecodeError> {
        self.fields(4, 4, "Invoke: an array of 4")?;
        Ok(Invoke {
            id: self.u64()?,
            body: Cow::Owned(self.string()?.to_owned()),
            timeout_ms: self.u64()?,
            captures: self.bytes()?,
        })
    }

    fn trace(&mut self) -> Result<TraceContext, DecodeError> {
        self.fields(4, 4, "TraceContext: an array of 4")?;
        Ok(TraceContext {
            trace_id: self.input.wide(false)?,
            span_id: self.u64()?,
            flags: self.uint(u8::MAX.into(), "a u8")? as u8,
            state: self.optional_string()?,
        })
    }

    fn outcome(&mut self) -> Result<Outcome, DecodeError> {
        Ok(match self.variant("an Outcome")? {
            ("Value", true) => Outcome::Value(self.bytes()?),
            ("Failure", true) => Outcome::Failure(self.failure()?),
            variant => return Err(unknown(variant, "Outcome")),
        })
    }

    fn failure(&mut self) -> Result<Failure, DecodeError> {
        Ok(match self.variant("a Failure")? {
            ("UnknownBody", false) => Failure::UnknownBody,
            ("Panicked", true) => Failure::Panicked {
                message: self.text_field()?,
            },
            ("DecodeCaptures", true) => Failure::DecodeCaptures {
                reason: self.text_field()?,
            },
            ("EncodeResult", true) => Failure::EncodeResult {
                reason: self.text_field()?,
            },
            ("Busy", true) => Failure::Busy {
                limit: self.field()?,
            },
            ("NotAuthorized", false) => Failure::NotAuthorized,
            ("CapturesTooLarge", true) => Failure::CapturesTooLarge {
                limit: self.field()?,
            },
            ("ShuttingDown", false) => Failure::ShuttingDown,
            ("Interrupted", false) => Failure::Interrupted,
            variant => return Err(unknown(variant, "Failure")),
        })
    }

    /// An enum's variant: a one-entry map's key, its content to follow, or a name alone.
    fn variant(&mut self, wanted: &'static str) -> Result<Variant<'a>, DecodeError> {
        match self.input.token()? {
            Token::Map(1) => match self.input.token()? {
                Token::Str(name) => Ok((name, true)),
                other => Err(mismatch(other, "a variant's name")),
            },
            Token::Str(name) => Ok((name, false)),
            other => Err(mismatch(other, wanted)),
        }
    }

    /// A struct's array header, of `min..=max` fields; their number.
    fn fields(&mut self, min: u32, max: u32, wanted: &'static str) -> Result<u32, DecodeError> {
        match self.input.token()? {
            Token::Array(len) if (min..=max).contains(&len) => Ok(len),
            other => Err(mismatch(other, wanted)),
        }
    }

    /// The one field of a struct variant that is a number.
    fn field<N: TryFrom<u64>>(&mut self) -> Result<N, DecodeError> {
        self.fields(1, 1, "a struct variant of one field")?;
        let n = self.u64()?;
        N::try_from(n).map_err(|_| DecodeError::Mismatch {
            found: "an integer out of range",
            wanted: "a smaller integer",
        })
    }

    /// The one field of a struct variant that is text.
    fn text_field(&mut self) -> Result<String, DecodeError> {
        self.fields(1, 1, "a struct variant of one field")?;
        self.string().map(str::to_owned)
    }

    fn uint(&mut self, max: u64, wanted: &'static str) -> Result<u64, DecodeError> {
        match self.input.token()? {
            Token::U64(n) if n <= max => Ok(n),
            Token::I64(n) if n >= 0 && n as u64 <= max => Ok(n as u64),
            other => Err(mismatch(other, wanted)),
        }
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.uint(u64::MAX, "a u64")
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.uint(u32::MAX.into(), "a u32").map(|n| n as u32)
    }

    fn string(&mut self) -> Result<&'a str, DecodeError> {
        match self.input.token()? {
            Token::Str(text) => Ok(text),
            other => Err(mismatch(other, "a string")),
        }
    }

    fn optional_string(&mut self) -> Result<Option<String>, DecodeError> {
        match self.input.token()? {
            Token::Nil => Ok(None),
            Token::Str(text) => Ok(Some(text.to_owned())),
            other => Err(mismatch(other, "a string or nil")),
        }
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        match self.input.token()? {
            // The token borrows from `message`, so this is the part of it, not a copy.
            Token::Bin(bytes) => Ok(self.message.slice_ref(bytes)),
            other => Err(mismatch(other, "a bin")),
        }
    }
}

/// How many elements to make room for at first when a header announces `len` of them and
/// `left` bytes follow: each takes a byte at least, and no more than a few kilobytes are set
/// aside before they are read (a 64 MiB frame of one-byte names would otherwise have 16 bytes
/// reserved for each, a gigabyte, before the first was read).
fn room_for(len: u32, left: usize) -> usize {
    const AT_FIRST: usize = 256;
    (len as usize).min(left).min(AT_FIRST)
}

#[cold]
fn mismatch(found: Token<'_>, wanted: &'static str) -> DecodeError {
    DecodeError::Mismatch {
        found: found.kind(),
        wanted,
    }
}

#[cold]
fn unknown((name, content): Variant<'_>, of: &str) -> DecodeError {
    let form = match content {
        true => "with content",
        false => "without content",
    };
    DecodeError::Custom(format!("no variant `{name}` of {of} {form}"))
}

#[cfg(test)]
mod tests;

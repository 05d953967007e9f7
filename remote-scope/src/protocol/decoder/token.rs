//! The one non-generic part of decoding: the next MessagePack value's marker and what follows
//! it, up to (not into) the elements of an array or a map.

use super::error::DecodeError;

/// One MessagePack value as far as its marker and payload go. Integers of every width come as
/// the widest of their sign, which serde's visitors narrow with a range check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(in crate::protocol) enum Token<'de> {
    Nil,
    Bool(bool),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Str(&'de str),
    /// A string whose bytes are not UTF-8: a visitor that takes bytes still may.
    NotUtf8(&'de [u8]),
    Bin(&'de [u8]),
    /// An array of this many elements, which follow.
    Array(u32),
    /// A map of this many entries, which follow.
    Map(u32),
    Ext(i8, &'de [u8]),
}

/// The input not read yet, and where it started, to say where an error is.
pub(in crate::protocol) struct Input<'de> {
    rest: &'de [u8],
    len: usize,
}

impl<'de> Input<'de> {
    pub(in crate::protocol) fn new(bytes: &'de [u8]) -> Input<'de> {
        Input {
            rest: bytes,
            len: bytes.len(),
        }
    }

    /// How many bytes are left: each value still to come takes at least one.
    #[inline]
    pub(in crate::protocol) fn left(&self) -> usize {
        self.rest.len()
    }

    #[inline]
    pub(super) fn peek(&self) -> Result<u8, DecodeError> {
        self.rest.first().copied().ok_or_else(|| self.truncated())
    }

    #[inline]
    pub(super) fn skip_byte(&mut self) {
        self.rest = self.rest.get(1..).unwrap_or_default();
    }

    #[cold]
    pub(super) fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            at: self.len - self.rest.len(),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], DecodeError> {
        if n > self.rest.len() {
            return Err(self.truncated());
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    #[inline]
    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    #[inline]
    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_be_bytes)
    }

    #[inline(always)]
    fn str(&mut self, len: usize) -> Result<Token<'de>, DecodeError> {
        let bytes = self.take(len)?;
        Ok(match std::str::from_utf8(bytes) {
            Ok(s) => Token::Str(s),
            Err(_) => Token::NotUtf8(bytes),
        })
    }

    fn ext(&mut self, len: usize) -> Result<Token<'de>, DecodeError> {
        let tag = self.u8()? as i8;
        Ok(Token::Ext(tag, self.take(len)?))
    }

    /// The next value's marker and payload. Every form MessagePack defines reads, whatever
    /// type is asked for; which forms fit the type is the visitor's to say.
    // Out of line in wasm, where each visitor's copy of it would be code to download; inlined
    // in native optimized builds, where the match on the token then folds into the match on
    // the marker (a tenth fewer instructions). Not in debug builds, where its locals would
    // stay in every level's stack frame of a deeply nested value.
    #[cfg_attr(any(target_arch = "wasm32", debug_assertions), inline(never))]
    #[cfg_attr(not(any(target_arch = "wasm32", debug_assertions)), inline(always))]
    pub(in crate::protocol) fn token(&mut self) -> Result<Token<'de>, DecodeError> {
        let marker = self.u8()?;
        Ok(match marker {
            0x00..=0x7f => Token::U64(u64::from(marker)),
            0x80..=0x8f => Token::Map(u32::from(marker & 0x0f)),
            0x90..=0x9f => Token::Array(u32::from(marker & 0x0f)),
            0xa0..=0xbf => self.str(usize::from(marker & 0x1f))?,
            0xc0 => Token::Nil,
            0xc1 => {
                return Err(DecodeError::Reserved {
                    at: self.len - self.rest.len() - 1,
                })
            }
            0xc2 => Token::Bool(false),
            0xc3 => Token::Bool(true),
            0xc4 => {
                let len = self.u8()?;
                Token::Bin(self.take(usize::from(len))?)
            }
            0xc5 => {
                let len = self.u16()?;
                Token::Bin(self.take(usize::from(len))?)
            }
            0xc6 => {
                let len = self.u32()?;
                Token::Bin(self.take(len as usize)?)
            }
            0xc7 => {
                let len = self.u8()?;
                self.ext(usize::from(len))?
            }
            0xc8 => {
                let len = self.u16()?;
                self.ext(usize::from(len))?
            }
            0xc9 => {
                let len = self.u32()?;
                self.ext(len as usize)?
            }
            0xca => Token::F32(f32::from_bits(self.u32()?)),
            0xcb => Token::F64(f64::from_bits(self.u64()?)),
            0xcc => Token::U64(u64::from(self.u8()?)),
            0xcd => Token::U64(u64::from(self.u16()?)),
            0xce => Token::U64(u64::from(self.u32()?)),
            0xcf => Token::U64(self.u64()?),
            0xd0 => Token::I64(i64::from(self.u8()? as i8)),
            0xd1 => Token::I64(i64::from(self.u16()? as i16)),
            0xd2 => Token::I64(i64::from(self.u32()? as i32)),
            0xd3 => Token::I64(self.u64()? as i64),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => {
                let len = self.u8()?;
                self.str(usize::from(len))?
            }
            0xda => {
                let len = self.u16()?;
                self.str(usize::from(len))?
            }
            0xdb => {
                let len = self.u32()?;
                self.str(len as usize)?
            }
            0xdc => Token::Array(u32::from(self.u16()?)),
            0xdd => Token::Array(self.u32()?),
            0xde => Token::Map(u32::from(self.u16()?)),
            0xdf => Token::Map(self.u32()?),
            0xe0..=0xff => Token::I64(i64::from(marker as i8)),
        })
    }

    /// A 128-bit integer, as rmp-serde writes it (a bin of 16 big-endian bytes) or as any
    /// integer; `signed` says which type is asked for, which a negative integer must be.
    #[inline(never)]
    pub(in crate::protocol) fn wide(&mut self, signed: bool) -> Result<u128, DecodeError> {
        let wanted = if signed { "i128" } else { "u128" };
        match self.token()? {
            Token::U64(n) => Ok(u128::from(n)),
            Token::I64(n) if signed || n >= 0 => Ok(n as i128 as u128),
            Token::I64(n) => Err(serde::de::Error::invalid_value(
                serde::de::Unexpected::Signed(n),
                &wanted,
            )),
            Token::Bin(bytes) => bytes
                .try_into()
                .map(u128::from_be_bytes)
                .map_err(|_| serde::de::Error::invalid_length(bytes.len(), &"16 bytes")),
            // rmp-serde also reads the 16 bytes behind the marker of an array of 16.
            Token::Array(16) => self.array().map(u128::from_be_bytes),
            other => Err(DecodeError::Mismatch {
                found: other.kind(),
                wanted,
            }),
        }
    }

    /// Reads the nil a unit variant in a map holds.
    #[inline(never)]
    pub(super) fn nil(&mut self) -> Result<(), DecodeError> {
        match self.token()? {
            Token::Nil => Ok(()),
            other => Err(DecodeError::Mismatch {
                found: other.kind(),
                wanted: "nil, the content of a unit variant",
            }),
        }
    }
}

impl Token<'_> {
    /// What the token is, for an error.
    pub(in crate::protocol) fn kind(&self) -> &'static str {
        match self {
            Token::Nil => "nil",
            Token::Bool(_) => "a boolean",
            Token::U64(_) | Token::I64(_) => "an integer",
            Token::F32(_) | Token::F64(_) => "a float",
            Token::Str(_) | Token::NotUtf8(_) => "a string",
            Token::Bin(_) => "a bin",
            Token::Array(_) => "an array",
            Token::Map(_) => "a map",
            Token::Ext(..) => "an ext",
        }
    }
}

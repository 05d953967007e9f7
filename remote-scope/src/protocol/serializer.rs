//! The MessagePack serializer of captures, values and frames: serde's `Serializer` writing
//! into a frame's buffer, byte for byte what rmp-serde writes, which is what the project wrote
//! with before and what every peer reads: a payload with structs as maps and byte vectors as
//! bins (`with_struct_map()`, `BytesMode::ForceIterables`), a frame in rmp-serde's default form
//! (structs as arrays).
//!
//! Why not rmp-serde's: every `Serialize` type gets a copy of a serializer's generic code, and
//! rmp-serde's writes through `io::Write`, whose errors (with `io::Error` and its printing) come
//! along, and encodes a sequence of unknown length with a second serializer of another type,
//! which copies each element type's code once more. Here the generic methods only choose what
//! to write; the writing is a few functions over the buffer, and a sequence of unknown length
//! is written in place and its header put in front of it once it is counted.

use std::fmt;

use bytes::BytesMut;
use serde::ser::{
    self, Impossible, Serialize, SerializeMap, SerializeSeq, SerializeStruct,
    SerializeStructVariant, SerializeTuple, SerializeTupleStruct, SerializeTupleVariant,
};

use super::arena::Growing;

/// Why a value could not be encoded.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EncodeError {
    /// What the type's `Serialize` said.
    #[error("{0}")]
    Custom(String),
    /// A string, byte sequence, array or map longer than MessagePack holds.
    #[error("{what} of {len} elements or bytes; MessagePack holds at most 2^32 - 1")]
    TooLong { what: &'static str, len: usize },
    /// A sequence that began as bytes (a `Vec<u8>`, written as a bin) held something else.
    #[error("a sequence of bytes held something other than a byte")]
    NotBytes,
    /// A MessagePack ext (rmp-serde's `_ExtStruct`) that is not a tuple of a tag and its
    /// bytes. (rmp-serde wrote one with more fields, dropping those after the bytes.)
    #[error("an ext must be a tuple of its tag (i8) and its bytes")]
    NotExt,
}

/// Its message, as `DecodeError`'s `Debug` (which says why).
impl fmt::Debug for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl ser::Error for EncodeError {
    #[cold]
    fn custom<T: fmt::Display>(message: T) -> EncodeError {
        EncodeError::Custom(message.to_string())
    }
}

/// Encodes a payload (captures or a value) at the end of `out`: structs as maps, byte
/// vectors as bins.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    value.serialize(&mut Serializer {
        out: Growing(out),
        payload: true,
    })
}

/// Encodes a frame at the end of `out`, as rmp-serde's default form has it: structs as arrays,
/// a byte vector (which no frame has) as an array of integers.
pub(crate) fn encode_frame<T: Serialize + ?Sized>(
    frame: &T,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    frame.serialize(&mut Serializer {
        out: Growing(out),
        payload: false,
    })
}

/// The name rmp-serde gives the newtype struct that stands for an ext.
pub(super) const EXT: &str = "_ExtStruct";

struct Serializer<'a> {
    out: Growing<'a>,
    /// The payload form (structs as maps of their fields' names, byte vectors as bins), or
    /// the frames' (structs as arrays).
    payload: bool,
}

/// The markers of a kind of length header: its fix form (marker, how many it counts), its
/// 8-, 16- and 32-bit forms.
struct Header {
    what: &'static str,
    fix: Option<(u8, usize)>,
    wide: [Option<u8>; 3],
}

const STR: Header = Header {
    what: "a string",
    fix: Some((0xa0, 32)),
    wide: [Some(0xd9), Some(0xda), Some(0xdb)],
};
const BIN: Header = Header {
    what: "a byte sequence",
    fix: None,
    wide: [Some(0xc4), Some(0xc5), Some(0xc6)],
};
const ARRAY: Header = Header {
    what: "a sequence",
    fix: Some((0x90, 16)),
    wide: [None, Some(0xdc), Some(0xdd)],
};
const MAP: Header = Header {
    what: "a map",
    fix: Some((0x80, 16)),
    wide: [None, Some(0xde), Some(0xdf)],
};

/// The narrowest `header` of `len`, into `bytes`; how many bytes it takes.
fn header(header: &Header, len: usize, bytes: &mut [u8; 5]) -> Result<usize, EncodeError> {
    if let Some((marker, below)) = header.fix {
        if len < below {
            bytes[0] = marker | len as u8;
            return Ok(1);
        }
    }
    let too_long = || EncodeError::TooLong {
        what: header.what,
        len,
    };
    let n = u32::try_from(len).map_err(|_| too_long())?;
    let [eight, sixteen, thirty_two] = header.wide;
    let (marker, width) = match (eight, sixteen) {
        (Some(marker), _) if n < 256 => (marker, 1),
        (_, Some(marker)) if n < 65_536 => (marker, 2),
        _ => (thirty_two.ok_or_else(too_long)?, 4),
    };
    bytes[0] = marker;
    bytes[1..=width].copy_from_slice(&n.to_be_bytes()[4 - width..]);
    Ok(1 + width)
}

impl Serializer<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.out.put(bytes);
    }

    fn header(&mut self, kind: &Header, len: usize) -> Result<(), EncodeError> {
        let mut bytes = [0; 5];
        let n = header(kind, len, &mut bytes)?;
        self.put(&bytes[..n]);
        Ok(())
    }

    fn uint(&mut self, n: u64) {
        match n {
            0..=0x7f => self.put(&[n as u8]),
            0x80..=0xff => self.put(&[0xcc, n as u8]),
            0x100..=0xffff => self.put(&[0xcd, (n >> 8) as u8, n as u8]),
            0x1_0000..=0xffff_ffff => {
                let mut bytes = [0xce, 0, 0, 0, 0];
                bytes[1..].copy_from_slice(&(n as u32).to_be_bytes());
                self.put(&bytes);
            }
            _ => {
                let mut bytes = [0xcf, 0, 0, 0, 0, 0, 0, 0, 0];
                bytes[1..].copy_from_slice(&n.to_be_bytes());
                self.put(&bytes);
            }
        }
    }

    fn sint(&mut self, n: i64) {
        if n >= 0 {
            return self.uint(n as u64);
        }
        match n {
            -32..=-1 => self.put(&[n as u8]),
            -128..=-33 => self.put(&[0xd0, n as u8]),
            -32_768..=-129 => {
                let [a, b] = (n as i16).to_be_bytes();
                self.put(&[0xd1, a, b]);
            }
            -2_147_483_648..=-32_769 => {
                let mut bytes = [0xd2, 0, 0, 0, 0];
                bytes[1..].copy_from_slice(&(n as i32).to_be_bytes());
                self.put(&bytes);
            }
            _ => {
                let mut bytes = [0xd3, 0, 0, 0, 0, 0, 0, 0, 0];
                bytes[1..].copy_from_slice(&n.to_be_bytes());
                self.put(&bytes);
            }
        }
    }

    fn str(&mut self, text: &str) -> Result<(), EncodeError> {
        self.header(&STR, text.len())?;
        self.put(text.as_bytes());
        Ok(())
    }

    fn bin(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.header(&BIN, bytes.len())?;
        self.put(bytes);
        Ok(())
    }

    /// The one-entry map a variant with content is: its name, its content to follow.
    fn variant(&mut self, name: &str) -> Result<(), EncodeError> {
        self.put(&[0x81]);
        self.str(name)
    }

    /// Puts the `kind` header of `count` in front of what was written from `start` on.
    fn counted(&mut self, kind: &Header, start: usize, count: usize) -> Result<(), EncodeError> {
        let mut bytes = [0; 5];
        let n = header(kind, count, &mut bytes)?;
        self.out.insert(start, &bytes[..n]);
        Ok(())
    }

    fn ext(&mut self, tag: i8, data: &[u8]) -> Result<(), EncodeError> {
        let len = u32::try_from(data.len()).map_err(|_| EncodeError::TooLong {
            what: "an ext",
            len: data.len(),
        })?;
        let fixed = match len {
            1 => Some(0xd4),
            2 => Some(0xd5),
            4 => Some(0xd6),
            8 => Some(0xd7),
            16 => Some(0xd8),
            _ => None,
        };
        match fixed {
            Some(marker) => self.put(&[marker]),
            None => {
                let mut bytes = [0; 5];
                let n = header(&BIN, data.len(), &mut bytes)?;
                // An ext's length forms are a bin's, three markers on (0xc7..=0xc9).
                bytes[0] += 3;
                self.put(&bytes[..n]);
            }
        }
        self.put(&[tag as u8]);
        self.put(data);
        Ok(())
    }
}

/// A sequence or map: its header written, or, its length unknown, its elements counted from
/// where it starts, for the header to go in front of them at the end.
struct Compound<'s, 'a> {
    se: &'s mut Serializer<'a>,
    unknown: Option<(usize, usize)>,
}

impl<'s, 'a> Compound<'s, 'a> {
    fn new(
        se: &'s mut Serializer<'a>,
        kind: &Header,
        len: Option<usize>,
    ) -> Result<Self, EncodeError> {
        let unknown = match len {
            Some(len) => {
                se.header(kind, len)?;
                None
            }
            None => Some((se.out.len(), 0)),
        };
        Ok(Compound { se, unknown })
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        if let Some((_, count)) = &mut self.unknown {
            *count += 1;
        }
        value.serialize(&mut *self.se)
    }

    fn end(self, kind: &Header) -> Result<(), EncodeError> {
        match self.unknown {
            Some((start, count)) => self.se.counted(kind, start, count),
            None => Ok(()),
        }
    }
}

/// Integers written as the widest of their sign, which `uint` and `sint` narrow again.
macro_rules! widened {
    ($($($method:ident($ty:ty)),* => $widest:ident;)*) => {
        $($(fn $method(self, value: $ty) -> Result<(), EncodeError> {
            self.$widest(value.into())
        })*)*
    };
}

impl<'s, 'a> ser::Serializer for &'s mut Serializer<'a> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Compound<'s, 'a>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Compound<'s, 'a>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, value: bool) -> Result<(), EncodeError> {
        self.put(&[0xc2 | u8::from(value)]);
        Ok(())
    }

    widened! {
        serialize_i8(i8), serialize_i16(i16), serialize_i32(i32) => serialize_i64;
        serialize_u8(u8), serialize_u16(u16), serialize_u32(u32) => serialize_u64;
    }

    fn serialize_i64(self, value: i64) -> Result<(), EncodeError> {
        self.sint(value);
        Ok(())
    }

    fn serialize_i128(self, value: i128) -> Result<(), EncodeError> {
        self.bin(&value.to_be_bytes())
    }

    fn serialize_u64(self, value: u64) -> Result<(), EncodeError> {
        self.uint(value);
        Ok(())
    }

    fn serialize_u128(self, value: u128) -> Result<(), EncodeError> {
        self.bin(&value.to_be_bytes())
    }

    fn serialize_f32(self, value: f32) -> Result<(), EncodeError> {
        let [a, b, c, d] = value.to_be_bytes();
        self.put(&[0xca, a, b, c, d]);
        Ok(())
    }

    fn serialize_f64(self, value: f64) -> Result<(), EncodeError> {
        let mut bytes = [0xcb, 0, 0, 0, 0, 0, 0, 0, 0];
        bytes[1..].copy_from_slice(&value.to_be_bytes());
        self.put(&bytes);
        Ok(())
    }

    fn serialize_char(self, value: char) -> Result<(), EncodeError> {
        self.str(value.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, value: &str) -> Result<(), EncodeError> {
        self.str(value)
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<(), EncodeError> {
        self.bin(value)
    }

    fn serialize_none(self) -> Result<(), EncodeError> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), EncodeError> {
        self.put(&[0xc0]);
        Ok(())
    }

    // As rmp-serde: an empty array, where a unit is nil.
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EncodeError> {
        self.put(&[0x90]);
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), EncodeError> {
        self.str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        if name == EXT {
            let mut ext = Ext::default();
            value.serialize(&mut ext)?;
            return match ext {
                Ext {
                    tag: Some(tag),
                    data: Some(data),
                    fields: 2,
                } => self.ext(tag, &data),
                _ => Err(EncodeError::NotExt),
            };
        }
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        self.variant(variant)?;
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'s, 'a>, EncodeError> {
        Compound::new(self, &ARRAY, len)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self, EncodeError> {
        self.header(&ARRAY, len)?;
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Self, EncodeError> {
        self.header(&ARRAY, len)?;
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, EncodeError> {
        self.variant(variant)?;
        self.header(&ARRAY, len)?;
        Ok(self)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'s, 'a>, EncodeError> {
        Compound::new(self, &MAP, len)
    }

    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Self, EncodeError> {
        self.header(if self.payload { &MAP } else { &ARRAY }, len)?;
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, EncodeError> {
        self.variant(variant)?;
        self.header(if self.payload { &MAP } else { &ARRAY }, len)?;
        Ok(self)
    }

    /// A sequence, or, in a payload, as rmp-serde's `BytesMode::ForceIterables` has it, one bin
    /// when it may be bytes (its items a byte or a pointer wide, its iterator a slice's at most: a
    /// `Vec<u8>` or `&[u8]`), its length is known, and its first item is a `u8`.
    fn collect_seq<I>(self, items: I) -> Result<(), EncodeError>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let items = items.into_iter();
        let len = match items.size_hint() {
            (low, Some(high)) if low == high && u32::try_from(low).is_ok() => Some(low),
            _ => None,
        };
        let item = std::mem::size_of::<I::Item>();
        let may_be_bytes = (item == 1 || item == std::mem::size_of::<&u8>())
            && std::mem::size_of::<I::IntoIter>()
                <= std::mem::size_of::<std::slice::Iter<'_, u8>>();
        let mut items = items.peekable();
        if let (true, true, Some(len)) = (self.payload, may_be_bytes, len) {
            if items
                .peek()
                .is_some_and(|first| first.serialize(Byte).is_ok())
            {
                self.header(&BIN, len)?;
                self.out.reserve(len);
                for item in items {
                    let byte = item.serialize(Byte).map_err(|_| EncodeError::NotBytes)?;
                    self.put(&[byte]);
                }
                return Ok(());
            }
        }
        let mut seq = self.serialize_seq(len)?;
        for item in items {
            seq.element(&item)?;
        }
        seq.end(&ARRAY)
    }
}

impl SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        self.element(value)
    }

    fn end(self) -> Result<(), EncodeError> {
        Compound::end(self, &ARRAY)
    }
}

impl SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        self.element(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut *self.se)
    }

    fn end(self) -> Result<(), EncodeError> {
        Compound::end(self, &MAP)
    }
}

/// The compounds whose elements follow their header as they come: a tuple's, a tuple struct's
/// and variant's, a struct's and variant's (in a payload, each field's name first).
macro_rules! in_order {
    ($($compound:ident::$method:ident;)*) => {
        $(impl $compound for &mut Serializer<'_> {
            type Ok = ();
            type Error = EncodeError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<(), EncodeError> {
                Ok(())
            }
        })*
    };
    ($($compound:ident::$method:ident(key);)*) => {
        $(impl $compound for &mut Serializer<'_> {
            type Ok = ();
            type Error = EncodeError;

            fn $method<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), EncodeError> {
                if self.payload {
                    self.str(key)?;
                }
                value.serialize(&mut **self)
            }

            fn end(self) -> Result<(), EncodeError> {
                Ok(())
            }
        })*
    };
}

in_order! {
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
}

in_order! {
    SerializeStruct::serialize_field(key);
    SerializeStructVariant::serialize_field(key);
}

/// A value that is a byte, or not: the test of whether a sequence is bytes.
struct Byte;

/// What [`Byte`] fails with.
#[derive(Debug)]
struct NotAByte;

impl fmt::Display for NotAByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a byte")
    }
}

impl std::error::Error for NotAByte {}

impl ser::Error for NotAByte {
    fn custom<T: fmt::Display>(_: T) -> NotAByte {
        NotAByte
    }
}

/// Methods of a serializer that takes one shape only, which refuse all others with `$error`.
macro_rules! refused {
    ($error:expr; $($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, Self::Error> {
            Err($error)
        })*
    };
}

impl ser::Serializer for Byte {
    type Ok = u8;
    type Error = NotAByte;
    type SerializeSeq = Impossible<u8, NotAByte>;
    type SerializeTuple = Impossible<u8, NotAByte>;
    type SerializeTupleStruct = Impossible<u8, NotAByte>;
    type SerializeTupleVariant = Impossible<u8, NotAByte>;
    type SerializeMap = Impossible<u8, NotAByte>;
    type SerializeStruct = Impossible<u8, NotAByte>;
    type SerializeStructVariant = Impossible<u8, NotAByte>;

    fn serialize_u8(self, value: u8) -> Result<u8, NotAByte> {
        Ok(value)
    }

    refused! {
        NotAByte;
        serialize_bool(bool) -> u8;
        serialize_i8(i8) -> u8;
        serialize_i16(i16) -> u8;
        serialize_i32(i32) -> u8;
        serialize_i64(i64) -> u8;
        serialize_u16(u16) -> u8;
        serialize_u32(u32) -> u8;
        serialize_u64(u64) -> u8;
        serialize_f32(f32) -> u8;
        serialize_f64(f64) -> u8;
        serialize_char(char) -> u8;
        serialize_str(&str) -> u8;
        serialize_bytes(&[u8]) -> u8;
        serialize_none() -> u8;
        serialize_unit() -> u8;
        serialize_unit_struct(&'static str) -> u8;
        serialize_unit_variant(&'static str, u32, &'static str) -> u8;
        serialize_seq(Option<usize>) -> Impossible<u8, NotAByte>;
        serialize_tuple(usize) -> Impossible<u8, NotAByte>;
        serialize_tuple_struct(&'static str, usize) -> Impossible<u8, NotAByte>;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<u8, NotAByte>;
        serialize_map(Option<usize>) -> Impossible<u8, NotAByte>;
        serialize_struct(&'static str, usize) -> Impossible<u8, NotAByte>;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<u8, NotAByte>;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<u8, NotAByte> {
        Err(NotAByte)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<u8, NotAByte> {
        Err(NotAByte)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u8, NotAByte> {
        Err(NotAByte)
    }
}

/// An ext's content as rmp-serde's `_ExtStruct` gives it: a tuple of its tag and its bytes.
#[derive(Default)]
struct Ext {
    tag: Option<i8>,
    data: Option<Vec<u8>>,
    /// The tuple's fields seen, in order.
    fields: u8,
}

impl ser::Serializer for &mut Ext {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Impossible<(), EncodeError>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Impossible<(), EncodeError>;
    type SerializeTupleVariant = Impossible<(), EncodeError>;
    type SerializeMap = Impossible<(), EncodeError>;
    type SerializeStruct = Impossible<(), EncodeError>;
    type SerializeStructVariant = Impossible<(), EncodeError>;

    fn serialize_tuple(self, len: usize) -> Result<Self, EncodeError> {
        match (len, self.fields) {
            (2, 0) => Ok(self),
            _ => Err(EncodeError::NotExt),
        }
    }

    fn serialize_i8(self, tag: i8) -> Result<(), EncodeError> {
        match self.fields {
            0 => self.tag = Some(tag),
            _ => return Err(EncodeError::NotExt),
        }
        self.fields += 1;
        Ok(())
    }

    fn serialize_bytes(self, data: &[u8]) -> Result<(), EncodeError> {
        match self.fields {
            1 => self.data = Some(data.to_vec()),
            _ => return Err(EncodeError::NotExt),
        }
        self.fields += 1;
        Ok(())
    }

    refused! {
        EncodeError::NotExt;
        serialize_bool(bool) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), EncodeError> {
        Err(EncodeError::NotExt)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), EncodeError> {
        Err(EncodeError::NotExt)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), EncodeError> {
        Err(EncodeError::NotExt)
    }
}

impl SerializeTuple for &mut Ext {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;

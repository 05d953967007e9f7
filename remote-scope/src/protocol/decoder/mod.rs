//! The MessagePack decoder of captures, values and frames: serde's `Deserializer` over a byte
//! slice, reading what rmp-serde writes and what rmp-serde reads.
//!
//! Every `Deserialize` type gets its own copy of a serde decoder's generic code, one per
//! visitor, and a program decodes hundreds of types. So the part that depends on the visitor
//! is one small match: a single non-generic function ([`Input::token`]) reads the next marker
//! and its payload, and the generic part only hands the token to the visitor. Each request
//! hands it only the kinds of value the request names and serde's own visitors for it take (a
//! struct an array, a map or a bin, a string a string or a bin), as serde_json does; any other
//! gets the error serde's default visitor methods would give, from one function for all. For
//! serde's visitors and derived ones this decodes and refuses exactly what handing every kind
//! to every visitor would, at every level of a value (a test holds it to that), and the
//! visitors' copies take a third less code (in the demo page: 25 716 bytes against 36 864).
//! One difference is meant: a field's or variant's name is text, from a string or a bin (a
//! name in a bin reaches the visitor as a string), and bytes that are not UTF-8 as a name are
//! refused, where rmp-serde hands them to the type as bytes (which an open struct ignores,
//! `#[serde(other)]` takes, and a flattened map of byte keys collects: the one place a peer
//! writes them). A hand-written visitor that takes other kinds than its request names reads
//! them through `deserialize_any`, as it must with serde_json.
//!
//! A derived `Deserialize` of a recursive type recurses once per level of the value, so a peer
//! that sends a deep enough value (a few hundred kilobytes suffice) would overflow the decoding
//! thread's stack, which aborts the whole process. The decoder therefore counts every request
//! to decode a value, whatever the bytes look like (an enum variant or an option's content
//! takes no bytes of its own), and refuses the value once a limit of them are nested in one
//! another; siblings do not add up, only nesting does.

mod error;
pub(super) mod token;

use serde::de::{
    self, value::BorrowedBytesDeserializer, DeserializeOwned, DeserializeSeed, IntoDeserializer,
    Visitor,
};
use serde::{forward_to_deserialize_any, Deserialize};

pub(crate) use error::DecodeError;
use token::{Input, Token};

/// How deeply a value in captures or a result may nest; a deeper one fails to decode
/// ([`Error::DecodeCaptures`](crate::Error::DecodeCaptures) on the serving peer,
/// [`Error::DecodeResult`](crate::Error::DecodeResult) on the caller) instead of overflowing the
/// stack.
///
/// A level is one value inside another, whether or not it takes bytes on the wire: an element,
/// a key, a field, and the content of an option, a newtype struct or an enum variant each sit
/// one level below what holds them (a tuple or struct variant's fields two). `5_u8` is one level
/// deep, `vec![vec![5_u8]]` three, and a `struct V(Vec<V>)` takes two levels per `V`.
///
/// The limit counts levels, not bytes of stack, and sees only what is decoded from the wire:
/// serde decodes an untagged or internally tagged enum from a buffered copy of its content,
/// which it walks on its own. A capture type that refers to itself should therefore be an
/// externally tagged enum (serde's default) or a struct, and keep large values behind a `Box`.
///
/// ```
/// assert_eq!(remote_scope::protocol::MAX_DEPTH, 128);
/// ```
//
// 128 is serde_json's recursion limit (which counts only arrays and objects). The stack is what
// it guards: a value at the limit takes well under half of wasm32's 1 MiB stack in a debug build
// (a test holds it to that), against a tokio worker's 2 MiB.
pub const MAX_DEPTH: usize = 128;

/// Decodes a payload (captures or a value), bytes after the value ignored as rmp-serde ignores
/// them, refusing a value nested deeper than [`MAX_DEPTH`].
pub(crate) fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode(bytes, MAX_DEPTH)
}

/// Decodes the value at the start of `bytes`, nested at most `limit` levels deep (as
/// [`MAX_DEPTH`] counts them); what follows it is ignored.
pub(crate) fn decode<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    limit: usize,
) -> Result<T, DecodeError> {
    T::deserialize(&mut Decoder {
        input: Input::new(bytes),
        left: limit,
        limit,
    })
}

struct Decoder<'de> {
    input: Input<'de>,
    /// The levels a value may still nest.
    left: usize,
    limit: usize,
}

/// The kinds of value a request to decode hands its visitor, as bits.
mod kind {
    pub(super) const NIL: u16 = 1;
    pub(super) const BOOL: u16 = 1 << 1;
    pub(super) const INT: u16 = 1 << 2;
    pub(super) const FLOAT: u16 = 1 << 3;
    pub(super) const STR: u16 = 1 << 4;
    /// A bin as its bytes (and a string whose bytes are not UTF-8).
    pub(super) const BIN: u16 = 1 << 5;
    /// A bin as a sequence of its bytes, one element each: rmp-serde writes a `Vec<u8>` as a
    /// bin (`BytesMode::ForceIterables`).
    pub(super) const BIN_SEQ: u16 = 1 << 6;
    /// A bin as text, if it is UTF-8.
    pub(super) const BIN_STR: u16 = 1 << 7;
    pub(super) const ARRAY: u16 = 1 << 8;
    pub(super) const MAP: u16 = 1 << 9;
    pub(super) const EXT: u16 = 1 << 10;
    pub(super) const ANY: u16 = NIL | BOOL | INT | FLOAT | STR | BIN | ARRAY | MAP | EXT;
    pub(super) const NUMBER: u16 = INT | FLOAT;
    pub(super) const TEXT: u16 = STR | BIN;
    pub(super) const BYTES: u16 = STR | BIN | ARRAY;
    /// A field's or variant's name, or its index; and, for a struct with a flattened field,
    /// any key of its map but an array, a map or an ext. A name is text: handing bytes that
    /// are not UTF-8 to the visitor, as rmp-serde does, would bring lossy UTF-8 decoding into
    /// every visitor of names (for the error about an unknown name), 1.3 KB of a page's wasm.
    pub(super) const IDENTIFIER: u16 = NIL | BOOL | INT | FLOAT | STR | BIN_STR;
    pub(super) const SEQ: u16 = ARRAY | BIN_SEQ;
    pub(super) const STRUCT: u16 = ARRAY | MAP | BIN_SEQ;
}

impl<'de> Decoder<'de> {
    #[inline]
    fn enter(&mut self) -> Result<(), DecodeError> {
        match self.left.checked_sub(1) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(self.too_deep()),
        }
    }

    #[cold]
    fn too_deep(&self) -> DecodeError {
        DecodeError::TooDeep { limit: self.limit }
    }

    /// One value, one level below the one being decoded, if it is of the `KINDS` asked for.
    fn value<const KINDS: u16, V: Visitor<'de>>(
        &mut self,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.enter()?;
        let value = self.visit::<KINDS, V>(visitor);
        self.left += 1;
        value
    }

    /// The next token, handed to `visitor` if it is of the `KINDS` asked for: the only part of
    /// decoding that each visitor has its own copy of, kept to one match whose other arms
    /// fold away. A token of another kind gets the error serde's default visitor methods give,
    /// from one function for every visitor.
    fn visit<const KINDS: u16, V: Visitor<'de>>(
        &mut self,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let kinds = KINDS;
        // The tests' reference decoder hands more kinds (`tests::any_kind`).
        #[cfg(test)]
        let kinds = tests::kinds(kinds);
        match self.input.token()? {
            Token::Nil if kinds & kind::NIL != 0 => visitor.visit_unit(),
            Token::Bool(b) if kinds & kind::BOOL != 0 => visitor.visit_bool(b),
            Token::U64(n) if kinds & kind::INT != 0 => visitor.visit_u64(n),
            Token::I64(n) if kinds & kind::INT != 0 => visitor.visit_i64(n),
            Token::F32(x) if kinds & kind::FLOAT != 0 => visitor.visit_f32(x),
            Token::F64(x) if kinds & kind::FLOAT != 0 => visitor.visit_f64(x),
            Token::Str(s) if kinds & kind::STR != 0 => visitor.visit_borrowed_str(s),
            Token::NotUtf8(bytes) if kinds & kind::BIN != 0 => visitor
                .visit_borrowed_bytes(bytes)
                .map_err(|_: DecodeError| not_utf8(bytes)),
            Token::Bin(bytes) if kinds & kind::BIN != 0 => visitor.visit_borrowed_bytes(bytes),
            Token::Bin(bytes) if kinds & kind::BIN_SEQ != 0 => visitor.visit_seq(ByteSeq {
                bytes,
                deep: self.left == 0,
                limit: self.limit,
            }),
            Token::Bin(bytes) if kinds & kind::BIN_STR != 0 => match std::str::from_utf8(bytes) {
                Ok(text) => visitor.visit_borrowed_str(text),
                Err(e) => Err(DecodeError::NotUtf8(e)),
            },
            Token::Array(len) if kinds & kind::ARRAY != 0 => {
                let mut seq = Seq {
                    de: self,
                    left: len,
                };
                let value = visitor.visit_seq(&mut seq)?;
                all_read(len, seq.left)?;
                Ok(value)
            }
            Token::Map(len) if kinds & kind::MAP != 0 => {
                let mut map = Map {
                    de: self,
                    left: len,
                };
                let value = visitor.visit_map(&mut map)?;
                all_read(len, map.left)?;
                Ok(value)
            }
            Token::Ext(tag, data) if kinds & kind::EXT != 0 => visitor.visit_newtype_struct(Ext {
                tag,
                data,
                left: self.left,
                limit: self.limit,
            }),
            other => Err(mismatch(other, &visitor)),
        }
    }

    /// Reads an enum's one-entry map header, if it is one: `false` for the variant alone.
    #[inline(never)]
    fn variant_in_map(&mut self) -> Result<bool, DecodeError> {
        match self.input.peek()? {
            0x81 => {
                self.input.skip_byte();
                return Ok(true);
            }
            0x80..=0x8f | 0xde | 0xdf => {}
            _ => return Ok(false),
        }
        match self.input.token()? {
            Token::Map(1) => Ok(true),
            _ => Err(DecodeError::Mismatch {
                found: "a map of other than one entry",
                wanted: "an enum (a variant's name, or a map of its name to its content)",
            }),
        }
    }

    /// Whether the next value is the nil or empty array a unit struct is, read if so.
    #[inline(never)]
    fn unit(&mut self) -> Result<bool, DecodeError> {
        let unit = matches!(self.input.peek()?, 0xc0 | 0x90);
        if unit {
            self.input.skip_byte();
        }
        Ok(unit)
    }

    /// Whether the next value is nil, read if so.
    #[inline(never)]
    fn none(&mut self) -> Result<bool, DecodeError> {
        let none = self.input.peek()? == 0xc0;
        if none {
            self.input.skip_byte();
        }
        Ok(none)
    }

    /// The ext an `rmp_serde` ext newtype holds.
    #[inline(never)]
    fn ext(&mut self) -> Result<Ext<'de>, DecodeError> {
        match self.input.token()? {
            Token::Ext(tag, data) => Ok(Ext {
                tag,
                data,
                left: self.left,
                limit: self.limit,
            }),
            other => Err(DecodeError::Mismatch {
                found: other.kind(),
                wanted: "an ext",
            }),
        }
    }

    fn wide(&mut self, signed: bool) -> Result<u128, DecodeError> {
        self.enter()?;
        let n = self.input.wide(signed);
        self.left += 1;
        n
    }
}

#[cold]
#[inline(never)]
fn not_utf8(bytes: &[u8]) -> DecodeError {
    match std::str::from_utf8(bytes) {
        Err(e) => DecodeError::NotUtf8(e),
        Ok(_) => DecodeError::Custom("a string the type does not take".into()),
    }
}

/// The error serde's default visitor methods give for a token the visitor does not take.
#[cold]
#[inline(never)]
fn mismatch(token: Token<'_>, expected: &dyn de::Expected) -> DecodeError {
    let found = match token {
        Token::Nil => de::Unexpected::Unit,
        Token::Bool(b) => de::Unexpected::Bool(b),
        Token::U64(n) => de::Unexpected::Unsigned(n),
        Token::I64(n) => de::Unexpected::Signed(n),
        Token::F32(x) => de::Unexpected::Float(f64::from(x)),
        Token::F64(x) => de::Unexpected::Float(x),
        Token::Str(s) => de::Unexpected::Str(s),
        Token::NotUtf8(bytes) => return not_utf8(bytes),
        Token::Bin(bytes) => de::Unexpected::Bytes(bytes),
        Token::Array(_) => de::Unexpected::Seq,
        Token::Map(_) => de::Unexpected::Map,
        Token::Ext(..) => de::Unexpected::NewtypeStruct,
    };
    de::Error::invalid_type(found, expected)
}

/// An array or map must be read to its end, as rmp-serde requires.
#[inline(never)]
fn all_read(len: u32, left: u32) -> Result<(), DecodeError> {
    match left {
        0 => Ok(()),
        _ => Err(DecodeError::Excess {
            found: len,
            taken: len - left,
        }),
    }
}

macro_rules! deserialize {
    ($($kinds:ident: $($method:ident$(($($arg:ident: $ty:ty),*))?),*;)*) => {$($(
        #[inline]
        fn $method<V: Visitor<'de>>(
            self,
            $($($arg: $ty,)*)?
            visitor: V,
        ) -> Result<V::Value, DecodeError> {
            self.value::<{ kind::$kinds }, V>(visitor)
        }
    )*)*};
}

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = DecodeError;

    // Each request hands its visitor the kinds of value it names, and those serde's own
    // visitors for it take (a string from a bin, a byte buffer from an array, a field's name
    // from its index), as serde_json does.
    deserialize! {
        ANY: deserialize_any, deserialize_ignored_any;
        BOOL: deserialize_bool;
        INT: deserialize_i8, deserialize_i16, deserialize_i32, deserialize_i64, deserialize_u8,
            deserialize_u16, deserialize_u32, deserialize_u64;
        NUMBER: deserialize_f32, deserialize_f64;
        TEXT: deserialize_char, deserialize_str, deserialize_string;
        BYTES: deserialize_bytes, deserialize_byte_buf;
        IDENTIFIER: deserialize_identifier;
        NIL: deserialize_unit;
        MAP: deserialize_map;
        SEQ: deserialize_seq, deserialize_tuple(_len: usize),
            deserialize_tuple_struct(_name: &'static str, _len: usize);
        STRUCT: deserialize_struct(_name: &'static str, _fields: &'static [&'static str]);
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i128(self.wide(true)? as i128)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u128(self.wide(false)?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.enter()?;
        let value = match self.none() {
            Ok(true) => visitor.visit_none(),
            Ok(false) => visitor.visit_some(&mut *self),
            Err(e) => Err(e),
        };
        self.left += 1;
        value
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        // rmp-serde writes a unit struct as an empty array, and reads it from nil too.
        self.enter()?;
        let value = match self.unit() {
            Ok(true) => visitor.visit_unit(),
            Ok(false) => self.visit::<{ kind::NIL }, V>(visitor),
            Err(e) => Err(e),
        };
        self.left += 1;
        value
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.enter()?;
        let value = match name == super::serializer::EXT {
            true => self.ext().and_then(|ext| visitor.visit_newtype_struct(ext)),
            false => visitor.visit_newtype_struct(&mut *self),
        };
        self.left += 1;
        value
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.enter()?;
        let value = match self.variant_in_map() {
            Ok(in_map) => visitor.visit_enum(Variant {
                de: &mut *self,
                in_map,
            }),
            Err(e) => Err(e),
        };
        self.left += 1;
        value
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of an array.
struct Seq<'a, 'de> {
    de: &'a mut Decoder<'de>,
    left: u32,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, 'de> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        next_of(self.de, &mut self.left, seed)
    }

    fn size_hint(&self) -> Option<usize> {
        // Each element takes a byte at least: a hostile length reserves no more than that.
        Some((self.left as usize).min(self.de.input.left()))
    }
}

/// The next of the `left` values an array or map announced (an element, or a key), or `None`
/// once all are read.
fn next_of<'de, T: DeserializeSeed<'de>>(
    de: &mut Decoder<'de>,
    left: &mut u32,
    seed: T,
) -> Result<Option<T::Value>, DecodeError> {
    if *left == 0 {
        return Ok(None);
    }
    *left -= 1;
    seed.deserialize(de).map(Some)
}

/// The entries of a map.
struct Map<'a, 'de> {
    de: &'a mut Decoder<'de>,
    left: u32,
}

impl<'de> de::MapAccess<'de> for Map<'_, 'de> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        next_of(self.de, &mut self.left, seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        // Each entry takes two bytes at least.
        Some((self.left as usize).min(self.de.input.left() / 2))
    }
}

/// The bytes of a bin read as a sequence, each one level below it.
struct ByteSeq<'de> {
    bytes: &'de [u8],
    /// Whether the sequence took the last level, which leaves none for its elements.
    deep: bool,
    limit: usize,
}

impl<'de> de::SeqAccess<'de> for ByteSeq<'de> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let Some((&byte, rest)) = self.bytes.split_first() else {
            return Ok(None);
        };
        if self.deep {
            return Err(DecodeError::TooDeep { limit: self.limit });
        }
        self.bytes = rest;
        seed.deserialize(byte.into_deserializer()).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.bytes.len())
    }
}

/// An enum's variant: in a one-entry map from its name (or index) to its content, or its name
/// (or index) alone for a unit variant.
struct Variant<'a, 'de> {
    de: &'a mut Decoder<'de>,
    in_map: bool,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de> {
    type Error = DecodeError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self), DecodeError> {
        Ok((seed.deserialize(&mut *self.de)?, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = DecodeError;

    fn unit_variant(self) -> Result<(), DecodeError> {
        match self.in_map {
            true => self.de.input.nil(),
            false => Ok(()),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, DecodeError> {
        match self.in_map {
            true => seed.deserialize(self.de),
            false => Err(unit_variant_alone("newtype variant")),
        }
    }

    // The fields are a tuple (or, in the named form, a map), one level below the variant.
    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.in_map {
            true => self.de.value::<{ kind::SEQ }, V>(visitor),
            false => Err(unit_variant_alone("tuple variant")),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.in_map {
            true => self.de.value::<{ kind::STRUCT }, V>(visitor),
            false => Err(unit_variant_alone("struct variant")),
        }
    }
}

#[cold]
#[inline(never)]
fn unit_variant_alone(wanted: &'static str) -> DecodeError {
    de::Error::invalid_type(de::Unexpected::UnitVariant, &wanted)
}

/// The content of an ext, as rmp-serde reads it: a sequence of its tag and its bytes, one level
/// below the ext (and the two elements one more).
struct Ext<'de> {
    tag: i8,
    data: &'de [u8],
    /// The levels left where the ext is.
    left: usize,
    limit: usize,
}

impl<'de> de::Deserializer<'de> for Ext<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.left {
            0 => Err(DecodeError::TooDeep { limit: self.limit }),
            left => visitor.visit_seq(ExtSeq {
                ext: Ext {
                    left: left - 1,
                    ..self
                },
                read: 0,
            }),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

struct ExtSeq<'de> {
    ext: Ext<'de>,
    read: u8,
}

impl<'de> de::SeqAccess<'de> for ExtSeq<'de> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        if self.read == 2 {
            return Ok(None);
        }
        if self.ext.left == 0 {
            return Err(DecodeError::TooDeep {
                limit: self.ext.limit,
            });
        }
        self.read += 1;
        match self.read {
            1 => seed.deserialize(self.ext.tag.into_deserializer()).map(Some),
            _ => seed
                .deserialize(BorrowedBytesDeserializer::new(self.ext.data))
                .map(Some),
        }
    }
}

#[cfg(test)]
pub(in crate::protocol) mod tests;

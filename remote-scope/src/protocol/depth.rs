//! A nesting limit for decoding values a peer sent.
//!
//! A derived `Deserialize` of a recursive type recurses once per level of the value, so a peer
//! that sends a deep enough value (a few hundred kilobytes suffice) overflows the decoding
//! thread's stack, which aborts the whole process. rmp-serde's own limit does not prevent
//! that: it counts arrays and maps only, not the one-entry map an enum variant is written as,
//! nor a newtype struct or an `Option`, which take no bytes at all. Its `deserialize_option`
//! even puts a non-nil marker back for the content to read, so `struct X(Option<Box<X>>)`
//! recurses without end on a one-byte input.
//!
//! [`decode_payload`] therefore decodes through wrappers that count every request to decode a
//! value, whatever the bytes look like, and refuse the value once [`MAX_DEPTH`] requests are
//! nested in one another. Each wrapper holds the levels left for what it hands out, by value, so
//! siblings do not add up: only nesting does.

use serde::de::{self, DeserializeOwned, DeserializeSeed};
use std::fmt;

/// How deeply a value in captures or a result may nest; a deeper one fails to decode
/// ([`Error::DecodeCaptures`](crate::Error::DecodeCaptures) on the serving peer,
/// [`Error::DecodeResult`](crate::Error::DecodeResult) on the caller) instead of overflowing the
/// stack.
///
/// A level is one value inside another, whether or not it takes bytes on the wire: an element,
/// a key, a field, and the content of an option, a newtype struct or an enum variant each sit
/// one level below what holds them (a tuple or struct variant's fields two). `5_u8` is one level
/// deep, `vec![vec![5_u8]]` three, and a `struct V(Vec<V>)` takes two levels per `V`.
//
// 128 is serde_json's recursion limit (which counts only arrays and objects). The stack is what
// it guards: measured in a debug build, a level through a derived `Deserialize`, these wrappers
// and rmp-serde costs about 1.1 KiB for an enum and 2.3 KiB for a sequence (rmp-serde's frame
// for arrays and maps is large), so a value at the limit takes at most about 300 KiB, against
// a tokio worker's 2 MiB and wasm32's 1 MiB stack; an optimized build takes under 40 KiB.
pub const MAX_DEPTH: usize = 128;

/// Decodes a payload (captures or a value) as [`rmp_serde::from_slice`] does, bytes after the
/// value ignored alike, but refuses a value nested deeper than [`MAX_DEPTH`].
pub(crate) fn decode_payload<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, rmp_serde::decode::Error> {
    let mut inner = rmp_serde::Deserializer::from_read_ref(bytes);
    T::deserialize(Deserializer {
        inner: &mut inner,
        depth: MAX_DEPTH,
    })
}

/// The levels left after one more, or the error once none is left.
fn descend<E: de::Error>(depth: usize) -> Result<usize, E> {
    depth
        .checked_sub(1)
        .ok_or_else(|| E::custom(format_args!("value nested deeper than {MAX_DEPTH} levels")))
}

/// `inner`, allowed `depth` more levels.
struct Deserializer<D> {
    inner: D,
    depth: usize,
}

/// `inner`, whose nested values may take `depth` more levels.
struct Visitor<V> {
    inner: V,
    depth: usize,
}

// The accesses and the seed give every deserializer they hand out the levels left to them.
struct SeqAccess<A> {
    inner: A,
    depth: usize,
}

struct MapAccess<A> {
    inner: A,
    depth: usize,
}

struct EnumAccess<A> {
    inner: A,
    depth: usize,
}

struct VariantAccess<A> {
    inner: A,
    depth: usize,
}

struct Seed<S> {
    inner: S,
    depth: usize,
}

macro_rules! deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: de::Visitor<'de>>(
            self,
            $($arg: $ty,)*
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            let depth = descend(self.depth)?;
            self.inner.$method($($arg,)* Visitor { inner: visitor, depth })
        }
    )*};
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Deserializer<D> {
    type Error = D::Error;

    deserialize! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: de::Visitor<'de>> de::Visitor<'de> for Visitor<V> {
    type Value = V::Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(formatter)
    }

    visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, inner: D) -> Result<V::Value, D::Error> {
        let depth = self.depth;
        self.inner.visit_some(Deserializer { inner, depth })
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        inner: D,
    ) -> Result<V::Value, D::Error> {
        let depth = self.depth;
        self.inner
            .visit_newtype_struct(Deserializer { inner, depth })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, inner: A) -> Result<V::Value, A::Error> {
        let depth = self.depth;
        self.inner.visit_seq(SeqAccess { inner, depth })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, inner: A) -> Result<V::Value, A::Error> {
        let depth = self.depth;
        self.inner.visit_map(MapAccess { inner, depth })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, inner: A) -> Result<V::Value, A::Error> {
        let depth = self.depth;
        self.inner.visit_enum(EnumAccess { inner, depth })
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, inner: D) -> Result<S::Value, D::Error> {
        let depth = self.depth;
        self.inner.deserialize(Deserializer { inner, depth })
    }
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for SeqAccess<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let depth = self.depth;
        self.inner.next_element_seed(Seed { inner: seed, depth })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for MapAccess<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let depth = self.depth;
        self.inner.next_key_seed(Seed { inner: seed, depth })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let depth = self.depth;
        self.inner.next_value_seed(Seed { inner: seed, depth })
    }

    fn next_entry_seed<K: DeserializeSeed<'de>, V: DeserializeSeed<'de>>(
        &mut self,
        key: K,
        value: V,
    ) -> Result<Option<(K::Value, V::Value)>, A::Error> {
        let depth = self.depth;
        self.inner.next_entry_seed(
            Seed { inner: key, depth },
            Seed {
                inner: value,
                depth,
            },
        )
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for EnumAccess<A> {
    type Error = A::Error;
    type Variant = VariantAccess<A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let depth = self.depth;
        let (name, inner) = self.inner.variant_seed(Seed { inner: seed, depth })?;
        Ok((name, VariantAccess { inner, depth }))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for VariantAccess<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        let depth = self.depth;
        self.inner.newtype_variant_seed(Seed { inner: seed, depth })
    }

    // The fields are decoded as a tuple by the inner deserializer, out of this wrapper's
    // reach, so the level that `deserialize_tuple` would take is taken here.
    fn tuple_variant<V: de::Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let depth = descend(self.depth)?;
        self.inner.tuple_variant(
            len,
            Visitor {
                inner: visitor,
                depth,
            },
        )
    }

    fn struct_variant<V: de::Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let depth = descend(self.depth)?;
        self.inner.struct_variant(
            fields,
            Visitor {
                inner: visitor,
                depth,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::fmt::Debug;

    use serde::de::IgnoredAny;
    use serde::{Deserialize, Serialize};
    use serde_bytes::ByteBuf;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Expr {
        Num(i64),
        Neg(Box<Expr>),
        Add(Box<Expr>, Box<Expr>),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V(Vec<V>);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct N {
        next: Option<Box<N>>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct X(Option<Box<X>>);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(i32, String),
        Struct { a: u8, b: Option<Vec<u8>> },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Meters(f64);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pair(u16, Option<String>);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        id: u64,
        name: String,
        tags: BTreeMap<String, Vec<i32>>,
        shapes: Vec<Shape>,
        raw: ByteBuf,
        unit: (),
        marker: Unit,
        length: Meters,
        pair: Pair,
        wide: (i128, u128),
        letter: char,
        ratio: f32,
        flag: bool,
    }

    // Buffered through serde's `Content` before the variant is chosen.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Number(u32),
        Words(Vec<String>),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "kind")]
    enum Tagged {
        Point { x: i8, y: i8 },
        Origin,
    }

    /// The value `rmp_serde::from_slice` decodes from `bytes`, or its error's text.
    fn rmp<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
    }

    fn ours<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        decode_payload(bytes).map_err(|e| e.to_string())
    }

    /// `value` comes back from both encodings, exactly as rmp-serde decodes it.
    fn round_trips<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T) {
        let named = rmp_serde::to_vec_named(&value).expect("encodes");
        let compact = rmp_serde::to_vec(&value).expect("encodes");
        for bytes in [named, compact] {
            assert_eq!(ours::<T>(&bytes), rmp::<T>(&bytes), "{bytes:02x?}");
            assert_eq!(ours::<T>(&bytes).as_ref(), Ok(&value), "{bytes:02x?}");
        }
    }

    fn assert_too_deep<T: Debug>(result: Result<T, rmp_serde::decode::Error>) {
        let reason = result.expect_err("too deep").to_string();
        assert!(
            reason.contains(&format!("nested deeper than {MAX_DEPTH} levels")),
            "{reason}"
        );
    }

    /// `Neg` `n` times around `Num(1)`: `{"Neg": {"Neg": .. {"Num": 1}}}`.
    fn negations(n: usize) -> Vec<u8> {
        let mut bytes = b"\x81\xa3Neg".repeat(n);
        bytes.extend_from_slice(b"\x81\xa3Num\x01");
        bytes
    }

    /// `n` arrays, each the only element of the one around it: `[[..[]..]]`.
    fn arrays(n: usize) -> Vec<u8> {
        let mut bytes = vec![0x91; n - 1];
        bytes.push(0x90);
        bytes
    }

    /// `n` links of `N`, as maps: `{"next": {"next": .. {"next": nil}}}`.
    fn links_named(n: usize) -> Vec<u8> {
        let mut bytes = b"\x81\xa4next".repeat(n);
        bytes.push(0xc0);
        bytes
    }

    /// `n` links of `N`, as arrays: `[[..[nil]..]]`.
    fn links_compact(n: usize) -> Vec<u8> {
        let mut bytes = vec![0x91; n];
        bytes.push(0xc0);
        bytes
    }

    // Deep enough to overflow any thread's stack without the limit: 30 000 `Neg`s, 150 KB,
    // already overflow 8 MiB in a debug build.
    const HOSTILE: [usize; 3] = [30_000, 100_000, 1_000_000];

    #[test]
    fn values_within_the_limit_decode_as_rmp_serde_decodes_them() {
        round_trips(Shape::Unit);
        round_trips(Shape::Newtype(7));
        round_trips(Shape::Tuple(-3, "three".into()));
        round_trips(Shape::Struct {
            a: 1,
            b: Some(vec![2, 3]),
        });
        round_trips(Shape::Struct { a: 1, b: None });
        round_trips(Expr::Add(
            Box::new(Expr::Neg(Box::new(Expr::Num(i64::MIN)))),
            Box::new(Expr::Num(i64::MAX)),
        ));
        round_trips(N {
            next: Some(Box::new(N {
                next: Some(Box::new(N { next: None })),
            })),
        });
        round_trips(V(vec![V(vec![]), V(vec![V(vec![])])]));
        round_trips(X(None));
        round_trips(Record {
            id: u64::MAX,
            name: "ünïcode".into(),
            tags: [("a".to_owned(), vec![-1, 0, 1]), ("b".to_owned(), vec![])].into(),
            shapes: vec![Shape::Unit, Shape::Newtype(0)],
            raw: ByteBuf::from(vec![0, 0xff, 0x90]),
            unit: (),
            marker: Unit,
            length: Meters(1.5),
            pair: Pair(9, Some("nine".into())),
            wide: (i128::MIN, u128::MAX),
            letter: 'λ',
            ratio: 0.25,
            flag: true,
        });
        round_trips(HashMap::from([(1_u8, Some(2_u8)), (3, None)]));
        round_trips(Some(Some(5_u32)));
        round_trips(None::<u32>);
        round_trips(());
        round_trips(Unit);
        round_trips(Meters(-0.0));
        round_trips(String::from("plain"));
        round_trips(ByteBuf::from(vec![1_u8; 300]));
        round_trips(vec![Loose::Number(4), Loose::Words(vec!["w".into()])]);
        round_trips(vec![Tagged::Point { x: -1, y: 2 }, Tagged::Origin]);
        round_trips((1_u8, -2_i16, 3_u32, -4_i64, 5.5_f64, 'c', false));
    }

    #[test]
    fn malformed_input_fails_as_in_rmp_serde_and_trailing_bytes_are_ignored_as_there() {
        let good = rmp_serde::to_vec(&Shape::Tuple(1, "x".into())).expect("encodes");
        for cut in 0..good.len() {
            assert_eq!(ours::<Shape>(&good[..cut]), rmp::<Shape>(&good[..cut]));
        }
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0xc1, 0xff]);
        assert_eq!(ours::<Shape>(&trailing), rmp::<Shape>(&trailing));
        assert!(ours::<Shape>(&trailing).is_ok());
        for wrong in [
            &b"\xa1Z"[..],
            b"\x82\xa4Unit\xc0\xa4Unit\xc0",
            b"\xc1",
            b"\x05",
        ] {
            assert_eq!(ours::<Shape>(wrong), rmp::<Shape>(wrong), "{wrong:02x?}");
            assert!(ours::<Shape>(wrong).is_err(), "{wrong:02x?}");
        }
        assert_eq!(ours::<Record>(&good), rmp::<Record>(&good));
    }

    #[test]
    fn a_hostile_chain_of_enum_variants_is_refused_not_a_stack_overflow() {
        for n in HOSTILE {
            assert_too_deep(decode_payload::<Expr>(&negations(n)));
        }
    }

    #[test]
    fn hostile_nested_vecs_are_refused_not_a_stack_overflow() {
        for n in HOSTILE {
            assert_too_deep(decode_payload::<V>(&arrays(n)));
            assert_too_deep(decode_payload::<IgnoredAny>(&arrays(n)));
        }
    }

    #[test]
    fn a_hostile_chain_of_optional_fields_is_refused_not_a_stack_overflow() {
        for n in HOSTILE {
            assert_too_deep(decode_payload::<N>(&links_named(n)));
            assert_too_deep(decode_payload::<N>(&links_compact(n)));
        }
    }

    #[test]
    fn a_newtype_of_an_option_of_itself_is_refused_on_any_non_nil_input() {
        // rmp-serde hands a non-nil marker back to the option's content without reading
        // further, so each of these alone would recurse without end.
        for input in [
            &b"\x01"[..],
            b"\xc3",
            b"\xa1a",
            b"\x91\xc0",
            b"\x81\xc0\xc0",
        ] {
            assert_too_deep(decode_payload::<X>(input));
        }
        for n in HOSTILE {
            assert_too_deep(decode_payload::<X>(&arrays(n)));
        }
        assert_eq!(ours::<X>(b"\xc0"), Ok(X(None)));
    }

    #[test]
    fn nested_vecs_decode_exactly_to_the_limit_and_not_one_level_deeper() {
        // One array is one level when nothing else is nested with it.
        assert!(decode_payload::<IgnoredAny>(&arrays(MAX_DEPTH)).is_ok());
        assert_too_deep(decode_payload::<IgnoredAny>(&arrays(MAX_DEPTH + 1)));
        // A `V` is two: its newtype struct and its `Vec`.
        let deepest = arrays(MAX_DEPTH / 2);
        assert_eq!(ours::<V>(&deepest), rmp::<V>(&deepest));
        assert!(ours::<V>(&deepest).is_ok());
        assert_too_deep(decode_payload::<V>(&arrays(MAX_DEPTH / 2 + 1)));
    }

    #[test]
    fn enum_chains_decode_exactly_to_the_limit_and_not_one_level_deeper() {
        // Each `Neg` is one level; `Num(1)` is one, and its name and number one more.
        let deepest = negations(MAX_DEPTH - 2);
        assert_eq!(ours::<Expr>(&deepest), rmp::<Expr>(&deepest));
        assert!(ours::<Expr>(&deepest).is_ok());
        assert_too_deep(decode_payload::<Expr>(&negations(MAX_DEPTH - 1)));
    }

    #[test]
    fn values_at_the_limit_and_refusals_past_it_fit_in_half_a_wasm32_stack() {
        // Measured in a debug build: the deepest `V` takes about 300 KiB, the deepest `Expr`
        // about 160 KiB. Half of wasm32's 1 MiB leaves room for what runs above the decoder.
        let run = std::thread::Builder::new()
            .stack_size(512 << 10)
            .spawn(|| {
                assert!(decode_payload::<Expr>(&negations(MAX_DEPTH - 2)).is_ok());
                assert!(decode_payload::<V>(&arrays(MAX_DEPTH / 2)).is_ok());
                assert!(decode_payload::<N>(&links_named(MAX_DEPTH / 2)).is_ok());
                assert!(decode_payload::<IgnoredAny>(&arrays(MAX_DEPTH)).is_ok());
                assert_too_deep(decode_payload::<Expr>(&negations(1_000_000)));
                assert_too_deep(decode_payload::<V>(&arrays(1_000_000)));
                assert_too_deep(decode_payload::<X>(b"\x01"));
            })
            .expect("spawns");
        run.join().expect("decodes without overflowing");
    }
}

//! The decoder against rmp-serde's, the reference: the same values from what either of its
//! encoders writes, errors where it errs, and refusals past the depth limit.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::*;
use crate::protocol::Encoded;

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
pub(in crate::protocol) struct Unit;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(in crate::protocol) struct Meters(f64);

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

// Read as an identifier, as derived field visitors read a field's name or index.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum FieldName {
    Id,
    Name,
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

/// `value` comes back from rmp-serde's encodings (structs as arrays and as maps) and from the
/// project's own (maps, byte vectors as bins), exactly as rmp-serde decodes it.
fn round_trips<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: T) {
    let named = rmp_serde::to_vec_named(&value).expect("encodes");
    let compact = rmp_serde::to_vec(&value).expect("encodes");
    let ours_encoded = Encoded::new(&value, 0)
        .expect("encodes")
        .as_slice()
        .to_vec();
    for bytes in [named, compact, ours_encoded] {
        assert_eq!(ours::<T>(&bytes).as_ref(), Ok(&value), "{bytes:02x?}");
        assert_eq!(
            ours::<T>(&bytes).ok(),
            rmp::<T>(&bytes).ok(),
            "{bytes:02x?}"
        );
    }
}

/// Both decoders fail on `bytes`, or both give the same value (compared as printed, so that
/// a NaN equals itself).
fn agree<T: DeserializeOwned + Debug>(bytes: &[u8]) {
    let (ours, rmp) = (ours::<T>(bytes), rmp::<T>(bytes));
    assert_eq!(
        ours.is_ok(),
        rmp.is_ok(),
        "{bytes:02x?}: {ours:?} against {rmp:?}"
    );
    assert_eq!(
        format!("{:?}", ours.ok()),
        format!("{:?}", rmp.ok()),
        "{bytes:02x?}"
    );
}

fn assert_too_deep<T: Debug>(result: Result<T, DecodeError>) {
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
        agree::<Shape>(&good[..cut]);
        assert!(ours::<Shape>(&good[..cut]).is_err());
    }
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0xc1, 0xff]);
    agree::<Shape>(&trailing);
    assert!(ours::<Shape>(&trailing).is_ok());
    for wrong in [
        &b"\xa1Z"[..],
        b"\x82\xa4Unit\xc0\xa4Unit\xc0",
        b"\xc1",
        b"\x05",
    ] {
        agree::<Shape>(wrong);
        assert!(ours::<Shape>(wrong).is_err(), "{wrong:02x?}");
    }
    agree::<Record>(&good);
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
    agree::<V>(&deepest);
    assert!(ours::<V>(&deepest).is_ok());
    assert_too_deep(decode_payload::<V>(&arrays(MAX_DEPTH / 2 + 1)));
}

#[test]
fn enum_chains_decode_exactly_to_the_limit_and_not_one_level_deeper() {
    // Each `Neg` is one level; `Num(1)` is one, and its name and number one more.
    let deepest = negations(MAX_DEPTH - 2);
    agree::<Expr>(&deepest);
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

/// SplitMix64: a reproducible stream of random numbers for the generated cases.
pub(in crate::protocol) struct Random(pub(in crate::protocol) u64);

impl Random {
    pub(in crate::protocol) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(in crate::protocol) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }

    /// An integer at or next to a boundary of MessagePack's widths, or any.
    pub(in crate::protocol) fn int(&mut self) -> i128 {
        match self.below(3) {
            0 => self.next() as i128,
            1 => self.next() as i64 as i128,
            _ => self.pick(BOUNDARIES) + self.pick(&[-1, 0, 1]),
        }
    }

    pub(in crate::protocol) fn string(&mut self) -> String {
        let len = match self.below(8) {
            0 => self.pick(&[31, 32, 255, 256, 65_535, 65_536]),
            _ => self.below(12),
        };
        (0..len)
            .map(|_| self.pick(&['a', 'Z', '0', ' ', 'é', 'λ', '😀', '\0']))
            .collect()
    }

    pub(in crate::protocol) fn bytes(&mut self) -> Vec<u8> {
        let len = match self.below(8) {
            0 => self.pick(&[15, 16, 255, 256, 65_535, 65_536]),
            _ => self.below(20),
        };
        // Small values too, which the project's encoder writes as an array when short.
        let top = self.pick(&[0x80, 0x100]);
        (0..len).map(|_| self.below(top) as u8).collect()
    }

    pub(in crate::protocol) fn float(&mut self) -> f64 {
        let x = f64::from_bits(self.next());
        match self.below(3) {
            _ if x.is_nan() => -0.0,
            0 => x,
            1 => self.pick(&[0.0, -0.0, 1.5, f64::MAX, f64::MIN_POSITIVE, f64::INFINITY]),
            _ => x.clamp(-1e6, 1e6),
        }
    }
}

/// The boundaries of MessagePack's integer forms.
pub(in crate::protocol) const BOUNDARIES: &[i128] = &[
    0,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0xffff_ffff,
    0x1_0000_0000,
    i64::MAX as i128,
    u64::MAX as i128,
    -32,
    -33,
    -128,
    -129,
    -32_768,
    -32_769,
    i32::MIN as i128,
    i32::MIN as i128 - 1,
    i64::MIN as i128 + 1,
];

fn fit<T: TryFrom<i128> + Default>(n: i128) -> T {
    T::try_from(n).unwrap_or_default()
}

/// Every kind of value serde has, nested.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(in crate::protocol) enum Tree {
    Leaf,
    Signed(i8, i16, i32, i64),
    Unsigned(u8, u16, u32, u64),
    Wide(i128, u128),
    Float(f64),
    Single(f32),
    Letter(char),
    Text(String),
    Bin(ByteBuf),
    Vector(Vec<u8>),
    Maybe(Option<Box<Tree>>),
    List(Vec<Tree>),
    Keyed(BTreeMap<String, Tree>),
    Numbered(BTreeMap<i64, bool>),
    Pair(Box<Tree>, Box<Tree>),
    Inner(Inner),
    Fields {
        unit: (),
        marker: Unit,
        length: Meters,
        tuple: (u8, String, Option<u16>),
        inner: Option<Inner>,
        flag: bool,
    },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(in crate::protocol) enum Inner {
    A,
    B(u16),
    C(Option<String>, bool),
    D { x: Option<i64>, y: Vec<Inner> },
}

pub(in crate::protocol) fn tree(random: &mut Random, depth: usize) -> Tree {
    let leaves = 10;
    let kinds = if depth == 0 { leaves } else { 17 };
    match random.below(kinds) {
        0 => Tree::Leaf,
        1 => Tree::Signed(
            fit(random.int()),
            fit(random.int()),
            fit(random.int()),
            fit(random.int()),
        ),
        2 => Tree::Unsigned(
            fit(random.int()),
            fit(random.int()),
            fit(random.int()),
            fit(random.int()),
        ),
        3 => Tree::Wide(
            random.int() * i128::from(random.next() as i64),
            u128::from(random.next()) << random.below(64),
        ),
        4 => Tree::Float(random.float()),
        5 => Tree::Single(random.float() as f32),
        6 => Tree::Letter(random.pick(&['a', 'ß', '€', '😀'])),
        7 => Tree::Text(random.string()),
        8 => Tree::Bin(ByteBuf::from(random.bytes())),
        9 => Tree::Vector(random.bytes()),
        10 => Tree::Maybe(match random.below(2) {
            0 => None,
            _ => Some(Box::new(tree(random, depth - 1))),
        }),
        11 => Tree::List(
            (0..random.below(5))
                .map(|_| tree(random, depth - 1))
                .collect(),
        ),
        12 => Tree::Keyed(
            (0..random.below(4))
                .map(|_| (random.string(), tree(random, depth - 1)))
                .collect(),
        ),
        13 => Tree::Numbered(
            (0..random.below(4))
                .map(|_| (fit(random.int()), random.below(2) == 0))
                .collect(),
        ),
        14 => Tree::Pair(
            Box::new(tree(random, depth - 1)),
            Box::new(tree(random, depth - 1)),
        ),
        15 => Tree::Inner(inner(random, depth - 1)),
        _ => Tree::Fields {
            unit: (),
            marker: Unit,
            length: Meters(random.float()),
            tuple: (
                fit(random.int()),
                random.string(),
                random.pick(&[None, Some(7)]),
            ),
            inner: (random.below(2) == 0).then(|| inner(random, depth - 1)),
            flag: random.below(2) == 0,
        },
    }
}

fn inner(random: &mut Random, depth: usize) -> Inner {
    match random.below(if depth == 0 { 3 } else { 4 }) {
        0 => Inner::A,
        1 => Inner::B(fit(random.int())),
        2 => Inner::C(
            (random.below(2) == 0).then(|| random.string()),
            random.below(2) == 0,
        ),
        _ => Inner::D {
            x: (random.below(2) == 0).then(|| fit(random.int())),
            y: (0..random.below(3))
                .map(|_| inner(random, depth - 1))
                .collect(),
        },
    }
}

#[test]
fn random_values_of_every_kind_decode_as_they_were_encoded_by_either_encoder() {
    let mut random = Random(23);
    for _ in 0..3_000 {
        let depth = random.below(5);
        round_trips(tree(&mut random, depth));
    }
}

#[test]
fn integers_of_any_width_decode_into_any_type_that_holds_them() {
    fn each<T>(n: i128, bytes: &[u8])
    where
        T: DeserializeOwned + PartialEq + Debug + TryFrom<i128>,
    {
        agree::<T>(bytes);
        assert_eq!(
            ours::<T>(bytes).ok(),
            T::try_from(n).ok(),
            "{n} from {bytes:02x?}"
        );
    }
    let mut random = Random(7);
    let values = BOUNDARIES
        .iter()
        .flat_map(|&n| [n - 1, n, n + 1])
        .chain((0..200).map(|_| random.int()));
    for n in values {
        // Each as rmp-serde writes it (the narrowest form), as every wider form of its sign,
        // and as a float, which no integer type takes.
        let mut forms = vec![];
        if let Ok(n) = u64::try_from(n) {
            forms.push(rmp_serde::to_vec(&n).expect("encodes"));
            forms.push([&[0xcf][..], &n.to_be_bytes()].concat());
        }
        if let Ok(n) = i64::try_from(n) {
            forms.push(rmp_serde::to_vec(&n).expect("encodes"));
            forms.push([&[0xd3][..], &n.to_be_bytes()].concat());
        }
        if let Ok(n) = u32::try_from(n) {
            forms.push([&[0xce][..], &n.to_be_bytes()].concat());
        }
        if let Ok(n) = i32::try_from(n) {
            forms.push([&[0xd2][..], &n.to_be_bytes()].concat());
        }
        if let Ok(n) = i16::try_from(n) {
            forms.push([&[0xd1][..], &n.to_be_bytes()].concat());
        }
        if let Ok(n) = i8::try_from(n) {
            forms.push(vec![0xd0, n as u8]);
        }
        for bytes in &forms {
            each::<u8>(n, bytes);
            each::<u16>(n, bytes);
            each::<u32>(n, bytes);
            each::<u64>(n, bytes);
            each::<i8>(n, bytes);
            each::<i16>(n, bytes);
            each::<i32>(n, bytes);
            each::<i64>(n, bytes);
            each::<i128>(n, bytes);
            if n >= 0 {
                each::<u128>(n, bytes);
            }
        }
        assert!(ours::<u64>(&rmp_serde::to_vec(&(n as f64)).expect("encodes")).is_err());
    }
}

#[test]
fn damaged_encodings_fail_or_decode_as_in_rmp_serde_and_never_panic() {
    let mut random = Random(5);
    for _ in 0..3_000 {
        let depth = random.below(4);
        let value = tree(&mut random, depth);
        let mut bytes = match random.below(3) {
            0 => rmp_serde::to_vec(&value),
            1 => rmp_serde::to_vec_named(&value),
            _ => Ok(Encoded::new(&value, 0)
                .expect("encodes")
                .as_slice()
                .to_vec()),
        }
        .expect("encodes");
        for _ in 0..=random.below(3) {
            let at = random.below(bytes.len());
            match random.below(4) {
                0 => bytes[at] = random.next() as u8,
                1 => bytes[at] ^= 1 << random.below(8),
                2 => bytes.truncate(at),
                _ => bytes.insert(at, random.next() as u8),
            }
            if bytes.is_empty() {
                bytes.push(0xc0);
            }
        }
        // rmp-serde reads a negative integer as a `u128` by wrapping it (-1 as `u128::MAX`);
        // this decoder refuses it, as every narrower unsigned type is refused one.
        let ours = ours::<Tree>(&bytes);
        if ours.as_ref().is_err_and(|e| e.contains("expected u128")) {
            continue;
        }
        agree::<Tree>(&bytes);
    }
}

#[test]
fn lengths_a_hostile_header_announces_reserve_no_more_than_the_input_holds() {
    // An array of 4 G elements, a map of 4 G entries, a string and a bin of 4 GiB: each with
    // a few bytes behind it.
    for bytes in [
        &b"\xdd\xff\xff\xff\xff\x01\x02"[..],
        b"\xdf\xff\xff\xff\xff\x01\x02",
        b"\xdb\xff\xff\xff\xffab",
        b"\xc6\xff\xff\xff\xffab",
    ] {
        assert!(ours::<Vec<u64>>(bytes).is_err());
        assert!(ours::<HashMap<u8, u8>>(bytes).is_err());
        assert!(ours::<String>(bytes).is_err());
        assert!(ours::<ByteBuf>(bytes).is_err());
        assert!(ours::<IgnoredAny>(bytes).is_err());
    }
}

#[test]
fn errors_say_what_is_wrong_with_the_input() {
    let reason = |bytes: &[u8]| ours::<String>(bytes).expect_err("fails");
    assert_eq!(
        reason(b"\xa3ab"),
        "the input ends inside a value, at byte 1"
    );
    assert_eq!(reason(b""), "the input ends inside a value, at byte 0");
    assert_eq!(
        reason(b"\xc1"),
        "byte 0 is 0xc1, a marker MessagePack reserves"
    );
    assert!(reason(b"\xa2\xc3\x28").starts_with("a string that is not UTF-8"));
    assert_eq!(
        reason(b"\x07"),
        "invalid type: integer `7`, expected a string"
    );
    assert_eq!(
        ours::<(u8,)>(b"\x92\x01\x02").expect_err("fails"),
        "2 elements where the type takes 1"
    );
    // Bytes that are not UTF-8 still read as bytes.
    assert_eq!(
        ours::<ByteBuf>(b"\xa2\xc3\x28"),
        Ok(ByteBuf::from(vec![0xc3, 0x28]))
    );
}

#[test]
fn ext_values_read_as_rmp_serde_reads_them() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename = "_ExtStruct")]
    struct ExtStruct((i8, ByteBuf));

    for data in [
        vec![1_u8],
        vec![1, 2],
        vec![0; 4],
        vec![9; 8],
        vec![3; 16],
        vec![4; 3],
    ] {
        let value = ExtStruct((-5, ByteBuf::from(data)));
        let bytes = rmp_serde::to_vec(&value).expect("encodes");
        assert_eq!(ours::<ExtStruct>(&bytes).as_ref(), Ok(&value));
        agree::<ExtStruct>(&bytes);
        assert!(ours::<IgnoredAny>(&bytes).is_ok());
    }
}

/// Every level a request takes is given back, also when the request fails: a type whose own
/// `Deserialize` swallows its content's error and goes on must find the limit where it was.
#[test]
fn a_failed_request_gives_its_level_back() {
    use serde::de::Deserializer as _;

    fn left_after(bytes: &[u8], request: impl FnOnce(&mut Decoder<'_>) -> bool) -> usize {
        let mut de = Decoder {
            input: Input::new(bytes),
            left: 10,
            limit: 10,
        };
        assert!(request(&mut de), "the request fails on {bytes:02x?}");
        de.left
    }
    let string = [0xa1, b'x'];
    let two_entries = [0x82, 0x01, 0x02, 0x03, 0x04];
    let failed: [(&str, usize); 6] = [
        (
            "u128 from a string",
            left_after(&string, |de| de.deserialize_u128(IgnoredAny).is_err()),
        ),
        (
            "i128 from a string",
            left_after(&string, |de| de.deserialize_i128(IgnoredAny).is_err()),
        ),
        (
            "an ext from a string",
            left_after(&string, |de| {
                de.deserialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, IgnoredAny)
                    .is_err()
            }),
        ),
        (
            "an enum from a map of two entries",
            left_after(&two_entries, |de| {
                de.deserialize_enum("E", &["A"], IgnoredAny).is_err()
            }),
        ),
        (
            "an option from nothing",
            left_after(&[], |de| de.deserialize_option(IgnoredAny).is_err()),
        ),
        (
            "a unit struct from nothing",
            left_after(&[], |de| {
                de.deserialize_unit_struct("U", IgnoredAny).is_err()
            }),
        ),
    ];
    for (what, left) in failed {
        assert_eq!(left, 10, "{what}");
    }
}

#[test]
fn a_float_where_another_type_was_expected_is_named_with_its_value() {
    for (value, printed) in [
        (1.5, "1.5"),
        (-3.0, "-3.0"),
        (0.000_001, "0.000001"),
        (2.999_999_9, "3.0"),
        (123_456.25, "123456.25"),
        (f64::NAN, "NaN"),
        (f64::NEG_INFINITY, "-inf"),
        (1e300, "9.2e18 or more"),
    ] {
        let bytes = rmp_serde::to_vec(&value).expect("encodes");
        assert_eq!(
            ours::<String>(&bytes),
            Err(format!(
                "invalid type: floating point `{printed}`, expected a string"
            ))
        );
    }
    // Values of other kinds are named in serde's words.
    let bytes = rmp_serde::to_vec(&"seven").expect("encodes");
    assert_eq!(
        ours::<u8>(&bytes),
        Err("invalid type: string \"seven\", expected u8".to_owned())
    );
    let bytes = rmp_serde::to_vec(&-2_i8).expect("encodes");
    assert_eq!(
        ours::<bool>(&bytes),
        Err("invalid type: integer `-2`, expected a boolean".to_owned())
    );
}

/// A value of every MessagePack kind, encoded: nil, a boolean, both signs of integer, both
/// widths of float, a string, a string that is not UTF-8, a bin, an array, a map, an ext.
fn one_of_each_kind() -> Vec<Vec<u8>> {
    [
        &b"\xc0"[..],
        b"\xc3",
        b"\x07",
        b"\xf9",
        b"\xca\x3f\xc0\x00\x00",
        b"\xcb\x40\x04\x00\x00\x00\x00\x00\x00",
        b"\xa2ab",
        b"\xa2\xc3\x28",
        b"\xc4\x02\x01\x02",
        b"\x92\x01\x02",
        b"\x81\x01\x02",
        b"\xd5\x05\x01\x02",
    ]
    .into_iter()
    .map(<[u8]>::to_vec)
    .collect()
}

thread_local! {
    /// Whether this thread's decoder is the reference: see [`any_kind`].
    static ANY_KIND: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The kinds of value a request hands its visitor: as asked for, or, in [`any_kind`], any kind
/// (a bin as bytes, or as a sequence where a sequence or struct is asked for), but for a name
/// (of a field or variant), which is text from a string or a bin in both.
pub(super) fn kinds(asked: u16) -> u16 {
    match ANY_KIND.get() {
        false => asked,
        true if asked == kind::IDENTIFIER => kind::ANY & !kind::BIN | kind::BIN_STR,
        true if asked & kind::BIN_SEQ != 0 => kind::ANY & !kind::BIN | kind::BIN_SEQ,
        true => kind::ANY,
    }
}

/// `decode` with every request handing its visitor a value of any kind, at every level: the
/// reference for what the requests' narrower matches must do with serde's visitors.
fn any_kind<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, DecodeError> {
    /// Sets the switch back even if decoding panics.
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ANY_KIND.set(false);
        }
    }
    ANY_KIND.set(true);
    let _reset = Reset;
    decode(bytes, MAX_DEPTH)
}

// A struct whose flattened map takes every key the struct's fields do not: its name visitor
// takes any kind of key.
#[derive(Debug, Deserialize)]
struct Flat<K: Ord> {
    a: u32,
    #[serde(flatten)]
    rest: BTreeMap<K, u32>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    Number(u8),
    Word { w: String },
}

/// Decodes `bytes` as a `T` with the requests' narrow matches and with [`any_kind`], and
/// requires the same value or the same error.
fn same_as_any_kind<'a, T: Deserialize<'a> + Debug>(bytes: &'a [u8]) {
    let narrow = decode::<T>(bytes, MAX_DEPTH).map_err(|e| e.to_string());
    let any = any_kind::<T>(bytes).map_err(|e| e.to_string());
    assert_eq!(
        format!("{narrow:?}"),
        format!("{any:?}"),
        "{} from {bytes:02x?}",
        std::any::type_name::<T>()
    );
}

#[test]
fn each_request_decodes_and_refuses_what_any_kind_handed_to_serde_s_visitors_would() {
    // A value of every kind, alone and where an element, a key, a value, a flattened key, an
    // enum's name and a variant's content are read.
    let mut inputs = one_of_each_kind();
    for v in one_of_each_kind() {
        let v = &v[..];
        inputs.extend([
            [&[0x91][..], v].concat(),
            [&[0x92][..], v, v].concat(),
            [&[0x81][..], v, &[0x01]].concat(),
            [&[0x81, 0xa1, b'a'][..], v].concat(),
            [&[0x82, 0xa1, b'a', 0x01][..], v, &[0x02]].concat(),
            [&[0x81][..], v, &[0xc0]].concat(),
            [&[0x81, 0xa5][..], b"Tuple", v].concat(),
            [&[0x81, 0xa5][..], b"Tuple\x92", v, v].concat(),
            [&[0x81, 0xa6][..], b"Struct", v].concat(),
            [&[0x81, 0xa6][..], b"Struct\x82\xa1a", v, b"\xa1b", v].concat(),
            [&[0x82, 0xa1][..], b"t\xa6Number\xa1c", v].concat(),
        ]);
    }
    // The types of serde and of the crates people use, and derived ones of every shape.
    for bytes in &inputs {
        same_as_any_kind::<()>(bytes);
        same_as_any_kind::<bool>(bytes);
        same_as_any_kind::<u8>(bytes);
        same_as_any_kind::<i64>(bytes);
        same_as_any_kind::<u64>(bytes);
        same_as_any_kind::<usize>(bytes);
        same_as_any_kind::<f32>(bytes);
        same_as_any_kind::<f64>(bytes);
        same_as_any_kind::<char>(bytes);
        same_as_any_kind::<&str>(bytes);
        same_as_any_kind::<std::borrow::Cow<'_, str>>(bytes);
        same_as_any_kind::<String>(bytes);
        same_as_any_kind::<Box<str>>(bytes);
        same_as_any_kind::<std::path::PathBuf>(bytes);
        same_as_any_kind::<&[u8]>(bytes);
        same_as_any_kind::<ByteBuf>(bytes);
        same_as_any_kind::<bytes::Bytes>(bytes);
        same_as_any_kind::<Vec<u8>>(bytes);
        same_as_any_kind::<Vec<String>>(bytes);
        same_as_any_kind::<(u8, u8)>(bytes);
        same_as_any_kind::<[u8; 2]>(bytes);
        same_as_any_kind::<Record>(bytes);
        same_as_any_kind::<Pair>(bytes);
        same_as_any_kind::<Unit>(bytes);
        same_as_any_kind::<Meters>(bytes);
        same_as_any_kind::<std::marker::PhantomData<u8>>(bytes);
        same_as_any_kind::<HashMap<u8, u8>>(bytes);
        same_as_any_kind::<BTreeMap<String, u8>>(bytes);
        same_as_any_kind::<Shape>(bytes);
        same_as_any_kind::<Option<u8>>(bytes);
        same_as_any_kind::<Option<Vec<u8>>>(bytes);
        same_as_any_kind::<IgnoredAny>(bytes);
        same_as_any_kind::<Loose>(bytes);
        same_as_any_kind::<Tagged>(bytes);
        same_as_any_kind::<Adjacent>(bytes);
        same_as_any_kind::<Flat<String>>(bytes);
        same_as_any_kind::<Flat<bool>>(bytes);
        same_as_any_kind::<Flat<i64>>(bytes);
        same_as_any_kind::<Flat<ByteBuf>>(bytes);
        same_as_any_kind::<Flat<Option<String>>>(bytes);
        same_as_any_kind::<std::time::Duration>(bytes);
        same_as_any_kind::<std::time::SystemTime>(bytes);
        same_as_any_kind::<std::ops::Range<u32>>(bytes);
        same_as_any_kind::<std::net::IpAddr>(bytes);
        same_as_any_kind::<std::net::SocketAddr>(bytes);
        same_as_any_kind::<Result<u8, String>>(bytes);
        same_as_any_kind::<FieldName>(bytes);
    }
}

#[test]
fn a_flattened_map_takes_keys_of_every_kind_the_encoder_writes_but_bytes_not_utf8() {
    fn round_trip<K: Serialize + DeserializeOwned + Ord + Clone + Debug>(key: K) {
        #[derive(Serialize)]
        struct Out<K: Ord> {
            a: u32,
            #[serde(flatten)]
            rest: BTreeMap<K, u32>,
        }
        let value = Out {
            a: 1,
            rest: BTreeMap::from([(key.clone(), 2)]),
        };
        let bytes = Encoded::new(&value, 0)
            .expect("encodes")
            .as_slice()
            .to_vec();
        let decoded: Flat<K> = decode_payload(&bytes).expect("decodes");
        assert_eq!((decoded.a, decoded.rest), (1, value.rest), "{bytes:02x?}");
    }
    round_trip("b".to_owned());
    round_trip(true);
    round_trip(-7_i64);
    round_trip(Some("b".to_owned()));
    round_trip(ByteBuf::from(b"b".to_vec()));
}

#[derive(Debug, PartialEq, Deserialize)]
struct Open {
    a: u8,
}

#[derive(Debug, PartialEq, Deserialize)]
enum WithOther {
    A,
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Strict {
    b: u8,
    #[serde(flatten)]
    rest: Open,
}

#[test]
fn names_in_bins_read_as_rmp_serde_reads_them_but_for_bytes_that_are_not_utf8() {
    fn both<T: DeserializeOwned + Debug>(bytes: &[u8]) {
        assert!(
            ours::<T>(bytes).is_ok(),
            "{bytes:02x?}: {:?}",
            ours::<T>(bytes)
        );
        agree::<T>(bytes);
    }
    // {"a": 1, bin "b": 2}, a bin "A", {"a": 1, bin "a": 2}.
    let other_key = b"\x82\xa1a\x01\xc4\x01b\x02";
    both::<Open>(other_key);
    both::<Flat<String>>(other_key);
    both::<Flat<ByteBuf>>(other_key);
    both::<WithOther>(b"\xc4\x01A");
    both::<WithOther>(b"\xc4\x01Z");
    both::<Adjacent>(b"\x83\xa1t\xa6Number\xa1c\x05\xc4\x01x\x01");
    // Bytes that are not UTF-8 as a name: rmp-serde hands them to the type as bytes, which an
    // open struct ignores, `#[serde(other)]` takes and a flattened map of byte keys collects;
    // this decoder refuses them (no peer writes one but for such a map).
    let not_utf8_key = b"\x82\xa1a\x01\xc4\x01\xff\x02";
    for refused in [
        ours::<Open>(not_utf8_key).map(|_| ()),
        ours::<Flat<ByteBuf>>(not_utf8_key).map(|_| ()),
        ours::<WithOther>(b"\xc4\x01\xff").map(|_| ()),
    ] {
        assert!(refused.is_err_and(|e| e.starts_with("a string that is not UTF-8")));
    }
    assert_eq!(rmp::<Open>(not_utf8_key), Ok(Open { a: 1 }));
    assert_eq!(rmp::<WithOther>(b"\xc4\x01\xff"), Ok(WithOther::Other));
}

#[test]
fn an_unknown_field_a_flattened_struct_refuses_is_escaped() {
    let strict = ours::<Strict>(b"\x82\xa1b\x01\xa1a\x02").expect("decodes");
    assert_eq!((strict.b, strict.rest), (1, Open { a: 2 }));
    // serde's derive writes this refusal itself, as a custom message.
    let refused =
        ours::<Strict>(b"\x83\xa1b\x01\xa1a\x01\xa6x\ny\xe2\x80\xae\x02").expect_err("refused");
    assert_eq!(refused, "unknown field `x\\ny\\u{202e}`");
}

#[test]
fn a_name_is_text_from_a_string_or_a_bin_or_its_index() {
    assert_eq!(ours::<FieldName>(b"\xa2id"), Ok(FieldName::Id));
    assert_eq!(ours::<FieldName>(b"\xc4\x02id"), Ok(FieldName::Id));
    assert_eq!(ours::<FieldName>(b"\x01"), Ok(FieldName::Name));
    assert_eq!(ours::<Shape>(b"\xc4\x04Unit"), Ok(Shape::Unit));
    assert_eq!(
        ours::<Adjacent>(b"\x82\xa1t\xa4Word\xa1c\x81\xc4\x01w\xa1x"),
        Ok(Adjacent::Word { w: "x".into() })
    );
    // One that is not UTF-8 is refused; rmp-serde reads a bin of it, lossily, as a name.
    for bytes in [&b"\xc4\x02\xc3\x28"[..], b"\xa2\xc3\x28"] {
        let refused = ours::<FieldName>(bytes).expect_err("refused");
        assert!(
            refused.starts_with("a string that is not UTF-8"),
            "{refused}"
        );
    }
    assert_eq!(
        rmp::<FieldName>(b"\xc4\x02\xc3\x28"),
        Err("unknown field `\u{fffd}(`, expected `id` or `name`".to_owned())
    );
}

#[derive(Debug, PartialEq, Deserialize)]
enum One {
    A,
}

#[derive(Debug, PartialEq, Deserialize)]
enum Two {
    A,
    B,
}

#[test]
fn an_unknown_name_is_refused_in_serde_s_words_with_what_could_forge_a_line_escaped() {
    fn both<T: DeserializeOwned + Debug>(name: &str) -> (Result<T, String>, Result<T, String>) {
        let bytes = rmp_serde::to_vec(name).expect("encodes");
        (ours::<T>(&bytes), rmp::<T>(&bytes))
    }
    let (ours, rmp) = both::<Shape>("Nope");
    assert_eq!(
        ours.as_ref().expect_err("refused"),
        "unknown variant `Nope`, expected one of `Unit`, `Newtype`, `Tuple`, `Struct`"
    );
    assert_eq!(ours, rmp);
    let (ours, rmp) = both::<One>("B");
    assert_eq!(ours, Err("unknown variant `B`, expected `A`".to_owned()));
    assert_eq!(ours, rmp);
    let (ours, rmp) = both::<Two>("C");
    assert_eq!(
        ours,
        Err("unknown variant `C`, expected `A` or `B`".to_owned())
    );
    assert_eq!(ours, rmp);
    let (ours, rmp) = both::<FieldName>("zz");
    assert_eq!(
        ours,
        Err("unknown field `zz`, expected `id` or `name`".to_owned())
    );
    assert_eq!(ours, rmp);
    // A name that would start a new log line, or reorder the text after it.
    let (ours, _) = both::<Shape>("Un\nit\u{1b}\u{202e}");
    let refused = ours.expect_err("refused");
    assert!(
        refused.starts_with("unknown variant `Un\\nit\\u{1b}\\u{202e}`, expected one of"),
        "{refused}"
    );
    assert!(!refused.contains(['\n', '\u{1b}', '\u{202e}']), "{refused}");
}

#[derive(Debug, PartialEq, Deserialize)]
struct Bytes2(u8, u8);

#[derive(Debug, PartialEq, Deserialize)]
struct Named2 {
    a: u8,
    b: u8,
}

#[derive(Debug, PartialEq, Deserialize)]
enum Variants2 {
    T(u8, u8),
    S { a: u8, b: u8 },
}

#[test]
fn a_bin_reads_as_a_sequence_of_its_bytes_where_rmp_serde_reads_one() {
    fn both<T: DeserializeOwned + Debug + PartialEq>(bytes: &[u8], value: T) {
        assert_eq!(ours::<T>(bytes), Ok(value), "{bytes:02x?}");
        agree::<T>(bytes);
    }
    let bin = b"\xc4\x02\x01\x02";
    both(bin, vec![1_u8, 2]);
    both(bin, (1_u8, 2_u8));
    both(bin, [1_u8, 2]);
    both(bin, Bytes2(1, 2));
    both(bin, Named2 { a: 1, b: 2 });
    both(b"\x81\xa1T\xc4\x02\x01\x02", Variants2::T(1, 2));
    both(b"\x81\xa1S\xc4\x02\x01\x02", Variants2::S { a: 1, b: 2 });
}

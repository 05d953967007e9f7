//! The serializer against rmp-serde's, configured as the project used it: the same bytes for
//! every kind of value.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;

use serde_bytes::ByteBuf;

use super::*;
use crate::protocol::decoder::tests::{tree, Random, BOUNDARIES};

fn ours<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = BytesMut::new();
    encode(value, &mut out).map(|()| out.to_vec())
}

fn rmp<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    let mut out = Vec::new();
    value
        .serialize(
            &mut rmp_serde::Serializer::new(&mut out)
                .with_struct_map()
                .with_bytes(rmp_serde::config::BytesMode::ForceIterables),
        )
        .map(|()| out)
}

#[track_caller]
fn same<T: Serialize + ?Sized + Debug>(value: &T) {
    let expected = rmp(value).expect("rmp-serde encodes");
    assert_eq!(ours(value).expect("encodes"), expected, "{value:?}");
}

#[test]
fn random_values_of_every_kind_encode_as_rmp_serde_encodes_them() {
    let mut random = Random(41);
    for _ in 0..3_000 {
        let depth = random.below(5);
        same(&tree(&mut random, depth));
    }
}

#[test]
fn every_width_of_integer_and_length_is_the_narrowest() {
    for &n in BOUNDARIES {
        for n in [n - 1, n, n + 1] {
            if let Ok(n) = u64::try_from(n) {
                same(&n);
            }
            if let Ok(n) = i64::try_from(n) {
                same(&n);
            }
        }
    }
    for len in [0, 1, 15, 16, 31, 32, 255, 256, 65_535, 65_536] {
        same(&"x".repeat(len));
        same(&ByteBuf::from(vec![7; len]));
        same(&vec![300_u16; len]);
        same(
            &(0..len as u32)
                .map(|k| (k, 1_u8))
                .collect::<BTreeMap<_, _>>(),
        );
    }
    let mut header_of = [0; 5];
    assert_eq!(
        header(&ARRAY, u32::MAX as usize + 1, &mut header_of),
        Err(EncodeError::TooLong {
            what: "a sequence",
            len: u32::MAX as usize + 1
        })
    );
}

#[test]
fn byte_vectors_are_bins_and_other_sequences_arrays_as_in_rmp_serde() {
    same(&Vec::<u8>::new());
    same(&vec![1_u8, 2, 255]);
    same(&[1_u8, 2, 3][..]);
    same(&[1_u8, 2, 3]);
    same(&vec![true, false]);
    same(&vec![-1_i8, 5]);
    same(&vec![Box::new(9_u8)]);
    same(&vec!["a", "b"]);
    same(&VecDeque::from(vec![1_u8, 2]));
    same(&vec![Some(1_u8)]);
    same(&(1_u8, 2_u8));
}

/// Serializes its items as a sequence or map of unknown length, as a hand-written `Serialize`
/// over an iterator may.
#[derive(Debug)]
struct Unsized(Vec<u32>, bool);

impl Serialize for Unsized {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.1 {
            let mut map = serializer.serialize_map(None)?;
            for n in &self.0 {
                map.serialize_entry(n, &format!("{n}"))?;
            }
            map.end()
        } else {
            serializer.collect_seq(self.0.iter().filter(|n| **n != 3))
        }
    }
}

#[test]
fn a_sequence_or_map_of_unknown_length_gets_its_header_in_front_once_counted() {
    for len in [0, 4, 15, 16, 17, 70_000] {
        let items: Vec<u32> = (0..len).collect();
        same(&Unsized(items.clone(), false));
        same(&Unsized(items.clone(), true));
        // Inside something else, so that what precedes and follows stays in place.
        same(&(1_u8, Unsized(items.clone(), true), "after"));
        same(&vec![Unsized(items.clone(), false), Unsized(items, false)]);
    }
}

/// rmp-serde's form of a MessagePack ext.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(rename = "_ExtStruct")]
struct Ext((i8, ByteBuf));

#[derive(Debug, serde::Serialize)]
#[serde(rename = "_ExtStruct")]
struct NotExt(u8);

#[test]
fn an_ext_is_written_as_rmp_serde_writes_it_and_reads_back() {
    for len in [0, 1, 2, 3, 4, 8, 16, 17, 255, 256, 70_000] {
        let ext = Ext((-3, ByteBuf::from(vec![5; len])));
        same(&ext);
        let bytes = ours(&ext).expect("encodes");
        assert_eq!(
            crate::protocol::decode_payload::<Ext>(&bytes).ok(),
            Some(ext)
        );
    }
    assert!(rmp(&NotExt(1)).is_err());
    assert_eq!(ours(&NotExt(1)), Err(EncodeError::NotExt));
}

#[test]
fn what_a_type_says_is_the_error() {
    struct Refuses;

    impl Serialize for Refuses {
        fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(ser::Error::custom("not today"))
        }
    }

    assert_eq!(
        ours(&(1, Refuses)),
        Err(EncodeError::Custom("not today".into()))
    );
}

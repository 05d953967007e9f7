use super::*;
use crate::protocol::tests::every_kind;
use crate::protocol::{decode_frame, encode};

fn by_serde(bytes: &[u8]) -> Option<Frame> {
    decode_frame::<Frame>(bytes).ok()
}

#[test]
fn every_frame_encode_writes_reads_as_serde_reads_it() {
    for expected in every_kind() {
        let message = encode(&expected).expect("encodes");
        let read = frame(&message).expect("reads");
        assert_eq!(read, expected);
        assert_eq!(by_serde(&message), Some(expected));
    }
}

#[test]
fn byte_fields_are_parts_of_the_message() {
    let bodies = Frame::Bodies(Bodies {
        entries: Bytes::from_static(&[9; 36]),
    });
    let message = encode(&bodies).expect("encodes");
    let Ok(Frame::Bodies(read)) = frame(&message) else {
        panic!("not read")
    };
    let within = message.as_ptr_range();
    assert!(within.contains(&read.entries.as_ptr()));
}

/// What reads here reads the same by serde, from every frame with any one byte changed or
/// cut short; and what serde reads from those, encoded again, reads here.
#[test]
fn damaged_frames_read_here_only_as_serde_reads_them() {
    let mut read_here = 0;
    for good in every_kind() {
        let good = encode(&good).expect("encodes").to_vec();
        let mut variants: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        for at in 0..good.len() {
            for byte in [0x00, 0x01, 0x7f, 0x80, 0x90, 0xa0, 0xc0, 0xc4, 0xcc, 0xff] {
                let mut damaged = good.clone();
                damaged[at] = byte;
                variants.push(damaged);
            }
        }
        for bytes in variants {
            let here = frame(&Bytes::from(bytes.clone())).ok();
            let there = by_serde(&bytes);
            if here.is_some() {
                read_here += 1;
                assert_eq!(here, there, "{bytes:02x?}");
            }
            if let Some(there) = there {
                let again = encode(&there).expect("encodes");
                assert_eq!(frame(&again).ok(), Some(there), "{bytes:02x?}");
            }
        }
    }
    // Changing a byte of a number or of a name's text leaves a frame to compare.
    assert!(read_here > 500, "{read_here}");
}

#[test]
fn forms_no_peer_writes_are_refused() {
    let hello = every_kind().remove(0);
    // The hello as a map of its fields' names, and with its variant's index for a name.
    let named = Bytes::from(rmp_serde::to_vec_named(&hello).expect("encodes"));
    let mut indexed = encode(&hello).expect("encodes").to_vec();
    indexed.splice(1..7, [0x00]);
    // A unit variant as a map to nil.
    let ping = Bytes::from_static(b"\x81\xa4Ping\xc0");
    for bytes in [named, Bytes::from(indexed), ping] {
        assert!(by_serde(&bytes).is_some(), "{bytes:02x?}");
        assert!(frame(&bytes).is_err(), "{bytes:02x?}");
    }
}

#[test]
fn room_is_made_for_what_the_input_can_hold_and_a_few_hundred_at_most() {
    assert_eq!(room_for(3, 100), 3);
    assert_eq!(room_for(u32::MAX, 10), 10);
    assert_eq!(room_for(u32::MAX, 64 << 20), 256);
    assert_eq!(room_for(0, 64 << 20), 0);
}

#[test]
fn a_count_the_frame_cannot_hold_is_refused_without_allocating_for_it() {
    // A hello whose pools announce 2^32 - 1 names, with none behind.
    let mut bytes = b"\x81\xa5Hello\x97\x05\xa1p\x01\x00\xc0\x92\x01\x01".to_vec();
    bytes.extend([0xdd, 0xff, 0xff, 0xff, 0xff]);
    let error = frame(&Bytes::from(bytes)).expect_err("refused");
    assert!(matches!(error, DecodeError::Truncated { .. }), "{error}");
}

#[test]
fn an_unknown_variant_is_named_in_the_error() {
    let error = frame(&Bytes::from_static(b"\x81\xa4Ping\x90")).expect_err("refused");
    assert_eq!(error.to_string(), "no variant `Ping` of frame with content");
}

//! The frame decoders on arbitrary bytes: never a panic; the node's decoder (the hand-written
//! fast path, then the general one) reads exactly what the general one alone reads, as the same
//! frame, with or without a body name it knows; serde's derive reads the same frame from it,
//! and reads no frame whose encoding the node's decoder does not read back; whatever decodes
//! re-encodes to something that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_scope::__fuzz::{decode_by_serde, decode_general, decode_received};
use remote_scope::protocol::{decode, encode};
use remote_scope::transport::Bytes;

fuzz_target!(|data: &[u8]| {
    let general = decode_general(data);
    let decoded = decode(Bytes::copy_from_slice(data), usize::MAX).ok();
    assert_eq!(decoded, general, "the fast path and the general decoder disagree");
    // As a reader decodes, knowing the body it found last.
    for known in [None, Some("m::body")] {
        assert_eq!(
            decode_received(data, known),
            general,
            "with {known:?} known"
        );
    }
    let by_serde = decode_by_serde(data);
    if general.is_some() {
        assert_eq!(by_serde, general, "serde reads the frame otherwise");
    }
    if let Some(frame) = by_serde {
        let again = encode(&frame).expect("a frame serde read encodes");
        assert_eq!(decode(again, usize::MAX).ok(), Some(frame), "not read back");
    }
    if let Some(frame) = decoded {
        let again = encode(&frame).expect("a decoded frame encodes");
        assert_eq!(decode(again, usize::MAX).ok(), Some(frame));
    }
});

//! The frame decoders on arbitrary bytes: never a panic; the node's decoder (the hand-written
//! fast path, then serde) reads exactly what serde alone reads, as the same frame, with or
//! without a body name it knows; whatever decodes re-encodes to something that decodes the
//! same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_scope::__fuzz::{decode_general, decode_received};
use remote_scope::protocol::{decode, encode};
use remote_scope::transport::Bytes;

fuzz_target!(|data: &[u8]| {
    let general = decode_general(data);
    let decoded = decode(Bytes::copy_from_slice(data), usize::MAX).ok();
    assert_eq!(decoded, general, "the fast path and serde disagree");
    // As a reader decodes, knowing the body it found last.
    for known in [None, Some("m::body")] {
        assert_eq!(
            decode_received(data, known),
            general,
            "with {known:?} known"
        );
    }
    if let Some(frame) = decoded {
        let again = encode(&frame).expect("a decoded frame encodes");
        assert_eq!(decode(again, usize::MAX).ok(), Some(frame));
    }
});

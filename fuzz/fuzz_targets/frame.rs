//! The frame decoders on arbitrary bytes: never a panic; whatever the node's borrowing decoder
//! accepts, the public owned one accepts as the same frame (the owned one is more lenient: it
//! also takes byte fields written as arrays of integers); whatever decodes re-encodes to
//! something that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_scope::__fuzz::decode_borrowed;
use remote_scope::protocol::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let owned = decode(data, usize::MAX).ok();
    // With no body name known, and with one known as a reader knows the body it found last.
    for known in [None, Some("m::body")] {
        let borrowed = decode_borrowed(data, known);
        if borrowed.is_some() {
            assert_eq!(owned, borrowed, "the two decoders disagree");
        }
    }
    if let Some(frame) = owned {
        let again = encode(&frame).expect("a decoded frame encodes");
        assert_eq!(decode(&again, usize::MAX).ok(), Some(frame));
    }
});

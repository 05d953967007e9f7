//! The native WebSocket transport's frame decoder on arbitrary bytes, read in arbitrary pieces,
//! as a server (masked frames expected) or a client (unmasked): never a panic, never more
//! room asked for than one frame within the limit, never a message over the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remote_scope::__fuzz::websocket_frames;

fuzz_target!(|data: &[u8]| {
    let [setup, chunk, bytes @ ..] = data else {
        return;
    };
    // Limits from 0 to a few KiB, so that both sides of them are reached.
    let limit = usize::from(setup & 0x7f) * 37;
    websocket_frames(setup & 0x80 != 0, limit, usize::from(*chunk), bytes);
});

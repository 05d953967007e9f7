//! Work the server does for its clients. Version 1 of the bodies crate and version 2
//! (`bodies-next`) compile this one file, so the bodies they share cannot drift apart.

use remote_scope::{remote, Call, PeerId};

/// Half of `width`, computed on `server`.
pub fn resize(server: &PeerId, width: u32) -> Call<u32> {
    remote!(server, [width: u32], { width / 2 })
}

/// How many words `text` has, counted on `server`.
pub fn word_count(server: &PeerId, text: String) -> Call<usize> {
    remote!(server, [text: String], { text.split_whitespace().count() })
}

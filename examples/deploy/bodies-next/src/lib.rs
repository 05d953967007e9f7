//! The bodies a service and its clients share, version 2: version 1's `jobs`, unchanged, and a
//! module new in this version, which servers and clients of version 1 do not have.

#[path = "../../bodies/src/jobs.rs"]
pub mod jobs;

/// New in version 2.
pub mod next {
    use remote_scope::{remote, Call, PeerId};

    /// `text` in capitals, on `server`.
    pub fn shout(server: &PeerId, text: String) -> Call<String> {
        remote!(server, [text: String], { text.to_uppercase() })
    }
}

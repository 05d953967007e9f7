//! The bodies a service and its clients share, version 2: version 1's `jobs`, unchanged;
//! `reports` with a new implementation behind the same signature; and a module new in this
//! version, which servers and clients of version 1 do not have.

#[path = "../../bodies/src/jobs.rs"]
pub mod jobs;

/// Reports, version 2: the same signature as version 1's, another implementation.
pub mod reports {
    use remote_scope::remote_fn;

    /// A summary of `text`, made on the peer it is sent to: words and letters.
    #[remote_fn]
    pub async fn summary(text: String) -> String {
        let letters = text.chars().filter(|c| c.is_alphabetic()).count();
        format!(
            "{} words, {letters} letters",
            text.split_whitespace().count()
        )
    }
}

/// New in version 2.
pub mod next {
    use remote_scope::{remote, Call, PeerId};

    /// `text` in capitals, on `server`.
    pub fn shout(server: &PeerId, text: String) -> Call<String> {
        remote!(server, [text: String], { text.to_uppercase() })
    }
}

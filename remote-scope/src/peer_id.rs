//! Peer identities.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The id of a peer, unique among the peers that talk to each other.
///
/// Cheap to clone. Give a node a readable id with [`NodeBuilder::id`](crate::NodeBuilder::id), or
/// let it pick a random one.
///
/// ```
/// use remote_scope::PeerId;
/// let server = PeerId::new("server");
/// assert_eq!(server.as_str(), "server");
/// assert_ne!(PeerId::random(), PeerId::random());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeerId(Arc<str>);

impl PeerId {
    /// A peer id with this text.
    pub fn new(id: impl Into<Arc<str>>) -> PeerId {
        PeerId(id.into())
    }

    /// A fresh id, `peer-` and 16 hex digits, different from every other one this process made
    /// and, with high probability, from any other process's.
    pub fn random() -> PeerId {
        PeerId::new(format!("peer-{:016x}", random_u64()))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The longest id a node accepts, in bytes. A peer's id goes into logs and errors, and is
    /// kept for as long as it is connected: it has to be short.
    pub const MAX_LEN: usize = 256;

    /// Whether this id is one a node accepts: 1 to [`PeerId::MAX_LEN`] bytes of printable
    /// text (no control characters, no white space but the plain space, and none of the
    /// invisible characters that could make two ids, or a log line, look alike or reorder text:
    /// zero-width ones and bidirectional controls). A node refuses to be built with another, and
    /// refuses a peer that claims one at connect time.
    ///
    /// ```
    /// use remote_scope::PeerId;
    /// assert!(PeerId::new("worker-1").is_valid());
    /// assert!(!PeerId::new("").is_valid());
    /// assert!(PeerId::new("worker 1 (eu-west)").is_valid());
    /// assert!(!PeerId::new("two\nlines").is_valid());
    /// assert!(!PeerId::new("admin\u{202E}nimda").is_valid());
    /// assert!(!PeerId::new("x".repeat(PeerId::MAX_LEN + 1)).is_valid());
    /// ```
    pub fn is_valid(&self) -> bool {
        (1..=Self::MAX_LEN).contains(&self.0.len()) && self.0.chars().all(printable)
    }

    /// Why this id is not valid, for errors: its start (it may be long), its length and the rule.
    pub(crate) fn refusal(&self) -> String {
        let shown: String = self.0.chars().take(64).collect();
        format!(
            "the peer id {shown:?} ({} bytes) is not valid: ids are 1 to {} bytes of printable \
             text, without control characters, white space other than the space, or invisible \
             characters",
            self.0.len(),
            Self::MAX_LEN
        )
    }
}

fn printable(c: char) -> bool {
    let invisible = matches!(
        c,
        '\u{200B}'..='\u{200F}' // zero-width space, joiners, left-to-right and right-to-left marks
            | '\u{202A}'..='\u{202E}' // bidirectional embeddings and overrides
            | '\u{2060}'..='\u{2064}' // word joiner and invisible operators
            | '\u{2066}'..='\u{2069}' // bidirectional isolates
            | '\u{FEFF}' // zero-width no-break space
    );
    !c.is_control() && (c == ' ' || !c.is_whitespace()) && !invisible
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({:?})", &*self.0)
    }
}

impl From<&str> for PeerId {
    fn from(id: &str) -> PeerId {
        PeerId::new(id)
    }
}

impl From<String> for PeerId {
    fn from(id: String) -> PeerId {
        PeerId::new(id)
    }
}

/// Randomness without a dependency: std's per-process random hash keys, a counter and the address
/// of a stack slot, mixed. Ids only need to be unique, not secret.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let slot = 0u8;
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_usize(std::ptr::addr_of!(slot) as usize);
    h.finish()
}

/// In a browser std has no entropy source (its hash keys are fixed), so two pages would pick the
/// same ids: ask the browser instead.
#[cfg(target_arch = "wasm32")]
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let high = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    let low = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    ((high << 32) | low) ^ COUNTER.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_printable_text_that_looks_like_what_it_is() {
        for good in [
            "a",
            "peer-00ff",
            "worker 1",
            "Zürich-1",
            "東京",
            "x-y_z.w:9",
        ] {
            assert!(PeerId::new(good).is_valid(), "{good:?}");
        }
        assert!(PeerId::random().is_valid());
        for bad in [
            "tab\there",
            "line\u{2028}separator",
            "no\u{00A0}break",
            "zero\u{200B}width",
            "rtl\u{200F}mark",
            "iso\u{2066}late",
            "bom\u{FEFF}",
            "bell\u{7}",
        ] {
            assert!(!PeerId::new(bad).is_valid(), "{bad:?}");
        }
    }
}

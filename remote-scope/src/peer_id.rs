//! Peer identities.

use std::fmt;
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
#[derive(Clone)]
pub struct PeerId(Arc<str>, Keyed);

/// The id's text hashed once, with this process's secret keys: a node looks its connections up
/// by peer id for every call it makes, and hashing the text each time showed in profiles.
/// Secret keys, because peers choose their ids: with a public hash, one could pick ids that all
/// collide. (In a browser std's keys are fixed, as for every std map there; a page holds few
/// connections.)
#[derive(Clone, Copy)]
struct Keyed(u64);

impl Keyed {
    fn of(id: &str) -> Keyed {
        use std::hash::BuildHasher;
        static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        Keyed(KEYS.get_or_init(Default::default).hash_one(id))
    }
}

impl PartialEq for PeerId {
    fn eq(&self, other: &PeerId) -> bool {
        self.1 .0 == other.1 .0 && self.0 == other.0
    }
}

impl Eq for PeerId {}

impl std::hash::Hash for PeerId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.1 .0);
    }
}

impl PartialOrd for PeerId {
    fn partial_cmp(&self, other: &PeerId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PeerId {
    fn cmp(&self, other: &PeerId) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl Serialize for PeerId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PeerId, D::Error> {
        Arc::<str>::deserialize(deserializer).map(PeerId::new)
    }
}

/// Hashes a [`PeerId`] no further: its hash is already keyed (see `Keyed`). For maps keyed by
/// peer id only.
#[derive(Default)]
pub(crate) struct PeerHasher(u64);

impl std::hash::Hasher for PeerHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `PeerId`'s `write_u64` comes here; anything else is folded in all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// A map keyed by peer id that hashes each id's keyed hash no further.
pub(crate) type PeerMap<V> =
    std::collections::HashMap<PeerId, V, std::hash::BuildHasherDefault<PeerHasher>>;

impl PeerId {
    /// A peer id with this text.
    pub fn new(id: impl Into<Arc<str>>) -> PeerId {
        let id = id.into();
        let keyed = Keyed::of(&id);
        PeerId(id, keyed)
    }

    /// A fresh id, `peer-` and 16 hex digits, different from every other one this process made
    /// and, with high probability, from any other process's.
    pub fn random() -> PeerId {
        PeerId::new(format!("peer-{:016x}", crate::random::random_u64()))
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
    /// Unicode's default-ignorable code points, such as zero-width characters, bidirectional
    /// controls, variation selectors and soft hyphens). A node refuses to be built with
    /// another, and refuses a peer that claims one at connect time.
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
        (1..=Self::MAX_LEN).contains(&self.0.len()) && self.0.chars().all(crate::text::printable)
    }

    /// Why this id is not valid, for errors: its start (it may be long), its length and the rule.
    pub(crate) fn refusal(&self) -> String {
        let shown: String = self.0.chars().take(64).collect();
        format!(
            "the peer id {} ({} bytes) is not valid: ids are 1 to {} bytes of printable text, \
             without control characters, white space other than the space, or invisible \
             characters",
            crate::text::Quoted(&shown),
            self.0.len(),
            Self::MAX_LEN
        )
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", crate::text::Quoted(&self.0))
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
            "soft\u{AD}hyphen",
            "arabic\u{61C}mark",
            "heart\u{2764}\u{FE0F}",
            "tag\u{E0041}",
        ] {
            assert!(!PeerId::new(bad).is_valid(), "{bad:?}");
        }
    }

    #[test]
    fn ids_compare_hash_order_and_travel_by_their_text() {
        let a = PeerId::new("worker-1");
        let same = PeerId::from(String::from("worker-1"));
        let other = PeerId::new("worker-2");
        assert_eq!(a, same);
        assert_ne!(a, other);
        assert!(a < other);
        let mut map: PeerMap<u8> = PeerMap::default();
        map.insert(a.clone(), 1);
        map.insert(other.clone(), 2);
        assert_eq!(map.get(&same), Some(&1));
        assert_eq!(map.get(&PeerId::new("worker-3")), None);
        // In std's maps too, with their own hasher.
        let set: std::collections::HashSet<PeerId> = [a.clone(), same.clone()].into();
        assert_eq!(set.len(), 1);
        let bytes = rmp_serde::to_vec(&a).expect("encodes");
        assert_eq!(bytes, rmp_serde::to_vec("worker-1").expect("encodes"));
        let back: PeerId = rmp_serde::from_slice(&bytes).expect("decodes");
        assert_eq!(back, a);
        assert_eq!(map.get(&back), Some(&1));
    }
}

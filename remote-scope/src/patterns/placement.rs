//! Placement by key: rendezvous (highest-random-weight) hashing onto a set of members.

use std::hash::{Hash, Hasher};

use crate::hash::{fnv64, FNV64_START};
use crate::peer_id::PeerId;

/// Which member owns a key, by rendezvous hashing: every member gets a weight for the key
/// from a hash of both, and the heaviest owns it. When a member joins, it takes only the keys
/// it now weighs most for; when one leaves, only its keys move, each to its next heaviest
/// member. Every peer that holds the same members places every key the same way: the hash
/// is this crate's own (FNV-1a over what the key's [`Hash`] writes, integers in little-endian
/// and `usize` as 64 bits), so it does not change with the platform or the browser. What a
/// key's `Hash` writes is the key type's own: std's for strings (their bytes, then `0xff`) and
/// integers has not changed in years, but is not promised; for keys placed by peers built with
/// different Rust versions, an integer key (a `u64`, say: its eight bytes) is the safe kind.
///
/// ```
/// use remote_scope::patterns::Placement;
/// use remote_scope::PeerId;
///
/// let mut placement = Placement::new(["a", "b", "c"].map(PeerId::new));
/// let owner = placement.owner("user:42").cloned();
/// assert!(owner.is_some());
/// // Two replicas: the owner first, then the next heaviest.
/// let replicas = placement.owners("user:42", 2);
/// assert_eq!(replicas.first(), owner.as_ref());
///
/// // A member that leaves moves only its own keys.
/// let gone = PeerId::new("b");
/// placement.remove(&gone);
/// for key in 0..100_u32 {
///     let before = Placement::new(["a", "b", "c"].map(PeerId::new)).owner(&key).cloned();
///     if before.as_ref() != Some(&gone) {
///         assert_eq!(placement.owner(&key), before.as_ref());
///     }
/// }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// The members, sorted, each with the hash of its id.
    members: Vec<(PeerId, u64)>,
}

impl Placement {
    /// A placement over `members` (repeats count once).
    pub fn new(members: impl IntoIterator<Item = PeerId>) -> Placement {
        let mut placement = Placement::default();
        for member in members {
            placement.insert(member);
        }
        placement
    }

    /// Adds a member; `false` if it was one already.
    pub fn insert(&mut self, member: PeerId) -> bool {
        match self
            .members
            .binary_search_by(|(m, _)| m.as_str().cmp(member.as_str()))
        {
            Ok(_) => false,
            Err(at) => {
                let hash = stable_hash(member.as_str());
                self.members.insert(at, (member, hash));
                true
            }
        }
    }

    /// Removes a member; `false` if it was not one.
    pub fn remove(&mut self, member: &PeerId) -> bool {
        match self
            .members
            .binary_search_by(|(m, _)| m.as_str().cmp(member.as_str()))
        {
            Ok(at) => {
                self.members.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// The members, in order of their ids.
    pub fn members(&self) -> impl Iterator<Item = &PeerId> {
        self.members.iter().map(|(m, _)| m)
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member that owns `key`; `None` with no members.
    pub fn owner<K: Hash + ?Sized>(&self, key: &K) -> Option<&PeerId> {
        let key = stable_hash(key);
        self.members
            .iter()
            .max_by_key(|(member, hash)| (weight(key, *hash), member.as_str()))
            .map(|(member, _)| member)
    }

    /// The `n` members that weigh most for `key`, heaviest first: the owner, then where the
    /// key goes if the owner leaves, and so on (for keeping `n` replicas of it).
    pub fn owners<K: Hash + ?Sized>(&self, key: &K, n: usize) -> Vec<PeerId> {
        let key = stable_hash(key);
        let mut weighed: Vec<(u64, &PeerId)> = self
            .members
            .iter()
            .map(|(member, hash)| (weight(key, *hash), member))
            .collect();
        weighed.sort_unstable_by(|a, b| (b.0, b.1.as_str()).cmp(&(a.0, a.1.as_str())));
        weighed
            .into_iter()
            .take(n)
            .map(|(_, member)| member.clone())
            .collect()
    }
}

/// A member's weight for a key: both hashes mixed, so that each member's weights are
/// independent of the others'.
fn weight(key: u64, member: u64) -> u64 {
    mix(key ^ mix(member))
}

/// SplitMix64's finaliser: every input bit moves about half the output bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut hasher = StableHasher(FNV64_START);
    key.hash(&mut hasher);
    hasher.finish()
}

/// FNV-1a over what a key's `Hash` writes, with every integer written the same way on every
/// platform: little-endian, `usize` and `isize` as 64 bits.
struct StableHasher(u64);

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv64(self.0, bytes);
    }

    fn write_u8(&mut self, n: u8) {
        self.write(&[n]);
    }

    fn write_u16(&mut self, n: u16) {
        self.write(&n.to_le_bytes());
    }

    fn write_u32(&mut self, n: u32) {
        self.write(&n.to_le_bytes());
    }

    fn write_u64(&mut self, n: u64) {
        self.write(&n.to_le_bytes());
    }

    fn write_u128(&mut self, n: u128) {
        self.write(&n.to_le_bytes());
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_i8(&mut self, n: i8) {
        self.write_u8(n as u8);
    }

    fn write_i16(&mut self, n: i16) {
        self.write_u16(n as u16);
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u32(n as u32);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }

    fn write_i128(&mut self, n: i128) {
        self.write_u128(n as u128);
    }

    fn write_isize(&mut self, n: isize) {
        self.write_i64(n as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> Placement {
        Placement::new(names.iter().map(|n| PeerId::new(*n)))
    }

    #[test]
    fn keys_spread_evenly_over_the_members() {
        let placement = members(&["w1", "w2", "w3", "w4"]);
        let mut counts = std::collections::HashMap::new();
        for key in 0..40_000_u64 {
            *counts.entry(placement.owner(&key).cloned()).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 4);
        for (member, n) in counts {
            assert!(
                (9_000..11_000).contains(&n),
                "{member:?} owns {n} of 40 000 keys"
            );
        }
    }

    #[test]
    fn a_member_that_joins_takes_only_keys_and_a_fair_share() {
        let before = members(&["w1", "w2", "w3"]);
        let mut after = before.clone();
        assert!(after.insert(PeerId::new("w4")));
        assert!(!after.insert(PeerId::new("w4")));
        let mut moved = 0;
        for key in 0..20_000_u64 {
            let (was, is) = (before.owner(&key), after.owner(&key));
            if was != is {
                assert_eq!(
                    is.map(PeerId::as_str),
                    Some("w4"),
                    "key {key} moved elsewhere"
                );
                moved += 1;
            }
        }
        assert!(
            (4_000..6_000).contains(&moved),
            "{moved} of 20 000 keys moved"
        );
    }

    #[test]
    fn the_same_key_places_the_same_everywhere() {
        // Fixed values: a change of hash would move every stored key of a running cluster.
        assert_eq!(stable_hash("user:42"), stable_hash(&"user:42".to_string()));
        assert_eq!(stable_hash(&7_usize), stable_hash(&7_u64));
        // FNV-1a 64 of [1, 0, 0, 0]; the owners as an independent implementation (a few
        // lines of Python) computed them.
        assert_eq!(stable_hash(&1_u32), 0xad2a_ca77_4798_5764);
        let placement = members(&["c", "a", "b"]);
        let owners: Vec<&str> = (0..8_u32)
            .map(|k| placement.owner(&k).map_or("", PeerId::as_str))
            .collect();
        assert_eq!(owners, ["b", "b", "b", "c", "b", "b", "c", "b"]);
        assert_eq!(members(&[]).owner("k"), None);
        assert!(members(&[]).owners("k", 3).is_empty());
    }

    #[test]
    fn owners_lists_where_a_key_goes_as_members_leave() {
        let mut placement = members(&["a", "b", "c", "d"]);
        let key = "order:7";
        let order = placement.owners(key, 4);
        assert_eq!(order.len(), 4);
        assert_eq!(placement.owners(key, 9), order);
        for next in &order[1..] {
            let owner = placement.owner(key).cloned().expect("an owner");
            assert!(placement.remove(&owner));
            assert_eq!(placement.owner(key), Some(next));
        }
        assert!(!placement.remove(&PeerId::new("zz")));
    }
}

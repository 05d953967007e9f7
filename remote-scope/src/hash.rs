//! Hash tables keyed by what a peer cannot pick to collide: the registry's body names (a table
//! built once; a peer can only look names up), the request ids this side picks, and the ids of
//! a connection's queued bodies (distinct, and within the replay window's 4 096). They take
//! rustc's Fx hash, eight bytes a step (a body name is looked up on every call served), where
//! std's SipHash, which resists chosen keys, costs several times as much.

pub(crate) type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;
pub(crate) type FastSet<T> = rustc_hash::FxHashSet<T>;

/// Where an FNV-1a 64 hash starts.
pub(crate) const FNV64_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a 64 of `bytes`, going on from `hash`: the fingerprint of body names that peers
/// compare (a registry's digest, a body's entry in a list of bodies). Defined here, not taken
/// from a crate, so that it is the same on every peer and with every build.
pub(crate) fn fnv64(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fast_hash_tells_apart_names_that_differ_late_or_only_in_length() {
        use std::hash::BuildHasher;
        let hash = |s: &str| rustc_hash::FxBuildHasher.hash_one(s);
        let names = [
            "",
            "a",
            "a\0",
            "ab",
            "m::0123456789abcdef",
            "m::0123456789abcdee",
            "m::0123456789abcdef0",
            "mm::0123456789abcdef",
            "a::b::c::0011223344556677",
        ];
        let hashes: std::collections::HashSet<u64> = names.iter().map(|n| hash(n)).collect();
        assert_eq!(hashes.len(), names.len());
        assert_eq!(hash("m::x"), hash("m::x"));
    }
}

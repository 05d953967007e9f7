//! The sort the runtime uses for its few lists (body names when the registry is built, a
//! peer's body fingerprints when it connects): a heapsort.
//!
//! Why not the standard library's: `sort_unstable` is about 4 KB of code for each element
//! type, and a browser's page downloads every copy (four types came to 16 KB of its wasm);
//! this is a few hundred bytes each. The lists are sorted once, and heapsort's `n log n`
//! keeps a registry of thousands of bodies quick.

/// Sorts `items` in ascending order (not stably: equal items may change places).
pub(crate) fn sort<T: Ord>(items: &mut [T]) {
    let len = items.len();
    for node in (0..len / 2).rev() {
        sift_down(items, node, len);
    }
    for end in (1..len).rev() {
        items.swap(0, end);
        sift_down(items, 0, end);
    }
}

/// Moves `items[node]` down the heap in `items[..end]` until it is no smaller than its
/// children.
fn sift_down<T: Ord>(items: &mut [T], mut node: usize, end: usize) {
    loop {
        let mut child = 2 * node + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && items[child] < items[child + 1] {
            child += 1;
        }
        if items[node] >= items[child] {
            return;
        }
        items.swap(node, child);
        node = child;
    }
}

#[cfg(test)]
mod tests {
    use super::sort;

    #[test]
    fn sorts_as_the_standard_library_does() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for len in (0..40).chain([255, 256, 1000]) {
            for spread in [2, 1000, u64::MAX] {
                let items: Vec<u64> = (0..len).map(|_| next() % spread).collect();
                let (mut ours, mut std) = (items.clone(), items);
                sort(&mut ours);
                std.sort_unstable();
                assert_eq!(ours, std, "{len} items below {spread}");
            }
        }
        let mut names = vec!["m::b", "m::a", "", "m::a", "z", "m"];
        sort(&mut names);
        assert_eq!(names, ["", "m", "m::a", "m::a", "m::b", "z"]);
    }
}

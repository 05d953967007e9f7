//! The request ids a connection has already started, so that no id runs its body twice even
//! when a frame arrives again (a duplicating link, a confused or hostile peer).
//!
//! Callers number their requests upwards from 1, so a sliding window suffices: ids below the
//! window count as seen, ids inside it have a bit each. Memory is fixed (like IPsec's replay
//! window); an id far behind the newest one is refused even if it never came, which costs at
//! worst a timeout for its caller, never a second run.

/// How many ids behind the newest one are told apart.
const WINDOW: u64 = 4096;
const WORDS: usize = (WINDOW / 64) as usize;

#[derive(Debug)]
pub(crate) struct Seen {
    /// Every id below `floor` counts as seen.
    floor: u64,
    /// A ring: bit `id % WINDOW` stands for `id`, for ids from `floor` up. Moving the window
    /// up clears the bits it leaves behind instead of shifting the others, so each id costs
    /// a constant amount of work however the window moves.
    bits: Box<[u64; WORDS]>,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            floor: 0,
            bits: Box::new([0; WORDS]),
        }
    }
}

impl Seen {
    /// Records `id`; `false` if it was seen before (or is too old to tell).
    pub(crate) fn first_time(&mut self, id: u64) -> bool {
        if id < self.floor {
            return false;
        }
        let ahead = id - self.floor;
        if ahead >= WINDOW {
            self.slide(ahead - WINDOW + 1);
        }
        let slot = id % WINDOW;
        let (word, bit) = ((slot / 64) as usize, slot % 64);
        let fresh = self.bits[word] & (1 << bit) == 0;
        self.bits[word] |= 1 << bit;
        fresh
    }

    /// Moves the window up by `by` ids, forgetting the `by` lowest.
    fn slide(&mut self, by: u64) {
        if by >= WINDOW {
            self.bits.fill(0);
        } else {
            let mut slot = self.floor % WINDOW;
            let mut left = by;
            while left > 0 {
                let (word, bit) = ((slot / 64) as usize, slot % 64);
                let n = left.min(64 - bit);
                let mask = if n == 64 {
                    u64::MAX
                } else {
                    ((1 << n) - 1) << bit
                };
                self.bits[word] &= !mask;
                left -= n;
                slot = (slot + n) % WINDOW;
            }
        }
        self.floor = self.floor.saturating_add(by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_is_new_once() {
        let mut seen = Seen::default();
        for id in 1..10_000 {
            assert!(seen.first_time(id), "{id}");
            assert!(!seen.first_time(id), "{id} again");
        }
    }

    #[test]
    fn out_of_order_ids_inside_the_window_are_told_apart() {
        let mut seen = Seen::default();
        let order = [5_u64, 3, 4, 1, 2, 70, 64, 65, 63, 130, 129];
        for id in order {
            assert!(seen.first_time(id), "{id}");
        }
        for id in order {
            assert!(!seen.first_time(id), "{id} again");
        }
        assert!(seen.first_time(6));
        assert!(seen.first_time(128));
    }

    #[test]
    fn sliding_keeps_recent_ids_and_refuses_old_ones() {
        let mut seen = Seen::default();
        for id in [1_u64, 100, 4000, 4100] {
            assert!(seen.first_time(id));
        }
        let jump = 4100 + WINDOW - 10;
        assert!(seen.first_time(jump));
        // 4100 is still inside the window and remembered; 100 fell below it.
        assert!(!seen.first_time(4100));
        assert!(!seen.first_time(100));
        assert!(seen.first_time(4101));
        assert!(!seen.first_time(4101));
        // A far jump clears everything behind it.
        assert!(seen.first_time(u64::MAX));
        assert!(!seen.first_time(u64::MAX));
        assert!(!seen.first_time(jump + 1));
    }

    #[test]
    fn sliding_by_every_bit_offset_moves_bits_exactly() {
        for by in (1..200_u64).chain([WINDOW - 1, WINDOW]) {
            let mut seen = Seen::default();
            for id in 0..WINDOW {
                if id % 3 == 0 {
                    seen.first_time(id);
                }
            }
            seen.slide(by);
            for id in by..WINDOW {
                assert_eq!(!seen.first_time(id), id % 3 == 0, "slide {by}, id {id}");
            }
        }
    }

    #[test]
    fn matches_a_set_of_every_id_seen_under_any_order_of_arrival() {
        // A deterministic scramble: ids mostly rise, with repeats, stragglers and jumps.
        let mut seen = Seen::default();
        let mut all = std::collections::HashSet::new();
        let mut newest = 0_u64;
        let mut random = crate::testing::xorshift(0x2545_f491_4f6c_dd1d);
        for _ in 0..200_000 {
            let state = random();
            let id = match state % 10 {
                0 => newest.saturating_sub(state % 5000),
                1 => newest + 1 + state % 9000,
                _ => newest + 1,
            };
            newest = newest.max(id);
            let floor = newest.saturating_sub(WINDOW - 1);
            let expected = id >= floor && !all.contains(&id);
            assert_eq!(seen.first_time(id), expected, "id {id}, newest {newest}");
            all.insert(id);
        }
    }
}

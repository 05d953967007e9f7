//! How fast one peer may send: frames and bytes per second, with a second's worth as a burst.
//!
//! The other limits bound what a peer can make a node hold; this bounds how busy it can keep
//! the node. A peer over the rate is throttled, not disconnected: its connection's reader stops
//! reading until the peer is back within the rate, so the transport's own flow control (TCP's
//! window) pushes back on it, and an honest peer that bursts once loses nothing. The reader
//! counts what it read at the end of each turn (at most 128 frames or 16 MiB), so a peer can be
//! ahead of the rate by a burst and one turn.

use std::time::Duration;

/// The most a peer may send per second ([`NodeBuilder::rate_limit`](crate::NodeBuilder::rate_limit)).
///
/// The defaults are far above what an honest peer sends (the benchmark's busiest peer sends
/// about 1.2 M frames and 1.8 GB a second on a 2-core machine): they are there to be lowered
/// for a deployment whose peers are known.
///
/// ```
/// use remote_scope::{Node, RateLimit};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), remote_scope::Error> {
/// let node = Node::builder()
///     .rate_limit(RateLimit::default().frames_per_second(10_000).bytes_per_second(64 << 20))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    frames: u64,
    bytes: u64,
}

impl Default for RateLimit {
    /// 4 M frames and 4 GiB a second.
    fn default() -> Self {
        RateLimit {
            frames: 4_000_000,
            bytes: 4 << 30,
        }
    }
}

impl RateLimit {
    /// The most frames a peer may send per second (at least 1).
    pub fn frames_per_second(mut self, frames: u64) -> Self {
        self.frames = frames.max(1);
        self
    }

    /// The most bytes of frames a peer may send per second (at least 1).
    pub fn bytes_per_second(mut self, bytes: u64) -> Self {
        self.bytes = bytes.max(1);
        self
    }
}

/// One connection's account against a [`RateLimit`]: for frames and for bytes, the time by
/// which what the peer sent would have been sent at the limit (the "theoretical arrival time"
/// of the generic cell rate algorithm). A peer may be ahead of the clock by one second's worth.
//
// Times are nanoseconds in a `u64` (584 years), not `Duration`s: this runs twice a reader's
// turn, which is once a call for calls made one at a time, and `Duration`'s arithmetic
// normalizes seconds and nanoseconds at every step.
#[derive(Debug)]
pub(crate) struct Throttle {
    limit: RateLimit,
    frames_due: u64,
    bytes_due: u64,
}

/// How far ahead of the clock a peer may be, in nanoseconds: a burst of one second's worth.
const BURST: u64 = 1_000_000_000;

impl Throttle {
    pub(crate) fn new(limit: RateLimit) -> Throttle {
        Throttle {
            limit,
            frames_due: 0,
            bytes_due: 0,
        }
    }

    /// Counts `frames` frames of `bytes` bytes received by `now` (on the runtime's clock);
    /// returns how long to stop reading, if the peer is over the rate.
    pub(crate) fn count(&mut self, now: Duration, frames: u64, bytes: u64) -> Option<Duration> {
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let over_frames = account(&mut self.frames_due, now, frames, self.limit.frames);
        let over_bytes = account(&mut self.bytes_due, now, bytes, self.limit.bytes);
        over_frames.max(over_bytes).map(Duration::from_nanos)
    }
}

/// Adds the cost of `amount` at `per_second` to `due`; the nanoseconds by which that puts the
/// peer past its burst, if it does.
fn account(due: &mut u64, now: u64, amount: u64, per_second: u64) -> Option<u64> {
    let cost = nanos(amount, per_second.max(1));
    *due = (*due).max(now).saturating_add(cost);
    let ahead = *due - now;
    (ahead > BURST).then(|| ahead - BURST)
}

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The nanoseconds `amount` takes at `per_second` (⌊amount × 10⁹ / per_second⌋, `u64::MAX` if
/// more), in 64 bits: a 128-bit division would be a call into the compiler's runtime, a
/// kilobyte of a page's wasm for amounts no reader's turn holds.
fn nanos(amount: u64, per_second: u64) -> u64 {
    if let Some(scaled) = amount.checked_mul(NANOS_PER_SECOND) {
        return scaled / per_second;
    }
    // (whole × per_second + part) × 10⁹ / per_second, and whole × 10⁹ is a whole number.
    let (whole, part) = (amount / per_second, amount % per_second);
    match whole.checked_mul(NANOS_PER_SECOND) {
        Some(whole) => whole.saturating_add(fraction(part, per_second)),
        None => u64::MAX,
    }
}

/// ⌊part × 10⁹ / of⌋ for `part < of`, one bit of 10⁹ at a time, the highest first: `q + r / of`
/// stays `part × (the bits so far) / of`, with `r < of`, so that nothing overflows.
fn fraction(part: u64, of: u64) -> u64 {
    let (mut q, mut r) = (0, 0);
    for bit in (0..u64::BITS - NANOS_PER_SECOND.leading_zeros()).rev() {
        q *= 2;
        if r >= of - r {
            (q, r) = (q + 1, r - (of - r));
        } else {
            r *= 2;
        }
        if NANOS_PER_SECOND >> bit & 1 == 1 {
            if r >= of - part {
                (q, r) = (q + 1, r - (of - part));
            } else {
                r += part;
            }
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_peer_within_the_rate_is_never_held_and_a_burst_of_a_second_is_free() {
        let mut throttle = Throttle::new(RateLimit::default().frames_per_second(1000));
        // A second's worth at once, then at the rate for ten seconds.
        assert_eq!(throttle.count(Duration::ZERO, 1000, 0), None);
        for ms in 1..10_000_u64 {
            assert_eq!(throttle.count(MS * ms as u32, 1, 0), None, "at {ms} ms");
        }
    }

    #[test]
    fn a_peer_over_the_rate_waits_as_long_as_its_excess_takes_at_the_rate() {
        let mut throttle = Throttle::new(
            RateLimit::default()
                .frames_per_second(1000)
                .bytes_per_second(1 << 20),
        );
        // 1500 frames at once: 500 past the burst, half a second at the rate.
        assert_eq!(throttle.count(Duration::ZERO, 1500, 0), Some(500 * MS));
        // Having waited it, one more frame is a millisecond over.
        assert_eq!(throttle.count(500 * MS, 1, 0), Some(MS));
        // Bytes count on their own: 3 MiB at once on a 1 MiB/s limit is two seconds over.
        let mut bytes = Throttle::new(RateLimit::default().bytes_per_second(1 << 20));
        assert_eq!(
            bytes.count(Duration::ZERO, 1, 3 << 20),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn idle_time_does_not_bank_more_than_a_burst() {
        let mut throttle = Throttle::new(RateLimit::default().frames_per_second(100));
        assert_eq!(throttle.count(Duration::from_secs(3600), 100, 0), None);
        assert_eq!(
            throttle.count(Duration::from_secs(3600), 1, 0),
            Some(10 * MS)
        );
    }

    #[test]
    fn amounts_on_either_side_of_the_64_bit_shortcut_cost_the_same_as_exactly() {
        let exact = |amount: u64, per_second: u64| {
            let nanos = u128::from(amount) * 1_000_000_000 / u128::from(per_second);
            u64::try_from(nanos).unwrap_or(u64::MAX)
        };
        let edge = u64::MAX / 1_000_000_000;
        for amount in [
            0,
            1,
            4 << 20,
            edge - 1,
            edge,
            edge + 1,
            u64::MAX / 2,
            u64::MAX,
        ] {
            for per_second in [1, 3, 1_000_000_007, 4 << 30, u64::MAX] {
                let mut due = 0;
                account(&mut due, 0, amount, per_second);
                assert_eq!(due, exact(amount, per_second), "{amount} at {per_second}/s");
            }
        }
        // And pairs of every size, from a fixed sequence.
        let mut random = crate::testing::xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..100_000 {
            let (amount, per_second, shift) = (random(), random(), random() % 64);
            for (amount, per_second) in [(amount, per_second), (amount, per_second >> shift)] {
                let per_second = per_second.max(1);
                assert_eq!(
                    nanos(amount, per_second),
                    exact(amount, per_second),
                    "{amount} at {per_second}/s"
                );
            }
        }
    }
}

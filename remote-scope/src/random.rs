//! Random numbers for ids and jitter: unique and spread, not secret.

/// A random number from the operating system's generator (through `rand`'s thread-local one).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn random_u64() -> u64 {
    rand::random()
}

/// In a browser std has no entropy source, so two pages would pick the same ids: ask the
/// browser instead. Two draws of 32 bits each, as `Math.random` gives 52 at most; the counter
/// keeps ids apart should two draws repeat.
#[cfg(target_arch = "wasm32")]
pub(crate) fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let high = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    let low = (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    ((high << 32) | low) ^ COUNTER.fetch_add(1, Ordering::Relaxed)
}

//! What the benchmark's separate binaries share: reading their arguments, and medians.
#![allow(dead_code)] // each binary uses a part of this

/// The median of `values` (the upper middle one for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The number after `name` in `args` (`--rounds 5`), if there is one.
pub fn arg(args: &[String], name: &str) -> Option<usize> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1)?.parse().ok()
}

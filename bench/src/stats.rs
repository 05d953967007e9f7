//! Timing helpers: percentiles, rates, medians over runs.

use std::time::Duration;

/// The `p`-th percentile (0..=100) of `samples`, nearest-rank.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// The minor page faults this process has taken so far, from `/proc/self/stat`; NaN where
/// there is no such file. Hundreds per 1 MiB round trip mean the allocator gave the heap's top
/// back to the kernel after a round trip and the next one faulted every page in again.
pub fn minor_faults() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // After the command name, which may hold spaces, in parentheses: state, ppid, pgrp,
    // session, tty_nr, tpgid, flags, minflt.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(7))
        .and_then(|minflt| minflt.parse::<u64>().ok())
        .map_or(f64::NAN, |n| n as f64)
}

/// The CPU time this process has used so far, user and system, in seconds (all its threads:
/// clients and servers alike, as every implementation runs both in this process).
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes the struct it is given and reads nothing else.
    let mut usage = unsafe { std::mem::zeroed::<libc::rusage>() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The p50 and p99 of `samples`, in microseconds.
pub fn p50_p99_micros(samples: &mut [Duration]) -> (f64, f64) {
    (
        micros(percentile(samples, 50.0)),
        micros(percentile(samples, 99.0)),
    )
}

/// What keeps a window of calls in flight for the pipelined workloads of the libraries that
/// make one future per call (the raw echo's client keeps its own, in one task).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Harness {
    /// [`crate::window`]: each call polled when it is woken.
    Window,
    /// A `FuturesUnordered`, which wakes a second worker every batch (see [`crate::window`]).
    FuturesUnordered,
}

/// How many calls a pipelined workload makes, how many it keeps in flight, and how.
#[derive(Clone, Copy, Debug)]
pub struct Pipelined {
    pub total: usize,
    pub window: usize,
    pub harness: Harness,
}

/// Round trips per second of `run.total` calls with up to `run.window` in flight; `call(i)`
/// makes call `i` and says whether its answer was right.
pub async fn pipelined<F, Fut, E>(run: Pipelined, call: F) -> Result<f64, E>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<bool, E>>,
    E: From<crate::BenchError>,
{
    let started = std::time::Instant::now();
    let Pipelined {
        total,
        window,
        harness,
    } = run;
    match harness {
        Harness::Window => crate::window::run(total, window, call).await?,
        Harness::FuturesUnordered => with_futures_unordered(total, window, call).await?,
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

async fn with_futures_unordered<F, Fut, E>(total: usize, window: usize, call: F) -> Result<(), E>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<bool, E>>,
    E: From<crate::BenchError>,
{
    use futures::stream::{FuturesUnordered, StreamExt};
    let mut in_flight = FuturesUnordered::new();
    let (mut sent, mut done) = (0_u64, 0);
    while done < total {
        while in_flight.len() < window && (sent as usize) < total {
            in_flight.push(call(sent));
            sent += 1;
        }
        if let Some(answer) = in_flight.next().await {
            if !answer? {
                return Err(crate::BenchError::msg("the echo came back different").into());
            }
            done += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut s: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&mut s, 50.0), Duration::from_micros(50));
        assert_eq!(percentile(&mut s, 99.0), Duration::from_micros(99));
        assert_eq!(percentile(&mut s, 100.0), Duration::from_micros(100));
    }

    #[test]
    fn minor_faults_are_read_and_grow_when_new_memory_is_touched() {
        let before = minor_faults();
        if before.is_nan() {
            return; // no /proc here
        }
        let touched = vec![1_u8; 16 << 20];
        let after = minor_faults();
        assert!(
            after > before,
            "{before} -> {after} faults after touching 16 MiB"
        );
        assert_eq!(touched.iter().map(|&b| u64::from(b)).sum::<u64>(), 16 << 20);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}

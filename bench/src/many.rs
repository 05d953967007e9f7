//! Many client peers into one server peer, as a server lives in practice: each client has its
//! own connection and its own task and calls in sequence. Gives the aggregate round trips per
//! second, the p99 of all calls, and the process's CPU time per call.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::stats::{cpu_seconds, micros, percentile};
use crate::BenchError;

/// One client's connection, making one call at a time; `call(i)` says whether the answer was
/// right.
pub trait Client: Send + 'static {
    fn call(&mut self, i: u64) -> BoxFuture<'_, Result<bool, BenchError>>;
}

/// What a many-clients run measured.
pub struct Measured {
    pub rate: f64,
    pub p99_us: f64,
    pub cpu_us_per_call: f64,
}

/// Runs `calls` sequential calls on each client at once, a task each.
pub async fn run(clients: Vec<Box<dyn Client>>, calls: usize) -> Result<Measured, BenchError> {
    let total = clients.len() * calls;
    let cpu = cpu_seconds();
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(calls);
                for i in 0..calls as u64 {
                    let call = Instant::now();
                    if !client.call(i).await? {
                        return Err(BenchError::msg("the echo came back different"));
                    }
                    samples.push(call.elapsed());
                }
                // Dropped here, in its task: the connection closes after the last call.
                drop(client);
                Ok::<Vec<Duration>, BenchError>(samples)
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(total);
    for task in tasks {
        samples.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu;
    Ok(Measured {
        rate: total as f64 / elapsed,
        p99_us: micros(percentile(&mut samples, 99.0)),
        cpu_us_per_call: cpu * 1e6 / total as f64,
    })
}

//! The implementations measured, behind one enum, so that a run can take each workload through
//! all of them in turn (interleaved) rather than each implementation through all workloads.

use std::time::Duration;

use crate::many::Client;
use crate::stats::Pipelined;
use crate::{raw_tcp, raw_ws, remote_impl, remote_tws, tarpc_impl, ws_rpc, BenchError};

/// What `--only` takes, in the order of [`NAMES`].
pub const SHORT_NAMES: [&str; 6] = ["remote", "raw", "rpc", "tarpc", "remote-tws", "tcp"];

pub const NAMES: [&str; 6] = [
    "remote!",
    "raw WebSocket echo",
    "WebSocket + rmp-serde ids",
    "tarpc (bincode)",
    "remote!, tokio-websockets",
    "raw TCP echo",
];

pub enum Imp {
    Remote(remote_impl::Remote),
    RawWs(raw_ws::RawWs),
    WsRpc(ws_rpc::WsRpc),
    Tarpc(tarpc_impl::Tarpc),
    RemoteTws(remote_impl::Remote),
    RawTcp(raw_tcp::RawTcp),
}

/// Calls `$method` on whichever implementation `$imp` is.
macro_rules! each {
    ($imp:expr, $x:ident => $body:expr) => {
        match $imp {
            Imp::Remote($x) | Imp::RemoteTws($x) => $body,
            Imp::RawWs($x) => $body,
            Imp::WsRpc($x) => $body,
            Imp::Tarpc($x) => $body,
            Imp::RawTcp($x) => $body,
        }
    };
}

impl Imp {
    /// Starts implementation `index` of [`NAMES`]: its server, and its first client.
    pub async fn start(index: usize) -> Result<Imp, BenchError> {
        Ok(match index {
            0 => Imp::Remote(remote_impl::Remote::start().await?),
            1 => Imp::RawWs(raw_ws::RawWs::start().await?),
            2 => Imp::WsRpc(ws_rpc::WsRpc::start().await?),
            3 => Imp::Tarpc(tarpc_impl::Tarpc::start().await?),
            4 => Imp::RemoteTws(remote_tws::start().await?),
            _ => Imp::RawTcp(raw_tcp::RawTcp::start().await?),
        })
    }

    pub async fn sequential(&self, n: usize) -> Result<Vec<Duration>, BenchError> {
        each!(self, imp => Ok(imp.sequential(n).await?))
    }

    pub async fn pipelined(&self, run: Pipelined) -> Result<f64, BenchError> {
        each!(self, imp => Ok(imp.pipelined(run).await?))
    }

    pub async fn bulk(&self, n: usize, size: usize) -> Result<f64, BenchError> {
        each!(self, imp => Ok(imp.bulk(n, size).await?))
    }

    /// `n` more clients of the same server, each with its own connection.
    pub async fn clients(&self, n: usize) -> Result<Vec<Box<dyn Client>>, BenchError> {
        each!(self, imp => imp.clients(n).await)
    }
}

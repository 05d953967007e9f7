//! tarpc 0.38 over TCP with its bincode serde transport, set up as its documentation shows
//! (client and server `Config::default()`, except room for 1024 requests in flight).

use std::time::{Duration, Instant};

use futures::{future, StreamExt};
use serde_bytes::ByteBuf;
use tarpc::server::{self, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context};

use crate::BenchError;

#[tarpc::service]
pub trait Echo {
    async fn echo(x: u64) -> u64;
    async fn bulk(data: ByteBuf) -> ByteBuf;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, x: u64) -> u64 {
        x
    }

    async fn bulk(self, _: context::Context, data: ByteBuf) -> ByteBuf {
        data
    }
}

pub struct Tarpc {
    client: EchoClient,
    _server: tokio::task::JoinHandle<()>,
}

impl Tarpc {
    pub async fn start() -> Result<Tarpc, BenchError> {
        let mut listener =
            tarpc::serde_transport::tcp::listen("127.0.0.1:0", Bincode::default).await?;
        listener.config_mut().max_frame_length(64 << 20);
        let addr = listener.local_addr();
        let server =
            tokio::spawn(async move {
                listener
                    .filter_map(|r| future::ready(r.ok()))
                    .map(server::BaseChannel::with_defaults)
                    .for_each(|channel| async move {
                        tokio::spawn(channel.execute(EchoServer.serve()).for_each(
                            |response| async {
                                tokio::spawn(response);
                            },
                        ));
                    })
                    .await;
            });
        let mut transport = tarpc::serde_transport::tcp::connect(addr, Bincode::default);
        transport.config_mut().max_frame_length(64 << 20);
        let transport = transport.await?;
        let _ = transport.get_ref().set_nodelay(true);
        let mut config = client::Config::default();
        config.max_in_flight_requests = 4096;
        config.pending_request_buffer = 4096;
        let client = EchoClient::new(config, transport).spawn();
        Ok(Tarpc {
            client,
            _server: server,
        })
    }

    fn context() -> context::Context {
        let mut ctx = context::current();
        ctx.deadline = Instant::now() + Duration::from_secs(60);
        ctx
    }

    pub async fn sequential(&self, n: usize) -> Result<Vec<Duration>, BenchError> {
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let started = Instant::now();
            let back = self.client.echo(Self::context(), i).await?;
            samples.push(started.elapsed());
            check(back == i)?;
        }
        Ok(samples)
    }

    pub async fn pipelined(&self, run: crate::stats::Pipelined) -> Result<f64, BenchError> {
        crate::stats::pipelined(run, |i| async move {
            Ok::<_, BenchError>(self.client.echo(Self::context(), i).await? == i)
        })
        .await
    }

    pub async fn bulk(&self, n: usize, size: usize) -> Result<f64, BenchError> {
        let data = ByteBuf::from(vec![7_u8; size]);
        let started = Instant::now();
        for _ in 0..n {
            let back = self.client.bulk(Self::context(), data.clone()).await?;
            check(back.len() == size)?;
        }
        Ok((n * size) as f64 / started.elapsed().as_secs_f64() / 1e6)
    }
}

fn check(ok: bool) -> Result<(), BenchError> {
    if ok {
        Ok(())
    } else {
        Err(BenchError::msg("the echo came back different"))
    }
}

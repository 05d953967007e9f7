//! tarpc 0.38 over TCP with its bincode serde transport, set up as its documentation shows
//! (client and server `Config::default()`, except room for 4096 requests in flight), with
//! NODELAY on both ends as it recommends.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_bytes::ByteBuf;
use tarpc::server::{self, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::many::Client;
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
    addr: std::net::SocketAddr,
    _server: tokio::task::JoinHandle<()>,
}

/// tarpc's framing (length-delimited, frames up to 64 MiB) over a TCP stream with NODELAY, as
/// tarpc's documentation recommends for request/response traffic.
fn framed(tcp: TcpStream) -> Framed<TcpStream, LengthDelimitedCodec> {
    let _ = tcp.set_nodelay(true);
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(64 << 20)
        .new_codec();
    Framed::new(tcp, codec)
}

impl Tarpc {
    pub async fn start() -> Result<Tarpc, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let transport = tarpc::serde_transport::new(framed(tcp), Bincode::default());
                let channel = server::BaseChannel::with_defaults(transport);
                tokio::spawn(
                    channel
                        .execute(EchoServer.serve())
                        .for_each(|response| async {
                            tokio::spawn(response);
                        }),
                );
            }
        });
        let client = connect(addr).await?;
        Ok(Tarpc {
            client,
            addr,
            _server: server,
        })
    }

    pub async fn clients(&self, n: usize) -> Result<Vec<Box<dyn Client>>, BenchError> {
        let mut clients: Vec<Box<dyn Client>> = Vec::with_capacity(n);
        for _ in 0..n {
            clients.push(Box::new(OneClient(connect(self.addr).await?)));
        }
        Ok(clients)
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

async fn connect(addr: std::net::SocketAddr) -> Result<EchoClient, BenchError> {
    let tcp = TcpStream::connect(addr).await?;
    let transport = tarpc::serde_transport::new(framed(tcp), Bincode::default());
    let mut config = client::Config::default();
    config.max_in_flight_requests = 4096;
    config.pending_request_buffer = 4096;
    Ok(EchoClient::new(config, transport).spawn())
}

struct OneClient(EchoClient);

impl Client for OneClient {
    fn call(&mut self, i: u64) -> futures::future::BoxFuture<'_, Result<bool, BenchError>> {
        Box::pin(async move { Ok(self.0.echo(Tarpc::context(), i).await? == i) })
    }
}

fn check(ok: bool) -> Result<(), BenchError> {
    if ok {
        Ok(())
    } else {
        Err(BenchError::msg("the echo came back different"))
    }
}

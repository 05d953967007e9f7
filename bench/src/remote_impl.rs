//! remote!: a body that echoes its capture, between two nodes over a WebSocket.

use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use remote_scope::{remote, Error, Node, PeerId, Server};
use serde_bytes::ByteBuf;

pub struct Remote {
    pub client: Node,
    pub server_id: PeerId,
    _server: Node,
    _listener: Server,
}

impl Remote {
    pub async fn start() -> Result<Remote, Error> {
        let server = Node::builder().id("bench-server").build()?;
        let listener = server.listen("127.0.0.1:0").await?;
        let client = Node::builder().id("bench-client").build()?;
        let server_id = client.connect(&listener.url()).await?;
        Ok(Remote {
            client,
            server_id,
            _server: server,
            _listener: listener,
        })
    }

    pub async fn sequential(&self, n: usize) -> Result<Vec<Duration>, Error> {
        let server = self.server_id.clone();
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let started = Instant::now();
            let back = self.client.run(echo(&server, i)).await?;
            samples.push(started.elapsed());
            check(back == i)?;
        }
        Ok(samples)
    }

    pub async fn pipelined(&self, total: usize, window: usize) -> Result<f64, Error> {
        let server = &self.server_id;
        let started = Instant::now();
        self.client
            .run(async {
                let mut in_flight = FuturesUnordered::new();
                let mut sent = 0_u64;
                let mut done = 0;
                while done < total {
                    while in_flight.len() < window && (sent as usize) < total {
                        let i = sent;
                        in_flight.push(async move { (i, echo(server, i).await) });
                        sent += 1;
                    }
                    if let Some((i, back)) = in_flight.next().await {
                        check(back? == i)?;
                        done += 1;
                    }
                }
                Ok::<(), Error>(())
            })
            .await?;
        Ok(total as f64 / started.elapsed().as_secs_f64())
    }

    pub async fn bulk(&self, n: usize, size: usize) -> Result<f64, Error> {
        let server = self.server_id.clone();
        let data = ByteBuf::from(vec![7_u8; size]);
        let started = Instant::now();
        for _ in 0..n {
            let data = data.clone();
            let back: ByteBuf = self
                .client
                .run(remote!(server, [data: ByteBuf], { data }))
                .await?;
            check(back.len() == size)?;
        }
        Ok((n * size) as f64 / started.elapsed().as_secs_f64() / 1e6)
    }

    /// client -> server -> client -> server and back: one call that makes two nested hops.
    pub async fn nested(&self, n: usize) -> Result<Vec<Duration>, Error> {
        let (server, client) = (self.server_id.clone(), self.client.id().clone());
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let started = Instant::now();
            let back = self
                .client
                .run(remote!(server, [client: PeerId, server: PeerId, i: u64], {
                    remote!(client, [server: PeerId, i: u64], {
                        remote!(server, [i: u64], { i }).await
                    })
                    .await?
                }))
                .await??;
            samples.push(started.elapsed());
            check(back == i)?;
        }
        Ok(samples)
    }
}

async fn echo(server: &PeerId, x: u64) -> Result<u64, Error> {
    remote!(server, [x: u64], { x }).await
}

fn check(ok: bool) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::Protocol {
            reason: "the echo came back different".into(),
        })
    }
}

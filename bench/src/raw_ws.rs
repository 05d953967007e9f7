//! The floor: a bare tokio-tungstenite echo, no framing of its own.

use std::time::{Duration, Instant};

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::many::Client;
use crate::BenchError;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct RawWs {
    url: String,
    _server: tokio::task::JoinHandle<()>,
}

impl RawWs {
    pub async fn start() -> Result<RawWs, BenchError> {
        let (url, server) = spawn_server(|ws| async move {
            let _ = echo(ws).await;
        })
        .await?;
        Ok(RawWs {
            url,
            _server: server,
        })
    }

    async fn connect(&self) -> Result<Ws, BenchError> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(&self.url, None, true).await?;
        Ok(ws)
    }

    pub async fn sequential(&self, n: usize) -> Result<Vec<Duration>, BenchError> {
        let mut ws = self.connect().await?;
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let started = Instant::now();
            ws.send(Message::Binary(i.to_le_bytes().to_vec().into()))
                .await?;
            let back = next_binary(&mut ws).await?;
            samples.push(started.elapsed());
            check(back.as_slice() == i.to_le_bytes())?;
        }
        Ok(samples)
    }

    /// Up to `window` messages in flight from one task: it sends until the window is full,
    /// flushes once, waits for one echo and takes every other one already there. No per-call
    /// futures, so `run.harness` does not apply.
    ///
    /// One task, not a sender and a receiver: handing permits from one task to the other costs
    /// a wake-up per batch, and the two-task client measured 0.70-0.76 M round trips/s at 64
    /// in flight where this one does 1.7 M (see BENCHMARKS.md). The floor has to be a floor.
    pub async fn pipelined(&self, run: crate::stats::Pipelined) -> Result<f64, BenchError> {
        let (total, window) = (run.total, run.window.max(1));
        let mut ws = self.connect().await?;
        let started = Instant::now();
        let (mut sent, mut received) = (0_usize, 0_usize);
        while received < total {
            while sent - received < window && sent < total {
                ws.feed(Message::Binary((sent as u64).to_le_bytes().to_vec().into()))
                    .await?;
                sent += 1;
            }
            ws.flush().await?;
            next_binary(&mut ws).await?;
            received += 1;
            while received < sent {
                match ws.next().now_or_never() {
                    Some(Some(Ok(Message::Binary(_)))) => received += 1,
                    Some(Some(Ok(_))) => {}
                    Some(Some(Err(e))) => return Err(e.into()),
                    Some(None) => return Err(BenchError::msg("the echo server closed")),
                    None => break,
                }
            }
        }
        Ok(total as f64 / started.elapsed().as_secs_f64())
    }

    pub async fn bulk(&self, n: usize, size: usize) -> Result<f64, BenchError> {
        let mut ws = self.connect().await?;
        let data = vec![7_u8; size];
        let started = Instant::now();
        for _ in 0..n {
            ws.send(Message::Binary(data.clone().into())).await?;
            check(next_binary(&mut ws).await?.len() == size)?;
        }
        Ok((n * size) as f64 / started.elapsed().as_secs_f64() / 1e6)
    }
}

impl RawWs {
    pub async fn clients(&self, n: usize) -> Result<Vec<Box<dyn Client>>, BenchError> {
        let mut clients: Vec<Box<dyn Client>> = Vec::with_capacity(n);
        for _ in 0..n {
            clients.push(Box::new(WsClient(self.connect().await?)));
        }
        Ok(clients)
    }
}

struct WsClient(Ws);

impl Client for WsClient {
    fn call(&mut self, i: u64) -> futures::future::BoxFuture<'_, Result<bool, BenchError>> {
        Box::pin(async move {
            self.0
                .send(Message::Binary(i.to_le_bytes().to_vec().into()))
                .await?;
            Ok(next_binary(&mut self.0).await? == i.to_le_bytes())
        })
    }
}

/// A WebSocket server on a free port that runs `serve` for each connection.
pub async fn spawn_server<F, Fut>(
    serve: F,
) -> Result<(String, tokio::task::JoinHandle<()>), BenchError>
where
    F: Fn(WebSocketStream<TcpStream>) -> Fut + Send + Copy + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    serve(ws).await;
                }
            });
        }
    });
    Ok((url, server))
}

/// Echoes binary messages, one flush per batch of those already received.
async fn echo(mut ws: WebSocketStream<TcpStream>) -> Result<(), BenchError> {
    while let Some(message) = ws.next().await {
        if let Message::Binary(b) = message? {
            ws.feed(Message::Binary(b)).await?;
        }
        while let Some(Some(message)) = ws.next().now_or_never() {
            if let Message::Binary(b) = message? {
                ws.feed(Message::Binary(b)).await?;
            }
        }
        ws.flush().await?;
    }
    Ok(())
}

async fn next_binary(ws: &mut Ws) -> Result<Vec<u8>, BenchError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b.into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(BenchError::msg("the echo server closed")),
        }
    }
}

fn check(ok: bool) -> Result<(), BenchError> {
    if ok {
        Ok(())
    } else {
        Err(BenchError::msg("the echo came back different"))
    }
}

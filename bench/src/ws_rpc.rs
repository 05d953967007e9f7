//! What a user would otherwise write by hand: tokio-tungstenite plus rmp-serde, requests and
//! responses correlated by id, many in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::many::Client;
use crate::BenchError;

#[derive(Serialize, Deserialize)]
struct Envelope {
    id: u64,
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>;

pub struct WsRpc {
    url: String,
    outbound: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next_id: AtomicU64,
    _server: Option<tokio::task::JoinHandle<()>>,
    /// The writer and the reader; aborted with the client, which closes its connection.
    _tasks: [AbortOnDrop; 2],
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Client for WsRpc {
    fn call(&mut self, i: u64) -> futures::future::BoxFuture<'_, Result<bool, BenchError>> {
        Box::pin(async move {
            Ok(WsRpc::call(self, i.to_le_bytes().to_vec()).await? == i.to_le_bytes())
        })
    }
}

impl WsRpc {
    pub async fn start() -> Result<WsRpc, BenchError> {
        let (url, server) = crate::raw_ws::spawn_server(|ws| async move {
            let _ = serve(ws).await;
        })
        .await?;
        WsRpc::connect(url, Some(server)).await
    }

    /// Another client of the same server, with its own connection and tasks.
    pub async fn clients(&self, n: usize) -> Result<Vec<Box<dyn Client>>, BenchError> {
        let mut clients: Vec<Box<dyn Client>> = Vec::with_capacity(n);
        for _ in 0..n {
            clients.push(Box::new(WsRpc::connect(self.url.clone(), None).await?));
        }
        Ok(clients)
    }

    async fn connect(
        url: String,
        server: Option<tokio::task::JoinHandle<()>>,
    ) -> Result<WsRpc, BenchError> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, None, true).await?;
        let (mut sink, mut stream) = ws.split();
        let (outbound, mut queue) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(m) = queue.recv().await {
                if sink.feed(m).await.is_err() {
                    return;
                }
                while let Ok(m) = queue.try_recv() {
                    if sink.feed(m).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        });
        let pending: Pending = Arc::default();
        let reader = {
            let pending = Arc::clone(&pending);
            tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Binary(bytes) = message else {
                        continue;
                    };
                    let Ok(Envelope { id, data }) = rmp_serde::from_slice(&bytes) else {
                        return;
                    };
                    let waiter = pending.lock().ok().and_then(|mut p| p.remove(&id));
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(data);
                    }
                }
            })
        };
        Ok(WsRpc {
            url,
            outbound,
            pending,
            next_id: AtomicU64::new(0),
            _server: server,
            _tasks: [AbortOnDrop(writer), AbortOnDrop(reader)],
        })
    }

    async fn call(&self, data: Vec<u8>) -> Result<Vec<u8>, BenchError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| BenchError::msg("poisoned"))?
            .insert(id, tx);
        let bytes = rmp_serde::to_vec(&Envelope { id, data })?;
        self.outbound
            .send(Message::Binary(bytes.into()))
            .map_err(|_| BenchError::msg("writer gone"))?;
        rx.await.map_err(|_| BenchError::msg("reader gone"))
    }

    pub async fn sequential(&self, n: usize) -> Result<Vec<Duration>, BenchError> {
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let started = Instant::now();
            let back = self.call(i.to_le_bytes().to_vec()).await?;
            samples.push(started.elapsed());
            check(back == i.to_le_bytes())?;
        }
        Ok(samples)
    }

    pub async fn pipelined(&self, run: crate::stats::Pipelined) -> Result<f64, BenchError> {
        crate::stats::pipelined(run, |i| async move {
            Ok::<_, BenchError>(self.call(i.to_le_bytes().to_vec()).await? == i.to_le_bytes())
        })
        .await
    }

    pub async fn bulk(&self, n: usize, size: usize) -> Result<f64, BenchError> {
        let data = vec![7_u8; size];
        let started = Instant::now();
        for _ in 0..n {
            check(self.call(data.clone()).await?.len() == size)?;
        }
        Ok((n * size) as f64 / started.elapsed().as_secs_f64() / 1e6)
    }
}

/// Decodes each request and answers it under its id, one flush per batch.
async fn serve(mut ws: WebSocketStream<TcpStream>) -> Result<(), BenchError> {
    while let Some(message) = ws.next().await {
        answer(&mut ws, message?).await?;
        while let Some(Some(message)) = ws.next().now_or_never() {
            answer(&mut ws, message?).await?;
        }
        ws.flush().await?;
    }
    Ok(())
}

async fn answer(ws: &mut WebSocketStream<TcpStream>, message: Message) -> Result<(), BenchError> {
    let Message::Binary(bytes) = message else {
        return Ok(());
    };
    let request: Envelope = rmp_serde::from_slice(&bytes)?;
    let response = rmp_serde::to_vec(&request)?;
    ws.feed(Message::Binary(response.into())).await?;
    Ok(())
}

fn check(ok: bool) -> Result<(), BenchError> {
    if ok {
        Ok(())
    } else {
        Err(BenchError::msg("the echo came back different"))
    }
}

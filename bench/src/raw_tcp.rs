//! The floor under every other row: a raw tokio TCP echo of u32-length-prefixed frames, with
//! NODELAY and a task per connection, on the same runtime. No WebSocket, no encoding, no ids:
//! what this machine's loopback and tokio cost for a message each way.

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::many::Client;
use crate::BenchError;

pub struct RawTcp {
    addr: std::net::SocketAddr,
    _server: tokio::task::JoinHandle<()>,
}

impl RawTcp {
    pub async fn start() -> Result<RawTcp, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(async move {
                    let _ = echo(tcp).await;
                });
            }
        });
        Ok(RawTcp {
            addr,
            _server: server,
        })
    }

    async fn connect(&self) -> Result<Framed, BenchError> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        Ok(Framed {
            tcp,
            read: BytesMut::with_capacity(64 << 10),
        })
    }

    pub async fn sequential(&self, n: usize) -> Result<Vec<Duration>, BenchError> {
        let mut conn = self.connect().await?;
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let started = Instant::now();
            conn.send(&i.to_le_bytes()).await?;
            let back = conn.next().await?;
            samples.push(started.elapsed());
            check(back[..] == i.to_le_bytes())?;
        }
        Ok(samples)
    }

    /// Up to `window` frames in flight from one task, as the raw WebSocket echo's client keeps
    /// them: one write for all it may send, then whatever echoes have come.
    pub async fn pipelined(&self, run: crate::stats::Pipelined) -> Result<f64, BenchError> {
        let (total, window) = (run.total, run.window.max(1));
        let mut conn = self.connect().await?;
        let mut out = Vec::with_capacity(window * 12);
        let started = Instant::now();
        let (mut sent, mut received) = (0_usize, 0_usize);
        while received < total {
            out.clear();
            while sent - received < window && sent < total {
                out.extend_from_slice(&8_u32.to_le_bytes());
                out.extend_from_slice(&(sent as u64).to_le_bytes());
                sent += 1;
            }
            conn.tcp.write_all(&out).await?;
            received += conn.all_ready().await?;
        }
        Ok(total as f64 / started.elapsed().as_secs_f64())
    }

    pub async fn bulk(&self, n: usize, size: usize) -> Result<f64, BenchError> {
        let mut conn = self.connect().await?;
        let data = vec![7_u8; size];
        let started = Instant::now();
        for _ in 0..n {
            conn.send(&data).await?;
            check(conn.next().await?.len() == size)?;
        }
        Ok((n * size) as f64 / started.elapsed().as_secs_f64() / 1e6)
    }

    pub async fn clients(&self, n: usize) -> Result<Vec<Box<dyn Client>>, BenchError> {
        let mut clients: Vec<Box<dyn Client>> = Vec::with_capacity(n);
        for _ in 0..n {
            clients.push(Box::new(self.connect().await?));
        }
        Ok(clients)
    }
}

/// A client connection: frames out, frames in.
struct Framed {
    tcp: TcpStream,
    read: BytesMut,
}

impl Framed {
    async fn send(&mut self, payload: &[u8]) -> Result<(), BenchError> {
        let len = u32::try_from(payload.len()).map_err(|_| BenchError::msg("frame too large"))?;
        // One write for small frames, as a protocol over TCP would gather its header and body.
        if payload.len() <= 4096 {
            let mut frame = Vec::with_capacity(4 + payload.len());
            frame.extend_from_slice(&len.to_le_bytes());
            frame.extend_from_slice(payload);
            self.tcp.write_all(&frame).await?;
        } else {
            self.tcp.write_all(&len.to_le_bytes()).await?;
            self.tcp.write_all(payload).await?;
        }
        Ok(())
    }

    /// The next whole frame's payload.
    async fn next(&mut self) -> Result<BytesMut, BenchError> {
        loop {
            if let Some(frame) = take_frame(&mut self.read) {
                return Ok(frame);
            }
            self.fill().await?;
        }
    }

    /// Waits for at least one frame, then takes every whole frame there: how many.
    async fn all_ready(&mut self) -> Result<usize, BenchError> {
        let mut taken = 0;
        loop {
            while take_frame(&mut self.read).is_some() {
                taken += 1;
            }
            if taken > 0 {
                return Ok(taken);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), BenchError> {
        self.read.reserve(64 << 10);
        if self.tcp.read_buf(&mut self.read).await? == 0 {
            return Err(BenchError::msg("the echo server closed"));
        }
        Ok(())
    }
}

impl Client for Framed {
    fn call(&mut self, i: u64) -> futures::future::BoxFuture<'_, Result<bool, BenchError>> {
        Box::pin(async move {
            self.send(&i.to_le_bytes()).await?;
            Ok(self.next().await?[..] == i.to_le_bytes())
        })
    }
}

fn take_frame(buf: &mut BytesMut) -> Option<BytesMut> {
    let len = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    if buf.len() < 4 + len {
        return None;
    }
    buf.advance(4);
    Some(buf.split_to(len))
}

/// Echoes every whole frame read, all of one read's frames in one write.
async fn echo(mut tcp: TcpStream) -> Result<(), BenchError> {
    let mut read = BytesMut::with_capacity(64 << 10);
    loop {
        read.reserve(64 << 10);
        if tcp.read_buf(&mut read).await? == 0 {
            return Ok(());
        }
        // The whole frames at the front go back as they are, length prefixes and all.
        let mut whole = 0;
        while let Some(len) = read
            .get(whole..whole + 4)
            .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
        {
            if read.len() < whole + 4 + len {
                break;
            }
            whole += 4 + len;
        }
        if whole > 0 {
            let frames = read.split_to(whole);
            tcp.write_all(&frames).await?;
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

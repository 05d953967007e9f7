//! Streams: `remote_stream!` from a server peer to a client peer against a raw
//! tokio-tungstenite stream of the same messages in the same direction (a server that writes
//! them as fast as its socket takes them, a client that reads them), interleaved round by
//! round: small items (a `u64` each) per second, and MB/s of 64 KiB chunks.
//!
//! ```text
//! cargo run --release -p remote-scope-bench --bin streams -- [--smoke] [--rounds N] [--window N]
//! ```

mod shared;

use std::time::Instant;

use futures::{SinkExt, StreamExt};
use remote_scope::{remote_stream, Node, PeerId};
use shared::{arg, median};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

type Failure = Box<dyn std::error::Error + Send + Sync>;

const CHUNK: usize = 64 << 10;

/// What one raw connection is asked for: `count` messages of `size` bytes.
async fn raw_server() -> Result<String, Failure> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                // The request: how many messages, of what size.
                let Some(Ok(Message::Binary(ask))) = ws.next().await else {
                    return;
                };
                let Ok(ask) = <[u8; 16]>::try_from(ask.as_ref()) else {
                    return;
                };
                let count = u64::from_le_bytes(ask[..8].try_into().unwrap_or_default());
                let size = u64::from_le_bytes(ask[8..].try_into().unwrap_or_default()) as usize;
                let payload = tokio_tungstenite::tungstenite::Bytes::from(vec![7_u8; size]);
                for _ in 0..count {
                    if ws.feed(Message::Binary(payload.clone())).await.is_err() {
                        return;
                    }
                }
                let _ = ws.flush().await;
            });
        }
    });
    Ok(url)
}

/// Reads `count` messages of `size` bytes from the raw server: the seconds it took.
async fn raw(url: &str, count: u64, size: usize) -> Result<f64, Failure> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let mut ask = count.to_le_bytes().to_vec();
    ask.extend((size as u64).to_le_bytes());
    let started = Instant::now();
    ws.send(Message::Binary(ask.into())).await?;
    let mut got = 0;
    while got < count {
        match ws.next().await {
            Some(Ok(Message::Binary(m))) if m.len() == size => got += 1,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err("the raw server closed".into()),
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Streams `count` small items from `server`: the seconds it took.
async fn small_items(
    node: &Node,
    server: &PeerId,
    count: u64,
    window: usize,
) -> Result<f64, Failure> {
    let started = Instant::now();
    let server = server.clone();
    let got = node
        .run(async move {
            let mut items =
                remote_stream!(server, [count: u64], { futures::stream::iter(0..count) })
                    .window(window);
            let mut got = 0_u64;
            while let Some(item) = items.next().await {
                if item? != got {
                    return Err(Failure::from("out of order"));
                }
                got += 1;
            }
            Ok::<u64, Failure>(got)
        })
        .await?;
    if got != count {
        return Err(format!("{got} items of {count}").into());
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Streams `count` chunks of 64 KiB from `server`: the seconds it took.
async fn chunks(node: &Node, server: &PeerId, count: u64, window: usize) -> Result<f64, Failure> {
    let started = Instant::now();
    let server = server.clone();
    let got = node
        .run(async move {
            let mut items = remote_stream!(server, [count: u64], {
                let chunk = serde_bytes::ByteBuf::from(vec![7_u8; CHUNK]);
                futures::stream::iter(0..count).map(move |_| chunk.clone())
            })
            .window(window);
            let mut got = 0_u64;
            while let Some(item) = items.next().await {
                if item?.len() != CHUNK {
                    return Err(Failure::from("a short chunk"));
                }
                got += 1;
            }
            Ok::<u64, Failure>(got)
        })
        .await?;
    if got != count {
        return Err(format!("{got} chunks of {count}").into());
    }
    Ok(started.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let rounds = arg(&args, "--rounds").unwrap_or(if smoke { 1 } else { 5 });
    // The default window unless set (`RemoteStream::window`); 64 for the chunks.
    let window = arg(&args, "--window").unwrap_or(256);
    let (small, big) = if smoke {
        (20_000, 50)
    } else {
        (1_000_000, 2_000)
    };

    let server = Node::builder().id("server").build()?;
    let listener = server.listen("127.0.0.1:0").await?;
    let client = Node::builder().id("client").build()?;
    let server_id = client.connect(&listener.url()).await?;
    let raw_url = raw_server().await?;

    let (mut raw_small, mut raw_big, mut ours_small, mut ours_big) =
        (vec![], vec![], vec![], vec![]);
    // A warm-up round, then the rounds, each measuring all four.
    for round in 0..=rounds {
        let a = raw(&raw_url, small, 8).await?;
        let b = small_items(&client, &server_id, small, window).await?;
        let c = raw(&raw_url, big, CHUNK).await?;
        let d = chunks(&client, &server_id, big, 64).await?;
        if round > 0 {
            raw_small.push(small as f64 / a);
            ours_small.push(small as f64 / b);
            raw_big.push((big * CHUNK as u64) as f64 / c / 1e6);
            ours_big.push((big * CHUNK as u64) as f64 / d / 1e6);
        }
    }
    let (rs, os, rb, ob) = (
        median(raw_small),
        median(ours_small),
        median(raw_big),
        median(ours_big),
    );
    println!("one way, server to client, median of {rounds} interleaved rounds (window {window}; 64 for chunks):");
    println!(
        "  small items   raw WebSocket {rs:>11.0}/s   remote_stream! {os:>11.0}/s   {:.2}x",
        os / rs
    );
    println!(
        "  64 KiB chunks raw WebSocket {rb:>8.0} MB/s   remote_stream! {ob:>8.0} MB/s   {:.2}x",
        ob / rb
    );
    Ok(())
}

//! A raw WebSocket echo (tokio-tungstenite): each binary message straight back. The browser
//! benchmark's baseline, the least a page's round trip to this machine can cost.

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;

/// Starts the echo on a free port of 127.0.0.1; its URL.
pub async fn start() -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("could not listen for the echo: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(message)) = rx.next().await {
                    if message.is_binary() && tx.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(format!("ws://{addr}"))
}

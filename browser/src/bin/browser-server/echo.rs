//! A raw WebSocket echo (tokio-tungstenite): each binary message straight back. The browser
//! benchmark's baseline, the least a page's round trip to this machine can cost.

use futures::{SinkExt, StreamExt};

/// Starts the echo on a free port of 127.0.0.1; its URL.
pub async fn start() -> Result<String, String> {
    crate::raw_websocket::serve("the echo", None, |ws| async move {
        let (mut tx, mut rx) = ws.split();
        while let Some(Ok(message)) = rx.next().await {
            if message.is_binary() && tx.send(message).await.is_err() {
                break;
            }
        }
    })
    .await
}

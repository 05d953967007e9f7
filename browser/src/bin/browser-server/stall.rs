//! A WebSocket peer that stops reading: it takes nothing for two seconds after the upgrade, so
//! the page's sends back up in the kernel and then in the browser, and then reads everything,
//! answering each binary message with the bytes it has read so far (a `u64`, little-endian).
//! The browser tests check with it that the page's transport holds back instead of letting the
//! browser buffer without limit, and that nothing is lost once the peer reads again.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// How long a connection goes unread.
const STALL: Duration = Duration::from_secs(2);

/// Starts the server on a free port of 127.0.0.1; its URL.
pub async fn start() -> Result<String, String> {
    // Messages of the test's size (1 MiB) and some, not tungstenite's 64 MiB.
    let config = WebSocketConfig::default().max_message_size(Some(4 << 20));
    crate::raw_websocket::serve("the stalling peer", Some(config), |ws| async move {
        tokio::time::sleep(STALL).await;
        let (mut tx, mut rx) = ws.split();
        let mut read = 0_u64;
        while let Some(Ok(message)) = rx.next().await {
            if let Message::Binary(bytes) = message {
                read += bytes.len() as u64;
                let total = Message::Binary(read.to_le_bytes().to_vec().into());
                if tx.send(total).await.is_err() {
                    break;
                }
            }
        }
    })
    .await
}

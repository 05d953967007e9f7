//! The raw WebSocket servers beside the node (the benchmark's echo, the stalling peer of the
//! backpressure test): each on a free port of 127.0.0.1, with a task per connection.

use std::future::Future;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// Serves each upgraded connection with `each`, `what` naming the server in errors; its URL.
pub async fn serve<F, Fut>(
    what: &str,
    config: Option<WebSocketConfig>,
    each: F,
) -> Result<String, String>
where
    F: Fn(WebSocketStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("could not listen for {what}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let each = Arc::new(each);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let each = Arc::clone(&each);
            // The upgrade in the connection's own task: a client slow to send its request
            // holds up no other.
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, config).await {
                    each(ws).await;
                }
            });
        }
    });
    Ok(format!("ws://{addr}"))
}

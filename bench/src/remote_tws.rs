//! remote! over tokio-websockets instead of the transport's own WebSocket framing: the same
//! nodes and bodies as `remote_impl`, with the frames carried by a `Transport` made of a
//! tokio-websockets stream. Measures what the library would gain or lose by using that crate
//! for framing and upgrade.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::{Sink, SinkExt, Stream, StreamExt};
use remote_scope::error::Cause;
use remote_scope::transport::Bytes;
use remote_scope::{Error, Node, PeerId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_websockets::{ClientBuilder, Message, ServerBuilder, WebSocketStream};

use crate::remote_impl::{Dial, Remote};

/// A tokio-websockets stream as a node's transport: binary messages are frames, the rest is
/// handled by the crate (pings) or ends the stream (a close).
struct Tws<S>(WebSocketStream<S>);

fn transport_error(e: tokio_websockets::Error) -> Error {
    Error::Transport {
        reason: "tokio-websockets".into(),
        source: Some(Cause::new(e)),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for Tws<S> {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            return Poll::Ready(match ready!(self.0.poll_next_unpin(cx)) {
                None => None,
                Some(Err(e)) => Some(Err(transport_error(e))),
                Some(Ok(message)) if message.is_binary() => {
                    Some(Ok(Bytes::from(message.into_payload())))
                }
                Some(Ok(message)) if message.is_close() => None,
                Some(Ok(_)) => continue,
            });
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Bytes> for Tws<S> {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.0.poll_ready_unpin(cx).map_err(transport_error)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: Bytes) -> Result<(), Error> {
        self.0
            .start_send_unpin(Message::binary(frame))
            .map_err(transport_error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.0.poll_flush_unpin(cx).map_err(transport_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.0.poll_close_unpin(cx).map_err(transport_error)
    }
}

/// Two nodes joined over tokio-websockets on 127.0.0.1, with TCP_NODELAY as the built-in
/// transport sets it.
pub async fn start() -> Result<Remote, crate::BenchError> {
    let server = Node::builder().id("bench-server").build()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepting = server.clone();
    let accept_loop = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let node = accepting.clone();
            tokio::spawn(async move {
                if let Ok((_, ws)) = ServerBuilder::new().accept(tcp).await {
                    let _ = node.accept_transport(Tws(ws)).await;
                }
            });
        }
    });
    let client = Node::builder().id("bench-client").build()?;
    let server_id = connect(&client, addr).await?;
    Ok(Remote::new(
        client,
        server_id,
        Dial {
            connect: Box::new(move |node: Node| {
                Box::pin(async move { connect(&node, addr).await })
            }),
            authority: None,
        },
        server,
        Box::new(AbortOnDrop(accept_loop)),
    ))
}

/// Connects `client` to the server's tokio-websockets listener at `addr`.
pub async fn connect(client: &Node, addr: SocketAddr) -> Result<PeerId, crate::BenchError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let uri = format!("ws://{addr}/")
        .parse()
        .map_err(|_| crate::BenchError::msg("the server's URI does not parse"))?;
    let (ws, _) = ClientBuilder::from_uri(uri)
        .connect_on(tcp)
        .await
        .map_err(transport_error)?;
    Ok(client.connect_transport(Tws(ws)).await?)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

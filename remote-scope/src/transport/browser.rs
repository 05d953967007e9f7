//! The browser WebSocket transport (wasm32): [`Node::connect`] from a web page.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use gloo_net::websocket::futures::WebSocket;
use gloo_net::websocket::{Message, WebSocketError};

use crate::error::Error;
use crate::node::Node;
use crate::peer_id::PeerId;

/// A browser WebSocket as a [`Transport`](super::Transport): binary messages are frames; a
/// close event ends the stream.
pub struct BrowserTransport {
    inner: WebSocket,
}

impl BrowserTransport {
    /// Opens a WebSocket to `url`; it connects in the background and sending waits for it.
    pub fn open(url: &str) -> Result<BrowserTransport, Error> {
        WebSocket::open(url)
            .map(|inner| BrowserTransport { inner })
            // The browser refuses only the URL itself here (a failed connection shows later, on
            // the stream): dialling it again cannot help.
            .map_err(|e| Error::BadUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            })
    }
}

fn transport_error(e: WebSocketError) -> Error {
    Error::transport_caused("the WebSocket failed", e)
}

impl Stream for BrowserTransport {
    type Item = Result<bytes::Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|item| match item {
                None | Some(Err(WebSocketError::ConnectionClose(_))) => None,
                Some(Err(e)) => Some(Err(transport_error(e))),
                Some(Ok(Message::Bytes(bytes))) => Some(Ok(bytes.into())),
                Some(Ok(Message::Text(_))) => {
                    Some(Err(Error::protocol("a text message; frames are binary")))
                }
            })
    }
}

impl Sink<bytes::Bytes> for BrowserTransport {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner)
            .poll_ready(cx)
            .map_err(transport_error)
    }

    fn start_send(mut self: Pin<&mut Self>, frame: bytes::Bytes) -> Result<(), Error> {
        Pin::new(&mut self.inner)
            .start_send(Message::Bytes(frame.to_vec()))
            .map_err(transport_error)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner)
            .poll_flush(cx)
            .map_err(transport_error)
    }

    // The socket itself closes when both halves of the connection are dropped.
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Pin::new(&mut self.inner)
            .poll_close(cx)
            .map_err(transport_error)
    }
}

/// What dials `url` again and again for [`Node::connect_with_reconnect`]: a new browser
/// WebSocket each time.
pub(crate) fn dialer(
    _node: &Node,
    url: &str,
) -> impl Fn() -> crate::runtime::BoxFuture<'static, Result<BrowserTransport, Error>> {
    let url = url.to_owned();
    move || {
        let opened = BrowserTransport::open(&url);
        Box::pin(async move { opened })
    }
}

impl Node {
    /// Connects to a server peer at `url` (`ws://host:port`) and returns its id; the same call
    /// as on native targets.
    pub async fn connect(&self, url: &str) -> Result<PeerId, Error> {
        self.connect_transport(BrowserTransport::open(url)?).await
    }
}

//! The browser WebSocket transport (wasm32): [`Node::connect`] from a web page.
//!
//! Frames go out with `WebSocket.send` on a view of the frame's bytes, which the browser copies
//! at once. (A `Blob` would do too, but Chromium reads a Blob's bytes asynchronously before it
//! sends them: half a millisecond a message, measured in `browser/bench`.) Frames come in as
//! `ArrayBuffer`s, queued in order by the socket's `onmessage`.
//!
//! `WebSocket.send` never refuses bytes: what the network does not take yet waits in the
//! browser (`bufferedAmount`), without limit. So the sink is not ready, and a flush not done,
//! while more than [`HIGH_WATER`] bytes wait there; the node's own outbound queue then fills
//! and its limits apply, as on a native socket that stopped draining. No event tells when
//! `bufferedAmount` goes down, so a waiting writer looks again every [`RECHECK_MS`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures::{Sink, Stream};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use crate::error::Error;
use crate::node::Node;
use crate::peer_id::PeerId;

/// The most bytes the browser may hold unsent before the sink waits: enough to keep a fast
/// link busy between two looks (400 MB/s at one look every few milliseconds).
pub const HIGH_WATER: usize = 4 << 20;

/// How often a writer waiting for the browser to send what it holds looks again, in
/// milliseconds (browsers clamp shorter timers to about 4 ms anyway).
const RECHECK_MS: u32 = 2;

/// A browser WebSocket as a [`Transport`](super::Transport): binary messages are frames; a
/// close event ends the stream.
pub struct BrowserTransport {
    socket: WebSocket,
    state: Rc<RefCell<State>>,
    /// Held for as long as the socket may call them; cleared from the socket on drop.
    _handlers: Handlers,
}

/// What the socket's event handlers leave for the transport's halves.
#[derive(Default)]
struct State {
    received: VecDeque<Result<bytes::Bytes, Error>>,
    closed: bool,
    /// The reader, waiting for a message or the close.
    reader: Option<Waker>,
    /// The writer, waiting for the socket to open.
    writer: Option<Waker>,
    /// Wakes the writer waiting for the browser to send what it holds (dropped, it never
    /// fires).
    recheck: Option<gloo_timers::callback::Timeout>,
}

/// Changes the state with `change`, then wakes the halves that wait, the state no longer
/// borrowed (a waker may poll at once on some executors).
fn update(state: &RefCell<State>, change: impl FnOnce(&mut State)) {
    let (reader, writer) = {
        let mut state = state.borrow_mut();
        change(&mut state);
        (state.reader.take(), state.writer.take())
    };
    for waker in [reader, writer].into_iter().flatten() {
        waker.wake();
    }
}

struct Handlers {
    _open: Closure<dyn FnMut(Event)>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _error: Closure<dyn FnMut(Event)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

impl BrowserTransport {
    /// Opens a WebSocket to `url`; it connects in the background and sending waits for it.
    /// Frames of more than 64 MiB are refused (see [`BrowserTransport::open_limited`]).
    pub fn open(url: &str) -> Result<BrowserTransport, Error> {
        BrowserTransport::open_limited(url, 64 << 20)
    }

    /// As [`open`](BrowserTransport::open), refusing frames of more than `max_frame` bytes
    /// before they are copied into the module's memory (which never shrinks): such a frame
    /// ends the stream with a protocol error and closes the socket.
    pub fn open_limited(url: &str, max_frame: usize) -> Result<BrowserTransport, Error> {
        // The browser refuses only the URL itself here (a failed connection shows later, on the
        // stream): dialling it again cannot help.
        let socket = WebSocket::new(url).map_err(|e| Error::BadUrl {
            url: url.to_owned(),
            reason: js_text(&e),
        })?;
        socket.set_binary_type(BinaryType::Arraybuffer);
        let state = Rc::new(RefCell::new(State::default()));

        let open = {
            let state = Rc::clone(&state);
            Closure::<dyn FnMut(Event)>::new(move |_: Event| update(&state, |_| {}))
        };
        let message = {
            let (state, socket) = (Rc::clone(&state), socket.clone());
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let data = event.data();
                let frame = match data.dyn_ref::<js_sys::ArrayBuffer>() {
                    Some(buffer) if buffer.byte_length() as usize > max_frame => {
                        let _ = socket.close();
                        Err(Error::protocol(format!(
                            "a frame of {} bytes; at most {max_frame} are taken",
                            buffer.byte_length()
                        )))
                    }
                    Some(buffer) => Ok(js_sys::Uint8Array::new(buffer).to_vec().into()),
                    None => Err(Error::protocol("a text message; frames are binary")),
                };
                update(&state, |state| state.received.push_back(frame));
            })
        };
        // The browser tells a page nothing of why a WebSocket failed (the console has it); the
        // close that follows ends the stream.
        let error = {
            let state = Rc::clone(&state);
            Closure::<dyn FnMut(Event)>::new(move |_: Event| {
                update(&state, |state| {
                    state
                        .received
                        .push_back(Err(Error::transport("the WebSocket failed")))
                });
            })
        };
        let close = {
            let state = Rc::clone(&state);
            Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
                update(&state, |state| state.closed = true);
            })
        };
        socket.set_onopen(Some(open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(message.as_ref().unchecked_ref()));
        socket.set_onerror(Some(error.as_ref().unchecked_ref()));
        socket.set_onclose(Some(close.as_ref().unchecked_ref()));
        Ok(BrowserTransport {
            socket,
            state,
            _handlers: Handlers {
                _open: open,
                _message: message,
                _error: error,
                _close: close,
            },
        })
    }

    /// The bytes the browser holds that the network has not taken yet (`bufferedAmount`); the
    /// sink waits while that is over [`HIGH_WATER`].
    pub fn buffered_amount(&self) -> usize {
        self.socket.buffered_amount() as usize
    }

    /// Ready once the browser holds at most [`HIGH_WATER`] unsent bytes; until then, looks
    /// again after [`RECHECK_MS`].
    fn poll_drained(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.buffered_amount() <= HIGH_WATER {
            self.state.borrow_mut().recheck = None;
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        self.state.borrow_mut().recheck =
            Some(gloo_timers::callback::Timeout::new(RECHECK_MS, move || {
                waker.wake()
            }));
        Poll::Pending
    }
}

fn js_text(value: &wasm_bindgen::JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

impl Drop for BrowserTransport {
    fn drop(&mut self) {
        self.socket.set_onopen(None);
        self.socket.set_onmessage(None);
        self.socket.set_onerror(None);
        self.socket.set_onclose(None);
        let _ = self.socket.close();
    }
}

impl Stream for BrowserTransport {
    type Item = Result<bytes::Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut state = self.state.borrow_mut();
        if let Some(frame) = state.received.pop_front() {
            return Poll::Ready(Some(frame));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        state.reader = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Sink<bytes::Bytes> for BrowserTransport {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.socket.ready_state() {
            WebSocket::OPEN => self.poll_drained(cx).map(Ok),
            WebSocket::CONNECTING => {
                self.state.borrow_mut().writer = Some(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready(Err(Error::transport("the WebSocket is closed"))),
        }
    }

    fn start_send(self: Pin<&mut Self>, frame: bytes::Bytes) -> Result<(), Error> {
        self.socket
            .send_with_u8_array(&frame)
            .map_err(|e| Error::transport(format!("the WebSocket failed: {}", js_text(&e))))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        match self.socket.ready_state() {
            WebSocket::OPEN => self.poll_drained(cx).map(Ok),
            // Not open yet: nothing sent, nothing to wait for. Closed: what is held is lost,
            // and the stream's end says so.
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let _ = self.socket.close();
        Poll::Ready(Ok(()))
    }
}

/// What dials `url` again and again for [`Node::connect_with_reconnect`]: a new browser
/// WebSocket each time.
pub(crate) fn dialer(
    node: &Node,
    url: &str,
) -> impl Fn() -> crate::runtime::BoxFuture<'static, Result<BrowserTransport, Error>> {
    let (url, max_frame) = (url.to_owned(), node.config().max_frame_size);
    move || {
        let opened = BrowserTransport::open_limited(&url, max_frame);
        Box::pin(async move { opened })
    }
}

impl Node {
    /// Connects to a server peer at `url` (`ws://host:port`, or `wss://` as the page's browser
    /// checks it) and returns its id; the same call as on native targets.
    pub async fn connect(&self, url: &str) -> Result<PeerId, Error> {
        let max_frame = self.config().max_frame_size;
        self.connect_transport(BrowserTransport::open_limited(url, max_frame)?)
            .await
    }
}

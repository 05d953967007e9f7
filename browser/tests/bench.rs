//! The browser benchmark: from a headless-Chromium page to the native browser-server, calls of
//! `remote!` against a raw browser WebSocket echo to the same machine, in one run, rounds
//! interleaved. Both send the same 32 bytes each way.
//!
//! Run by `browser/bench` (release build, full counts, figures for BENCHMARKS.md) and, with
//! tiny counts, by `.ci/browser-tests` as a smoke run that checks every reply. Counts come at
//! compile time (a wasm test cannot read the environment): `REMOTE_SCOPE_BENCH_CALLS` calls
//! per round, `REMOTE_SCOPE_BENCH_ROUNDS` rounds.
//!
//! `performance.now()` is coarsened in a page that is not cross-origin isolated (100 µs in
//! Chromium), finer than a call but not by much: latencies are taken per batch of
//! [`BATCH`] sequential round trips, and the p50 is the median of the batches' means.
#![cfg(target_arch = "wasm32")]

use futures::channel::mpsc;
use futures::StreamExt;
use remote_scope::{Node, PeerId};
use remote_scope_browser_checks as checks;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

remote_scope::link!(remote_scope_browser_extra::ask, checks::elsewhere::ask);

const WS_URL: &str = match option_env!("REMOTE_SCOPE_WS_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:9/REMOTE_SCOPE_WS_URL-was-not-set-at-compile-time",
};
const ECHO_URL: &str = match option_env!("REMOTE_SCOPE_ECHO_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:9/REMOTE_SCOPE_ECHO_URL-was-not-set-at-compile-time",
};

fn count(value: Option<&str>, default: usize) -> usize {
    value.and_then(|v| v.parse().ok()).unwrap_or(default)
}

const BATCH: usize = 20;
const PIPELINED: usize = 64;
const PAYLOAD: usize = 32;

fn now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .expect("performance")
        .now()
}

/// A raw browser WebSocket: messages in a queue its `onmessage` fills.
struct Echo {
    socket: web_sys::WebSocket,
    replies: mpsc::UnboundedReceiver<Vec<u8>>,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
}

impl Echo {
    async fn open(url: &str) -> Echo {
        let socket = web_sys::WebSocket::new(url).expect("socket");
        socket.set_binary_type(web_sys::BinaryType::Arraybuffer);
        let (tx, replies) = mpsc::unbounded();
        let on_message = Closure::<dyn FnMut(_)>::new(move |event: web_sys::MessageEvent| {
            let bytes = js_sys::Uint8Array::new(&event.data()).to_vec();
            let _ = tx.unbounded_send(bytes);
        });
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        while socket.ready_state() != web_sys::WebSocket::OPEN {
            gloo_timers::future::TimeoutFuture::new(1).await;
        }
        Echo {
            socket,
            replies,
            _on_message: on_message,
        }
    }

    async fn round_trip(&mut self, payload: &[u8]) -> Vec<u8> {
        self.socket.send_with_u8_array(payload).expect("send");
        self.replies.next().await.expect("reply")
    }

    async fn pipelined(&mut self, payload: &[u8], n: usize) {
        for _ in 0..n {
            self.socket.send_with_u8_array(payload).expect("send");
        }
        for _ in 0..n {
            let reply = self.replies.next().await.expect("reply");
            assert_eq!(reply, payload);
        }
    }
}

/// Runs `$round_trip` (an `async` block) `$calls` times in batches of [`BATCH`]; round trips
/// per second and the median batch mean in µs. A macro, as the block borrows what the caller
/// holds mutably.
macro_rules! sequential {
    ($calls:expr, $round_trip:expr) => {{
        let batches = ($calls / BATCH).max(1);
        let mut means = Vec::with_capacity(batches);
        let started = now();
        for _ in 0..batches {
            let batch = now();
            for _ in 0..BATCH {
                $round_trip.await;
            }
            means.push((now() - batch) * 1000.0 / BATCH as f64);
        }
        let elapsed = (now() - started) / 1000.0;
        ((batches * BATCH) as f64 / elapsed, median(means))
    }};
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[wasm_bindgen_test]
async fn remote_calls_against_a_raw_websocket_echo() {
    let calls = count(option_env!("REMOTE_SCOPE_BENCH_CALLS"), 200);
    let rounds = count(option_env!("REMOTE_SCOPE_BENCH_ROUNDS"), 1);
    let payload: Vec<u8> = (0..PAYLOAD as u8).collect();

    let node = Node::builder().build().expect("node");
    let server: PeerId = node.connect(WS_URL).await.expect("connects");
    let mut echo = Echo::open(ECHO_URL).await;

    let (mut echo_rate, mut echo_p50, mut echo_pipe) = (vec![], vec![], vec![]);
    let (mut call_rate, mut call_p50, mut call_pipe) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (rate, p50) = sequential!(calls, async {
            assert_eq!(echo.round_trip(&payload).await, payload);
        });
        echo_rate.push(rate);
        echo_p50.push(p50);
        let started = now();
        for _ in 0..(calls / PIPELINED).max(1) {
            echo.pipelined(&payload, PIPELINED).await;
        }
        echo_pipe
            .push(((calls / PIPELINED).max(1) * PIPELINED) as f64 / ((now() - started) / 1000.0));

        let (rate, p50) = sequential!(calls, async {
            let reply = node
                .run(checks::echo_on_server(server.clone(), payload.clone()))
                .await;
            assert_eq!(reply.as_ref(), Ok(&payload));
        });
        call_rate.push(rate);
        call_p50.push(p50);
        let started = now();
        for _ in 0..(calls / PIPELINED).max(1) {
            let batch = (0..PIPELINED)
                .map(|_| node.run(checks::echo_on_server(server.clone(), payload.clone())));
            for reply in futures::future::join_all(batch).await {
                assert_eq!(reply.as_ref(), Ok(&payload));
            }
        }
        call_pipe
            .push(((calls / PIPELINED).max(1) * PIPELINED) as f64 / ((now() - started) / 1000.0));
    }

    let (er, ep, epi) = (median(echo_rate), median(echo_p50), median(echo_pipe));
    let (cr, cp, cpi) = (median(call_rate), median(call_p50), median(call_pipe));
    console_log!(
        "browser bench: {calls} calls x {rounds} rounds, {PAYLOAD} bytes each way (medians of rounds)"
    );
    console_log!("  raw WebSocket echo: sequential {er:.0}/s, p50 {ep:.1} us; pipelined {PIPELINED}: {epi:.0}/s");
    console_log!("  remote!:            sequential {cr:.0}/s, p50 {cp:.1} us; pipelined {PIPELINED}: {cpi:.0}/s");
    console_log!(
        "  remote! / echo:     sequential {:.2}x, p50 {:.2}x; pipelined {:.2}x",
        cr / er,
        cp / ep,
        cpi / epi
    );
}

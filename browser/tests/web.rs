//! Browser peers in headless Chromium against the native `browser-server`, whose peer URL is
//! given at compile time in `REMOTE_SCOPE_WS_URL` (a wasm test cannot read the environment at
//! run time). `.ci/run` starts the server, runs these, and stops it.
//!
//! This binary has exactly the bodies of `remote-scope-browser` and its extra crate, like the
//! server, so every node here uses the strict registry check: connecting at all proves that the
//! native and the wasm build named every body alike.
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use futures::future::{select, Either};
use remote_scope::{Error, Node, PeerId, Registry};
use remote_scope_browser::demo;
use remote_scope_browser_checks as checks;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

// The server runs bodies of these modules in this binary without it calling them.
remote_scope::link!(remote_scope_browser_extra::ask, checks::elsewhere::ask);

const WS_URL: &str = match option_env!("REMOTE_SCOPE_WS_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:9/REMOTE_SCOPE_WS_URL-was-not-set-at-compile-time",
};

/// The browser-server's axum app over TLS (`wss://127.0.0.1:PORT`), which serves peers on
/// `/open` and, named by a session cookie, on `/peer`. Chromium trusts its certificate through
/// the authority's key given in `--ignore-certificate-errors-spki-list` (`.ci/browser-tests`).
const APP_WSS_URL: &str = match option_env!("REMOTE_SCOPE_APP_WSS_URL") {
    Some(url) => url,
    None => "wss://127.0.0.1:9/REMOTE_SCOPE_APP_WSS_URL-was-not-set-at-compile-time",
};

/// A WebSocket peer that reads nothing for two seconds after the upgrade, then answers each
/// message with the bytes it has read so far (browser-server's `stall`).
const STALL_URL: &str = match option_env!("REMOTE_SCOPE_STALL_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:9/REMOTE_SCOPE_STALL_URL-was-not-set-at-compile-time",
};

async fn connected() -> (Node, PeerId) {
    let node = Node::builder().build().expect("node");
    let server = node
        .connect(WS_URL)
        .await
        .expect("connects to browser-server");
    (node, server)
}

#[wasm_bindgen_test]
async fn browser_calls_the_server() {
    let (node, server) = connected().await;
    let sum = node
        .run(checks::sum_on_server(server, vec![1, 2, 3, 4]))
        .await;
    assert_eq!(sum, Ok(10));
}

#[wasm_bindgen_test]
async fn remote_fns_run_on_the_server_and_back_on_the_browser() {
    let (node, server) = connected().await;
    let me = node.id().clone();
    let there = node
        .run(checks::reverse("abc".to_owned()).on_peer(&server))
        .await;
    assert_eq!(there, Ok(format!("cba on {server}")));
    let back = node
        .run(checks::server_reverses_on(
            server,
            me.clone(),
            "xyz".to_owned(),
        ))
        .await;
    assert_eq!(back, Ok(format!("zyx on {me}")));
}

#[wasm_bindgen_test]
async fn a_body_the_browser_calls_reaches_the_servers_pool_on_nats() {
    let (node, server) = connected().await;
    let lines: Vec<String> = (0..20)
        .map(|i| format!("line {i} of three words"))
        .collect();
    let (total, members) = node
        .run(checks::count_on_workers(server, lines))
        .await
        .expect("the server counts on its workers");
    assert_eq!(total, 20 * 5);
    // The workers share the lines between them, and the browser hears who ran them.
    assert_eq!(members, ["word-worker-1", "word-worker-2"]);
}

#[wasm_bindgen_test]
async fn nested_demo_runs_server_browser_server_with_the_native_result() {
    let (node, server) = connected().await;
    let me = node.id().clone();
    let outcome = node
        .run(demo::nested(server, me.clone()))
        .await
        .expect("demo runs");
    assert_eq!(outcome.result, (vec![42; 43], 44));
    let peers: Vec<&str> = outcome.steps.iter().map(|s| s.peer.as_str()).collect();
    assert_eq!(peers, ["server", me.as_str(), "server"]);
}

#[wasm_bindgen_test]
async fn the_nested_demo_and_a_large_capture_run_over_wss_on_the_axum_route() {
    let node = Node::builder().build().expect("node");
    let server = node
        .connect(&format!("{APP_WSS_URL}/open"))
        .await
        .expect("connects over wss:// to the axum app");
    let me = node.id().clone();
    let outcome = node
        .run(demo::nested(server.clone(), me.clone()))
        .await
        .expect("demo runs");
    assert_eq!(outcome.result, (vec![42; 43], 44));
    let peers: Vec<&str> = outcome.steps.iter().map(|s| s.peer.as_str()).collect();
    assert_eq!(peers, ["server", me.as_str(), "server"]);
    // 1 MiB of capture: many TLS records, and many reads of hyper's upgraded connection.
    let values: Vec<u64> = (0..1 << 17).collect();
    let sum = node.run(checks::sum_on_server(server, values)).await;
    assert_eq!(sum, Ok((1 << 17) * ((1 << 17) - 1) / 2));
}

#[wasm_bindgen_test]
async fn the_session_route_refuses_a_page_without_a_session() {
    // This page comes from the test runner's server, so it holds no session cookie of the app:
    // the app's middleware answers the upgrade with 401 and the node never sees the peer.
    let node = Node::builder().build().expect("node");
    let refused = node.connect(&format!("{APP_WSS_URL}/peer")).await;
    assert!(refused.is_err(), "{refused:?}");
    // The same page on the open route is served.
    let server = node.connect(&format!("{APP_WSS_URL}/open")).await;
    assert_eq!(server, Ok(PeerId::new("server")));
}

#[wasm_bindgen_test]
async fn server_runs_bodies_from_another_module_and_crate_in_the_browser() {
    let (node, server) = connected().await;
    let me = node.id().clone();
    let answers = node
        .run(checks::server_asks_back(server, me.clone()))
        .await
        .expect("both bodies are registered in the browser");
    assert_eq!(
        answers,
        [
            format!("module body ran on {me}"),
            format!("extra crate body ran on {me}")
        ]
    );
}

#[wasm_bindgen_test]
async fn native_and_wasm_builds_give_shared_bodies_the_same_names_and_digest() {
    let (node, server) = connected().await;
    let (server_names, server_digest) = node
        .run(checks::server_registry(server))
        .await
        .expect("server answers");
    let ours = Registry::global().expect("registry");
    let our_names: Vec<String> = ours.names().into_iter().map(str::to_owned).collect();
    assert!(our_names.len() >= 10, "{our_names:?}");
    assert_eq!(server_names, our_names);
    assert_eq!(server_digest, ours.digest());
}

#[wasm_bindgen_test]
async fn panic_on_the_server_reaches_the_browser_as_panicked() {
    let (node, server) = connected().await;
    let result = node.run(checks::panic_on_server(server.clone())).await;
    assert!(
        matches!(&result, Err(Error::Panicked { message, .. }) if message == "deliberate panic on the server"),
        "{result:?}"
    );
    assert_eq!(
        node.run(checks::sum_on_server(server, vec![5])).await,
        Ok(5)
    );
}

#[wasm_bindgen_test]
async fn server_going_away_fails_pending_calls_instead_of_hanging() {
    let (node, server) = connected().await;
    let me = node.id().clone();
    let pending = node.run(checks::sleep_on_server(server.clone(), 30));
    let hang_up = node.run(checks::server_hangs_up(server.clone(), me));
    let both = futures::future::join(pending, hang_up);
    let limit = gloo_timers::future::sleep(Duration::from_secs(5));
    futures::pin_mut!(both);
    let (slow, hung_up) = match select(both, limit).await {
        Either::Left((results, _)) => results,
        Either::Right(_) => panic!("calls still pending 5 s after the server hung up"),
    };
    assert!(matches!(slow, Err(Error::Disconnected { .. })), "{slow:?}");
    assert!(
        matches!(hung_up, Err(Error::Disconnected { .. })),
        "{hung_up:?}"
    );
    assert!(!node.is_connected(&server));
    let after = node.run(checks::sum_on_server(server, vec![1])).await;
    assert!(
        matches!(after, Err(Error::NotConnected { .. })),
        "{after:?}"
    );
}

#[wasm_bindgen_test]
async fn per_call_timeout_works_in_the_browser() {
    let (node, server) = connected().await;
    let result = node
        .run(checks::sleep_on_server(server, 30).timeout(Duration::from_millis(200)))
        .await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
}

#[wasm_bindgen_test]
async fn the_patterns_run_in_the_browser_on_its_clock() {
    let (node, server) = connected().await;
    // A map over the server, 3 in flight, results in order.
    let sums = node
        .run(
            remote_scope::patterns::gather(
                (0..10_u64).map(|i| checks::sum_on_server(server.clone(), vec![i, i])),
            )
            .in_flight(3)
            .fail_fast(),
        )
        .await;
    assert_eq!(sums, Ok((0..10).map(|i| 2 * i).collect::<Vec<u64>>()));

    // Retry: a peer that is not there, then the server, after a backoff on the page's timers.
    let absent = PeerId::new("not-connected");
    let retried = node
        .run(
            remote_scope::patterns::retry([absent, server.clone()], |peer| {
                checks::sleep_on_server(peer.clone(), 0)
            })
            .deadline(Duration::from_secs(5)),
        )
        .await;
    assert_eq!(retried, Ok(()));

    // A hedge: the server sleeps 30 s on the first call; the second, 300 ms later, wins.
    let started = js_sys::Date::now();
    let mut first = true;
    let hedged = node
        .run(
            remote_scope::patterns::first_success([server.clone(), server.clone()], |peer| {
                let seconds = if std::mem::take(&mut first) { 30 } else { 0 };
                checks::sleep_on_server(peer.clone(), seconds)
            })
            .hedge(Duration::from_millis(300)),
        )
        .await;
    let took = js_sys::Date::now() - started;
    assert!(hedged.is_ok(), "{hedged:?}");
    assert!((250.0..5_000.0).contains(&took), "the hedge took {took} ms");

    // The server's health, timed on the page's clock.
    let health = node
        .run(remote_scope::patterns::health(server.clone()))
        .await
        .expect("the server answers");
    assert_eq!(health.peer, server);
    assert!(
        health.load.connections >= 1 && health.rtt > Duration::ZERO,
        "{health:?}"
    );
}

#[wasm_bindgen_test]
async fn streams_flow_from_the_server_to_the_page_and_from_the_page_to_the_server() {
    use futures::StreamExt;
    let (node, server) = connected().await;
    let me = node.id().clone();
    let items: Vec<Result<u64, Error>> = node
        .run(
            checks::numbers_from_server(server.clone(), 10_000)
                .window(256)
                .collect(),
        )
        .await;
    assert_eq!(items.len(), 10_000);
    assert!(items
        .iter()
        .enumerate()
        .all(|(i, item)| item == &Ok(i as u64)));

    let sum = node
        .run(checks::server_sums_a_stream_from(server, me, 1_000))
        .await;
    assert_eq!(sum, Ok(500_500));
}

#[wasm_bindgen_test]
async fn a_trace_started_in_the_page_reaches_the_server_and_comes_back() {
    let (node, server) = connected().await;
    let me = node.id().clone();
    let ctx = remote_scope::TraceContext::new_root();
    let seen = node
        .run(ctx.clone().scope(checks::traces_seen(server, me)))
        .await;
    assert_eq!(seen, Ok((Some(ctx.trace_id), Some(ctx.trace_id))));
}

/// The browser takes whatever a page sends, however slowly the peer reads: the transport has to
/// hold back itself. Against a peer that reads nothing for two seconds, 48 MiB sent a MiB at a
/// time never leave more than the transport's high-water mark in the browser; once the peer
/// reads, every byte arrives.
#[wasm_bindgen_test]
async fn a_peer_that_stops_reading_holds_the_page_back_and_loses_nothing() {
    use futures::{SinkExt, StreamExt};
    use remote_scope::transport::browser::{BrowserTransport, HIGH_WATER};

    const FRAMES: usize = 48;
    const FRAME: usize = 1 << 20;
    // Far less than what is sent, so that a browser holding everything would fail the check.
    const { assert!(HIGH_WATER <= FRAMES * FRAME / 8) };
    let mut transport = BrowserTransport::open(STALL_URL).expect("opens");
    let frame = bytes::Bytes::from(vec![7_u8; FRAME]);
    let mut most_held = 0;
    for _ in 0..FRAMES {
        transport.send(frame.clone()).await.expect("sends");
        most_held = most_held.max(transport.buffered_amount());
        assert!(
            transport.buffered_amount() <= HIGH_WATER,
            "the browser holds {} bytes unsent",
            transport.buffered_amount()
        );
    }
    let mut read = 0;
    while read < (FRAMES * FRAME) as u64 {
        let total = transport
            .next()
            .await
            .expect("the peer answers")
            .expect("a message");
        read = u64::from_le_bytes(total[..].try_into().expect("a u64"));
    }
    assert_eq!(read, (FRAMES * FRAME) as u64);
    // The check above means something only if the browser did hold bytes back.
    wasm_bindgen_test::console_log!("the browser held at most {most_held} bytes unsent");
    assert!(most_held > 0, "the peer's stall never backed the sends up");
}

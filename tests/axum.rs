//! Peers on a route of an axum app (feature `axum`): beside the app's pages on one port, behind
//! its session check (which names the peer), under the node's own limits for unknown peers,
//! through the app's graceful shutdown, and over TLS with `TlsListener`.

mod common;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use common::certs::certificates;
use common::{chain, closed_by_server, frame_header, nested, wait_until, Ws};
use futures::SinkExt;
use remote_scope::axum::{Endpoint, SessionPeer, TlsListener};
use remote_scope::{caller, remote, Error, Node, NodeBuilder, PeerId, TlsIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// The app's session check: `session=<user>-key` names `<user>`; anything else is refused.
async fn session(mut request: Request, next: Next) -> Result<Response, StatusCode> {
    let user = request
        .headers()
        .get("cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.strip_prefix("session="))
        .and_then(|c| c.strip_suffix("-key"))
        .map(str::to_owned)
        .ok_or(StatusCode::UNAUTHORIZED)?;
    request.extensions_mut().insert(SessionPeer::new(user));
    Ok(next.run(request).await)
}

/// An app with a page at `/`, peers behind the session check at `/peer`, and peers without one
/// at `/open`.
fn app(endpoint: &Endpoint) -> Router {
    Router::new()
        .route("/peer", endpoint.route())
        .route_layer(middleware::from_fn(session))
        .route("/open", endpoint.route())
        .route("/", get(|| async { "<h1>the page</h1>" }))
}

/// An axum server of `app` on a free port, stopped when `stop` is sent or dropped.
struct App {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<()>,
}

async fn serve(app: Router) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    App {
        addr,
        stop: Some(stop),
        served,
    }
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

async fn server_with(builder: NodeBuilder) -> (Node, Endpoint, App) {
    let node = builder.build().unwrap();
    let endpoint = Endpoint::new(&node);
    let app = serve(app(&endpoint)).await;
    (node, endpoint, app)
}

async fn server() -> (Node, Endpoint, App) {
    server_with(Node::builder().id("server")).await
}

/// A plain HTTP/1.1 GET of `path`; the whole response.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn a_peer_on_the_apps_route_runs_the_nested_demo_beside_its_page() {
    let (server, _endpoint, app) = server().await;
    let client = Node::builder().id("client").build().unwrap();
    let server_id = client.connect(&app.url("/open")).await.unwrap();
    assert_eq!(server_id, PeerId::new("server"));
    let client_id = client.id().clone();
    wait_until(|| server.is_connected(&client_id)).await;

    let (b, c) = client
        .run(nested(server_id.clone(), client_id))
        .await
        .unwrap();
    assert_eq!((b, c), (vec![42; 43], 44));

    // 1 MiB each way through hyper's upgraded connection.
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let back = remote!(server_id, [big: Vec<u8>], { big.into_iter().rev().collect::<Vec<u8>>() })
        .on(&client)
        .await
        .unwrap();
    assert!(back
        .iter()
        .rev()
        .enumerate()
        .all(|(i, &b)| b == (i % 251) as u8));

    // The page on the same port.
    let page = http_get(app.addr, "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.ends_with("<h1>the page</h1>"), "{page}");
}

#[tokio::test]
async fn the_session_check_names_the_peer_and_refuses_the_rest() {
    static RAN: AtomicUsize = AtomicUsize::new(0);
    // The node asks a token of everyone else, and lets only alice run bodies.
    let (server, _endpoint, app) = server_with(
        Node::builder()
            .id("server")
            .require_token("s3cret")
            .authorize(|peer: &PeerId, _body: &str| peer.as_str() == "alice"),
    )
    .await;

    // No cookie: the middleware refuses the upgrade, and the node never sees the peer.
    let stranger = Node::builder().id("alice").build().unwrap();
    let refused = stranger.connect(&app.url("/peer")).await.unwrap_err();
    assert!(matches!(refused, Error::Transport { .. }), "{refused:?}");
    let text = chain(&refused);
    assert!(text.contains("401 Unauthorized"), "{text}");
    assert!(server.peers().is_empty());

    // A cookie for alice, a hello that claims to be someone else.
    let impostor = Node::builder()
        .id("mallory")
        .connect_header("cookie", "session=alice-key")
        .build()
        .unwrap();
    let refused = impostor.connect(&app.url("/peer")).await.unwrap_err();
    assert!(
        matches!(refused, Error::NotAuthenticated { .. }),
        "{refused:?}"
    );
    assert!(server.peers().is_empty());

    // Alice, no token: the session proved her id, and she may run bodies.
    let alice = Node::builder()
        .id("alice")
        .connect_header("cookie", "session=alice-key")
        .build()
        .unwrap();
    let server_id = alice.connect(&app.url("/peer")).await.unwrap();
    let seen = remote!(server_id, [], {
        RAN.fetch_add(1, Ordering::SeqCst);
        caller()
    })
    .on(&alice)
    .await;
    assert_eq!(seen, Ok(Some(PeerId::new("alice"))));

    // Bob connects on his own session, but the node's policy lets him run nothing.
    let bob = Node::builder()
        .id("bob")
        .connect_header("cookie", "session=bob-key")
        .build()
        .unwrap();
    let server_id = bob.connect(&app.url("/peer")).await.unwrap();
    let denied = remote!(server_id, [], {
        RAN.fetch_add(1, Ordering::SeqCst);
    })
    .on(&bob)
    .await;
    assert!(
        matches!(denied, Err(Error::NotAuthorized { .. })),
        "{denied:?}"
    );
    assert_eq!(RAN.load(Ordering::SeqCst), 1);

    // Without a session the node's own token check applies, and this one has no token.
    let open = Node::builder().id("carol").build().unwrap();
    let refused = open.connect(&app.url("/open")).await.unwrap_err();
    assert!(
        matches!(refused, Error::NotAuthenticated { .. }),
        "{refused:?}"
    );
}

/// A WebSocket upgrade of `url` as a page of `origin` would send it; the response's status.
async fn upgrade_from_page(url: &str, origin: &str) -> StatusCode {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    request
        .headers_mut()
        .insert("cookie", "session=alice-key".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status(),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_page_of_another_origin_is_refused_even_with_the_users_cookie() {
    let (_server, endpoint, app) = server().await;
    let own = format!("http://{}", app.addr);
    assert_eq!(
        upgrade_from_page(&app.url("/peer"), &own).await,
        StatusCode::SWITCHING_PROTOCOLS
    );
    assert_eq!(
        upgrade_from_page(&app.url("/peer"), "https://evil.example").await,
        StatusCode::FORBIDDEN
    );
    // An endpoint told to take another origin takes it, and still refuses the rest.
    let partner = serve(app_of(
        &endpoint.clone().allow_origin("https://partner.example/"),
    ))
    .await;
    assert_eq!(
        upgrade_from_page(&partner.url("/open"), "https://partner.example").await,
        StatusCode::SWITCHING_PROTOCOLS
    );
    assert_eq!(
        upgrade_from_page(&partner.url("/open"), "https://evil.example").await,
        StatusCode::FORBIDDEN
    );
    let any = serve(app_of(&endpoint.allow_any_origin())).await;
    assert_eq!(
        upgrade_from_page(&any.url("/open"), "https://evil.example").await,
        StatusCode::SWITCHING_PROTOCOLS
    );
}

#[tokio::test]
async fn a_request_that_is_not_an_upgrade_is_told_so() {
    let (_server, _endpoint, app) = server().await;
    let response = http_get(app.addr, "/open").await;
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
    assert!(
        response.to_lowercase().contains("upgrade: websocket"),
        "{response}"
    );
}

async fn websocket(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The server still serves a well-behaved peer through the route.
async fn still_serving(app: &App) {
    let client = Node::builder().build().unwrap();
    let server_id = client.connect(&app.url("/open")).await.unwrap();
    let n = client.run(remote!(server_id, [], { 6_u8 * 7 })).await;
    assert_eq!(n, Ok(42));
}

#[tokio::test]
async fn a_frame_over_the_limit_through_the_route_closes_the_connection() {
    let (_server, _endpoint, app) =
        server_with(Node::builder().id("server").max_frame_size(1024)).await;
    let mut ws = websocket(&app.url("/open")).await;
    ws.send(Message::Binary(common::hello_bytes("big").into()))
        .await
        .unwrap();
    // The header of 1 MiB against a 1 KiB limit, no payload: only a refusal from the header
    // closes this within the wait.
    ws.get_mut()
        .write_all(&frame_header(1 << 20))
        .await
        .unwrap();
    closed_by_server(&mut ws).await;

    // Before the hello, the first message is held to 64 KiB even under a large frame limit.
    let (_server, _endpoint, app) = server_with(
        Node::builder()
            .id("server")
            .handshake_timeout(Duration::from_secs(60)),
    )
    .await;
    let mut ws = websocket(&app.url("/open")).await;
    ws.get_mut()
        .write_all(&frame_header(32 << 20))
        .await
        .unwrap();
    closed_by_server(&mut ws).await;
    still_serving(&app).await;
}

#[tokio::test]
async fn an_upgrade_with_no_hello_is_closed_after_the_handshake_timeout() {
    let (server, _endpoint, app) = server_with(
        Node::builder()
            .id("server")
            .handshake_timeout(Duration::from_millis(300)),
    )
    .await;
    let started = Instant::now();
    let mut ws = websocket(&app.url("/open")).await;
    closed_by_server(&mut ws).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(server.peers().is_empty());
    still_serving(&app).await;
}

#[tokio::test]
async fn upgrades_beyond_max_connections_in_their_handshake_get_503() {
    let (_server, _endpoint, app) = server_with(
        Node::builder()
            .id("server")
            .handshake_timeout(Duration::from_secs(60))
            .max_connections(2),
    )
    .await;
    // Two upgrades that never say hello hold both places.
    let silent = [
        websocket(&app.url("/open")).await,
        websocket(&app.url("/open")).await,
    ];
    let third = tokio_tungstenite::connect_async(app.url("/open")).await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE)
        }
        other => panic!("expected 503, got {other:?}"),
    }
    // Once they go, there is room again.
    drop(silent);
    let client = Node::builder().id("late").build().unwrap();
    let mut connected = client.connect(&app.url("/open")).await;
    for _ in 0..50 {
        if connected.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        connected = client.connect(&app.url("/open")).await;
    }
    assert_eq!(connected, Ok(PeerId::new("server")));
}

#[tokio::test]
async fn the_apps_graceful_shutdown_lets_calls_finish_and_closes_its_peers() {
    let node = Node::builder().id("server").build().unwrap();
    let endpoint = Endpoint::new(&node);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let draining = node.clone();
    let served = tokio::spawn(
        axum::serve(listener, app(&endpoint))
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                draining.shutdown_gracefully(Duration::from_secs(5)).await;
            })
            .into_future(),
    );
    drop(endpoint);
    let url = format!("ws://{addr}/open");

    let client = Node::builder().id("client").build().unwrap();
    let server_id = client.connect(&url).await.unwrap();
    let slow = tokio::spawn(
        remote!(server_id, [], {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "done".to_string()
        })
        .on(&client)
        .into_future(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();

    // While the call runs, the node drains: a new peer is refused.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let late = Node::builder().id("late").build().unwrap();
    let refused = late.connect(&url).await.unwrap_err();
    let text = chain(&refused);
    assert!(text.contains("503 Service Unavailable"), "{text}");

    assert_eq!(slow.await.unwrap(), Ok("done".to_string()));
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("axum::serve returns")
        .unwrap()
        .unwrap();
    wait_until(|| !client.is_connected(&server_id)).await;
}

#[tokio::test]
async fn dropping_the_app_or_shutting_the_endpoint_closes_its_peers() {
    let (server, endpoint, mut app) = server().await;
    let client = Node::builder().id("client").build().unwrap();
    let server_id = client.connect(&app.url("/open")).await.unwrap();
    endpoint.shutdown();
    wait_until(|| !client.is_connected(&server_id)).await;
    let refused = client.connect(&app.url("/open")).await.unwrap_err();
    assert!(chain(&refused).contains("503"), "{refused:?}");

    // A second endpoint of the same node: stopping the app drops its router and endpoint.
    let second = Endpoint::new(&server);
    let other = serve(app_of(&second)).await;
    drop(second);
    let server_id = client.connect(&other.url("/open")).await.unwrap();
    let _ = app.stop.take();
    drop(other);
    wait_until(|| !client.is_connected(&server_id)).await;
    app.served.abort();
}

fn app_of(endpoint: &Endpoint) -> Router {
    Router::new().route("/open", endpoint.route())
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[tokio::test]
async fn peers_and_the_page_share_one_tls_port() {
    let certs = certificates(&["localhost", "127.0.0.1"]);
    let identity = TlsIdentity::from_pem(&certs.chain, &certs.key).unwrap();
    let server = Node::builder().id("server").build().unwrap();
    let endpoint = Endpoint::new(&server);
    let listener = TlsListener::bind("127.0.0.1:0", &identity).await.unwrap();
    let addr = axum::serve::Listener::local_addr(&listener).unwrap();
    let served = tokio::spawn(axum::serve(listener, app(&endpoint)).into_future());

    let client = Node::builder()
        .id("client")
        .trust_certificate_pem(&certs.authority)
        .build()
        .unwrap();
    let server_id = client
        .connect(&format!("wss://localhost:{}/open", addr.port()))
        .await
        .unwrap();
    let client_id = client.id().clone();
    wait_until(|| server.is_connected(&client_id)).await;
    let (b, c) = client
        .run(nested(server_id.clone(), client_id))
        .await
        .unwrap();
    assert_eq!((b.len(), c), (43, 44));
    let big = vec![7_u8; 1 << 20];
    let sum =
        remote!(server_id, [big: Vec<u8>], { big.iter().map(|&b| u64::from(b)).sum::<u64>() })
            .on(&client)
            .await;
    assert_eq!(sum, Ok(7 << 20));

    // A client that does not trust the authority is refused by TLS, with rustls's reason.
    let untrusting = Node::builder().id("untrusting").build().unwrap();
    let refused = untrusting
        .connect(&format!("wss://localhost:{}/open", addr.port()))
        .await
        .unwrap_err();
    let text = chain(&refused);
    assert!(text.contains("UnknownIssuer"), "{text}");

    // A client that opens TCP and never starts TLS does not keep others from connecting.
    let _silent = TcpStream::connect(addr).await.unwrap();
    let other = Node::builder()
        .id("other")
        .trust_certificate_pem(&certs.authority)
        .build()
        .unwrap();
    let reached = other
        .connect(&format!("wss://127.0.0.1:{}/open", addr.port()))
        .await;
    assert_eq!(reached, Ok(PeerId::new("server")));
    served.abort();
}

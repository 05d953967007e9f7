//! Deploying behind TLS and axum: one axum app serves its page and its peers on one `https://`
//! port; its session check names each peer; its graceful shutdown lets calls finish.
//!
//! A deployment reads its certificate chain and key from files and checks sessions its own way;
//! here a private authority is made on the spot with `rcgen` and the sessions are a fixed table.
//! Run with `cargo run --example web` (the root package builds remote-scope's `axum` and `tls`
//! features).

use std::future::IntoFuture;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{Html, Response};
use axum::routing::get;
use axum::Router;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use remote_scope::axum::{Endpoint, SessionPeer, TlsListener};
use remote_scope::{caller, remote, Error, Node, PeerId, TlsIdentity};

/// The app's session check, in front of the peer route: the session cookie names the peer, and
/// a request without a known session never reaches the node.
async fn session(mut request: Request, next: Next) -> Result<Response, StatusCode> {
    let cookies = request
        .headers()
        .get("cookie")
        .and_then(|c| c.to_str().ok())
        .unwrap_or_default();
    let user = match cookies.split("; ").find_map(|c| c.strip_prefix("session=")) {
        Some("k3y-of-alice") => "alice",
        Some("k3y-of-bob") => "bob",
        _ => return Err(StatusCode::UNAUTHORIZED),
    };
    request.extensions_mut().insert(SessionPeer::new(user));
    Ok(next.run(request).await)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (authority, chain, key) = private_authority("localhost");

    // The server: a node, and an axum app with the node's endpoint on `/peer`.
    let node = Node::builder()
        .id("server")
        // Per-peer authorization sees the ids the sessions proved.
        .authorize(|peer: &PeerId, _body: &str| peer.as_str() == "alice")
        .build()?;
    let endpoint = Endpoint::new(&node);
    let app = Router::new()
        .route("/peer", endpoint.route())
        .route_layer(middleware::from_fn(session))
        .route("/", get(|| async { Html("<h1>the app's page</h1>") }));
    drop(endpoint);
    let identity = TlsIdentity::from_pem(&chain, &key)?;
    let listener = TlsListener::bind("127.0.0.1:0", &identity).await?;
    let port = axum::serve::Listener::local_addr(&listener)?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let draining = node.clone();
    let served = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                // Calls under way finish (for up to 5 s), then every peer is told goodbye.
                draining.shutdown_gracefully(Duration::from_secs(5)).await;
            })
            .await
    });
    println!(
        "app on https://localhost:PORT: its page on /, its peers on wss://localhost:PORT/peer"
    );
    let url = format!("wss://localhost:{port}/peer");

    // Alice's client: her session cookie goes with the upgrade, and her hello names her.
    let alice = Node::builder()
        .id("alice")
        .trust_certificate_pem(&authority)
        .connect_header("cookie", "session=k3y-of-alice")
        .build()?;
    let server = alice.connect(&url).await?;
    let (b, c) = alice
        .run(nested(server.clone(), alice.id().clone()))
        .await?;
    println!(
        "alice: nested demo over wss://: {} numbers, then {c}",
        b.len()
    );
    let seen = remote!(server, [], { caller() }).on(&alice).await?;
    println!(
        "alice: the server knows her as {}",
        seen.map_or("nobody".into(), |p| p.to_string())
    );

    // Bob's session is good, but the node's policy lets him run nothing.
    let bob = Node::builder()
        .id("bob")
        .trust_certificate_pem(&authority)
        .connect_header("cookie", "session=k3y-of-bob")
        .build()?;
    let server = bob.connect(&url).await?;
    let denied = remote!(server, [], { 6 * 7 }).on(&bob).await;
    match denied {
        Err(Error::NotAuthorized { .. }) => {
            println!("bob: connected, but not authorized to run that")
        }
        other => println!("bob: {}", outcome(other)),
    }

    // No session: the app's middleware refuses the upgrade and the node never sees the peer.
    let stranger = Node::builder()
        .id("stranger")
        .trust_certificate_pem(&authority)
        .build()?;
    println!("no session: {}", outcome(stranger.connect(&url).await));

    // Alice's session, another name in the hello: refused as not authenticated.
    let impostor = Node::builder()
        .id("mallory")
        .trust_certificate_pem(&authority)
        .connect_header("cookie", "session=k3y-of-alice")
        .build()?;
    println!(
        "mallory with alice's cookie: {}",
        outcome(impostor.connect(&url).await)
    );

    // The app shuts down while one of alice's calls runs: the call finishes, then serve returns.
    let server = PeerId::new("server");
    let slow = tokio::spawn(
        remote!(server, [], {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "finished".to_string()
        })
        .on(&alice)
        .into_future(),
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = stop.send(());
    println!("shutting down: the call under way {}", outcome(slow.await?));
    served.await??;
    // The server told alice goodbye as it stopped; her node notices at once or nearly.
    for _ in 0..100 {
        if !alice.is_connected(&server) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "axum::serve returned; alice connected: {}",
        alice.is_connected(&server)
    );
    Ok(())
}

fn outcome<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Ok(value) => format!("{value:?}"),
        // With its sources: the HTTP status, rustls's reason.
        Err(e) => {
            let mut text = format!("refused ({e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            // The port changes from run to run.
            let text = text + ")";
            match text.split_once("localhost:") {
                Some((before, after)) => {
                    let rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
                    format!("{before}localhost:PORT{rest}")
                }
                None => text,
            }
        }
    }
}

/// The README's nested demo: server, then client, then server again.
async fn nested(server: PeerId, client: PeerId) -> Result<(Vec<u64>, u64), Error> {
    remote!(server, [server: PeerId, client: PeerId], {
        let a: u64 = 42;
        let b: Vec<u64> = remote!(client, [a: u64], { vec![42_u64; a as usize + 1] }).await?;
        remote!(server, [a: u64, b: Vec<u64>], { (b, a + 2) }).await
    })
    .await?
}

/// A certificate authority (PEM) and a certificate it signed for `name`, with its key.
fn private_authority(name: &str) -> (String, String, String) {
    let authority_key = KeyPair::generate().expect("a key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let authority = params.self_signed(&authority_key).expect("a certificate");
    let issuer = Issuer::new(params, authority_key);
    let key = KeyPair::generate().expect("a key");
    let certificate = CertificateParams::new(vec![name.to_owned()])
        .expect("parameters")
        .signed_by(&key, &issuer)
        .expect("a certificate");
    (authority.pem(), certificate.pem(), key.serialize_pem())
}

//! wss:// between native peers, with a certificate authority made at test time: the nested
//! demo and a 1 MiB capture over TLS, and the ways a certificate is refused.

mod common;

use std::time::{Duration, Instant};

use common::certs::{certificates, Certificates};
use common::{chain, nested, wait_until};
use remote_scope::{remote, Error, Node, Server, TlsIdentity};
use tokio::io::AsyncReadExt;

async fn tls_server(certs: &Certificates) -> (Node, Server) {
    let identity = TlsIdentity::from_pem(&certs.chain, &certs.key).expect("identity");
    let node = Node::builder().id("server").build().expect("server node");
    let server = node
        .listen_tls("127.0.0.1:0", &identity)
        .await
        .expect("listen");
    (node, server)
}

#[tokio::test]
async fn the_nested_demo_and_a_large_capture_run_over_wss() {
    let certs = certificates(&["localhost", "127.0.0.1"]);
    let (server, listener) = tls_server(&certs).await;
    assert!(listener.url().starts_with("wss://127.0.0.1:"));
    let client = Node::builder()
        .id("client")
        .trust_certificate_pem(&certs.authority)
        .build()
        .expect("client node");
    let server_id = client.connect(&listener.url()).await.expect("connect");
    let client_id = client.id().clone();
    wait_until(|| server.is_connected(&client_id)).await;

    let (b, c) = client
        .run(nested(server_id.clone(), client_id))
        .await
        .expect("nested demo");
    assert_eq!((b.len(), c), (43, 44));

    // 1 MiB each way: TLS records are at most 16 KiB, so this crosses many of them.
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let back = remote!(server_id, [big: Vec<u8>], { big.into_iter().rev().collect::<Vec<u8>>() })
        .on(&client)
        .await
        .expect("large capture");
    assert_eq!(back.len(), 1 << 20);
    assert!(back
        .iter()
        .rev()
        .enumerate()
        .all(|(i, &b)| b == (i % 251) as u8));

    // By name, too: the certificate names localhost.
    let again = Node::builder()
        .id("client-by-name")
        .trust_certificate_pem(&certs.authority)
        .build()
        .expect("client node");
    let url = listener.url().replace("127.0.0.1", "localhost");
    assert_eq!(
        again.connect(&url).await.expect("connect by name"),
        server_id
    );
}

/// The error's sources, as text: where the TLS library says why.
#[tokio::test]
async fn a_certificate_nobody_trusts_is_refused_with_a_clear_error() {
    let certs = certificates(&["127.0.0.1"]);
    let (server, listener) = tls_server(&certs).await;
    let client = Node::builder().id("client").build().expect("client node");
    let refused = client
        .connect(&listener.url())
        .await
        .expect_err("untrusted");
    assert!(matches!(refused, Error::Transport { .. }), "{refused:?}");
    let text = chain(&refused);
    assert!(text.contains("TLS handshake"), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert!(server.peers().is_empty());
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let certs = certificates(&["localhost"]);
    let (_server, listener) = tls_server(&certs).await;
    let client = Node::builder()
        .id("client")
        .trust_certificate_pem(&certs.authority)
        .build()
        .expect("client node");
    // Trusted issuer, but the certificate does not name 127.0.0.1.
    let refused = client
        .connect(&listener.url())
        .await
        .expect_err("wrong name");
    let text = chain(&refused);
    assert!(text.contains("not valid for name"), "{text}");
}

#[tokio::test]
async fn plain_ws_to_a_tls_server_fails_instead_of_hanging() {
    let certs = certificates(&["127.0.0.1"]);
    let (_server, listener) = tls_server(&certs).await;
    let client = Node::builder().id("client").build().expect("client node");
    let url = listener.url().replace("wss://", "ws://");
    let started = Instant::now();
    let refused = client.connect(&url).await.expect_err("not TLS");
    assert!(matches!(refused, Error::Transport { .. }), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_client_that_never_starts_tls_is_closed_after_the_handshake_timeout() {
    let certs = certificates(&["127.0.0.1"]);
    let identity = TlsIdentity::from_pem(&certs.chain, &certs.key).expect("identity");
    let node = Node::builder()
        .id("server")
        .handshake_timeout(Duration::from_millis(300))
        .build()
        .expect("server node");
    let listener = node
        .listen_tls("127.0.0.1:0", &identity)
        .await
        .expect("listen");
    let mut silent = tokio::net::TcpStream::connect(listener.local_addr())
        .await
        .expect("tcp");
    let started = Instant::now();
    let mut byte = [0_u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut byte))
        .await
        .expect("closed within the timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn pem_that_is_not_a_certificate_and_key_is_a_setup_error() {
    let certs = certificates(&["127.0.0.1"]);
    let other = certificates(&["127.0.0.1"]);
    for (chain, key) in [
        ("", certs.key.as_str()),
        (certs.chain.as_str(), ""),
        (certs.chain.as_str(), other.key.as_str()),
    ] {
        let refused = TlsIdentity::from_pem(chain, key).expect_err("refused");
        assert!(matches!(refused, Error::Setup { .. }), "{refused:?}");
    }
    let refused = Node::builder()
        .trust_certificate_pem("")
        .build()
        .expect_err("nothing to trust");
    assert!(matches!(refused, Error::Setup { .. }));
}

/// A server that speaks TLS but not HTTP: it answers every upgrade with a 400, and records
/// whether each client's handshake was full or resumed a session.
// `ring`, as the library's own TLS uses (see its `provider`), deprecated for lacking
// post-quantum key exchange.
#[allow(deprecated)]
async fn resumption_recorder(
    certs: &Certificates,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<tokio_rustls::rustls::HandshakeKind>>>,
) {
    use tokio::io::AsyncWriteExt;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{crypto::ring, ServerConfig};

    let chain = CertificateDer::pem_slice_iter(certs.chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("chain");
    let key = PrivateKeyDer::from_pem_slice(certs.key.as_bytes()).expect("key");
    let config = ServerConfig::builder_with_provider(std::sync::Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("wss://{}", listener.local_addr().expect("address"));
    let kinds = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = std::sync::Arc::clone(&kinds);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            if let Some(kind) = tls.get_ref().1.handshake_kind() {
                recorded.lock().expect("kinds").push(kind);
            }
            // The request, then a refusal: the client reads the session tickets sent before it.
            let mut request = [0_u8; 1024];
            let _ = tls.read(&mut request).await;
            let _ = tls
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            let _ = tls.shutdown().await;
        }
    });
    (url, kinds)
}

#[tokio::test]
async fn a_node_connecting_again_resumes_its_tls_session() {
    use tokio_rustls::rustls::HandshakeKind;

    let certs = certificates(&["127.0.0.1"]);
    let (url, kinds) = resumption_recorder(&certs).await;
    let client = Node::builder()
        .id("client")
        .trust_certificate_pem(&certs.authority)
        .build()
        .expect("client node");
    for _ in 0..3 {
        let refused = client
            .connect(&url)
            .await
            .expect_err("not a WebSocket server");
        assert!(chain(&refused).contains("400"), "{}", chain(&refused));
    }
    // Another node makes its own settings: it has no session to resume.
    let other = Node::builder()
        .id("other")
        .trust_certificate_pem(&certs.authority)
        .build()
        .expect("other node");
    let _ = other
        .connect(&url)
        .await
        .expect_err("not a WebSocket server");
    wait_until(|| kinds.lock().expect("kinds").len() == 4).await;
    assert_eq!(
        *kinds.lock().expect("kinds"),
        [
            HandshakeKind::Full,
            HandshakeKind::Resumed,
            HandshakeKind::Resumed,
            HandshakeKind::Full
        ]
    );
}

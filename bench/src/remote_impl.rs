//! remote!: a body that echoes its capture, between two nodes over a WebSocket.

use std::time::{Duration, Instant};

use remote_scope::{remote, Error, Node, PeerId, Server};
use serde_bytes::ByteBuf;

use futures::future::BoxFuture;

use crate::many::Client;

/// Both nodes get a middleware layer that passes every frame on (`--middleware`): what a
/// logging or metrics layer costs at the least.
pub static WITH_MIDDLEWARE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The nodes talk `wss://` (`--tls`): a server certificate made at start, which the client
/// trusts.
pub static OVER_TLS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct PassOn;

impl remote_scope::Middleware for PassOn {}

fn builder() -> remote_scope::NodeBuilder {
    let builder = Node::builder();
    if WITH_MIDDLEWARE.load(std::sync::atomic::Ordering::Relaxed) {
        builder.middleware(PassOn)
    } else {
        builder
    }
}

pub struct Remote {
    pub client: Node,
    pub server_id: PeerId,
    /// How another client reaches the server.
    dial: Dial,
    _server: Node,
    /// What keeps the server accepting (its listener, or its accept loop).
    _accepting: Box<dyn std::any::Any + Send + Sync>,
}

impl Remote {
    /// Over the node's own WebSocket transport.
    pub async fn start() -> Result<Remote, Error> {
        let server = builder().id("bench-server").build()?;
        let (listener, client, authority): (Server, Node, _) =
            if OVER_TLS.load(std::sync::atomic::Ordering::Relaxed) {
                let (authority, chain, key) = certificate();
                let identity = remote_scope::TlsIdentity::from_pem(chain, key)?;
                let listener = server.listen_tls("127.0.0.1:0", &identity).await?;
                let client = builder().trust_certificate_pem(&authority);
                (
                    listener,
                    client.id("bench-client").build()?,
                    Some(authority),
                )
            } else {
                let listener = server.listen("127.0.0.1:0").await?;
                (listener, builder().id("bench-client").build()?, None)
            };
        let server_id = client.connect(&listener.url()).await?;
        let url = listener.url();
        let dial = Dial {
            connect: Box::new(move |node: Node| {
                let url = url.clone();
                Box::pin(async move { Ok(node.connect(&url).await?) })
            }),
            authority,
        };
        Ok(Remote::new(
            client,
            server_id,
            dial,
            server,
            Box::new(listener),
        ))
    }

    pub fn new(
        client: Node,
        server_id: PeerId,
        dial: Dial,
        server: Node,
        accepting: Box<dyn std::any::Any + Send + Sync>,
    ) -> Remote {
        Remote {
            client,
            server_id,
            dial,
            _server: server,
            _accepting: accepting,
        }
    }

    /// `n` client peers of the server, a node each, connected.
    pub async fn clients(&self, n: usize) -> Result<Vec<Box<dyn Client>>, crate::BenchError> {
        let mut clients: Vec<Box<dyn Client>> = Vec::with_capacity(n);
        for i in 0..n {
            let mut node = builder().id(format!("bench-client-{i}"));
            if let Some(authority) = &self.dial.authority {
                node = node.trust_certificate_pem(authority);
            }
            let node = node.build()?;
            let server = (self.dial.connect)(node.clone()).await?;
            clients.push(Box::new(OneClient { node, server }));
        }
        Ok(clients)
    }

    pub async fn sequential(&self, n: usize) -> Result<Vec<Duration>, Error> {
        let server = self.server_id.clone();
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let started = Instant::now();
            let back = self.client.run(echo(&server, i)).await?;
            samples.push(started.elapsed());
            check(back == i)?;
        }
        Ok(samples)
    }

    pub async fn pipelined(&self, run: crate::stats::Pipelined) -> Result<f64, crate::BenchError> {
        let server = &self.server_id;
        self.client
            .run(crate::stats::pipelined(run, |i| async move {
                Ok::<_, crate::BenchError>(echo(server, i).await? == i)
            }))
            .await
    }

    pub async fn bulk(&self, n: usize, size: usize) -> Result<f64, Error> {
        let server = self.server_id.clone();
        let data = ByteBuf::from(vec![7_u8; size]);
        let started = Instant::now();
        for _ in 0..n {
            // Captures are encoded from a reference to the local: no copy of the payload.
            let back: ByteBuf = self
                .client
                .run(remote!(server, [data: ByteBuf], { data }))
                .await?;
            check(back.len() == size)?;
        }
        Ok((n * size) as f64 / started.elapsed().as_secs_f64() / 1e6)
    }

    /// client -> server -> client -> server and back: one call that makes two nested hops.
    pub async fn nested(&self, n: usize) -> Result<Vec<Duration>, Error> {
        let (server, client) = (self.server_id.clone(), self.client.id().clone());
        let mut samples = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let started = Instant::now();
            let back = self
                .client
                .run(remote!(server, [client: PeerId, server: PeerId, i: u64], {
                    remote!(client, [server: PeerId, i: u64], {
                        remote!(server, [i: u64], { i }).await
                    })
                    .await?
                }))
                .await??;
            samples.push(started.elapsed());
            check(back == i)?;
        }
        Ok(samples)
    }
}

/// How another client reaches the server (connects a node to it: the server's id), with the
/// authority to trust over `wss://`.
pub struct Dial {
    pub connect:
        Box<dyn Fn(Node) -> BoxFuture<'static, Result<PeerId, crate::BenchError>> + Send + Sync>,
    pub authority: Option<String>,
}

struct OneClient {
    node: Node,
    server: PeerId,
}

impl Client for OneClient {
    fn call(&mut self, i: u64) -> futures::future::BoxFuture<'_, Result<bool, crate::BenchError>> {
        Box::pin(async move { Ok(self.node.run(echo(&self.server, i)).await? == i) })
    }
}

async fn echo(server: &PeerId, x: u64) -> Result<u64, Error> {
    remote!(server, [x: u64], { x }).await
}

fn check(ok: bool) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::Protocol {
            reason: "the echo came back different".into(),
            source: None,
        })
    }
}

/// An authority, and a certificate it signed for 127.0.0.1 with its key (PEM).
fn certificate() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let authority_key = KeyPair::generate().expect("a key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let authority = params.self_signed(&authority_key).expect("a certificate");
    let issuer = Issuer::new(params, authority_key);
    let key = KeyPair::generate().expect("a key");
    let certificate = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("parameters")
        .signed_by(&key, &issuer)
        .expect("a certificate");
    (authority.pem(), certificate.pem(), key.serialize_pem())
}

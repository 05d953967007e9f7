//! The nested demo over `wss://`: a server with a certificate, a client that trusts the
//! authority that signed it, and one that does not.
//!
//! A deployment would read the certificate chain and key from files (a certificate from its
//! authority or from Let's Encrypt); here a private authority is made on the spot with `rcgen`.
//! Run with `cargo run --example tls` (the root package builds remote-scope's `tls` feature).

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use remote_scope::{remote, Error, Node, PeerId, TlsIdentity};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (authority, chain, key) = private_authority("127.0.0.1");

    // The server: its certificate chain and key, and `listen_tls` instead of `listen`.
    let identity = TlsIdentity::from_pem(&chain, &key)?;
    let server = Node::builder().id("server").build()?;
    let listener = server.listen_tls("127.0.0.1:0", &identity).await?;
    let url = listener.url();
    let (address, _port) = url.rsplit_once(':').expect("a port");
    println!("listening on {address}:PORT");

    // A client that trusts the authority: the system's roots would do for a public one.
    let client = Node::builder()
        .id("client")
        .trust_certificate_pem(&authority)
        .build()?;
    let server_id = client.connect(&listener.url()).await?;
    let client_id = client.id().clone();
    let (b, c) = client.run(nested(server_id, client_id)).await?;
    println!("nested demo over wss://: {} numbers, then {c}", b.len());

    // A client that does not: refused before anything is sent.
    let stranger = Node::builder().id("stranger").build()?;
    match stranger.connect(&listener.url()).await {
        // `Debug` adds the sources: why TLS refused.
        Err(e) => println!("a client that does not trust the authority: {e:?}"),
        Ok(_) => println!("a client that does not trust the authority connected"),
    }
    Ok(())
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

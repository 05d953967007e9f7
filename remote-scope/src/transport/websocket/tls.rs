//! TLS for the native WebSocket transport (feature `tls`, rustls with the `ring` provider): a
//! client's `wss://` and a server's certificate.
//!
//! A client trusts the system's root certificates and any the node was told to trust
//! ([`NodeBuilder::trust_certificate_pem`](crate::NodeBuilder::trust_certificate_pem)), which
//! is how a private deployment with its own certificate authority is reached.

use std::fmt;
use std::sync::{Arc, OnceLock};

use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::byte_stream::ByteStream;
use crate::error::Error;

/// A server's certificate chain and private key, for [`Node::listen_tls`](crate::Node::listen_tls).
///
/// ```
/// use remote_scope::{Error, TlsIdentity};
///
/// // Not PEM: a clear error, not a panic.
/// let refused = TlsIdentity::from_pem("not a certificate", "not a key");
/// assert!(matches!(refused, Err(Error::Setup { .. })));
/// ```
#[derive(Clone)]
pub struct TlsIdentity {
    acceptor: TlsAcceptor,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// From PEM text: the certificate chain (the server's certificate first, then any
    /// intermediates) and its private key (PKCS#8, PKCS#1 or SEC1). Fails with
    /// [`Error::Setup`] if either cannot be read or the key does not fit the certificate.
    pub fn from_pem(
        certificate_chain: impl AsRef<[u8]>,
        private_key: impl AsRef<[u8]>,
    ) -> Result<TlsIdentity, Error> {
        let chain = CertificateDer::pem_slice_iter(certificate_chain.as_ref())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| setup(format!("the certificate chain is not PEM: {e}")))?;
        if chain.is_empty() {
            return Err(setup("the certificate chain holds no certificate".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(private_key.as_ref())
            .map_err(|e| setup(format!("the private key is not PEM: {e}")))?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| setup(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| setup(format!("the certificate and key cannot be used: {e}")))?;
        Ok(TlsIdentity {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The server's side of the TLS handshake on an accepted connection.
    pub(super) async fn accept(&self, tcp: TcpStream) -> std::io::Result<ByteStream> {
        let tls = self.accept_tls(tcp).await?;
        Ok(ByteStream::Tls(Box::new(tls.into())))
    }

    /// The same, for a listener that hands the TLS stream on as it is.
    pub(super) async fn accept_tls(
        &self,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        self.acceptor.accept(tcp).await
    }
}

fn setup(reason: String) -> Error {
    Error::Setup {
        reason: format!("TLS: {reason}"),
    }
}

/// rustls's `ring` provider, named rather than taken from the process default, which another
/// crate in the program may have set to something else or left ambiguous. rustls deprecates it
/// for lacking post-quantum key exchange (its `aws-lc-rs` provider has it, at the cost of a
/// C library built with CMake); `ring` is what the NATS transport builds already.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's root certificates, read once per process.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "a system root certificate could not be read");
        }
        found.certs
    })
}

/// Checks PEM text given to [`NodeBuilder::trust_certificate_pem`](crate::NodeBuilder::trust_certificate_pem).
pub(crate) fn check_trusted(pem: &[u8]) -> Result<(), Error> {
    trusted(pem).map(drop)
}

fn trusted(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup(format!("a certificate to trust is not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(setup("the text given to trust holds no certificate".into()));
    }
    Ok(certs)
}

/// The node's TLS settings as a client, kept in `kept`: made at its first `wss://` connect,
/// trusting the system's roots and `extra` (PEM texts, the node's, the same every time), and
/// kept, so that later connects (reconnects above all) neither read the roots into a store again
/// nor make a full handshake where the server lets them resume the session they had (rustls
/// keeps a client's sessions in its settings).
fn client_settings(
    kept: &OnceLock<Arc<ClientConfig>>,
    extra: &[Vec<u8>],
) -> Result<Arc<ClientConfig>, Error> {
    if let Some(config) = kept.get() {
        return Ok(Arc::clone(config));
    }
    let made = Arc::new(client_config(extra)?);
    // Two first connects at once may both make one: both use the one kept.
    Ok(Arc::clone(kept.get_or_init(|| made)))
}

/// The client's side of the TLS handshake with `host`, with the node's settings (see
/// [`client_settings`]).
pub(super) async fn connect(
    tcp: TcpStream,
    host: &str,
    kept: &OnceLock<Arc<ClientConfig>>,
    extra: &[Vec<u8>],
) -> Result<ByteStream, Error> {
    let config = client_settings(kept, extra)?;
    // An IPv6 host comes with its brackets, which a server name has not.
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(name.to_owned()).map_err(|e| Error::BadUrl {
        url: host.to_owned(),
        reason: format!("not a name TLS can check a certificate against: {e}"),
    })?;
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| Error::transport_caused(format!("the TLS handshake with {host} failed"), e))?;
    Ok(ByteStream::Tls(Box::new(tls.into())))
}

/// A client's settings trusting the system's roots and `extra` (PEM texts).
fn client_config(extra: &[Vec<u8>]) -> Result<ClientConfig, Error> {
    let mut roots = RootCertStore::empty();
    // A system root rustls cannot use is skipped, as browsers do.
    let (_added, _skipped) = roots.add_parsable_certificates(system_roots().iter().cloned());
    for pem in extra {
        for cert in trusted(pem)? {
            roots
                .add(cert)
                .map_err(|e| setup(format!("a certificate to trust cannot be used: {e}")))?;
        }
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

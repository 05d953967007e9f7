//! `--tls`: a certificate authority made at start, and a certificate it signed for 127.0.0.1
//! and localhost. The authority's key is new each run; Chromium is told to trust it by the
//! SHA-256 of its public key, so no system store is touched.

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData};
use remote_scope::TlsIdentity;

pub struct Made {
    pub identity: TlsIdentity,
    /// Base64 of the SHA-256 of the authority's SubjectPublicKeyInfo.
    pub authority_spki_sha256: String,
}

pub fn make() -> Result<Made, String> {
    let failed = |e: rcgen::Error| format!("could not make a certificate: {e}");
    let ca_key = KeyPair::generate().map_err(failed)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(
        DnType::CommonName,
        "remote-scope browser-server test authority",
    );
    let authority = ca.self_signed(&ca_key).map_err(failed)?;
    let spki = ring::digest::digest(&ring::digest::SHA256, &ca_key.subject_public_key_info());
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(failed)?;
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(failed)?
        .signed_by(&key, &issuer)
        .map_err(failed)?;
    // The chain carries the authority, so that Chromium finds the key it was told to trust.
    let chain = format!("{}{}", server.pem(), authority.pem());
    let identity = TlsIdentity::from_pem(chain, key.serialize_pem()).map_err(|e| e.to_string())?;
    Ok(Made {
        identity,
        authority_spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki.as_ref()),
    })
}

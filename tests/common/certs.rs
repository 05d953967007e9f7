//! Certificates made at test time: an authority, and a server certificate it signed.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A certificate authority, and a server certificate it signed for `names`.
pub struct Certificates {
    pub authority: String,
    pub chain: String,
    pub key: String,
}

pub fn certificates(names: &[&str]) -> Certificates {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let authority = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let server = CertificateParams::new(names)
        .expect("server params")
        .signed_by(&key, &issuer)
        .expect("server certificate");
    Certificates {
        authority: authority.pem(),
        chain: server.pem(),
        key: key.serialize_pem(),
    }
}

//! A throw-away certificate authority and server certificate for TLS tests.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

/// PEM files written by [`write_test_pki`].
pub struct TestPki {
    pub ca_pem: String,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Make a CA and a server certificate for `localhost` / 127.0.0.1, and write them under `dir`.
pub fn write_test_pki(dir: &Path) -> TestPki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "locker-hub test CA");
    let ca_key = KeyPair::generate().expect("ca key");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");

    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params
        .distinguished_name
        .push(DnType::CommonName, "locker-hub test server");
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("cert");

    let pki = TestPki {
        ca_pem: ca.pem(),
        ca_file: dir.join("ca.pem"),
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
    };
    std::fs::write(&pki.ca_file, &pki.ca_pem).expect("write ca");
    std::fs::write(&pki.cert_file, cert.pem()).expect("write cert");
    std::fs::write(&pki.key_file, key.serialize_pem()).expect("write key");
    pki
}

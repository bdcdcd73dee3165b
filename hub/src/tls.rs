//! TLS termination shared by the MQTT front door and the web listener.
//!
//! Handshakes run in their own tasks with a deadline. rumqttd's own TLS listener does the
//! handshake inside its accept loop with no timeout, so one idle TCP connection stalls every new
//! client; terminating TLS here, before the broker, removes that failure mode.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

/// A TLS handshake that has not finished by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read certificate file {path}: {source}")]
    Cert {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("certificate file {0} holds no certificate")]
    NoCert(String),
    #[error("cannot read private key file {path}: {source}")]
    Key {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error("client CA {path} cannot be used: {source}")]
    ClientCa { path: String, source: rustls::Error },
    #[error("certificate {cert} and key {key} do not work together: {source}")]
    Config {
        cert: String,
        key: String,
        source: rustls::Error,
    },
}

/// Build a TLS acceptor from PEM files (certificate chain first, then a PKCS#8, PKCS#1 or SEC1 key).
pub fn acceptor(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<TlsAcceptor, TlsSetupError> {
    acceptor_with_clients(cert, key, alpn, None)
}

/// Like [`acceptor`]; with `client_ca`, clients may present a certificate, which must then chain
/// to that CA (PEM) or the handshake fails. Clients without one are still accepted.
pub fn acceptor_with_clients(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
    client_ca: Option<&Path>,
) -> Result<TlsAcceptor, TlsSetupError> {
    let cert_name = cert.display().to_string();
    let key_name = key.display().to_string();
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsSetupError::Cert {
            path: cert_name.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsSetupError::NoCert(cert_name));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsSetupError::Key {
        path: key_name.clone(),
        source,
    })?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let ca_name = ca.display().to_string();
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|source| TlsSetupError::Cert {
                    path: ca_name.clone(),
                    source,
                })?
            {
                roots.add(c).map_err(|source| TlsSetupError::ClientCa {
                    path: ca_name.clone(),
                    source,
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsSetupError::ClientCa {
                    path: ca_name,
                    source: rustls::Error::General(e.to_string()),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config =
        builder
            .with_single_cert(chain, key_der)
            .map_err(|source| TlsSetupError::Config {
                cert: cert_name,
                key: key_name,
                source,
            })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener that yields connections whose TLS handshake has completed. Each handshake runs in
/// its own task, so slow or idle clients never hold up others.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Start accepting on `listener`. The accept task ends when the `TlsListener` is dropped.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            debug!(error = %e, "TLS accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    _ = tx.closed() => return,
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready: rx })
    }

    /// The next connection with a finished handshake; `None` once the accept task has stopped.
    pub async fn next(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.ready.recv().await
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.next().await {
            Some(conn) => conn,
            // The accept task only stops when this listener is dropped, so this cannot happen
            // while axum holds it; park forever rather than spin.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The handshake-signature checks, the same for every verifier here: by the provider's
/// algorithms (each verifier judges the certificate itself by its own rule).
macro_rules! provider_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// A TLS client configuration that trusts exactly the first certificate in the PEM file `cert`:
/// how the hub's own tools (`locker-hub user add`, the MQTT health probe) talk to the hub, whose
/// certificate may be self-signed and name no host they could check.
pub fn pinned_client(cert: &Path) -> Result<rustls::ClientConfig, String> {
    let pinned = CertificateDer::from_pem_file(cert)
        .map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    pinned_to(vec![crate::files::fingerprint(&pinned)], None)
}

/// A TLS client configuration that trusts exactly the certificates whose SHA-256 fingerprints
/// are `sha256` (lowercase hex), whatever name they carry, and presents `identity` (a
/// certificate chain and its key, PEM files) when the server asks: how one hub reaches another
/// it is paired with.
pub fn pinned_to(
    sha256: Vec<String>,
    identity: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { sha256, provider }));
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
            let key_der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))
        }
    }
}

/// Trusts exactly the certificates with the given fingerprints (see [`pinned_to`]).
#[derive(Debug)]
struct Pinned {
    sha256: Vec<String>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let seen = crate::files::fingerprint(end_entity.as_ref());
        if self.sha256.contains(&seen) {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the peer presented a certificate (SHA-256 {seen}) other than the one it was \
                 paired or configured with"
            )))
        }
    }

    provider_signatures!();
}

/// A TLS acceptor with the hub's certificate that asks every client for a certificate and
/// accepts any (its possession of the key is still proven by the handshake) or none: the sync
/// listener decides by the certificate's fingerprint which hub it is (`locker_app::pairing`).
pub fn acceptor_any_client_cert(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsSetupError> {
    let cert_name = cert.display().to_string();
    let key_name = key.display().to_string();
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsSetupError::Cert {
            path: cert_name.clone(),
            source,
        })?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsSetupError::Key {
        path: key_name.clone(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsSetupError::Config {
            cert: cert_name.clone(),
            key: key_name.clone(),
            source,
        })?
        .with_client_cert_verifier(Arc::new(AnyClientCert { provider }))
        .with_single_cert(chain, key_der)
        .map_err(|source| TlsSetupError::Config {
            cert: cert_name,
            key: key_name,
            source,
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// See [`acceptor_any_client_cert`].
#[derive(Debug)]
struct AnyClientCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::server::danger::ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    provider_signatures!();
}

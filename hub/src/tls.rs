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
    #[error("certificate {cert} and key {key} do not work together: {source}")]
    Config {
        cert: String,
        key: String,
        source: rustls::Error,
    },
}

/// Build a TLS acceptor from PEM files (certificate chain first, then a PKCS#8, PKCS#1 or SEC1 key).
pub fn acceptor(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<TlsAcceptor, TlsSetupError> {
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
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
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

//! The broker's front door: the public MQTT ports.
//!
//! Each connection is read up to the fixed part of its CONNECT packet (protocol level and the
//! username flag), then spliced onto the matching internal rumqttd listener; from there on the
//! bytes pass through untouched. The peek is the only MQTT parsing done here.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

use super::InternalPorts;
use crate::shutdown::Shutdown;
use crate::tls::TlsListener;

/// A client that has not sent its CONNECT by then is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts the MQTT clients that are connected through the front door.
#[derive(Debug, Default)]
pub struct ClientCount(AtomicUsize);

impl ClientCount {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

struct Counted(Arc<ClientCount>);

impl Counted {
    fn new(count: Arc<ClientCount>) -> Self {
        count.0.fetch_add(1, Ordering::Relaxed);
        Counted(count)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Everything a front-door connection needs.
#[derive(Clone)]
pub struct FrontDoor {
    pub internal: InternalPorts,
    pub clients: Arc<ClientCount>,
    /// Becomes `true` at shutdown: stop accepting and close every client connection.
    pub shutdown: Shutdown,
}

impl FrontDoor {
    /// Serve plain TCP clients on `listener` until shutdown.
    pub async fn serve_plain(self, listener: TcpListener) {
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(self.clone().connection(stream, peer));
                    }
                    Err(e) => {
                        debug!(error = %e, "MQTT accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.wait() => return,
            }
        }
    }

    /// Serve TLS clients until shutdown.
    pub async fn serve_tls(self, mut listener: TlsListener) {
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                next = listener.next() => match next {
                    Some((stream, peer)) => {
                        tokio::spawn(self.clone().connection(stream, peer));
                    }
                    None => return,
                },
                _ = shutdown.wait() => return,
            }
        }
    }

    async fn connection<S>(self, mut client: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let head = match tokio::time::timeout(CONNECT_TIMEOUT, read_connect_head(&mut client)).await
        {
            Ok(Ok(head)) => head,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "not an MQTT CONNECT; closing");
                return;
            }
            Err(_) => {
                debug!(%peer, "no CONNECT within {CONNECT_TIMEOUT:?}; closing");
                return;
            }
        };
        let Some(target) = self.route(&head) else {
            info!(%peer, level = head.level, "MQTT client refused: anonymous clients are not allowed");
            let _ = client.write_all(&head.refusal()).await;
            let _ = client.shutdown().await;
            return;
        };
        let mut broker = match TcpStream::connect(target).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%peer, error = %e, "internal broker listener unreachable");
                return;
            }
        };
        let _ = broker.set_nodelay(true);
        if broker.write_all(&head.bytes).await.is_err() {
            return;
        }
        let _counted = Counted::new(self.clients.clone());
        let mut shutdown = self.shutdown.clone();
        if let Ok(client_end) = broker.local_addr() {
            tokio::spawn(super::nodelay::after_connect(self.internal, client_end));
        }
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client, &mut broker) => {
                if let Err(e) = result {
                    debug!(%peer, error = %e, "MQTT connection ended");
                }
            }
            _ = shutdown.wait() => {}
        }
    }

    fn route(&self, head: &ConnectHead) -> Option<SocketAddr> {
        let ports = &self.internal;
        match (head.level, head.has_username) {
            (5, true) => Some(ports.v5_auth),
            (5, false) => ports.v5_anon,
            (_, true) => Some(ports.v4_auth),
            (_, false) => ports.v4_anon,
        }
    }
}

/// The start of a CONNECT packet: enough bytes to know the protocol level and whether the client
/// sent a username.
#[derive(Debug, PartialEq, Eq)]
pub struct ConnectHead {
    /// 4 for MQTT 3.1.1, 5 for MQTT 5.
    pub level: u8,
    pub has_username: bool,
    /// Every byte read so far, to be forwarded unchanged.
    pub bytes: Vec<u8>,
}

impl ConnectHead {
    /// CONNACK refusing the client as not authorised, in its own protocol version.
    fn refusal(&self) -> Vec<u8> {
        if self.level == 5 {
            // Reason 0x87 "Not authorized", empty properties.
            vec![0x20, 0x03, 0x00, 0x87, 0x00]
        } else {
            // Return code 5 "Connection Refused, not authorized".
            vec![0x20, 0x02, 0x00, 0x05]
        }
    }
}

/// Read the fixed header and the protocol name, level and flags of a CONNECT packet.
pub async fn read_connect_head<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<ConnectHead> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut bytes = Vec::with_capacity(16);
    let first = stream.read_u8().await?;
    bytes.push(first);
    if first != 0x10 {
        return Err(bad("first packet is not CONNECT"));
    }
    // Remaining length: 1 to 4 bytes, 7 bits each.
    let mut remaining: usize = 0;
    for i in 0..4 {
        let b = stream.read_u8().await?;
        bytes.push(b);
        remaining |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return Err(bad("malformed remaining length"));
        }
    }
    // Protocol name "MQTT" (length-prefixed), level, connect flags.
    let mut var = [0u8; 8];
    if remaining < var.len() {
        return Err(bad("CONNECT too short"));
    }
    stream.read_exact(&mut var).await?;
    bytes.extend_from_slice(&var);
    if var[..6] != [0x00, 0x04, b'M', b'Q', b'T', b'T'] {
        return Err(bad(
            "unsupported protocol name (MQTT 3.1.1 and 5 are supported)",
        ));
    }
    let level = var[6];
    if level != 4 && level != 5 {
        return Err(bad(
            "unsupported protocol level (MQTT 3.1.1 and 5 are supported)",
        ));
    }
    Ok(ConnectHead {
        level,
        has_username: var[7] & 0x80 != 0,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn head(bytes: &[u8]) -> io::Result<ConnectHead> {
        let mut r = bytes;
        read_connect_head(&mut r).await
    }

    #[tokio::test]
    async fn reads_level_and_username_flag() {
        // MQTT 3.1.1 CONNECT, flags 0xC2 (username, password, clean session).
        let pkt = [
            0x10, 0x10, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0xC2, 0x00, 0x3C,
        ];
        let h = head(&pkt).await.unwrap();
        assert_eq!(h.level, 4);
        assert!(h.has_username);
        assert_eq!(h.bytes, pkt[..10]);
        // MQTT 5, anonymous, two-byte remaining length.
        let pkt = [
            0x10, 0x80, 0x01, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02,
        ];
        let h = head(&pkt).await.unwrap();
        assert_eq!((h.level, h.has_username), (5, false));
    }

    #[tokio::test]
    async fn rejects_what_is_not_a_supported_connect() {
        for pkt in [
            &[0x30, 0x02, 0x00, 0x00][..], // PUBLISH first
            &[0x10, 0x0C, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p'], // MQTT 3.1
            &[0x10, 0x0A, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x03, 0x02], // bad level
            &[0x10, 0x02, 0x00, 0x04],     // too short
            &[0x10, 0xFF, 0xFF, 0xFF, 0xFF], // bad length
            &[0x10],                       // truncated
        ] {
            assert!(head(pkt).await.is_err(), "{pkt:02x?}");
        }
    }
}

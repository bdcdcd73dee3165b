//! The embedded MQTT broker.
//!
//! rumqttd runs on its own threads, listening only on loopback ports that are private to this
//! process ("internal listeners"). Clients on the LAN reach it through the [`front`] door, which
//! owns the public plain and TLS ports:
//!
//! ```text
//!  bank / kiosk ──TCP or TLS──▶ front door ──loopback──▶ rumqttd internal listener
//!                               (TLS, timeouts,          v4 or v5, with or without the
//!                                routing, counting)      username/password hook
//! ```
//!
//! Why not expose rumqttd directly: its TLS handshake runs in the accept loop without a timeout
//! (one idle connection stalls every new client), it has no way to stop accepting at shutdown,
//! it needs one port per protocol version, and it cannot let anonymous clients in while checking
//! the passwords of those who send one. The front door fixes all four with a byte-level peek at
//! the CONNECT packet; the broker itself still does all MQTT and all password checks (its auth
//! hook calls [`auth::Authenticator`]).
//!
//! rumqttd keeps nothing on disk: retained messages and sessions vanish on restart, so nothing
//! the hub promises depends on the broker remembering.

pub mod auth;
pub mod front;
pub mod nodelay;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use auth::Authenticator;

/// Router and connection limits, sized for a mail-room mini-PC (see `docs/ARCHITECTURE.md`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_payload_bytes: usize,
}

/// Where the broker's internal listeners are. `None` where the listener does not exist
/// (no anonymous listeners unless anonymous clients are allowed).
#[derive(Debug, Clone, Copy)]
pub struct InternalPorts {
    pub v4_auth: SocketAddr,
    pub v5_auth: SocketAddr,
    pub v4_anon: Option<SocketAddr>,
    pub v5_anon: Option<SocketAddr>,
}

/// Why the broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot reserve a loopback port for the broker: {0}")]
    Port(std::io::Error),
    #[error("cannot start the broker thread: {0}")]
    Thread(std::io::Error),
    #[error("the broker did not start listening within {0:?}")]
    NotReady(Duration),
}

/// Start rumqttd on a dedicated thread (its `start()` blocks forever and runs its own runtimes)
/// and wait until its listeners accept connections.
pub fn start(
    limits: &Limits,
    authenticator: Arc<Authenticator>,
    allow_anonymous: bool,
) -> Result<InternalPorts, BrokerError> {
    let ports = InternalPorts {
        v4_auth: free_loopback_port()?,
        v5_auth: free_loopback_port()?,
        v4_anon: allow_anonymous.then(free_loopback_port).transpose()?,
        v5_anon: allow_anonymous.then(free_loopback_port).transpose()?,
    };
    let server = |name: &str, listen: SocketAddr, auth: Option<Arc<Authenticator>>| {
        let mut connections = ConnectionSettings {
            // The front door already gave the client its own deadline for CONNECT; this one
            // covers the loopback leg.
            connection_timeout_ms: 5_000,
            max_payload_size: limits.max_payload_bytes,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        };
        if let Some(auth) = auth {
            connections.set_auth_handler(move |client_id, user, pass| {
                let auth = auth.clone();
                async move {
                    // argon2 is CPU-bound by design: keep it off the listener's event loop.
                    tokio::task::spawn_blocking(move || auth.check(&client_id, &user, &pass))
                        .await
                        .unwrap_or(false)
                }
            });
        }
        (
            name.to_owned(),
            ServerSettings {
                name: name.to_owned(),
                listen,
                tls: None,
                next_connection_delay_ms: 0,
                connections,
            },
        )
    };
    let mut v4 = HashMap::from([server(
        "v4-auth",
        ports.v4_auth,
        Some(authenticator.clone()),
    )]);
    let mut v5 = HashMap::from([server("v5-auth", ports.v5_auth, Some(authenticator))]);
    if let Some(p) = ports.v4_anon {
        v4.extend([server("v4-anon", p, None)]);
    }
    if let Some(p) = ports.v5_anon {
        v5.extend([server("v5-anon", p, None)]);
    }
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: limits.max_connections,
            // Per-client queue of packets not yet written out; a stuck client is dropped past it.
            max_outgoing_packet_count: 200,
            // 1 MiB × 10 segments per topic filter (rumqttd's example allows ~1 GiB per filter).
            max_segment_size: 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(v4),
        v5: Some(v5),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    // Ready once rumqttd listens on every port. Reading the kernel's socket table (rather than
    // connecting) keeps the broker's log free of "connection closed by peer" errors, and (unlike
    // a test bind) cannot race rumqttd for the port.
    let deadline = Duration::from_secs(5);
    let started = Instant::now();
    for addr in [
        Some(ports.v4_auth),
        Some(ports.v5_auth),
        ports.v4_anon,
        ports.v5_anon,
    ]
    .into_iter()
    .flatten()
    {
        while !is_listening(addr) {
            if started.elapsed() > deadline {
                return Err(BrokerError::NotReady(deadline));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    nodelay::spawn_periodic(ports).map_err(BrokerError::Thread)?;
    Ok(ports)
}

/// Is the broker still serving? (Its listener threads end only if it dies.)
pub fn alive(ports: &InternalPorts) -> bool {
    is_listening(ports.v4_auth)
}

/// Is some socket listening on `addr` (an IPv4 address)? Reads `/proc/net/tcp`.
fn is_listening(addr: SocketAddr) -> bool {
    let SocketAddr::V4(v4) = addr else {
        return false;
    };
    // Local address as the kernel prints it: little-endian hex IP, big-endian hex port.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    const LISTEN: &str = "0A";
    std::fs::read_to_string("/proc/net/tcp")
        .map(|table| {
            table.lines().skip(1).any(|line| {
                let mut cols = line.split_whitespace().skip(1);
                cols.next() == Some(local.as_str()) && cols.nth(1) == Some(LISTEN)
            })
        })
        .unwrap_or(false)
}

/// A loopback port nobody is using right now. rumqttd binds by address, not from a socket we
/// hand it, so the port is found here and passed on; if another process takes it in between,
/// rumqttd fails to bind and the start-up readiness check reports it.
fn free_loopback_port() -> Result<SocketAddr, BrokerError> {
    StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(BrokerError::Port)
}

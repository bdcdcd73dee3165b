//! The embedded MQTT broker.
//!
//! rumqttd runs on its own threads, listening on one loopback port that is private to this
//! process (the "internal listener", MQTT 5). Only the hub's own client and the [`front`] door
//! log in there, with a random password that exists only in this process. Every other client,
//! including the hub's in-process drivers, comes through the front door, which owns the public
//! plain and TLS ports and a loopback port for the drivers:
//!
//! ```text
//!  bank / kiosk / tool ─TCP or TLS─▶ front door ──loopback, MQTT 5──▶ rumqttd internal listener
//!  in-process drivers ──loopback───▶ (login, ACL, client ids,          ▲
//!                                     limits, 3.1.1 ⇄ 5)               │
//!  hub's own client (rumqttc, MQTT 5) ─────────────────────────────────┘
//! ```
//!
//! Why not expose rumqttd directly: it authorizes no publish or subscribe, lets any login take
//! over any client id, panics on client ids with `/` and on MQTT 5 properties sent to a 3.1.1
//! subscriber, runs its TLS handshake in the accept loop without a timeout, and has no way to
//! stop accepting at shutdown. The front door ([`front`], [`acl`], [`auth`]) fixes all of these
//! by reading every packet; rumqttd only routes what the front door has checked. A panic
//! anywhere in the process (rumqttd's threads included) stops the process, so systemd restarts
//! it rather than leaving a half-working broker (see `daemon.rs`).
//!
//! rumqttd keeps nothing on disk: retained messages and sessions vanish on restart, so nothing
//! the hub promises depends on the broker remembering.

pub mod auth;
pub mod front;
pub mod nodelay;
pub mod probe;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use auth::Authenticator;

/// Router and connection limits, sized for a mail-room mini-PC (see `docs/ARCHITECTURE.md`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Clients the public listeners admit.
    pub max_connections: usize,
    /// The hub's in-process clients (drivers, simulated banks, the probe), on top.
    pub internal_clients: usize,
    pub max_payload_bytes: usize,
}

/// Connections rumqttd keeps for the hub's own clients beyond what the front door admits: the
/// front door refuses first, so rumqttd never refuses at its limit (a refusal there leaves state
/// behind that a retry with the same client id panics on).
pub const RESERVED_CONNECTIONS: usize = 16;

/// Where the broker's internal listener is.
#[derive(Debug, Clone, Copy)]
pub struct InternalPorts {
    pub v5: SocketAddr,
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
/// and wait until its listener accepts connections. Only the hub's own login gets in there.
pub fn start(
    limits: &Limits,
    authenticator: Arc<Authenticator>,
) -> Result<InternalPorts, BrokerError> {
    let ports = InternalPorts {
        v5: free_loopback_port()?,
    };
    let mut connections = ConnectionSettings {
        // The front door already gave the client its own deadline for CONNECT; this one covers
        // the loopback leg.
        connection_timeout_ms: 5_000,
        // Room for the MQTT 5 properties the front door passes on with a full payload.
        max_payload_size: limits.max_payload_bytes + 4096,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    connections.set_auth_handler(move |_client_id, user, pass| {
        let auth = authenticator.clone();
        async move { auth.is_hub(&user, &pass) }
    });
    let v5 = HashMap::from([(
        "internal".to_owned(),
        ServerSettings {
            name: "internal".to_owned(),
            listen: ports.v5,
            tls: None,
            next_connection_delay_ms: 0,
            connections,
        },
    )]);
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: limits.max_connections
                + limits.internal_clients
                + RESERVED_CONNECTIONS,
            // Per-client queue of packets not yet written out; a stuck client is dropped past it.
            max_outgoing_packet_count: 200,
            // 1 MiB × 10 segments per topic filter (rumqttd's example allows ~1 GiB per filter).
            max_segment_size: 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: None,
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
    // Ready once rumqttd listens. Reading the kernel's socket table (rather than connecting)
    // keeps the broker's log free of "connection closed by peer" errors, and (unlike a test
    // bind) cannot race rumqttd for the port.
    let deadline = Duration::from_secs(5);
    let started = Instant::now();
    while !is_listening(ports.v5) {
        if started.elapsed() > deadline {
            return Err(BrokerError::NotReady(deadline));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    nodelay::spawn_periodic(ports).map_err(BrokerError::Thread)?;
    Ok(ports)
}

/// Is the broker still serving? (Its listener threads end only if it dies.)
pub fn alive(ports: &InternalPorts) -> bool {
    is_listening(ports.v5)
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

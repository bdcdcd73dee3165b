//! The end-to-end health probe: every few seconds, a real MQTT round trip through each front-door
//! listener to the hub's own subscription.
//!
//! A probe connects like any client (TCP, TLS where the listener is TLS; MQTT 5 CONNECT with the
//! probe's in-process login), publishes a fresh nonce at QoS 1 to its own topic under
//! [`PROBE_PREFIX`], waits for the PUBACK, and then for the hub's own client to report that it
//! received that nonce. So one probe proves: the listener accepts, the front door admits, rumqttd
//! routes, and the hub's client is subscribed. `/healthz` turns `degraded` with the reason when a
//! listener's probes fail, and the systemd watchdog is no longer fed once a probe has failed for
//! longer than [`WATCHDOG_GRACE`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5;
use rumqttc::v5::mqttbytes::QoS;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::shutdown::Shutdown;
use locker_gate::acl::PROBE_PREFIX;

/// The probe's login name at the front door (its password is a per-process token).
pub const USERNAME: &str = "locker-hub.probe";

/// How often each listener is probed.
pub const EVERY: Duration = Duration::from_secs(5);
/// How long one probe may take, end to end.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// Consecutive failures before a listener counts as broken.
pub const FAILURES_BEFORE_DEGRADED: u32 = 2;
/// How long a listener may stay broken before the watchdog stops being fed (systemd then
/// restarts the hub).
pub const WATCHDOG_GRACE: Duration = Duration::from_secs(30);

/// One listener to probe.
#[derive(Clone)]
pub struct Target {
    /// `mqtt`, `mqtts` or `drivers`.
    pub name: &'static str,
    pub addr: SocketAddr,
    /// For a TLS listener: a client that trusts exactly the listener's own certificate.
    pub tls: Option<tokio_rustls::TlsConnector>,
}

impl Target {
    /// A TLS listener serving the certificate in the PEM file `cert`.
    pub fn tls(
        name: &'static str,
        addr: SocketAddr,
        cert: &std::path::Path,
    ) -> Result<Target, String> {
        let config = crate::tls::pinned_client(cert)?;
        Ok(Target {
            name,
            addr,
            tls: Some(tokio_rustls::TlsConnector::from(Arc::new(config))),
        })
    }
}

/// What the probes found, per listener.
#[derive(Default)]
pub struct Probes {
    state: Mutex<BTreeMap<&'static str, ProbeState>>,
    /// The nonces the hub's own client has received.
    seen: Mutex<Option<watch::Sender<u64>>>,
}

#[derive(Debug, Clone, Default)]
struct ProbeState {
    last_ok: Option<Instant>,
    failures: u32,
    failing_since: Option<Instant>,
    last_error: Option<String>,
    round_trip_ms: Option<f64>,
}

pub use locker_app::health::ProbeHealth;

impl Probes {
    /// Called by the hub's own client for every message on the probe topics.
    pub fn seen(&self, payload: &[u8]) {
        let Some(nonce) = std::str::from_utf8(payload)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return;
        };
        if let Ok(s) = self.seen.lock() {
            if let Some(tx) = s.as_ref() {
                tx.send_replace(nonce);
            }
        }
    }

    /// Every listener's probe.
    pub fn health(&self) -> Vec<ProbeHealth> {
        let now = Instant::now();
        self.state
            .lock()
            .map(|s| {
                s.iter()
                    .map(|(name, p)| ProbeHealth {
                        listener: (*name).to_owned(),
                        ok: p.failures < FAILURES_BEFORE_DEGRADED,
                        last_ok_s_ago: p.last_ok.map(|t| (now - t).as_secs()),
                        round_trip_ms: p.round_trip_ms,
                        last_error: p.last_error.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Why the bus is degraded, one line per broken listener (empty when all is well).
    pub fn problems(&self) -> Vec<String> {
        self.health()
            .into_iter()
            .filter(|p| !p.ok)
            .map(|p| {
                format!(
                    "MQTT listener `{}` fails its end-to-end probe: {}",
                    p.listener,
                    p.last_error.as_deref().unwrap_or("no answer")
                )
            })
            .collect()
    }

    /// Should the watchdog still be fed? Not once a listener has been failing for longer than
    /// [`WATCHDOG_GRACE`].
    pub fn watchdog_ok(&self) -> bool {
        let now = Instant::now();
        self.state.lock().is_ok_and(|s| {
            s.values()
                .all(|p| p.failing_since.is_none_or(|t| now - t < WATCHDOG_GRACE))
        })
    }

    fn record(&self, name: &'static str, result: Result<Duration, String>) {
        let Ok(mut all) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        let p = all.entry(name).or_default();
        match result {
            Ok(rtt) => {
                if p.failures >= FAILURES_BEFORE_DEGRADED {
                    info!(listener = name, "MQTT listener passes its probe again");
                }
                p.last_ok = Some(now);
                p.failures = 0;
                p.failing_since = None;
                p.last_error = None;
                p.round_trip_ms = Some(rtt.as_secs_f64() * 1000.0);
            }
            Err(e) => {
                p.failures += 1;
                p.failing_since.get_or_insert(now);
                if p.failures == FAILURES_BEFORE_DEGRADED {
                    warn!(listener = name, error = %e, "MQTT listener fails its end-to-end probe: health is degraded");
                }
                p.last_error = Some(e);
            }
        }
    }
}

/// Probe every target every [`EVERY`] until shutdown.
pub fn spawn(
    probes: Arc<Probes>,
    targets: Vec<Target>,
    login: (String, String),
    mut shutdown: Shutdown,
) {
    let (tx, rx) = watch::channel(0u64);
    if let Ok(mut s) = probes.seen.lock() {
        *s = Some(tx);
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut nonce: u64 = rand::random::<u32>() as u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait() => return,
            }
            for target in &targets {
                nonce += 1;
                let started = Instant::now();
                let result =
                    tokio::time::timeout(TIMEOUT, round_trip(target, &login, nonce, rx.clone()))
                        .await
                        .unwrap_or_else(|_| Err(format!("no answer within {TIMEOUT:?}")))
                        .map(|()| started.elapsed());
                probes.record(target.name, result);
            }
        }
    });
}

async fn round_trip(
    target: &Target,
    login: &(String, String),
    nonce: u64,
    mut seen: watch::Receiver<u64>,
) -> Result<(), String> {
    let addr = reachable(target.addr);
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    match &target.tls {
        None => mqtt_round_trip(tcp, target.name, login, nonce, &mut seen).await,
        Some(connector) => {
            let name = rustls::pki_types::ServerName::try_from("locker-hub-probe")
                .map_err(|e| e.to_string())?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            mqtt_round_trip(tls, target.name, login, nonce, &mut seen).await
        }
    }
}

/// A bound address to connect to: the unspecified address means "this machine".
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

async fn mqtt_round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    name: &str,
    login: &(String, String),
    nonce: u64,
    seen: &mut watch::Receiver<u64>,
) -> Result<(), String> {
    let mut out = BytesMut::new();
    let connect = v5::Packet::Connect(
        v5::Connect {
            keep_alive: 10,
            client_id: format!("locker-hub-probe-{name}"),
            clean_start: true,
            properties: None,
        },
        None,
        Some(v5::Login {
            username: login.0.clone(),
            password: login.1.clone(),
        }),
    );
    let mut publish = v5::Publish::new(
        format!("{PROBE_PREFIX}/{name}"),
        QoS::AtLeastOnce,
        nonce.to_string().into_bytes(),
        None,
    );
    publish.pkid = 1;
    for p in [connect, v5::Packet::Publish(publish)] {
        p.write(&mut out, None).map_err(|e| e.to_string())?;
    }
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = BytesMut::new();
    match read(&mut stream, &mut buf).await? {
        v5::Packet::ConnAck(a) if a.code == v5::ConnectReturnCode::Success => {}
        other => return Err(format!("CONNACK refused: {other:?}")),
    }
    match read(&mut stream, &mut buf).await? {
        v5::Packet::PubAck(a) if a.reason == v5::PubAckReason::Success => {}
        v5::Packet::PubAck(a) if a.reason == v5::PubAckReason::NoMatchingSubscribers => {
            return Err("the hub's own client is not subscribed".into())
        }
        other => return Err(format!("no PUBACK: {other:?}")),
    }
    seen.wait_for(|n| *n == nonce)
        .await
        .map_err(|_| "the hub's own client is gone".to_owned())?;
    let mut bye = BytesMut::new();
    let _ = v5::Packet::Disconnect(v5::Disconnect {
        reason_code: v5::DisconnectReasonCode::NormalDisconnection,
        properties: None,
    })
    .write(&mut bye, None);
    let _ = stream.write_all(&bye).await;
    let _ = stream.shutdown().await;
    Ok(())
}

async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<v5::Packet, String> {
    loop {
        match v5::Packet::read(buf, Some(1 << 20)) {
            Ok(p) => return Ok(p),
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {
                buf.reserve(1024);
                match stream.read_buf(buf).await {
                    Ok(0) => return Err("connection closed".into()),
                    Ok(_) => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
            Err(e) => return Err(format!("bad packet: {e}")),
        }
    }
}

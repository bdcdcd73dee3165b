//! The broker's front door: every MQTT client outside the hub's own process comes through here.
//!
//! The front door reads every packet in both directions with rumqttc's MQTT codec (3.1.1 and 5)
//! and passes rumqttd only what it has checked:
//! - CONNECT: the login is checked here ([`Authenticator`]: bounded argon2 pool, paused addresses);
//!   the client id must be made of `[A-Za-z0-9_.:-]` (rumqttd panics on `/` and friends); each login
//!   has a connection cap; the last will must be a topic the login may publish to. rumqttd sees a
//!   fresh internal client id (`gate-N`), a clean session and the front door's own credentials, so
//!   no client can take over another's session or reach rumqttd's same-id code paths.
//! - PUBLISH: the topic must be one the login's [`Role`] may publish to; a kiosk's request must
//!   name only its own reply topic; kiosk requests are rate-limited per connection. Topic aliases
//!   are resolved here and never reach rumqttd. Refusals follow the protocol: PUBACK/PUBREC with
//!   reason 0x87 (or 0x97 when rate-limited) on MQTT 5; on 3.1.1, which cannot say no, the
//!   publish is acknowledged and dropped (MQTT 3.1.1 §3.3.5).
//! - SUBSCRIBE: each filter must lie within the role's readable topics; refused filters get
//!   0x87 (MQTT 5) or 0x80 (3.1.1) in the SUBACK and never reach rumqttd.
//! - Everything is spoken to rumqttd as MQTT 5, whatever the client speaks: rumqttd's 3.1.1
//!   encoder panics on a message that carries MQTT 5 properties, so it is never used.
//!
//! Refusals are counted per login (`/healthz`) and logged at most once a minute per login.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::mqttbytes::QoS as QoS4;
use rumqttc::v5::mqttbytes::v5;
use rumqttc::v5::mqttbytes::QoS;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tracing::{debug, warn};

use super::acl::{self, Role};
use super::auth::{Authenticator, Identity, Refused};
use crate::bank_certs::Lookup;
use crate::conn_limit::{Slot, SourceLimit};
use crate::shutdown::Shutdown;
use crate::tls::TlsListener;
use locker_config::AddrRange;

/// A client that has not sent its CONNECT by then is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest CONNECT accepted (a CONNECT carries ids, a login and a will: a few hundred bytes).
const MAX_CONNECT_BYTES: usize = 64 * 1024;
/// Connections one source address may hold at once, logged in or not.
pub const CONNECTIONS_PER_SOURCE: usize = 64;
/// Connections beyond `max_clients` that may be open before their CONNECT is read.
pub const PENDING_CONNECTIONS: usize = 64;
/// Connections one login may hold at once (a controller, a spare, a reconnect in flight).
pub const CONNECTIONS_PER_LOGIN: usize = 4;
/// Connections all anonymous clients together may hold.
pub const ANONYMOUS_CONNECTIONS: usize = 16;
/// Topic aliases a MQTT 5 client may set up (resolved here, never passed on).
const TOPIC_ALIAS_MAX: u16 = 32;
/// Kiosk requests per connection: a burst of this many, then [`KIOSK_RATE_PER_S`] a second.
const KIOSK_BURST: f64 = 20.0;
const KIOSK_RATE_PER_S: f64 = 2.0;

/// Counts the MQTT clients that are connected through the front door.
#[derive(Debug, Default)]
pub struct ClientCount(AtomicUsize);

impl ClientCount {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Refusals per login, for `/healthz`.
#[derive(Debug, Default)]
pub struct Refusals {
    by_login: Mutex<HashMap<String, LoginRefusals>>,
}

/// What was refused to one login.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct LoginRefusals {
    pub connect: u64,
    pub publish: u64,
    pub subscribe: u64,
    pub rate_limited: u64,
    /// When the last refusal was logged (not serialized): one log line a minute per login.
    #[serde(skip)]
    logged_at: Option<Instant>,
    #[serde(skip)]
    held_back: u64,
}

#[derive(Debug, Clone, Copy)]
enum RefusalKind {
    Connect,
    Publish,
    Subscribe,
    RateLimited,
}

impl Refusals {
    /// A snapshot: login → counts.
    pub fn snapshot(&self) -> HashMap<String, LoginRefusals> {
        self.by_login.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The total of every kind of refusal.
    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.snapshot()
            .values()
            .map(|r| r.connect + r.publish + r.subscribe + r.rate_limited)
            .sum()
    }

    fn count(&self, login: &str, kind: RefusalKind, what: &str) {
        let Ok(mut all) = self.by_login.lock() else {
            return;
        };
        // An attacker can make up logins: keep the table bounded (unknown names are counted
        // under one entry).
        let key = if all.len() >= 1024 && !all.contains_key(login) {
            "(other)"
        } else {
            login
        };
        let r = all.entry(key.to_owned()).or_default();
        match kind {
            RefusalKind::Connect => r.connect += 1,
            RefusalKind::Publish => r.publish += 1,
            RefusalKind::Subscribe => r.subscribe += 1,
            RefusalKind::RateLimited => r.rate_limited += 1,
        }
        let now = Instant::now();
        if r.logged_at
            .is_none_or(|t| now - t >= Duration::from_secs(60))
        {
            warn!(
                login,
                held_back = r.held_back,
                "MQTT refused: {what} (one line a minute per login; `held_back` more since the last)"
            );
            r.logged_at = Some(now);
            r.held_back = 0;
        } else {
            r.held_back += 1;
        }
    }
}

/// A live connection: its number, what tells it to close, and what says it is gone.
type Live = (u64, Arc<Notify>, Option<oneshot::Receiver<()>>);

/// Connections per login, and the live connection of each (login, client id) for takeovers.
#[derive(Default)]
struct Sessions {
    per_login: HashMap<String, usize>,
    /// (login, client id) → (connection number, tells the connection to close).
    live: HashMap<(String, String), Live>,
}

/// Everything a front-door connection needs.
#[derive(Clone)]
pub struct FrontDoor {
    /// rumqttd's internal MQTT 5 listener.
    pub broker: SocketAddr,
    /// The front door's own login there.
    pub broker_login: (String, String),
    pub auth: Arc<Authenticator>,
    pub clients: Arc<ClientCount>,
    pub refusals: Arc<Refusals>,
    /// Most client connections at once, kept below rumqttd's own limit (rumqttd's refusal at the
    /// limit leaves state behind that a retry with the same id panics on).
    pub max_clients: usize,
    pub max_payload_bytes: usize,
    /// Becomes `true` at shutdown: stop accepting and close every client connection.
    pub shutdown: Shutdown,
    /// Connections per source address and in all, counted from accept (before any login).
    limit: Arc<SourceLimit>,
    /// With per-bank certificates: the enrolment file that maps a client certificate to its
    /// bank (read at every connect, so a revocation applies to the next one).
    pub enrolled: Option<std::path::PathBuf>,
    sessions: Arc<Mutex<Sessions>>,
    next_id: Arc<AtomicU64>,
}

impl FrontDoor {
    #[allow(clippy::too_many_arguments)] // each is one setting of the door; called once
    pub fn new(
        broker: SocketAddr,
        broker_login: (String, String),
        auth: Arc<Authenticator>,
        clients: Arc<ClientCount>,
        refusals: Arc<Refusals>,
        max_clients: usize,
        max_payload_bytes: usize,
        shutdown: Shutdown,
    ) -> Self {
        FrontDoor {
            broker,
            broker_login,
            auth,
            clients,
            refusals,
            max_clients,
            max_payload_bytes,
            limit: SourceLimit::new(CONNECTIONS_PER_SOURCE, max_clients + PENDING_CONNECTIONS),
            enrolled: None,
            shutdown,
            sessions: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The same front door with its own per-source counts (the drivers' loopback listener, so
    /// that clients on loopback cannot crowd the hub's own drivers out).
    /// Its connections are not counted against `max_clients` either: the drivers are few and
    /// known, and rumqttd keeps room for them.
    pub fn with_own_limit(&self) -> Self {
        FrontDoor {
            limit: SourceLimit::new(
                CONNECTIONS_PER_SOURCE,
                self.max_clients + PENDING_CONNECTIONS,
            ),
            clients: Arc::default(),
            max_clients: usize::MAX / 2,
            ..self.clone()
        }
    }

    /// Serve plain TCP clients on `listener` until shutdown; with a non-empty `allow`, only from
    /// those addresses (others are refused at CONNECT, before any password check). The hub's
    /// own probe is the one exception, so that a listener limited to the LAN can still be probed
    /// over loopback.
    pub async fn serve_plain(self, listener: TcpListener, allow: Vec<AddrRange>) {
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let allowed = allow.is_empty() || allow.iter().any(|r| r.contains(peer.ip()));
                        let Some(slot) = self.limit.admit(peer.ip()) else {
                            debug!(%peer, "MQTT connection refused: too many open from this address or in all");
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        let from = if allowed { From::Allowed } else { From::ProbeOnly };
                        tokio::spawn(self.clone().connection(stream, peer, slot, from));
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
                        let Some(slot) = self.limit.admit(peer.ip()) else {
                            debug!(%peer, "MQTT connection refused: too many open from this address or in all");
                            continue;
                        };
                        let certificate = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .map(|c| c.to_vec());
                        let from = match certificate {
                            Some(der) => From::Certificate(der),
                            None => From::Allowed,
                        };
                        tokio::spawn(self.clone().connection(stream, peer, slot, from));
                    }
                    None => return,
                },
                _ = shutdown.wait() => return,
            }
        }
    }

    /// One client; `from` says what its address or certificate allows.
    async fn connection<S>(self, mut client: S, peer: SocketAddr, _slot: Slot, from: From)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // Counted from the first byte: idle sockets count against the cap too.
        let _counted = Counted::new(self.clients.clone());
        let mut buf = BytesMut::with_capacity(512);
        let connect = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            read_connect(&mut client, &mut buf),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "not an MQTT CONNECT; closing");
                return;
            }
            Err(_) => {
                debug!(%peer, "no CONNECT within {CONNECT_TIMEOUT:?}; closing");
                return;
            }
        };
        let version = connect.version();
        if self.clients.get() > self.max_clients {
            self.refusals
                .count("(any)", RefusalKind::Connect, "connection limit reached");
            let _ = client
                .write_all(&connack_refusal(version, Refusal::Busy))
                .await;
            return;
        }
        let login = connect.login();
        let checked = match &from {
            From::Certificate(der) => self.certificate_login(der),
            From::ProbeOnly
                if login
                    .as_ref()
                    .is_none_or(|(user, _)| user != super::probe::USERNAME) =>
            {
                self.refusals.count(
                    &format!("address {}", peer.ip()),
                    RefusalKind::Connect,
                    "address not allowed on the plain MQTT listener",
                );
                Err(Refused::NotAuthorized)
            }
            From::Allowed | From::ProbeOnly => {
                self.auth
                    .login(
                        peer.ip(),
                        connect.client_id(),
                        login.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
                    )
                    .await
            }
        };
        let identity = match checked {
            Ok(identity) => identity,
            Err(refused) => {
                let name = login.as_ref().map_or("anonymous", |(u, _)| u.as_str());
                let (what, refusal) = match refused {
                    Refused::NotAuthorized => ("login refused", Refusal::NotAuthorized),
                    Refused::Busy => ("too many logins being checked", Refusal::Busy),
                    Refused::Paused => ("too many failed logins from this address", Refusal::Busy),
                };
                self.refusals.count(name, RefusalKind::Connect, what);
                let _ = client.write_all(&connack_refusal(version, refusal)).await;
                return;
            }
        };
        if !valid_client_id(connect.client_id()) {
            self.refusals.count(
                &identity.login,
                RefusalKind::Connect,
                "client id must be 1-128 of A-Z a-z 0-9 _ . : -",
            );
            let _ = client
                .write_all(&connack_refusal(version, Refusal::BadClientId))
                .await;
            return;
        }
        if let Some(topic) = connect.will_topic() {
            if !identity.role.rights().may_publish(&topic) {
                self.refusals.count(
                    &identity.login,
                    RefusalKind::Connect,
                    "last will on a topic this login may not publish to",
                );
                let _ = client
                    .write_all(&connack_refusal(version, Refusal::NotAuthorized))
                    .await;
                return;
            }
        }
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let client_id = if connect.client_id().is_empty() {
            format!("auto-{n}")
        } else {
            connect.client_id().to_owned()
        };
        let Some(seat) = self.take_seat(&identity, &client_id, n).await else {
            self.refusals.count(
                &identity.login,
                RefusalKind::Connect,
                "too many connections for this login",
            );
            let _ = client
                .write_all(&connack_refusal(version, Refusal::Quota))
                .await;
            return;
        };
        let internal_id = format!("gate-{n}");
        debug!(%peer, login = identity.login, client_id, internal_id, "MQTT client admitted");
        let mut broker = match TcpStream::connect(self.broker).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(%peer, error = %e, "internal broker listener unreachable");
                let _ = client
                    .write_all(&connack_refusal(version, Refusal::Busy))
                    .await;
                return;
            }
        };
        let _ = broker.set_nodelay(true);
        if let Ok(client_end) = broker.local_addr() {
            tokio::spawn(super::nodelay::after_connect(
                super::InternalPorts { v5: self.broker },
                client_end,
            ));
        }
        let mut conn = Conn {
            version,
            rights: identity.role.rights(),
            identity,
            max_packet: self.max_payload_bytes + 4096,
            aliases: HashMap::new(),
            pending_subs: HashMap::new(),
            refused_qos2: HashSet::new(),
            kiosk_bucket: KIOSK_BURST,
            bucket_at: Instant::now(),
            refusals: self.refusals.clone(),
        };
        let first = conn.broker_connect(&connect, &internal_id, &self.broker_login);
        let mut broker_buf = BytesMut::with_capacity(4096);
        let connack = match tokio::time::timeout(Duration::from_secs(5), async {
            broker.write_all(&first).await?;
            read_v5(&mut broker, &mut broker_buf, conn.max_packet).await
        })
        .await
        {
            Ok(Ok(v5::Packet::ConnAck(ack))) => ack,
            other => {
                warn!(%peer, result = ?other.map(|r| r.map(|_| ())), "the internal broker did not accept a checked client");
                let _ = client
                    .write_all(&connack_refusal(version, Refusal::Busy))
                    .await;
                return;
            }
        };
        if connack.code != v5::ConnectReturnCode::Success {
            let _ = client
                .write_all(&connack_refusal(version, Refusal::Busy))
                .await;
            return;
        }
        let assigned = connect.client_id().is_empty().then_some(client_id.clone());
        if client
            .write_all(&conn.client_connack(connack, assigned))
            .await
            .is_err()
        {
            return;
        }
        let mut shutdown = self.shutdown.clone();
        let result = tokio::select! {
            r = conn.relay(&mut client, &mut buf, &mut broker, &mut broker_buf) => r,
            _ = seat.close.notified() => {
                let _ = client.write_all(&conn.disconnect(v5::DisconnectReasonCode::SessionTakenOver)).await;
                Ok(())
            }
            _ = shutdown.wait() => {
                let _ = client.write_all(&conn.disconnect(v5::DisconnectReasonCode::ServerShuttingDown)).await;
                Ok(())
            }
        };
        if let Err(e) = result {
            debug!(%peer, login = conn.identity.login, error = %e, "MQTT connection ended");
        }
        let _ = client.shutdown().await;
        drop(broker);
        self.leave_seat(&conn.identity, &client_id, n, seat);
    }

    /// Who a client certificate is: its enrolled, unrevoked bank.
    fn certificate_login(&self, der: &[u8]) -> Result<Identity, Refused> {
        let Some(path) = &self.enrolled else {
            return Err(Refused::NotAuthorized);
        };
        let registry = crate::bank_certs::Registry::load(path).map_err(|e| {
            tracing::error!(error = %e, "cannot check a bank certificate");
            Refused::NotAuthorized
        })?;
        match registry.lookup(der) {
            Lookup::Bank(bank) => Ok(Identity {
                login: format!("certificate:{bank}"),
                role: Role::Bank { bank },
            }),
            Lookup::Revoked(bank) => {
                self.refusals.count(
                    &format!("certificate:{bank}"),
                    RefusalKind::Connect,
                    "revoked bank certificate",
                );
                Err(Refused::NotAuthorized)
            }
            Lookup::Unknown => {
                warn!(
                    sha256 = crate::bank_certs::fingerprint(der),
                    "a client certificate signed by the site CA but not enrolled was refused"
                );
                Err(Refused::NotAuthorized)
            }
        }
    }

    /// Reserve a connection for `identity` with `client_id`: a previous connection with the same
    /// login and client id is closed first (a takeover of one's own session, as MQTT wants);
    /// `None` when the login already holds its share of connections.
    async fn take_seat(&self, identity: &Identity, client_id: &str, n: u64) -> Option<Seat> {
        let key = (identity.login.clone(), client_id.to_owned());
        let previous = {
            let Ok(mut s) = self.sessions.lock() else {
                return None;
            };
            let cap = if identity.login == "anonymous" {
                ANONYMOUS_CONNECTIONS
            } else {
                CONNECTIONS_PER_LOGIN
            };
            let replacing = s.live.contains_key(&key);
            let held = s.per_login.get(&identity.login).copied().unwrap_or(0);
            if !replacing && held >= cap {
                return None;
            }
            s.live.remove(&key).map(|(_, close, done)| (close, done))
        };
        if let Some((close, done)) = previous {
            close.notify_one();
            if let Some(done) = done {
                // The old connection is gone (and its will published) before the new one starts.
                let _ = tokio::time::timeout(Duration::from_secs(2), done).await;
            }
        }
        let close = Arc::new(Notify::new());
        let (done_tx, done_rx) = oneshot::channel();
        let Ok(mut s) = self.sessions.lock() else {
            return None;
        };
        *s.per_login.entry(identity.login.clone()).or_default() += 1;
        if let Some((_, old_close, _)) = s.live.insert(key, (n, close.clone(), Some(done_rx))) {
            // Two connections with one id raced here: the older one goes.
            old_close.notify_one();
        }
        Some(Seat {
            close,
            _done: done_tx,
        })
    }

    fn leave_seat(&self, identity: &Identity, client_id: &str, n: u64, seat: Seat) {
        if let Ok(mut s) = self.sessions.lock() {
            if let Some(count) = s.per_login.get_mut(&identity.login) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    s.per_login.remove(&identity.login);
                }
            }
            let key = (identity.login.clone(), client_id.to_owned());
            if s.live.get(&key).is_some_and(|(m, _, _)| *m == n) {
                s.live.remove(&key);
            }
        }
        drop(seat);
    }
}

/// What a connection's address or TLS certificate allows, before its CONNECT is read.
enum From {
    /// Any login.
    Allowed,
    /// An address outside the plain listener's `allow` list: only the hub's own probe.
    ProbeOnly,
    /// A client certificate that chains to the site CA (DER): it is the login.
    Certificate(Vec<u8>),
}

struct Seat {
    close: Arc<Notify>,
    /// Dropped when the connection is gone: a takeover waits for it.
    _done: oneshot::Sender<()>,
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

/// A client id rumqttd can hold safely: 1-128 of `[A-Za-z0-9_.:-]` (empty: one is assigned).
pub fn valid_client_id(id: &str) -> bool {
    id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// A CONNECT as the client sent it.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per connection, short-lived
pub enum Connect {
    V4(v4::Connect),
    V5(v5::Connect, Option<v5::LastWill>, Option<v5::Login>),
}

impl Connect {
    fn version(&self) -> u8 {
        match self {
            Connect::V4(_) => 4,
            Connect::V5(..) => 5,
        }
    }

    fn client_id(&self) -> &str {
        match self {
            Connect::V4(c) => &c.client_id,
            Connect::V5(c, ..) => &c.client_id,
        }
    }

    fn login(&self) -> Option<(String, String)> {
        match self {
            Connect::V4(c) => c
                .login
                .as_ref()
                .map(|l| (l.username.clone(), l.password.clone())),
            Connect::V5(_, _, l) => l.as_ref().map(|l| (l.username.clone(), l.password.clone())),
        }
    }

    fn will_topic(&self) -> Option<String> {
        match self {
            Connect::V4(c) => c.last_will.as_ref().map(|w| w.topic.clone()),
            Connect::V5(_, w, _) => w
                .as_ref()
                .map(|w| String::from_utf8_lossy(&w.topic).into_owned()),
        }
    }
}

/// Read a whole CONNECT (MQTT 3.1.1 or 5), refusing anything else.
pub async fn read_connect<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> io::Result<Connect> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    // Fixed header (type, remaining length) and the protocol name and level: 9 bytes at least.
    while buf.len() < 2 {
        read_more(stream, buf).await?;
    }
    if buf[0] != 0x10 {
        return Err(bad("first packet is not CONNECT"));
    }
    let (len, header) = loop {
        match remaining_length(buf) {
            Some(Ok(x)) => break x,
            Some(Err(())) => return Err(bad("malformed remaining length")),
            None => read_more(stream, buf).await?,
        }
    };
    let total = header + len;
    if total > MAX_CONNECT_BYTES {
        return Err(bad("CONNECT too large"));
    }
    while buf.len() < total {
        read_more(stream, buf).await?;
    }
    let body = &buf[header..total];
    if body.len() < 7 || body[..6] != [0x00, 0x04, b'M', b'Q', b'T', b'T'] {
        return Err(bad(
            "unsupported protocol name (MQTT 3.1.1 and 5 are supported)",
        ));
    }
    let connect = match body[6] {
        4 => match v4::Packet::read(buf, MAX_CONNECT_BYTES) {
            Ok(v4::Packet::Connect(c)) => Connect::V4(c),
            other => return Err(bad(&format!("malformed CONNECT: {other:?}"))),
        },
        5 => match v5::Packet::read(buf, Some(MAX_CONNECT_BYTES as u32)) {
            Ok(v5::Packet::Connect(c, w, l)) => Connect::V5(c, w, l),
            other => return Err(bad(&format!("malformed CONNECT: {other:?}"))),
        },
        _ => {
            return Err(bad(
                "unsupported protocol level (MQTT 3.1.1 and 5 are supported)",
            ))
        }
    };
    Ok(connect)
}

/// `Some(Ok((remaining length, fixed header length)))`, `None` if more bytes are needed.
fn remaining_length(buf: &[u8]) -> Option<Result<(usize, usize), ()>> {
    let mut len = 0usize;
    for i in 0..4 {
        let b = *buf.get(1 + i)?;
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(Ok((len, 2 + i)));
        }
    }
    Some(Err(()))
}

async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> io::Result<()> {
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

async fn read_v5<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<v5::Packet> {
    loop {
        match v5::Packet::read(buf, Some(max as u32)) {
            Ok(p) => return Ok(p),
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {
                read_more(stream, buf).await?
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
    }
}

/// A packet from the client, in its own version.
#[allow(clippy::large_enum_variant)] // one at a time, never stored
enum ClientPacket {
    V4(v4::Packet),
    V5(v5::Packet),
}

fn try_read_client(
    version: u8,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<Option<ClientPacket>> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    if version == 5 {
        match v5::Packet::read(buf, Some(max as u32)) {
            Ok(p) => Ok(Some(ClientPacket::V5(p))),
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(invalid(e.to_string())),
        }
    } else {
        match v4::Packet::read(buf, max) {
            Ok(p) => Ok(Some(ClientPacket::V4(p))),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(invalid(e.to_string())),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Refusal {
    NotAuthorized,
    Busy,
    BadClientId,
    Quota,
}

/// A CONNACK that refuses, in the client's protocol version.
fn connack_refusal(version: u8, why: Refusal) -> Vec<u8> {
    if version == 5 {
        let code = match why {
            Refusal::NotAuthorized => 0x87,
            Refusal::Busy => 0x89,
            Refusal::BadClientId => 0x85,
            Refusal::Quota => 0x97,
        };
        vec![0x20, 0x03, 0x00, code, 0x00]
    } else {
        let code = match why {
            Refusal::NotAuthorized => 5,
            Refusal::Busy | Refusal::Quota => 3,
            Refusal::BadClientId => 2,
        };
        vec![0x20, 0x02, 0x00, code]
    }
}

/// One admitted connection's state.
struct Conn {
    version: u8,
    identity: Identity,
    /// The identity's role's rules, made once.
    rights: acl::Rights,
    max_packet: usize,
    /// MQTT 5 topic aliases the client set up.
    aliases: HashMap<u16, Bytes>,
    /// SUBSCRIBE packet id → the reason of each filter the front door refused (`None`: passed on).
    pending_subs: HashMap<u16, Vec<Option<v5::SubscribeReasonCode>>>,
    /// QoS 2 publishes refused to a 3.1.1 client (acknowledged with PUBREC): their PUBREL is
    /// answered here.
    refused_qos2: HashSet<u16>,
    kiosk_bucket: f64,
    bucket_at: Instant,
    refusals: Arc<Refusals>,
}

enum Verdict {
    Pass,
    Refuse(RefusalKind, &'static str),
}

impl Conn {
    /// The CONNECT rumqttd sees: the front door's login, a fresh id, a clean session, no aliases.
    fn broker_connect(
        &self,
        connect: &Connect,
        internal_id: &str,
        login: &(String, String),
    ) -> Vec<u8> {
        let (keep_alive, will, mut properties) = match connect {
            Connect::V4(c) => (
                c.keep_alive,
                c.last_will.as_ref().map(|w| v5::LastWill {
                    topic: Bytes::from(w.topic.clone()),
                    message: w.message.clone(),
                    qos: qos5(w.qos),
                    retain: w.retain,
                    properties: None,
                }),
                None,
            ),
            Connect::V5(c, w, _) => (
                c.keep_alive,
                w.clone().map(|mut w| {
                    // Will delay, expiry and friends are not passed on: the will fires when the
                    // connection drops, like a 3.1.1 will.
                    w.properties = None;
                    w
                }),
                c.properties.clone(),
            ),
        };
        if let Some(p) = properties.as_mut() {
            p.session_expiry_interval = None;
            p.topic_alias_max = None;
            p.authentication_method = None;
            p.authentication_data = None;
            p.user_properties.clear();
        }
        let packet = v5::Packet::Connect(
            v5::Connect {
                keep_alive,
                client_id: internal_id.to_owned(),
                clean_start: true,
                properties,
            },
            will,
            Some(v5::Login {
                username: login.0.clone(),
                password: login.1.clone(),
            }),
        );
        encode_v5(&packet)
    }

    /// The CONNACK the client sees.
    fn client_connack(&self, mut ack: v5::ConnAck, assigned: Option<String>) -> Vec<u8> {
        ack.session_present = false;
        if self.version == 4 {
            return encode_v4(&v4::Packet::ConnAck(v4::ConnAck {
                session_present: false,
                code: v4::ConnectReturnCode::Success,
            }));
        }
        let mut props = ack
            .properties
            .take()
            .unwrap_or_else(|| v5::ConnAckProperties {
                session_expiry_interval: None,
                receive_max: None,
                max_qos: None,
                retain_available: None,
                max_packet_size: None,
                assigned_client_identifier: None,
                topic_alias_max: None,
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: None,
                subscription_identifiers_available: None,
                shared_subscription_available: None,
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            });
        props.topic_alias_max = Some(TOPIC_ALIAS_MAX);
        props.shared_subscription_available = Some(0);
        props.assigned_client_identifier = assigned;
        props.session_expiry_interval = Some(0);
        ack.properties = Some(props);
        encode_v5(&v5::Packet::ConnAck(ack))
    }

    fn disconnect(&self, reason: v5::DisconnectReasonCode) -> Vec<u8> {
        if self.version == 4 {
            // 3.1.1 has no server DISCONNECT: the connection is simply closed.
            return Vec::new();
        }
        encode_v5(&v5::Packet::Disconnect(v5::Disconnect {
            reason_code: reason,
            properties: None,
        }))
    }

    /// Pass packets both ways until either side ends.
    async fn relay<C, B>(
        &mut self,
        client: &mut C,
        client_buf: &mut BytesMut,
        broker: &mut B,
        broker_buf: &mut BytesMut,
    ) -> io::Result<()>
    where
        C: AsyncRead + AsyncWrite + Unpin,
        B: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            // Everything already buffered first.
            while let Some(packet) = try_read_client(self.version, client_buf, self.max_packet)? {
                let (to_broker, to_client, close) = self.on_client(packet)?;
                if !to_client.is_empty() {
                    client.write_all(&to_client).await?;
                }
                if !to_broker.is_empty() {
                    broker.write_all(&to_broker).await?;
                }
                if close {
                    return Ok(());
                }
            }
            loop {
                match v5::Packet::read(broker_buf, Some(self.max_packet as u32)) {
                    Ok(packet) => {
                        let (to_client, close) = self.on_broker(packet)?;
                        if !to_client.is_empty() {
                            client.write_all(&to_client).await?;
                        }
                        if close {
                            return Ok(());
                        }
                    }
                    Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => break,
                    Err(e) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("from the broker: {e}"),
                        ))
                    }
                }
            }
            client_buf.reserve(4096);
            broker_buf.reserve(4096);
            tokio::select! {
                n = client.read_buf(client_buf) => if n? == 0 { return Ok(()) },
                n = broker.read_buf(broker_buf) => if n? == 0 { return Ok(()) },
            }
        }
    }

    /// A client packet: (bytes for the broker, bytes for the client, close after).
    fn on_client(&mut self, packet: ClientPacket) -> io::Result<(Vec<u8>, Vec<u8>, bool)> {
        let protocol = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        let packet = match packet {
            ClientPacket::V5(p) => p,
            ClientPacket::V4(p) => match v4_to_v5(p) {
                Some(p) => p,
                None => return Err(protocol("unexpected packet from a client")),
            },
        };
        match packet {
            v5::Packet::Publish(mut publish) => {
                let alias = publish
                    .properties
                    .as_mut()
                    .and_then(|p| p.topic_alias.take());
                if let Some(alias) = alias {
                    if alias == 0 || alias > TOPIC_ALIAS_MAX {
                        return Err(protocol("topic alias out of range"));
                    }
                    if publish.topic.is_empty() {
                        match self.aliases.get(&alias) {
                            Some(t) => publish.topic = t.clone(),
                            None => return Err(protocol("unknown topic alias")),
                        }
                    } else {
                        self.aliases.insert(alias, publish.topic.clone());
                    }
                }
                match self.check_publish(&publish) {
                    Verdict::Pass => {
                        Ok((encode_v5(&v5::Packet::Publish(publish)), Vec::new(), false))
                    }
                    Verdict::Refuse(kind, what) => {
                        self.refusals.count(&self.identity.login, kind, what);
                        let reason_ack = match kind {
                            RefusalKind::RateLimited => v5::PubAckReason::QuotaExceeded,
                            _ => v5::PubAckReason::NotAuthorized,
                        };
                        let reason_rec = match kind {
                            RefusalKind::RateLimited => v5::PubRecReason::QuotaExceeded,
                            _ => v5::PubRecReason::NotAuthorized,
                        };
                        let reply = match publish.qos {
                            QoS::AtMostOnce => Vec::new(),
                            QoS::AtLeastOnce => self.to_client(v5::Packet::PubAck(v5::PubAck {
                                pkid: publish.pkid,
                                reason: reason_ack,
                                properties: None,
                            })),
                            QoS::ExactlyOnce => {
                                if self.version == 4 {
                                    self.refused_qos2.insert(publish.pkid);
                                }
                                self.to_client(v5::Packet::PubRec(v5::PubRec {
                                    pkid: publish.pkid,
                                    reason: reason_rec,
                                    properties: None,
                                }))
                            }
                        };
                        Ok((Vec::new(), reply, false))
                    }
                }
            }
            v5::Packet::PubRel(rel) if self.refused_qos2.remove(&rel.pkid) => {
                let comp = self.to_client(v5::Packet::PubComp(v5::PubComp {
                    pkid: rel.pkid,
                    reason: v5::PubCompReason::Success,
                    properties: None,
                }));
                Ok((Vec::new(), comp, false))
            }
            v5::Packet::Subscribe(mut subscribe) => {
                let mut reasons = Vec::with_capacity(subscribe.filters.len());
                let mut allowed = Vec::new();
                for filter in subscribe.filters.drain(..) {
                    if !acl::valid_filter(&filter.path) {
                        reasons.push(Some(v5::SubscribeReasonCode::TopicFilterInvalid));
                    } else if self.rights.may_subscribe(&filter.path) {
                        reasons.push(None);
                        allowed.push(filter);
                    } else {
                        reasons.push(Some(v5::SubscribeReasonCode::NotAuthorized));
                    }
                }
                if reasons.iter().any(Option::is_some) {
                    self.refusals.count(
                        &self.identity.login,
                        RefusalKind::Subscribe,
                        "subscription outside this login's topics",
                    );
                }
                if allowed.is_empty() {
                    let ack = v5::SubAck {
                        pkid: subscribe.pkid,
                        return_codes: reasons.into_iter().flatten().collect(),
                        properties: None,
                    };
                    return Ok((Vec::new(), self.to_client(v5::Packet::SubAck(ack)), false));
                }
                self.pending_subs.insert(subscribe.pkid, reasons);
                subscribe.filters = allowed;
                Ok((
                    encode_v5(&v5::Packet::Subscribe(subscribe)),
                    Vec::new(),
                    false,
                ))
            }
            v5::Packet::Disconnect(d) => {
                Ok((encode_v5(&v5::Packet::Disconnect(d)), Vec::new(), true))
            }
            v5::Packet::Connect(..)
            | v5::Packet::ConnAck(_)
            | v5::Packet::SubAck(_)
            | v5::Packet::UnsubAck(_)
            | v5::Packet::PingResp(_)
            | v5::Packet::Auth(_) => Err(protocol("unexpected packet from a client")),
            other => Ok((encode_v5(&other), Vec::new(), false)),
        }
    }

    fn check_publish(&mut self, publish: &v5::Publish) -> Verdict {
        let Ok(topic) = std::str::from_utf8(&publish.topic) else {
            return Verdict::Refuse(RefusalKind::Publish, "topic is not UTF-8");
        };
        if !self.rights.may_publish(topic) {
            return Verdict::Refuse(RefusalKind::Publish, "publish outside this login's topics");
        }
        if let Role::Kiosk { .. } = self.identity.role {
            let response = publish
                .properties
                .as_ref()
                .and_then(|p| p.response_topic.as_deref());
            if response.is_some_and(|t| !self.rights.may_be_replied_at(t)) {
                return Verdict::Refuse(
                    RefusalKind::Publish,
                    "kiosk request's response topic is not this kiosk's reply topic",
                );
            }
            #[derive(serde::Deserialize)]
            struct ReplyTo {
                reply_to: Option<String>,
            }
            if let Ok(ReplyTo {
                reply_to: Some(reply_to),
            }) = serde_json::from_slice::<ReplyTo>(&publish.payload)
            {
                if !self.rights.may_be_replied_at(&reply_to) {
                    return Verdict::Refuse(
                        RefusalKind::Publish,
                        "kiosk request's reply_to is not this kiosk's reply topic",
                    );
                }
            }
            let now = Instant::now();
            let elapsed = (now - self.bucket_at).as_secs_f64();
            self.bucket_at = now;
            self.kiosk_bucket = (self.kiosk_bucket + elapsed * KIOSK_RATE_PER_S).min(KIOSK_BURST);
            if self.kiosk_bucket < 1.0 {
                return Verdict::Refuse(
                    RefusalKind::RateLimited,
                    "kiosk requests too fast for one kiosk",
                );
            }
            self.kiosk_bucket -= 1.0;
        }
        Verdict::Pass
    }

    /// A broker packet: (bytes for the client, close after).
    fn on_broker(&mut self, packet: v5::Packet) -> io::Result<(Vec<u8>, bool)> {
        match packet {
            v5::Packet::Publish(publish) => {
                // Defence in depth: only topics this login may read ever leave the hub.
                let readable =
                    std::str::from_utf8(&publish.topic).is_ok_and(|t| self.rights.may_subscribe(t));
                if !readable {
                    tracing::error!(
                        login = self.identity.login,
                        topic = %String::from_utf8_lossy(&publish.topic),
                        "the broker routed a message this login may not read; closing the connection"
                    );
                    return Ok((Vec::new(), true));
                }
                Ok((self.to_client(v5::Packet::Publish(publish)), false))
            }
            v5::Packet::SubAck(mut ack) => {
                if let Some(reasons) = self.pending_subs.remove(&ack.pkid) {
                    let mut granted = ack.return_codes.into_iter();
                    ack.return_codes = reasons
                        .into_iter()
                        .map(|r| {
                            r.or_else(|| granted.next())
                                .unwrap_or(v5::SubscribeReasonCode::Unspecified)
                        })
                        .collect();
                }
                Ok((self.to_client(v5::Packet::SubAck(ack)), false))
            }
            v5::Packet::Disconnect(d) => Ok((self.to_client(v5::Packet::Disconnect(d)), true)),
            v5::Packet::ConnAck(_)
            | v5::Packet::Connect(..)
            | v5::Packet::Subscribe(_)
            | v5::Packet::Unsubscribe(_)
            | v5::Packet::PingReq(_)
            | v5::Packet::Auth(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected packet from the broker",
            )),
            other => Ok((self.to_client(other), false)),
        }
    }

    /// Encode a packet for the client in its own version (MQTT 5 properties are dropped for
    /// 3.1.1 clients).
    fn to_client(&self, packet: v5::Packet) -> Vec<u8> {
        if self.version == 5 {
            return encode_v5(&packet);
        }
        match v5_to_v4(packet) {
            Some(p) => encode_v4(&p),
            None => Vec::new(),
        }
    }
}

fn encode_v5(packet: &v5::Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    match packet.write(&mut out, None) {
        Ok(_) => out.to_vec(),
        Err(e) => {
            warn!(error = %e, "cannot encode an MQTT 5 packet; dropped");
            Vec::new()
        }
    }
}

fn encode_v4(packet: &v4::Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    match packet.write(&mut out, usize::MAX) {
        Ok(_) => out.to_vec(),
        Err(e) => {
            warn!(error = %e, "cannot encode an MQTT 3.1.1 packet; dropped");
            Vec::new()
        }
    }
}

fn qos5(q: QoS4) -> QoS {
    match q {
        QoS4::AtMostOnce => QoS::AtMostOnce,
        QoS4::AtLeastOnce => QoS::AtLeastOnce,
        QoS4::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn qos4(q: QoS) -> QoS4 {
    match q {
        QoS::AtMostOnce => QoS4::AtMostOnce,
        QoS::AtLeastOnce => QoS4::AtLeastOnce,
        QoS::ExactlyOnce => QoS4::ExactlyOnce,
    }
}

/// A 3.1.1 client packet as MQTT 5; `None` for packets a client never sends.
fn v4_to_v5(packet: v4::Packet) -> Option<v5::Packet> {
    Some(match packet {
        v4::Packet::Publish(p) => v5::Packet::Publish(v5::Publish {
            dup: p.dup,
            qos: qos5(p.qos),
            retain: p.retain,
            topic: Bytes::from(p.topic),
            pkid: p.pkid,
            payload: p.payload,
            properties: None,
        }),
        v4::Packet::PubAck(a) => v5::Packet::PubAck(v5::PubAck {
            pkid: a.pkid,
            reason: v5::PubAckReason::Success,
            properties: None,
        }),
        v4::Packet::PubRec(a) => v5::Packet::PubRec(v5::PubRec {
            pkid: a.pkid,
            reason: v5::PubRecReason::Success,
            properties: None,
        }),
        v4::Packet::PubRel(a) => v5::Packet::PubRel(v5::PubRel {
            pkid: a.pkid,
            reason: v5::PubRelReason::Success,
            properties: None,
        }),
        v4::Packet::PubComp(a) => v5::Packet::PubComp(v5::PubComp {
            pkid: a.pkid,
            reason: v5::PubCompReason::Success,
            properties: None,
        }),
        v4::Packet::Subscribe(s) => v5::Packet::Subscribe(v5::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| v5::Filter {
                    path: f.path,
                    qos: qos5(f.qos),
                    nolocal: false,
                    preserve_retain: false,
                    retain_forward_rule: v5::RetainForwardRule::OnEverySubscribe,
                })
                .collect(),
            properties: None,
        }),
        v4::Packet::Unsubscribe(u) => v5::Packet::Unsubscribe(v5::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
            properties: None,
        }),
        v4::Packet::PingReq => v5::Packet::PingReq(v5::PingReq),
        v4::Packet::Disconnect => v5::Packet::Disconnect(v5::Disconnect {
            reason_code: v5::DisconnectReasonCode::NormalDisconnection,
            properties: None,
        }),
        v4::Packet::Connect(_)
        | v4::Packet::ConnAck(_)
        | v4::Packet::SubAck(_)
        | v4::Packet::UnsubAck(_)
        | v4::Packet::PingResp => return None,
    })
}

/// A broker packet for a 3.1.1 client; `None` where 3.1.1 has no such packet (it is dropped).
fn v5_to_v4(packet: v5::Packet) -> Option<v4::Packet> {
    Some(match packet {
        v5::Packet::Publish(p) => v4::Packet::Publish(v4::Publish {
            dup: p.dup,
            qos: qos4(p.qos),
            retain: p.retain,
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            pkid: p.pkid,
            payload: p.payload,
        }),
        v5::Packet::PubAck(a) => v4::Packet::PubAck(v4::PubAck { pkid: a.pkid }),
        v5::Packet::PubRec(a) => v4::Packet::PubRec(v4::PubRec { pkid: a.pkid }),
        v5::Packet::PubRel(a) => v4::Packet::PubRel(v4::PubRel { pkid: a.pkid }),
        v5::Packet::PubComp(a) => v4::Packet::PubComp(v4::PubComp { pkid: a.pkid }),
        v5::Packet::SubAck(a) => v4::Packet::SubAck(v4::SubAck {
            pkid: a.pkid,
            return_codes: a
                .return_codes
                .into_iter()
                .map(|c| match c {
                    v5::SubscribeReasonCode::Success(q) => {
                        v4::SubscribeReasonCode::Success(qos4(q))
                    }
                    _ => v4::SubscribeReasonCode::Failure,
                })
                .collect(),
        }),
        v5::Packet::UnsubAck(a) => v4::Packet::UnsubAck(v4::UnsubAck { pkid: a.pkid }),
        v5::Packet::PingResp(_) => v4::Packet::PingResp,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn connect(bytes: &[u8]) -> io::Result<Connect> {
        let mut r = bytes;
        let mut buf = BytesMut::new();
        read_connect(&mut r, &mut buf).await
    }

    fn v4_connect(client_id: &str, login: Option<(&str, &str)>) -> Vec<u8> {
        let mut c = v4::Connect::new(client_id);
        if let Some((u, p)) = login {
            c.set_login(u, p);
        }
        encode_v4(&v4::Packet::Connect(c))
    }

    #[tokio::test]
    async fn reads_whole_connects_of_both_versions() {
        let c = connect(&v4_connect("ctl-A", Some(("bank-a", "pw"))))
            .await
            .unwrap();
        assert_eq!(c.version(), 4);
        assert_eq!(c.client_id(), "ctl-A");
        assert_eq!(c.login(), Some(("bank-a".into(), "pw".into())));
        let v5c = encode_v5(&v5::Packet::Connect(
            v5::Connect {
                keep_alive: 10,
                client_id: "k1".into(),
                clean_start: true,
                properties: None,
            },
            None,
            None,
        ));
        let c = connect(&v5c).await.unwrap();
        assert_eq!((c.version(), c.client_id(), c.login()), (5, "k1", None));
    }

    #[tokio::test]
    async fn rejects_what_is_not_a_supported_connect() {
        for pkt in [
            &[0x30, 0x02, 0x00, 0x00][..], // PUBLISH first
            &[
                0x10, 0x0C, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0, 0, 0,
            ], // MQTT 3.1
            &[
                0x10, 0x0A, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x03, 0x02, 0, 0,
            ], // bad level
            &[0x10, 0x02, 0x00, 0x04],     // too short
            &[0x10, 0xFF, 0xFF, 0xFF, 0xFF], // bad length
            &[0x10],                       // truncated
            &[0x10, 0xFF, 0xFF, 0x7F],     // far too large
        ] {
            assert!(connect(pkt).await.is_err(), "{pkt:02x?}");
        }
    }

    #[test]
    fn client_ids_that_rumqttd_cannot_hold_are_refused() {
        for id in ["ctl-A", "mosq-abc123", "paho.1:2", "", "a_b"] {
            assert!(valid_client_id(id), "{id}");
        }
        for id in [
            "a/b",
            "+",
            "#",
            "$SYS",
            "a b",
            "a\u{0}",
            "é",
            &"x".repeat(129),
        ] {
            assert!(!valid_client_id(id), "{id:?}");
        }
    }

    fn conn(role: Role, version: u8) -> Conn {
        Conn {
            version,
            rights: role.rights(),
            identity: Identity {
                login: "l".into(),
                role,
            },
            max_packet: 1 << 20,
            aliases: HashMap::new(),
            pending_subs: HashMap::new(),
            refused_qos2: HashSet::new(),
            kiosk_bucket: KIOSK_BURST,
            bucket_at: Instant::now(),
            refusals: Arc::default(),
        }
    }

    fn publish(topic: &str, qos: QoS, payload: &str) -> v5::Publish {
        let mut p = v5::Publish::new(topic, qos, payload.as_bytes().to_vec(), None);
        p.pkid = if qos == QoS::AtMostOnce { 0 } else { 7 };
        p
    }

    #[test]
    fn a_refused_publish_never_reaches_the_broker_and_mqtt5_hears_why() {
        let mut c = conn(Role::Bank { bank: "A".into() }, 5);
        let (to_broker, to_client, _) = c
            .on_client(ClientPacket::V5(v5::Packet::Publish(publish(
                "lockerhub/v1/bank/B/cmd",
                QoS::AtLeastOnce,
                "{}",
            ))))
            .unwrap();
        assert!(to_broker.is_empty());
        let mut buf = BytesMut::from(&to_client[..]);
        match v5::Packet::read(&mut buf, None).unwrap() {
            v5::Packet::PubAck(a) => assert_eq!(a.reason, v5::PubAckReason::NotAuthorized),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.refusals.total(), 1);
        // A 3.1.1 client gets a plain PUBACK (3.1.1 cannot say no) and nothing is passed on.
        let mut c = conn(Role::Bank { bank: "A".into() }, 4);
        let (to_broker, to_client, _) = c
            .on_client(ClientPacket::V4(v4::Packet::Publish(v4::Publish {
                dup: false,
                qos: QoS4::AtLeastOnce,
                retain: false,
                topic: "lockerhub/v1/bank/B/cmd".into(),
                pkid: 3,
                payload: Bytes::from_static(b"{}"),
            })))
            .unwrap();
        assert!(to_broker.is_empty());
        assert_eq!(to_client, vec![0x40, 0x02, 0x00, 0x03]);
    }

    #[test]
    fn subscriptions_are_split_and_the_suback_merged_in_order() {
        let mut c = conn(Role::Observer, 4);
        let sub = v4::Subscribe::new_many([
            v4::SubscribeFilter::new("#".into(), QoS4::AtMostOnce),
            v4::SubscribeFilter::new("lockerhub/v1/bank/+/state".into(), QoS4::AtLeastOnce),
            v4::SubscribeFilter::new(
                "lockerhub/v1/bank/+/kiosk/request".into(),
                QoS4::AtLeastOnce,
            ),
        ]);
        let (to_broker, to_client, _) = c
            .on_client(ClientPacket::V4(v4::Packet::Subscribe(sub)))
            .unwrap();
        assert!(to_client.is_empty());
        let mut buf = BytesMut::from(&to_broker[..]);
        let v5::Packet::Subscribe(forwarded) = v5::Packet::read(&mut buf, None).unwrap() else {
            panic!("not a subscribe");
        };
        assert_eq!(forwarded.filters.len(), 1);
        assert_eq!(forwarded.filters[0].path, "lockerhub/v1/bank/+/state");
        let (to_client, _) = c
            .on_broker(v5::Packet::SubAck(v5::SubAck {
                pkid: forwarded.pkid,
                return_codes: vec![v5::SubscribeReasonCode::Success(QoS::AtLeastOnce)],
                properties: None,
            }))
            .unwrap();
        let mut buf = BytesMut::from(&to_client[..]);
        let v4::Packet::SubAck(ack) = v4::Packet::read(&mut buf, 1 << 20).unwrap() else {
            panic!("not a suback");
        };
        assert_eq!(
            ack.return_codes,
            vec![
                v4::SubscribeReasonCode::Failure,
                v4::SubscribeReasonCode::Success(QoS4::AtLeastOnce),
                v4::SubscribeReasonCode::Failure,
            ]
        );
    }

    #[test]
    fn a_kiosk_may_only_ask_for_replies_on_its_own_topic() {
        let kiosk = Role::Kiosk {
            bank: "A".into(),
            kiosk: "k1".into(),
        };
        let mut c = conn(kiosk.clone(), 5);
        let ok = publish(
            "lockerhub/v1/bank/A/kiosk/request",
            QoS::AtLeastOnce,
            r#"{"request_id":"1","reply_to":"lockerhub/v1/bank/A/kiosk/reply/k1","type":"pickup_by_pin","bank":"A","pin":"1"}"#,
        );
        assert!(matches!(c.check_publish(&ok), Verdict::Pass));
        let foreign = publish(
            "lockerhub/v1/bank/A/kiosk/request",
            QoS::AtLeastOnce,
            r#"{"request_id":"1","reply_to":"lockerhub/v1/bank/A/cmd","type":"pickup_by_pin"}"#,
        );
        assert!(matches!(c.check_publish(&foreign), Verdict::Refuse(..)));
        let mut props = publish("lockerhub/v1/bank/A/kiosk/request", QoS::AtLeastOnce, "{}");
        props.properties = Some(v5::PublishProperties {
            response_topic: Some("lockerhub/v1/bank/A/kiosk/reply/k2".into()),
            ..Default::default()
        });
        assert!(matches!(c.check_publish(&props), Verdict::Refuse(..)));
    }

    #[test]
    fn a_kiosk_flood_is_refused_after_the_burst() {
        let mut c = conn(
            Role::Kiosk {
                bank: "A".into(),
                kiosk: "k1".into(),
            },
            5,
        );
        let p = publish("lockerhub/v1/bank/A/kiosk/request", QoS::AtLeastOnce, "{}");
        let passed = (0..1000)
            .filter(|_| matches!(c.check_publish(&p), Verdict::Pass))
            .count();
        assert!(passed <= KIOSK_BURST as usize + 2, "{passed}");
    }

    #[test]
    fn topic_aliases_are_resolved_and_never_passed_on() {
        let mut c = conn(Role::Bank { bank: "A".into() }, 5);
        let mut first = publish("lockerhub/v1/bank/A/door/1", QoS::AtMostOnce, "{}");
        first.properties = Some(v5::PublishProperties {
            topic_alias: Some(3),
            ..Default::default()
        });
        let (to_broker, _, _) = c
            .on_client(ClientPacket::V5(v5::Packet::Publish(first)))
            .unwrap();
        assert!(!to_broker.is_empty());
        // The alias now stands for bank A's door 1; an empty topic with it is that topic.
        let mut second = publish("", QoS::AtMostOnce, "{}");
        second.properties = Some(v5::PublishProperties {
            topic_alias: Some(3),
            ..Default::default()
        });
        let (to_broker, _, _) = c
            .on_client(ClientPacket::V5(v5::Packet::Publish(second)))
            .unwrap();
        let mut buf = BytesMut::from(&to_broker[..]);
        let v5::Packet::Publish(p) = v5::Packet::read(&mut buf, None).unwrap() else {
            panic!()
        };
        assert_eq!(&p.topic[..], b"lockerhub/v1/bank/A/door/1");
        assert!(p.properties.is_none_or(|p| p.topic_alias.is_none()));
        // An alias for a topic the bank may not publish to is refused like the topic itself.
        let mut third = publish("lockerhub/v1/bank/B/door/1", QoS::AtMostOnce, "{}");
        third.properties = Some(v5::PublishProperties {
            topic_alias: Some(4),
            ..Default::default()
        });
        let (to_broker, _, _) = c
            .on_client(ClientPacket::V5(v5::Packet::Publish(third)))
            .unwrap();
        assert!(to_broker.is_empty());
    }

    #[test]
    fn mqtt5_properties_never_reach_a_311_client() {
        let c = conn(Role::Observer, 4);
        let mut p = publish("lockerhub/v1/bank/A/state", QoS::AtMostOnce, "{}");
        p.properties = Some(v5::PublishProperties {
            correlation_data: Some(Bytes::from_static(b"x")),
            response_topic: Some("t".into()),
            ..Default::default()
        });
        let bytes = c.to_client(v5::Packet::Publish(p));
        let mut buf = BytesMut::from(&bytes[..]);
        assert!(matches!(
            v4::Packet::read(&mut buf, 1 << 20),
            Ok(v4::Packet::Publish(_))
        ));
    }
}

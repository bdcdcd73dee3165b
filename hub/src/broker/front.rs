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

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use locker_gate::session::{
    connack_refusal, parse_connect, read_v5, valid_client_id, Connect, ProtocolError, Refusal,
    RefusalKind, Session, Step,
};
use rumqttc::v5::mqttbytes::v5;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tracing::{debug, warn};

use super::auth::{Authenticator, Identity, Refused};
use crate::bank_certs::Lookup;
use crate::shutdown::Shutdown;
use crate::tls::TlsListener;
use locker_config::AddrRange;
use locker_gate::acl::Role;
use locker_net::{Slot, SourceLimit};

/// A client that has not sent its CONNECT by then is dropped.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections one source address may hold at once, logged in or not.
pub const CONNECTIONS_PER_SOURCE: usize = 64;
/// Connections beyond `max_clients` that may be open before their CONNECT is read.
pub const PENDING_CONNECTIONS: usize = 64;
/// Connections one login may hold at once (a controller, a spare, a reconnect in flight).
pub const CONNECTIONS_PER_LOGIN: usize = 4;
/// Connections all anonymous clients together may hold.
pub const ANONYMOUS_CONNECTIONS: usize = 16;

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

impl LoginRefusals {
    /// The counts, as `/healthz` shows them.
    pub fn counts(&self) -> locker_app::health::RefusalCounts {
        locker_app::health::RefusalCounts {
            connect: self.connect,
            publish: self.publish,
            subscribe: self.subscribe,
            rate_limited: self.rate_limited,
        }
    }
}

impl Refusals {
    /// A snapshot: login → counts.
    pub fn snapshot(&self) -> HashMap<String, LoginRefusals> {
        self.by_login.lock().map(|m| m.clone()).unwrap_or_default()
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
        let mut session = Session::new(
            version,
            identity.role.rights(),
            self.max_payload_bytes + 4096,
        );
        let first = session.broker_connect(&connect, &internal_id, &self.broker_login);
        let mut broker_buf = BytesMut::with_capacity(4096);
        let connack = match tokio::time::timeout(Duration::from_secs(5), async {
            broker.write_all(&first).await?;
            loop {
                match read_v5(&mut broker_buf, session.max_packet()) {
                    Ok(Some(p)) => return Ok(p),
                    Ok(None) => read_more(&mut broker, &mut broker_buf).await?,
                    Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                }
            }
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
            .write_all(&session.client_connack(connack, assigned))
            .await
            .is_err()
        {
            return;
        }
        let mut shutdown = self.shutdown.clone();
        enum End {
            Ended(io::Result<()>),
            TakenOver,
            Shutdown,
        }
        let end = tokio::select! {
            r = relay(&mut session, &identity.login, &self.refusals, &mut client, &mut buf, &mut broker, &mut broker_buf) => End::Ended(r),
            _ = seat.close.notified() => End::TakenOver,
            _ = shutdown.wait() => End::Shutdown,
        };
        match end {
            End::TakenOver => {
                let _ = client
                    .write_all(&session.disconnect(v5::DisconnectReasonCode::SessionTakenOver))
                    .await;
            }
            End::Shutdown => {
                let _ = client
                    .write_all(&session.disconnect(v5::DisconnectReasonCode::ServerShuttingDown))
                    .await;
            }
            End::Ended(result) => {
                if let Err(e) = result {
                    debug!(%peer, login = identity.login, error = %e, "MQTT connection ended");
                }
                // Ended without a normal DISCONNECT: the client's will is published now, as the
                // front door's own client (see locker_gate::session), and before this
                // connection's seat is given up, so a reconnect with the same client id is
                // admitted only after its old will (its `online` comes after the `offline`).
                if let Some(will) = session.will() {
                    publish_will(
                        self.broker,
                        self.broker_login.clone(),
                        format!("will-{n}"),
                        will,
                    )
                    .await;
                }
            }
        }
        let _ = client.shutdown().await;
        // Closed without a DISCONNECT packet (see locker_gate::session).
        drop(broker);
        drop(seat);
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
            sessions: self.sessions.clone(),
            login: identity.login.clone(),
            client_id: client_id.to_owned(),
            n,
        })
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

/// A connection's place among its login's connections; given back when dropped, however the
/// connection ends.
struct Seat {
    close: Arc<Notify>,
    /// Dropped when the connection is gone: a takeover waits for it.
    _done: oneshot::Sender<()>,
    sessions: Arc<Mutex<Sessions>>,
    login: String,
    client_id: String,
    n: u64,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let Ok(mut s) = self.sessions.lock() else {
            return;
        };
        if let Some(count) = s.per_login.get_mut(&self.login) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                s.per_login.remove(&self.login);
            }
        }
        let key = (
            std::mem::take(&mut self.login),
            std::mem::take(&mut self.client_id),
        );
        if s.live.get(&key).is_some_and(|(m, _, _)| *m == self.n) {
            s.live.remove(&key);
        }
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

/// Read a whole CONNECT (MQTT 3.1.1 or 5), refusing anything else.
async fn read_connect<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> io::Result<Connect> {
    loop {
        match parse_connect(buf) {
            Ok(Some(c)) => return Ok(c),
            Ok(None) => read_more(stream, buf).await?,
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> io::Result<()> {
    buf.reserve(4096);
    if stream.read_buf(buf).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Pass packets both ways through `session` until either side ends; refusals are counted for
/// `login`.
async fn relay<C, B>(
    session: &mut Session,
    login: &str,
    refusals: &Refusals,
    client: &mut C,
    client_buf: &mut BytesMut,
    broker: &mut B,
    broker_buf: &mut BytesMut,
) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let invalid = |e: ProtocolError| io::Error::new(io::ErrorKind::InvalidData, e);
    // MQTT: 1.5 times the keep-alive without a packet from the client ends the connection.
    let silence = (session.keep_alive() > 0)
        .then(|| Duration::from_millis(u64::from(session.keep_alive()) * 1500));
    let mut heard = tokio::time::Instant::now();
    // A client with no keep-alive: the front door keeps the broker leg alive itself.
    let mut broker_ping = session.broker_ping_every().map(|every| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        // Everything already buffered first.
        while let Some(packet) = session.read_client(client_buf).map_err(invalid)? {
            let step = session.on_client(packet, Instant::now()).map_err(invalid)?;
            if apply(step, login, refusals, client, broker).await? {
                return Ok(());
            }
        }
        while let Some(packet) = session.read_broker(broker_buf).map_err(invalid)? {
            let step = session.on_broker(packet).map_err(invalid)?;
            if apply(step, login, refusals, client, broker).await? {
                return Ok(());
            }
        }
        client_buf.reserve(4096);
        broker_buf.reserve(4096);
        let deadline = silence.map(|s| heard + s);
        tokio::select! {
            n = client.read_buf(client_buf) => {
                if n? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                heard = tokio::time::Instant::now();
            }
            n = broker.read_buf(broker_buf) => if n? == 0 { return Ok(()) },
            _ = async { match broker_ping.as_mut() {
                Some(t) => { t.tick().await; }
                None => std::future::pending().await,
            } } => {
                broker.write_all(&session.broker_ping()).await?;
            }
            _ = async { match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            } } => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "keep-alive: the client went silent"));
            }
        }
    }
}

/// Publish a client's last will through a connection of the front door's own to the broker.
async fn publish_will(
    broker: SocketAddr,
    login: (String, String),
    client_id: String,
    will: Vec<u8>,
) {
    let result = tokio::time::timeout(Duration::from_secs(5), async {
        let mut stream = TcpStream::connect(broker).await?;
        let _ = stream.set_nodelay(true);
        let connect = locker_gate::session::encode_v5(&v5::Packet::Connect(
            v5::Connect {
                keep_alive: 10,
                client_id,
                clean_start: true,
                properties: None,
            },
            None,
            Some(v5::Login {
                username: login.0,
                password: login.1,
            }),
        ));
        stream.write_all(&connect).await?;
        stream.write_all(&will).await?;
        // Wait for the CONNACK and the PUBACK (or just the CONNACK for QoS 0) before closing,
        // so the broker has taken the will; then close without a DISCONNECT.
        let mut buf = BytesMut::with_capacity(64);
        let mut packets = 0;
        let wanted = if will.first().is_some_and(|b| b & 0x06 != 0) {
            2
        } else {
            1
        };
        while packets < wanted {
            match read_v5(&mut buf, 4096) {
                Ok(Some(_)) => packets += 1,
                Ok(None) => read_more(&mut stream, &mut buf).await?,
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
        Ok::<(), io::Error>(())
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "a last will could not be published"),
        Err(_) => warn!("a last will could not be published within 5 s"),
    }
}

/// Carry out one step: write its bytes, count its refusal; `true` when the connection ends.
async fn apply<C, B>(
    step: Step,
    login: &str,
    refusals: &Refusals,
    client: &mut C,
    broker: &mut B,
) -> io::Result<bool>
where
    C: AsyncWrite + Unpin,
    B: AsyncWrite + Unpin,
{
    if let Some(r) = step.refused {
        refusals.count(login, r.kind, r.what);
    }
    if let Some(topic) = &step.breach {
        tracing::error!(
            login,
            topic,
            "the broker routed a message this login may not read; closing the connection"
        );
    }
    if !step.to_client.is_empty() {
        client.write_all(&step.to_client).await?;
    }
    if !step.to_broker.is_empty() {
        broker.write_all(&step.to_broker).await?;
    }
    Ok(step.close)
}

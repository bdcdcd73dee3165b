//! The sockets of sync (`[sync]`): WebSocket connections to the cloud and to a second hub, and a
//! listener a second hub connects to. Each connection's frames go to the engine as
//! `Job::Sync`, whose session speaks the automerge-repo protocol over the store
//! (`locker_app::sync`); this module only carries bytes, checks tokens and certificates, and
//! retries.
//!
//! - The cloud: one connection at a time, to the first of `endpoints` that answers; after a
//!   failure the next URL is tried, and once every URL failed the hub waits (exponential backoff
//!   with jitter, from 1 s up to `max_backoff`) before trying again. A 401 or 403 is not retried: the link shows
//!   `refused` with the server's answer until the token file changes.
//! - Other hubs (`hubs`): one such loop per URL, side by side with the cloud's.
//! - `listen`: TLS with the hub's certificate (`DATA_DIR/tls/hub.crt`). A hub paired with this
//!   one (`locker_app::pairing`) is recognised by its client certificate; a hub that joins
//!   presents a pairing code at `/pair` and receives the site's id and key. With
//!   `allow_plaintext`, plain WebSocket for a hub that sends the token instead.
//!
//! `wss://` to the cloud goes through rustls with the system's roots and `ca_file`; the
//! certificate and host name are checked. `wss://` to a hub is pinned to the certificates of the
//! hubs this one is paired with, and presents this hub's certificate: each side authenticates
//! the other. The token is sent only in the `Authorization` header, never in a URL. No frame or
//! message over 8 MiB is accepted. The hub works offline whatever happens here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use locker_app::engine::{Identity, Job};
use locker_app::pairing::{self, PairedHub};
use locker_app::passwords::constant_time_eq;
use locker_app::sync::{SyncBoard, SyncEvent, SyncOut};
use locker_config::Sync as SyncConfig;
use locker_net::SourceLimit;
use locker_sync::wire::MAX_FRAME;
use locker_sync::PeerRole;
use rand::Rng;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::{info, warn};

use crate::shutdown::Shutdown;

/// Silence after which a connection is taken for dead (a ping goes out every third of it).
const IDLE_LIMIT: Duration = Duration::from_secs(90);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// How long connecting (TCP, TLS, upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections to `listen` one address may hold at once (a hub needs one).
pub const SYNC_CONNECTIONS_PER_SOURCE: usize = 4;
/// Connections to `listen` in all.
const SYNC_CONNECTIONS: usize = 32;

/// Starts every sync link `config` names. Returns where `listen` ended up (port 0 picks one).
/// `data_dir` holds the hub's certificate and the hubs it is paired with; `identity` is what a
/// hub that pairs receives.
pub async fn start(
    config: &SyncConfig,
    data_dir: &Path,
    identity: Identity,
    jobs: std_mpsc::Sender<Job>,
    board: Arc<SyncBoard>,
    shutdown: Shutdown,
) -> Result<Option<SocketAddr>, String> {
    let tls = Arc::new(client_tls(config.ca_file.as_deref())?);
    let ids = Arc::new(AtomicU64::new(1));
    let needs_certificate =
        config.hubs.iter().any(|h| h.starts_with("wss://")) || config.listen.is_some();
    if needs_certificate {
        // The hub's own certificate is its identity towards other hubs.
        crate::init::run(data_dir)?;
    }
    let links = Links {
        jobs,
        board,
        ids,
        token_file: config.token_file.clone(),
        max_backoff: config.max_backoff,
        tls,
        data_dir: data_dir.to_path_buf(),
        identity: Arc::new(identity),
        shutdown,
    };
    if !config.endpoints.is_empty() {
        tokio::spawn(links.clone().dial_loop(config.endpoints.clone(), "cloud"));
    }
    for hub in &config.hubs {
        tokio::spawn(links.clone().dial_loop(vec![hub.clone()], "hub"));
    }
    let mut listening = None;
    if let Some(addr) = config.listen {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen for a second hub on {addr}: {e}"))?;
        listening = listener.local_addr().ok();
        if config.allow_plaintext {
            info!(addr = ?listening, "accepting a second hub's sync connection (plain, with the token)");
            tokio::spawn(links.accept_loop(listener, None));
        } else {
            let (cert, key) = crate::init::tls_paths(data_dir);
            let acceptor = crate::tls::acceptor_any_client_cert(&cert, &key)
                .map_err(|e| format!("sync listener: {e}"))?;
            info!(addr = ?listening, "accepting paired hubs' sync connections (TLS)");
            tokio::spawn(links.accept_loop(listener, Some(acceptor)));
        }
    }
    Ok(listening)
}

#[derive(Clone)]
struct Links {
    jobs: std_mpsc::Sender<Job>,
    board: Arc<SyncBoard>,
    ids: Arc<AtomicU64>,
    token_file: Option<PathBuf>,
    max_backoff: Duration,
    tls: Arc<rustls::ClientConfig>,
    data_dir: PathBuf,
    identity: Arc<Identity>,
    shutdown: Shutdown,
}

/// Why a connection attempt failed.
enum Failure {
    /// The server refused our token (401/403): not retried until the token changes.
    Refused(String),
    /// Anything else: retried.
    Failed(String),
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_frame_size(Some(MAX_FRAME))
        .max_message_size(Some(MAX_FRAME))
}

impl Links {
    /// Keeps one connection to the first of `urls` that works.
    async fn dial_loop(mut self, urls: Vec<String>, kind: &'static str) {
        let mut backoff = BACKOFF_MIN;
        let mut refused_token: Option<Vec<u8>> = None;
        // A paired hub is reached by certificate; everything else with the token.
        let uses_token = !(kind == "hub" && urls.iter().all(|u| u.starts_with("wss://")));
        loop {
            let token = self.token_file.as_ref().and_then(|f| std::fs::read(f).ok());
            if refused_token.is_some() && refused_token == token {
                // Refused with this token: wait for a new one.
                if self.sleep(Duration::from_secs(10)).await {
                    return;
                }
                continue;
            }
            refused_token = None;
            let mut connected_once = false;
            for url in &urls {
                self.board.link_state(url, kind, "connecting", None);
                let attempt =
                    tokio::time::timeout(CONNECT_TIMEOUT, self.connect(url, uses_token)).await;
                let attempt = match attempt {
                    Ok(a) => a,
                    Err(_) => Err(Failure::Failed(format!(
                        "no connection within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    ))),
                };
                match attempt {
                    Ok(ws) => {
                        self.board.link_state(url, kind, "connected", None);
                        info!(peer = %url, "sync connected");
                        let lasted = self.run(ws, url.clone(), PeerRole::Dialer).await;
                        connected_once = true;
                        if lasted > Duration::from_secs(60) {
                            backoff = BACKOFF_MIN;
                        }
                        self.board.link_state(
                            url,
                            kind,
                            "backing_off",
                            Some("connection closed".into()),
                        );
                        info!(peer = %url, "sync connection dropped");
                        if self.stopping() {
                            return;
                        }
                        break;
                    }
                    Err(Failure::Refused(why)) => {
                        self.board.link_state(url, kind, "refused", Some(why));
                        if uses_token {
                            refused_token = token.clone();
                        }
                    }
                    Err(Failure::Failed(why)) => {
                        self.board.link_state(url, kind, "backing_off", Some(why));
                    }
                }
            }
            if refused_token.is_some() && !connected_once {
                continue;
            }
            // Jitter: between half and all of the backoff, so many hubs do not come back at once.
            let wait = backoff.mul_f64(rand::rng().random_range(0.5..1.0));
            if self.sleep(wait).await {
                return;
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    /// True when shutdown came first.
    async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.shutdown.wait() => true,
        }
    }

    fn stopping(&self) -> bool {
        let mut s = self.shutdown.clone();
        futures_util::FutureExt::now_or_never(s.wait()).is_some()
    }

    async fn connect(&self, url: &str, uses_token: bool) -> Result<WsStream, Failure> {
        let mut request = url
            .into_client_request()
            .map_err(|e| Failure::Failed(format!("bad URL: {e}")))?;
        let tls = if uses_token {
            let file = self.token_file.as_deref().ok_or_else(|| {
                Failure::Failed("no `token_file` in [sync] to reach this peer with".into())
            })?;
            let token = read_token(file).map_err(Failure::Failed)?;
            let bearer = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Failure::Failed("the token file holds characters a header cannot".into())
            })?;
            request.headers_mut().insert("authorization", bearer);
            self.tls.clone()
        } else {
            Arc::new(self.paired_tls().map_err(Failure::Failed)?)
        };
        match dial(request, tls).await {
            Ok(ws) => Ok(ws),
            Err(Dial::Refused(status, why)) if uses_token => Err(Failure::Refused(format!(
                "refused: {status} {why} (check the token in {})",
                self.token_file
                    .as_deref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default()
            ))),
            Err(Dial::Refused(status, why)) => Err(Failure::Refused(format!(
                "refused: {status} {why} (the other hub does not know this hub's certificate: \
                 pair them again with `locker-hub pair` and `locker-hub init --join`)"
            ))),
            Err(Dial::Failed(why)) => Err(Failure::Failed(why)),
        }
    }

    /// TLS towards a paired hub: pinned to the paired hubs' certificates, presenting ours.
    fn paired_tls(&self) -> Result<rustls::ClientConfig, String> {
        let paired = pairing::paired(&self.data_dir)?;
        if paired.is_empty() {
            return Err(
                "this hub is not paired with another hub yet: run `locker-hub pair` on \
                 the other hub and `locker-hub init --join` on this one"
                    .into(),
            );
        }
        let (cert, key) = crate::init::tls_paths(&self.data_dir);
        crate::tls::pinned_to(
            paired.into_iter().map(|h| h.sha256).collect(),
            Some((&cert, &key)),
        )
    }

    async fn accept_loop(mut self, listener: TcpListener, tls: Option<TlsAcceptor>) {
        // A site has a hub or two: a source holding more connections than that is not a hub
        // that needs them, and it must not keep a real hub out.
        let limit = SourceLimit::new(SYNC_CONNECTIONS_PER_SOURCE, SYNC_CONNECTIONS);
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = self.shutdown.wait() => return,
            };
            let (tcp, from) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "sync listener");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(slot) = limit.admit(from.ip()) else {
                warn!(from = %from, "sync connection refused: too many from that address");
                drop(tcp);
                continue;
            };
            let this = self.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                // Held for the connection's life.
                let _slot = slot;
                let accepted =
                    tokio::time::timeout(CONNECT_TIMEOUT, this.accept_one(tcp, from, tls)).await;
                match accepted {
                    Ok(Ok((ws, Admit::Hub(name)))) => {
                        this.board.link_state(&name, "hub", "connected", None);
                        this.run(ws, name.clone(), PeerRole::Acceptor).await;
                        this.board.link_state(
                            &name,
                            "hub",
                            "listening",
                            Some("connection closed".into()),
                        );
                    }
                    Ok(Ok((ws, Admit::Joining(hub)))) => this.welcome(ws, hub).await,
                    Ok(Err(e)) => warn!(from = %from, error = %e, "sync connection refused"),
                    Err(_) => warn!(from = %from, "sync connection: no upgrade in time"),
                }
            });
        }
    }

    /// TLS (when the listener has it), then the WebSocket upgrade, admitted by [`admit`].
    async fn accept_one(
        &self,
        tcp: TcpStream,
        from: SocketAddr,
        tls: Option<TlsAcceptor>,
    ) -> Result<(WsStream, Admit), String> {
        let plain = tls.is_none();
        let (stream, client): (Box<dyn Io>, Option<String>) = match tls {
            None => (Box::new(tcp), None),
            Some(acceptor) => {
                let tls = acceptor
                    .accept(tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                let client = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| crate::files::fingerprint(c.as_ref()));
                (Box::new(tls), client)
            }
        };
        let gate = Gate {
            token: if plain {
                let file = self
                    .token_file
                    .as_deref()
                    .ok_or("no `token_file` to check it with")?;
                Some(read_token(file)?)
            } else {
                None
            },
            client,
            from,
            data_dir: self.data_dir.clone(),
            identity: self.identity.clone(),
        };
        let decision: Arc<Mutex<Option<Admit>>> = Arc::default();
        let decided = decision.clone();
        // The signature is tungstenite's callback's; its error is an HTTP response.
        #[allow(clippy::result_large_err)]
        let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            match gate.admit(req) {
                Ok(admit) => {
                    if let Ok(mut d) = decided.lock() {
                        *d = Some(admit);
                    }
                    Ok(resp)
                }
                Err((status, why)) => {
                    let mut refuse = ErrorResponse::new(Some(why));
                    *refuse.status_mut() = status;
                    Err(refuse)
                }
            }
        };
        let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config()))
            .await
            .map_err(|e| e.to_string())?;
        let admit = decision
            .lock()
            .ok()
            .and_then(|mut d| d.take())
            .ok_or("upgraded without a decision")?;
        Ok((ws, admit))
    }

    /// A hub that joined with a pairing code: send it the site's id and key, then close.
    async fn welcome(&self, mut ws: WsStream, hub: PairedHub) {
        let welcome = Welcome {
            version: 1,
            site_id: self.identity.site_id.clone(),
            hub_id: self.identity.hub_id.clone(),
            site_key: hex(&self.identity.site_key),
        };
        let sent = match serde_json::to_string(&welcome) {
            Ok(text) => ws.send(Message::Text(text.into())).await.is_ok(),
            Err(_) => false,
        };
        let _ = ws.send(Message::Close(None)).await;
        if sent {
            info!(hub = %hub.hub_id, sha256 = %hub.sha256, "paired with a second hub");
        } else {
            warn!(hub = %hub.hub_id, "a hub paired but the welcome could not be sent: pair again");
        }
    }

    /// Carries frames between the socket and the engine until either side ends. Returns how
    /// long the connection lasted.
    async fn run(&self, ws: WsStream, name: String, role: PeerRole) -> Duration {
        let started = std::time::Instant::now();
        let conn = self.ids.fetch_add(1, Ordering::Relaxed);
        let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
        if self
            .jobs
            .send(Job::Sync(SyncEvent::Opened {
                conn,
                name: name.clone(),
                role,
                out: out_tx,
            }))
            .is_err()
        {
            return started.elapsed();
        }
        let (mut sink, mut stream) = ws.split();
        let mut shutdown = self.shutdown.clone();
        let mut ping = tokio::time::interval(IDLE_LIMIT / 3);
        let mut last_heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Binary(frame))) => {
                        last_heard = tokio::time::Instant::now();
                        let event = SyncEvent::Frame { conn, frame: frame.to_vec() };
                        if self.jobs.send(Job::Sync(event)).is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => last_heard = tokio::time::Instant::now(),
                    Some(Err(e)) => {
                        warn!(peer = %name, error = %e, "sync connection error");
                        break;
                    }
                },
                out = out_rx.recv() => match out {
                    Some(SyncOut::Frame(frame)) => {
                        if sink.send(Message::Binary(frame.into())).await.is_err() {
                            break;
                        }
                    }
                    Some(SyncOut::Close(reason)) => {
                        info!(peer = %name, %reason, "closing the sync connection");
                        let _ = sink.send(Message::Close(None)).await;
                        break;
                    }
                    None => break,
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > IDLE_LIMIT {
                        warn!(peer = %name, "nothing heard for {} s; reconnecting", IDLE_LIMIT.as_secs());
                        break;
                    }
                    if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                        break;
                    }
                }
                _ = shutdown.wait() => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            }
        }
        let _ = self.jobs.send(Job::Sync(SyncEvent::Closed { conn }));
        started.elapsed()
    }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type WsStream = WebSocketStream<Box<dyn Io>>;

/// What the listener let in.
enum Admit {
    /// A hub to sync with, by the name `/healthz` shows.
    Hub(String),
    /// A hub that presented the pairing code: it gets the site's id and key.
    Joining(PairedHub),
}

/// What the listener knows of a connection before its upgrade request: decides who it is.
struct Gate {
    /// The token a plain listener requires (`allow_plaintext`); `None` on TLS.
    token: Option<String>,
    /// The fingerprint of the client's certificate (TLS only).
    client: Option<String>,
    from: SocketAddr,
    data_dir: PathBuf,
    identity: Arc<Identity>,
}

impl Gate {
    fn admit(&self, req: &Request) -> Result<Admit, (StatusCode, String)> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        if let Some(token) = &self.token {
            // Plain WebSocket on a trusted LAN: the token, as before pairing existed.
            let given = header("authorization").and_then(|v| v.strip_prefix("Bearer "));
            return if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                Ok(Admit::Hub(format!("hub@{}", self.from.ip())))
            } else {
                Err((StatusCode::UNAUTHORIZED, "bad or missing token".into()))
            };
        }
        let Some(client) = &self.client else {
            return Err((
                StatusCode::UNAUTHORIZED,
                "no client certificate: only hubs paired with this one connect here".into(),
            ));
        };
        if req.uri().path() == PAIR_PATH {
            return self.join(client, header).map(Admit::Joining);
        }
        match pairing::paired_hub(&self.data_dir, client) {
            Ok(Some(hub)) => Ok(Admit::Hub(format!("hub {}", hub.hub_id))),
            Ok(None) => Err((
                StatusCode::FORBIDDEN,
                format!("certificate {client} is not paired with this hub"),
            )),
            Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, e)),
        }
    }

    /// `/pair`: the joining hub's site must be ours and its code right; its certificate is
    /// then trusted.
    fn join<'a>(
        &self,
        client: &str,
        header: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<PairedHub, (StatusCode, String)> {
        let bad = |why: &str| (StatusCode::BAD_REQUEST, why.to_owned());
        let site = header(SITE_HEADER).ok_or_else(|| bad("no site id"))?;
        let hub_id = header(HUB_HEADER).ok_or_else(|| bad("no hub id"))?;
        let code = header("authorization")
            .and_then(|v| v.strip_prefix("Pairing "))
            .ok_or_else(|| bad("no pairing code"))?;
        if site != self.identity.site_id {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "this hub belongs to site {:?}, and the joining hub is configured for {site:?}: \
                     give it `[site] id = {:?}`",
                    self.identity.site_id, self.identity.site_id
                ),
            ));
        }
        if hub_id.is_empty() || hub_id == self.identity.hub_id || hub_id == "cloud" {
            return Err(bad("the joining hub needs an id of its own"));
        }
        let now = locker_app::clock::now().0;
        pairing::redeem(&self.data_dir, code, now)
            .map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
        let hub = PairedHub {
            hub_id: hub_id.to_owned(),
            sha256: client.to_owned(),
            paired_ms: now,
        };
        pairing::add_paired(&self.data_dir, hub.clone())
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e))?;
        Ok(hub)
    }
}

/// Where a joining hub presents its pairing code.
pub const PAIR_PATH: &str = "/pair";
/// The joining hub's site id and hub id, with its code.
pub const SITE_HEADER: &str = "x-locker-hub-site";
pub const HUB_HEADER: &str = "x-locker-hub-id";

/// What a hub that joined receives (one text message, then the connection closes).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Welcome {
    pub version: u32,
    pub site_id: String,
    /// The paired hub's id.
    pub hub_id: String,
    /// The site key, hex.
    pub site_key: String,
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why [`dial`] failed.
pub enum Dial {
    /// The server answered the upgrade with 401 or 403, and why.
    Refused(StatusCode, String),
    Failed(String),
}

/// TCP, TLS for `wss://` with `tls`, and the WebSocket upgrade of `request`.
pub async fn dial(request: Request, tls: Arc<rustls::ClientConfig>) -> Result<WsStream, Dial> {
    let uri = request.uri().clone();
    let host = uri
        .host()
        .ok_or_else(|| Dial::Failed("URL has no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let secure = uri.scheme_str() == Some("wss");
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| Dial::Failed(format!("cannot reach {host}:{port}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Io> = if secure {
        let name = ServerName::try_from(host.clone())
            .map_err(|e| Dial::Failed(format!("bad host name {host}: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| Dial::Failed(format!("TLS with {host}: {e}")))?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    match tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config())).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(response))
            if matches!(
                response.status(),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ) =>
        {
            let why = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err(Dial::Refused(response.status(), why))
        }
        Err(WsError::Http(response)) => {
            let why = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err(Dial::Failed(format!(
                "refused: {} {why}",
                response.status()
            )))
        }
        Err(e) => Err(Dial::Failed(format!("WebSocket upgrade: {e}"))),
    }
}

fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(token.to_owned())
}

/// rustls for `wss://`: the system's roots plus `ca_file`.
fn client_tls(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("sync.ca_file {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("sync.ca_file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("sync.ca_file {}: {e}", path.display()))?;
        }
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

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
//! - `listen`: a hub that connects must send the same token (`Authorization: Bearer`).
//!
//! `wss://` goes through rustls with the system's roots and `ca_file`; the certificate and host
//! name are checked. The token is sent only in the `Authorization` header, never in a URL. No
//! frame or message over 8 MiB is accepted. The hub works offline whatever happens here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use locker_app::engine::Job;
use locker_app::sync::{SyncBoard, SyncEvent, SyncOut};
use locker_config::Sync as SyncConfig;
use locker_sync::wire::MAX_FRAME;
use locker_sync::PeerRole;
use rand::Rng;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
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

/// Starts every sync link `config` names. Returns where `listen` ended up (port 0 picks one).
pub async fn start(
    config: &SyncConfig,
    jobs: std_mpsc::Sender<Job>,
    board: Arc<SyncBoard>,
    shutdown: Shutdown,
) -> Result<Option<SocketAddr>, String> {
    let tls = Arc::new(client_tls(config.ca_file.as_deref())?);
    let ids = Arc::new(AtomicU64::new(1));
    let links = Links {
        jobs,
        board,
        ids,
        token_file: config.token_file.clone(),
        max_backoff: config.max_backoff,
        tls,
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
        info!(addr = ?listening, "accepting a second hub's sync connection");
        tokio::spawn(links.accept_loop(listener));
    }
    Ok(listening)
}

#[derive(Clone)]
struct Links {
    jobs: std_mpsc::Sender<Job>,
    board: Arc<SyncBoard>,
    ids: Arc<AtomicU64>,
    token_file: PathBuf,
    max_backoff: Duration,
    tls: Arc<rustls::ClientConfig>,
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
        loop {
            let token = std::fs::read(&self.token_file).ok();
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
                let attempt = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(url)).await;
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
                        refused_token = token.clone();
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

    async fn connect(&self, url: &str) -> Result<WsStream, Failure> {
        let token = read_token(&self.token_file).map_err(Failure::Failed)?;
        let mut request = url
            .into_client_request()
            .map_err(|e| Failure::Failed(format!("bad URL: {e}")))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            Failure::Failed("the token file holds characters a header cannot".into())
        })?;
        request.headers_mut().insert("authorization", bearer);
        let uri = request.uri().clone();
        let host = uri
            .host()
            .ok_or_else(|| Failure::Failed("URL has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let secure = uri.scheme_str() == Some("wss");
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| Failure::Failed(format!("cannot reach {host}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = if secure {
            let name = ServerName::try_from(host.clone())
                .map_err(|e| Failure::Failed(format!("bad host name {host}: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| Failure::Failed(format!("TLS with {host}: {e}")))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        match tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config())).await
        {
            Ok((ws, _)) => Ok(ws),
            Err(WsError::Http(response))
                if matches!(
                    response.status(),
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                ) =>
            {
                Err(Failure::Refused(format!(
                    "refused: {} (check the token in {})",
                    response.status(),
                    self.token_file.display()
                )))
            }
            Err(e) => Err(Failure::Failed(format!("WebSocket upgrade: {e}"))),
        }
    }

    async fn accept_loop(mut self, listener: TcpListener) {
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
            let this = self.clone();
            tokio::spawn(async move {
                // By address only: a reconnecting hub comes from a new port each time, and
                // /healthz keeps one line per peer.
                let name = format!("hub@{}", from.ip());
                let token = match read_token(&this.token_file) {
                    Ok(t) => t,
                    Err(e) => {
                        warn!(%name, error = %e, "refusing a hub: no token to check it against");
                        return;
                    }
                };
                // The signature is tungstenite's callback's; its error is an HTTP response.
                #[allow(clippy::result_large_err)]
                let check = move |req: &Request,
                                  resp: Response|
                      -> Result<Response, ErrorResponse> {
                    let given = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "));
                    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
                        Ok(resp)
                    } else {
                        let mut refuse = ErrorResponse::new(Some("bad or missing token".into()));
                        *refuse.status_mut() = StatusCode::UNAUTHORIZED;
                        Err(refuse)
                    }
                };
                let upgrade = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio_tungstenite::accept_hdr_async_with_config(
                        Box::new(tcp) as Box<dyn Io>,
                        check,
                        Some(ws_config()),
                    ),
                )
                .await;
                match upgrade {
                    Ok(Ok(ws)) => {
                        this.board.link_state(&name, "hub", "connected", None);
                        this.run(ws, name.clone(), PeerRole::Acceptor).await;
                        this.board.link_state(
                            &name,
                            "hub",
                            "listening",
                            Some("connection closed".into()),
                        );
                    }
                    Ok(Err(e)) => warn!(%name, error = %e, "sync connection refused"),
                    Err(_) => warn!(%name, "sync connection: no upgrade in time"),
                }
            });
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

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type WsStream = WebSocketStream<Box<dyn Io>>;

fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(token.to_owned())
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

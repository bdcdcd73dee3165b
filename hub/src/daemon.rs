//! The daemon: start everything ([`Hub::start`]), run until told to stop ([`run`]), stop in
//! order ([`Hub::stop`]).
//!
//! Start-up order: state (engine) → application → broker (internal listeners) → hub client →
//! public MQTT listeners → drivers (simulated banks) → web. Shutdown: stop accepting and close
//! client connections, flush state, return; the binary then exits the process, which also ends
//! rumqttd's threads (rumqttd has no stop). Tests start a [`Hub`] in-process on ephemeral ports
//! (`bind` with port 0) and read where it listens from [`Hub::listening`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use locker_config::{Config, Driver, SensorSource};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use locker_app::notify::NotificationSink;
use locker_app::storage::{StorageHealth, Verdict};
use locker_app::{engine, App, AppError};
use locker_gate::acl::Role;
use locker_net as conn_limit;

use crate::broker::auth::{Authenticator, ConfiguredLogin};
use crate::broker::{self, front::FrontDoor, probe, Limits};
use crate::shutdown::{Shutdown, Trigger};
use crate::status::HubStatus;
use crate::{banks, bus, shutdown, systemd, tls};

/// Where the hub ended up listening (ports given as 0 in the configuration are resolved here).
#[derive(Debug, Clone)]
pub struct Listening {
    pub mqtt: Option<SocketAddr>,
    pub mqtts: Option<SocketAddr>,
    pub web: SocketAddr,
    pub web_tls: bool,
    /// Where a second hub connects (`[sync] listen`).
    pub sync: Option<SocketAddr>,
}

impl Listening {
    /// One line for people and scripts: `locker-hub ready: mqtt=… mqtts=… web=…`.
    pub fn ready_line(&self) -> String {
        let mut line = String::from("locker-hub ready:");
        if let Some(a) = self.mqtt {
            line += &format!(" mqtt={a}");
        }
        if let Some(a) = self.mqtts {
            line += &format!(" mqtts={a}");
        }
        let scheme = if self.web_tls { "https" } else { "http" };
        line += &format!(" web={scheme}://{}", self.web);
        if let Some(a) = self.sync {
            line += &format!(" sync={a}");
        }
        line
    }
}

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    #[error("cannot listen for {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error("cannot open the state store: {0}")]
    Store(#[from] locker_sync::StoreError),
    #[error("cannot prepare the site CA for bank certificates: {0}")]
    SiteCa(String),
    #[error("cannot load the staff accounts: {0}")]
    Users(AppError),
    #[error("cannot seed the demo's accounts and directory: {0}")]
    Demo(AppError),
    #[error("cannot start sync: {0}")]
    Sync(String),
    #[error("cannot read or create the API token in {path}: {source}")]
    Token {
        path: String,
        source: std::io::Error,
    },
}

/// A running hub.
pub struct Hub {
    listening: Listening,
    app: App,
    engine: engine::Engine,
    status: Arc<HubStatus>,
    internal: broker::InternalPorts,
    trigger: Trigger,
    shutdown: Shutdown,
    web_task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The in-process bank drivers (kept running while the hub runs).
    _drivers: Arc<banks::Drivers>,
}

/// Run the hub until `stop` completes (the binary passes SIGTERM or SIGINT). `on_ready` is
/// called once every listener is bound, before systemd is told the hub is ready.
pub async fn run(
    config: Config,
    notifications: Arc<dyn NotificationSink>,
    stop: impl std::future::Future<Output = ()>,
    on_ready: impl FnOnce(&Hub),
) -> Result<(), StartError> {
    let hub = Hub::start(config, notifications).await?;
    on_ready(&hub);
    systemd::notify("READY=1");
    if let Some(every) = systemd::watchdog_interval() {
        tokio::spawn(watchdog(
            every,
            hub.internal,
            hub.status.probes.clone(),
            hub.shutdown.clone(),
        ));
    }
    stop.await;
    info!("shutting down");
    systemd::notify("STOPPING=1");
    hub.stop().await;
    info!("stopped");
    Ok(())
}

impl Hub {
    /// Where the hub ended up listening.
    pub fn listening(&self) -> &Listening {
        &self.listening
    }

    /// The application's services (to seed accounts and the directory in a demo or a test).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Stop: close the listeners and client connections, let open web requests finish (bounded),
    /// then let the engine finish its current step (whose facts are committed before anything is
    /// acknowledged) and close the store.
    pub async fn stop(self) {
        self.trigger.fire();
        // The process must be gone within 2 s of the signal, so the wait is bounded.
        let _ = tokio::time::timeout(Duration::from_millis(800), self.web_task).await;
        let engine = self.engine;
        let _ = tokio::task::spawn_blocking(move || engine.stop()).await;
    }

    /// Start every part of the hub for `config`; notifications go to `notifications` once they
    /// are durable in the outbox.
    pub async fn start(
        config: Config,
        notifications: Arc<dyn NotificationSink>,
    ) -> Result<Hub, StartError> {
        let (trigger, shutdown) = shutdown::channel();
        let storage = Arc::new(StorageHealth::new(
            &config.site.data_dir,
            u64::from(config.site.storage_reserve_mib) * 1024 * 1024,
        ));
        // Say at once whether the disk takes writes: a hub started on a full disk reports it
        // instead of `ok`.
        if let Verdict::Refuse(why) = storage.check(None) {
            tracing::error!(reason = %why, "storage degraded at start: requests that need recording will be refused");
        }
        let status = HubStatus::new(config.banks.iter().map(|b| b.id.clone()), storage.clone());

        // State first: if the store cannot be opened there is nothing to serve.
        let (outgoing_tx, outgoing_rx) = tokio::sync::mpsc::unbounded_channel();
        let sync_board = Arc::new(locker_app::sync::SyncBoard::default());
        // With `[notify]`, the hub's own sender is woken by each notification queued.
        let wake = Arc::new(tokio::sync::Notify::new());
        let notifications: Arc<dyn NotificationSink> = match &config.notify {
            Some(_) => Arc::new(WakeSender {
                inner: notifications,
                wake: wake.clone(),
            }),
            None => notifications,
        };
        let engine = engine::start(
            &config,
            outgoing_tx,
            notifications,
            storage,
            sync_board.clone(),
        )?;
        let token =
            locker_web::api::load_or_create_token(&config.site.data_dir).map_err(|source| {
                StartError::Token {
                    path: config.site.data_dir.display().to_string(),
                    source,
                }
            })?;

        let pool = Arc::new(broker::auth::Argon2Pool::default());
        let zone = locker_app::time::site_zone(config.site.time_zone.as_deref());
        let app = App::new(
            &engine,
            pool.clone(),
            zone,
            locker_app::roll::RollSettings::from(&config.import),
        )
        .await
        .map_err(StartError::Users)?;
        if let Some(notify) = &config.notify {
            let mut stop = shutdown.clone();
            tokio::spawn(locker_deliver::run(
                app.clone(),
                config.site.id.clone(),
                notify.clone(),
                wake,
                async move { stop.wait().await },
            ));
        }
        let mut authenticator = Authenticator::new(
            configured_logins(&config),
            config.mqtt.allow_anonymous,
            pool.clone(),
        );
        // In-process clients get their own logins and roles: a driver or a simulated bank may touch
        // only its own bank's controller topics, the probe only its probe topics.
        let mut bank_logins = HashMap::new();
        for bank in &config.banks {
            let login = authenticator.add_internal(
                &format!("locker-hub.bank.{}", bank.id),
                Role::Bank {
                    bank: bank.id.clone(),
                },
            );
            bank_logins.insert(bank.id.clone(), login);
        }
        let probe_login = authenticator.add_internal(probe::USERNAME, Role::Probe);
        let authenticator = Arc::new(authenticator);
        let limits = Limits {
            max_connections: config.mqtt.max_connections,
            // A driver or simulator and a sensor poller per bank, the probes.
            internal_clients: 2 * config.banks.len() + 4,
            max_payload_bytes: config.mqtt.max_payload_bytes,
        };
        let internal = broker::start(&limits, authenticator.clone())?;
        info!(
            allow_anonymous = config.mqtt.allow_anonymous,
            "MQTT broker started"
        );

        // MQTT 5, so that kiosks' response-topic and correlation-data properties reach it.
        bus::spawn(
            internal.v5,
            authenticator.hub_credentials(),
            status.clone(),
            engine.jobs.clone(),
            outgoing_rx,
            shutdown.clone(),
            bus::known_sensors(&config),
        );

        let (hub_user, hub_password) = authenticator.hub_credentials();
        let front = FrontDoor::new(
            internal.v5,
            (hub_user.to_owned(), hub_password.to_owned()),
            authenticator.clone(),
            status.clients.clone(),
            status.refusals.clone(),
            config.mqtt.max_connections,
            config.mqtt.max_payload_bytes,
            shutdown.clone(),
        );
        let mut listening = Listening {
            mqtt: None,
            mqtts: None,
            web: config.web.bind,
            web_tls: config.web.tls.is_some(),
            sync: None,
        };
        let mut probe_targets = Vec::new();
        if let Some(l) = &config.mqtt.listener {
            let listener = bind("MQTT", l.bind).await?;
            listening.mqtt = listener.local_addr().ok();
            if let Some(addr) = listening.mqtt {
                probe_targets.push(probe::Target {
                    name: "mqtt",
                    addr,
                    tls: None,
                });
            }
            tokio::spawn(front.clone().serve_plain(listener, l.allow.clone()));
        }
        if let Some(t) = &config.mqtt.tls {
            if t.bank_certificates {
                // Made by `locker-hub init`; made here too for a site that turned certificates on
                // later, so the listener never starts without the CA it checks banks against.
                crate::bank_certs::ensure_site_ca(&config.site.data_dir)
                    .map_err(StartError::SiteCa)?;
            }
            let site_ca = crate::bank_certs::site_ca_paths(&config.site.data_dir).0;
            let acceptor = tls::acceptor_with_clients(
                &t.cert,
                &t.key,
                &[b"mqtt"],
                t.bank_certificates.then_some(site_ca.as_path()),
            )?;
            let listener = bind("MQTT over TLS", t.bind).await?;
            let listener =
                tls::TlsListener::new(listener, acceptor).map_err(|source| StartError::Bind {
                    what: "MQTT over TLS",
                    addr: t.bind,
                    source,
                })?;
            listening.mqtts = Some(listener.local_addr());
            match probe::Target::tls("mqtts", listener.local_addr(), &t.cert) {
                Ok(target) => probe_targets.push(target),
                Err(e) => warn!(error = %e, "the TLS listener cannot be probed"),
            }
            let mut tls_front = front.clone();
            if t.bank_certificates {
                tls_front.enrolled = Some(crate::bank_certs::enrolled_path(&config.site.data_dir));
            }
            tokio::spawn(tls_front.serve_tls(listener));
        }
        // The drivers' own door: loopback only, through the same checks as everyone else.
        let local = bind(
            "the drivers' MQTT listener",
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        )
        .await?;
        let local_addr = local.local_addr().map_err(|source| StartError::Bind {
            what: "the drivers' MQTT listener",
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            source,
        })?;
        probe_targets.push(probe::Target {
            name: "drivers",
            addr: local_addr,
            tls: None,
        });
        tokio::spawn(front.with_own_limit().serve_plain(local, Vec::new()));
        probe::spawn(
            status.probes.clone(),
            probe_targets,
            probe_login,
            shutdown.clone(),
        );

        start_simulated_banks(&config, &listening, local_addr, &bank_logins);
        let (drivers, problems) =
            banks::start(&config, local_addr, |bank| bank_logins.get(bank).cloned());
        let drivers = Arc::new(drivers);
        let read = drivers.clone();
        status.set_drivers(move || read.health());
        for problem in problems {
            error!("{problem}; the bank stays offline");
        }

        // Sync: the engine, the store and the web page work whatever the links do; started
        // before the web page only so the page can show where a second hub pairs.
        let mut pairing = None;
        if let Some(sync) = &config.sync {
            status.set_sync(sync_board.clone());
            listening.sync = crate::link::start(
                sync,
                &config.site.data_dir,
                engine.identity.clone(),
                engine.jobs.clone(),
                sync_board.clone(),
                shutdown.clone(),
            )
            .await
            .map_err(StartError::Sync)?;
            if let (Some(addr), false) = (listening.sync, sync.allow_plaintext) {
                pairing = crate::join::own_fingerprint(&config.site.data_dir)
                    .map(|fingerprint| locker_web::Pairing {
                        url: crate::join::listen_url(addr),
                        fingerprint,
                    })
                    .ok();
            }
        }

        let web_listener = bind("the web page", config.web.bind).await?;
        listening.web = web_listener.local_addr().unwrap_or(config.web.bind);
        let site = Arc::new(locker_web::Web {
            app: app.clone(),
            health: status.clone(),
            api_token: token,
            sessions: Default::default(),
            throttle: Default::default(),
            secure: config.web.tls.is_some(),
            site_name: config.site.name.clone(),
            banks: locker_web::Web::banks_of(&config),
            data_dir: config.site.data_dir.clone(),
            pairing,
            imports: Default::default(),
        });
        let app_routes = locker_web::router(site);
        let mut web_shutdown = shutdown.clone();
        let graceful = async move {
            web_shutdown.wait().await;
        };
        // Before sign-in, a web connection is bounded like an MQTT one: per source and in all, its
        // first request within WEB_FIRST_BYTES, closed after WEB_IDLE of silence (live pages get a
        // keep-alive every 15 s).
        let web_limit = conn_limit::SourceLimit::new(WEB_CONNECTIONS_PER_SOURCE, WEB_CONNECTIONS);
        let routes = app_routes.into_make_service_with_connect_info::<conn_limit::Peer>();
        let web_task = match &config.web.tls {
            Some(files) => {
                let acceptor = tls::acceptor(&files.cert, &files.key, &[b"http/1.1"])?;
                let listener = tls::TlsListener::new(web_listener, acceptor).map_err(|source| {
                    StartError::Bind {
                        what: "the web page",
                        addr: config.web.bind,
                        source,
                    }
                })?;
                serve_web(listener, web_limit, routes, graceful)
            }
            None => serve_web(web_listener, web_limit, routes, graceful),
        };

        info!(site = %config.site.id, "{}", config.summary());
        if config.banks.is_empty() {
            warn!("no locker banks are configured yet: add [[bank]] sections to the configuration");
        }
        Ok(Hub {
            listening,
            app,
            engine,
            status,
            internal,
            trigger,
            shutdown,
            web_task,
            _drivers: drivers,
        })
    }
}

/// SIGTERM or SIGINT (Ctrl-C), for [`run`].
pub async fn signal() {
    wait_for_signal().await
}

/// Serve the web app on `listener`, within the web's connection bounds, until `graceful`
/// completes.
fn serve_web<L>(
    listener: L,
    limit: Arc<conn_limit::SourceLimit>,
    app: axum::extract::connect_info::IntoMakeServiceWithConnectInfo<
        axum::Router,
        conn_limit::Peer,
    >,
    graceful: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<std::io::Result<()>>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let listener = conn_limit::LimitedListener {
        inner: listener,
        limit,
        first: WEB_FIRST_BYTES,
        idle: WEB_IDLE,
    };
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .await
    })
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Web connections one source address may hold (a browser opens about six).
const WEB_CONNECTIONS_PER_SOURCE: usize = 64;
/// Web connections in all.
const WEB_CONNECTIONS: usize = 512;
/// A web connection's first request must start within this.
const WEB_FIRST_BYTES: Duration = Duration::from_secs(10);
/// A web connection with nothing read or written for this long is closed.
const WEB_IDLE: Duration = Duration::from_secs(60);

/// How long a simulated carrier or resident keeps a door open before closing it.
const SIM_CLOSE_AFTER: Duration = Duration::from_secs(4);

/// Simulated banks connect through the public plain listener like a real controller would, each
/// with its own bank's login; with no plain listener configured they use the drivers' loopback
/// listener.
fn start_simulated_banks(
    config: &Config,
    listening: &Listening,
    local: SocketAddr,
    logins: &HashMap<String, (String, String)>,
) {
    let target = match listening.mqtt {
        Some(a) if a.ip().is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), a.port())
        }
        Some(a) => a,
        None => local,
    };
    for bank in &config.banks {
        let Driver::Sim(sim) = &bank.driver else {
            continue;
        };
        let credentials = logins.get(&bank.id).cloned();
        let doors = bank.compartments.iter().map(|c| c.door).max().unwrap_or(0);
        locker_drivers::sim::spawn(locker_drivers::sim::SimOptions {
            bank: bank.id.clone(),
            doors,
            host: target.ip().to_string(),
            port: target.port(),
            credentials,
            latency: sim.latency,
            stuck_doors: sim.stuck_doors.clone(),
            auto_close_after: Some(SIM_CLOSE_AFTER),
            // Its units' simulated sensors report through it, like a controller with probes.
            sensors: bank
                .units
                .iter()
                .flat_map(|u| {
                    u.sensors.iter().filter_map(move |s| match s.source {
                        SensorSource::Sim { start_c } => Some(locker_drivers::sim::SimSensor {
                            unit: u.id.clone(),
                            sensor: s.id.clone(),
                            start_c,
                            interval: s.interval,
                        }),
                        _ => None,
                    })
                })
                .collect(),
        });
        info!(bank = %bank.id, "simulated bank controller started");
    }
    if config
        .banks
        .iter()
        .any(|b| matches!(b.driver, Driver::Sim(_)))
        && listening.mqtt.is_none()
    {
        warn!("simulated banks use the drivers' loopback listener: no plain MQTT listener is configured");
    }
}

/// Ping systemd's watchdog while the hub is healthy: this task runs on the async runtime (so a
/// wedged runtime stops the pings), checks that the broker still listens, and that no MQTT
/// listener has failed its end-to-end probe for longer than `probe::WATCHDOG_GRACE`. A hub that
/// stops pinging is restarted by systemd.
async fn watchdog(
    every: Duration,
    internal: broker::InternalPorts,
    probes: Arc<probe::Probes>,
    mut shutdown: Shutdown,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if !broker::alive(&internal) {
                    warn!("the MQTT broker is not listening; withholding the watchdog ping");
                } else if !probes.watchdog_ok() {
                    warn!("an MQTT listener has failed its end-to-end probe for too long; withholding the watchdog ping");
                } else {
                    systemd::notify("WATCHDOG=1");
                }
            }
            _ = shutdown.wait() => return,
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the hub");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Every MQTT login the configuration declares, with its role.
fn configured_logins(config: &Config) -> Vec<ConfiguredLogin> {
    let mut logins = Vec::new();
    for bank in &config.banks {
        if let Some(m) = &bank.mqtt {
            logins.push(ConfiguredLogin {
                username: m.username.clone(),
                password_hash: m.password_hash.clone(),
                role: Role::Bank {
                    bank: bank.id.clone(),
                },
            });
        }
        for k in &bank.kiosks {
            logins.push(ConfiguredLogin {
                username: k.username.clone(),
                password_hash: k.password_hash.clone(),
                role: Role::Kiosk {
                    bank: bank.id.clone(),
                    kiosk: k.id.clone(),
                },
            });
        }
    }
    for o in &config.mqtt.observers {
        logins.push(ConfiguredLogin {
            username: o.username.clone(),
            password_hash: o.password_hash.clone(),
            role: Role::Observer,
        });
    }
    logins
}

/// A panic anywhere in the daemon (rumqttd's threads included, where a panic can poison a
/// listener's lock and leave the broker half-working while its port stays open) stops the
/// process with exit code 70, so systemd restarts it. A half-working hub is worse than a restart:
/// nothing confirmed is lost (every step is durable before it is acknowledged).
pub fn fail_stop_on_panic() {
    // While at it: allocations of 4 MiB and more (an argon2 check holds 19 MiB) always go back
    // to the system when freed. glibc otherwise raises this threshold after the first such free
    // and keeps later blocks in its per-thread arenas, which under a login storm held hundreds
    // of MB.
    // SAFETY: mallopt only sets an allocator parameter; called once at start-up.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        error!(
            thread = thread.name().unwrap_or("unnamed"),
            "panic: {info}; stopping the hub so that it is restarted whole"
        );
        default(info);
        std::process::exit(70);
    }));
}

/// Passes each queued notification on, and wakes the hub's sender (`locker_deliver`).
struct WakeSender {
    inner: Arc<dyn NotificationSink>,
    wake: Arc<tokio::sync::Notify>,
}

impl NotificationSink for WakeSender {
    fn queued(&self, notification: &locker_app::notify::Notification<'_>) {
        self.inner.queued(notification);
        self.wake.notify_one();
    }

    fn carrier_code_queued(&self, code: &locker_app::notify::CarrierCode<'_>) {
        self.inner.carrier_code_queued(code);
        self.wake.notify_one();
    }
}

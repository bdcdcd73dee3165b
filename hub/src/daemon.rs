//! `locker-hub run`: start everything, wait for a signal, stop in order.
//!
//! Start-up order: broker (internal listeners) → hub client → public MQTT listeners → drivers
//! (simulated banks) → web. Shutdown: stop accepting and close client connections, flush state,
//! return; `main` then exits the process, which also ends rumqttd's threads (rumqttd has no stop).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use locker_config::{Config, Driver, SensorSource};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::broker::{self, auth::Authenticator, front::FrontDoor, Limits};
use crate::shutdown::Shutdown;
use crate::status::HubStatus;
use crate::{api, banks, bus, demo, engine, shutdown, systemd, tls, web};

/// Where the hub ended up listening (ports given as 0 in the configuration are resolved here).
#[derive(Debug, Clone)]
pub struct Listening {
    pub mqtt: Option<SocketAddr>,
    pub mqtts: Option<SocketAddr>,
    pub web: SocketAddr,
    pub web_tls: bool,
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
    #[error("cannot load the staff accounts: {0}")]
    Users(String),
    #[error("cannot read or create the API token in {path}: {source}")]
    Token {
        path: String,
        source: std::io::Error,
    },
}

/// Run the hub until SIGTERM or SIGINT. `on_ready` is called once every listener is bound.
pub async fn run(
    config: Config,
    demo: bool,
    on_ready: impl FnOnce(&Listening),
) -> Result<(), StartError> {
    let (trigger, shutdown) = shutdown::channel();
    let status = HubStatus::new(config.banks.iter().map(|b| b.id.clone()));

    // State first: if the store cannot be opened there is nothing to serve.
    let (outgoing_tx, outgoing_rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = engine::start(&config, outgoing_tx, demo)?;
    let token =
        api::load_or_create_token(&config.site.data_dir).map_err(|source| StartError::Token {
            path: config.site.data_dir.display().to_string(),
            source,
        })?;
    if demo {
        demo::seed_directory(&engine.jobs);
    }

    let authenticator = Authenticator::new(config.banks.iter().filter_map(|b| {
        b.mqtt
            .as_ref()
            .map(|m| (b.id.clone(), m.username.clone(), m.password_hash.clone()))
    }));
    let limits = Limits {
        max_connections: config.mqtt.max_connections,
        max_payload_bytes: config.mqtt.max_payload_bytes,
    };
    let internal = broker::start(&limits, authenticator.clone(), config.mqtt.allow_anonymous)?;
    info!(
        allow_anonymous = config.mqtt.allow_anonymous,
        "MQTT broker started"
    );

    // MQTT 5, so that kiosks' response-topic and correlation-data properties reach the hub.
    bus::spawn(
        internal.v5_auth,
        authenticator.hub_credentials(),
        status.clone(),
        engine.jobs.clone(),
        outgoing_rx,
        shutdown.clone(),
        bus::known_sensors(&config),
    );

    let front = FrontDoor {
        internal,
        clients: status.clients.clone(),
        shutdown: shutdown.clone(),
    };
    let mut listening = Listening {
        mqtt: None,
        mqtts: None,
        web: config.web.bind,
        web_tls: config.web.tls.is_some(),
    };
    if let Some(l) = &config.mqtt.listener {
        let listener = bind("MQTT", l.bind).await?;
        listening.mqtt = listener.local_addr().ok();
        tokio::spawn(front.clone().serve_plain(listener));
    }
    if let Some(t) = &config.mqtt.tls {
        let acceptor = tls::acceptor(&t.cert, &t.key, &[b"mqtt"])?;
        let listener = bind("MQTT over TLS", t.bind).await?;
        let listener =
            tls::TlsListener::new(listener, acceptor).map_err(|source| StartError::Bind {
                what: "MQTT over TLS",
                addr: t.bind,
                source,
            })?;
        listening.mqtts = Some(listener.local_addr());
        tokio::spawn(front.clone().serve_tls(listener));
    }

    start_simulated_banks(&config, &listening, &internal, &authenticator);
    let (drivers, problems) =
        banks::start(&config, internal.v4_auth, authenticator.hub_credentials());
    let drivers = Arc::new(drivers);
    let read = drivers.clone();
    status.set_drivers(move || read.health());
    for problem in problems {
        error!("{problem}; the bank stays offline");
    }

    let web_listener = bind("the web page", config.web.bind).await?;
    listening.web = web_listener.local_addr().unwrap_or(config.web.bind);
    let users = web::users::Users::load(engine.jobs.clone())
        .await
        .map_err(StartError::Users)?;
    let site = Arc::new(web::Web {
        status: status.clone(),
        jobs: engine.jobs.clone(),
        snapshot: engine.snapshot.clone(),
        changes: engine.changes.clone(),
        api_token: token,
        users,
        sessions: Default::default(),
        throttle: Default::default(),
        secure: config.web.tls.is_some(),
        site_name: config.site.name.clone(),
        banks: web::Web::banks_of(&config),
        data_dir: config.site.data_dir.clone(),
    });
    if demo {
        web::seed_demo_users(&site)
            .await
            .map_err(StartError::Users)?;
    }
    let app = web::router(site.clone()).merge(api::router(site));
    let mut web_shutdown = shutdown.clone();
    let graceful = async move {
        web_shutdown.wait().await;
    };
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
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(graceful)
                    .await
            })
        }
        None => tokio::spawn(async move {
            axum::serve(web_listener, app)
                .with_graceful_shutdown(graceful)
                .await
        }),
    };

    info!(site = %config.site.id, "{}", config.summary());
    if config.banks.is_empty() {
        warn!("no locker banks are configured yet: add [[bank]] sections to the configuration");
    }
    on_ready(&listening);
    systemd::notify("READY=1");
    if let Some(every) = systemd::watchdog_interval() {
        tokio::spawn(watchdog(every, internal, shutdown.clone()));
    }

    wait_for_signal().await;
    info!("shutting down");
    systemd::notify("STOPPING=1");
    trigger.fire();
    // Open web requests get a moment to finish; the process must be gone within 2 s of the
    // signal, so the wait is bounded.
    let _ = tokio::time::timeout(Duration::from_millis(800), web_task).await;
    // The engine finishes its current step (whose facts are committed before anything is
    // acknowledged), then stops; the store closes with it.
    let _ = tokio::task::spawn_blocking(move || engine.stop()).await;
    info!("stopped");
    Ok(())
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// How long a simulated carrier or resident keeps a door open before closing it.
const SIM_CLOSE_AFTER: Duration = Duration::from_secs(4);

/// Simulated banks connect through the public plain listener like a real controller would; with
/// no plain listener configured they use the broker's internal one.
fn start_simulated_banks(
    config: &Config,
    listening: &Listening,
    internal: &broker::InternalPorts,
    authenticator: &Authenticator,
) {
    let target = match listening.mqtt {
        Some(a) if a.ip().is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), a.port())
        }
        Some(a) => a,
        None => internal.v4_auth,
    };
    for bank in &config.banks {
        let Driver::Sim(sim) = &bank.driver else {
            continue;
        };
        // Anonymous where the site allows it; otherwise the hub vouches for its own simulator.
        let credentials = (!config.mqtt.allow_anonymous || listening.mqtt.is_none()).then(|| {
            let (u, p) = authenticator.hub_credentials();
            (u.to_owned(), p.to_owned())
        });
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
        warn!("simulated banks use the broker's internal listener: no plain MQTT listener is configured");
    }
}

/// Ping systemd's watchdog while the hub is healthy: this task runs on the async runtime (so a
/// wedged runtime stops the pings) and checks that the broker still listens. A hub that stops
/// pinging is restarted by systemd.
async fn watchdog(every: Duration, internal: broker::InternalPorts, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if broker::alive(&internal) {
                    systemd::notify("WATCHDOG=1");
                } else {
                    warn!("the MQTT broker is not listening; withholding the watchdog ping");
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

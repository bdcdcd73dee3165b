//! What the hub knows about its own health, shared between the tasks that learn it and the web
//! page that reports it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use serde::Serialize;

use crate::broker::front::{ClientCount, LoginRefusals, Refusals};
use crate::broker::probe::{ProbeHealth, Probes};

/// Live health of the hub.
pub struct HubStatus {
    started: Instant,
    pub clients: Arc<ClientCount>,
    /// What the front door refused, per login.
    pub refusals: Arc<Refusals>,
    /// The end-to-end probes of the MQTT listeners.
    pub probes: Arc<Probes>,
    /// Configured bank id → online (its controller or driver reported in, and has not gone away).
    banks: Mutex<BTreeMap<String, bool>>,
    /// Whether the data directory takes writes.
    pub storage: Arc<crate::storage::StorageHealth>,
    /// Reads the hub's own drivers (set once they are started).
    drivers: OnceLock<Box<dyn Fn() -> DriversHealth + Send + Sync>>,
}

/// The JSON answer of `GET /healthz`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok`, or `degraded` with the reasons in `problems`.
    pub status: &'static str,
    pub problems: Vec<String>,
    pub version: &'static str,
    pub uptime_s: u64,
    pub broker: BrokerHealth,
    pub banks: BanksHealth,
    pub drivers: DriversHealth,
    pub storage: crate::storage::StorageState,
}

/// The hub's own drivers: every bus it owns and every bank adapter on one.
#[derive(Debug, Default, Serialize)]
pub struct DriversHealth {
    pub buses: Vec<BusHealth>,
    pub banks: Vec<AdapterHealth>,
}

/// Counters of one RS-485 port, TCP gateway or Modbus connection since the hub started.
#[derive(Debug, Serialize)]
pub struct BusHealth {
    /// Serial path or `host:port`.
    pub bus: String,
    /// `kerong`, `lockboard-8a` or `modbus`.
    pub protocol: &'static str,
    pub port_open: bool,
    pub requests: u64,
    pub replies: u64,
    pub timeouts: u64,
    pub checksum_errors: u64,
    pub exceptions: u64,
    pub retries: u64,
    pub stray_frames: u64,
    pub garbage_bytes: u64,
    pub reopens: u64,
    pub refused: u64,
    /// Unlocks dropped unsent because their deadline passed while they waited for the bus.
    pub expired: u64,
    /// The most recent problem: Unix milliseconds and what happened.
    pub last_error: Option<LastError>,
    /// Devices (board or slave address) that answer, and those that do not.
    pub devices_online: Vec<u8>,
    pub devices_offline: Vec<u8>,
}

#[derive(Debug, Serialize)]
pub struct LastError {
    pub at_ms: u64,
    pub message: String,
}

/// One bank adapter (a bank without its own controller).
#[derive(Debug, Serialize)]
pub struct AdapterHealth {
    pub bank: String,
    pub mqtt_connected: bool,
    /// `None` before the first poll.
    pub online: Option<bool>,
    /// Boards that did not answer their last request.
    pub silent_boards: Vec<u8>,
    pub poll_cycles: u64,
    pub last_cycle_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct BrokerHealth {
    /// MQTT clients connected through the front door (the hub's own client not counted).
    pub clients_connected: usize,
    /// The end-to-end probe of each front-door listener.
    pub probes: Vec<ProbeHealth>,
    /// What the front door refused, per login (`connect`, `publish`, `subscribe`,
    /// `rate_limited`).
    pub refusals: BTreeMap<String, LoginRefusals>,
}

#[derive(Debug, Serialize)]
pub struct BanksHealth {
    pub configured: usize,
    pub online: usize,
    /// Ids of the banks that are online.
    pub online_ids: Vec<String>,
    /// Ids of the banks that are not.
    pub offline_ids: Vec<String>,
}

impl HubStatus {
    pub fn new(
        bank_ids: impl IntoIterator<Item = String>,
        storage: Arc<crate::storage::StorageHealth>,
    ) -> Arc<HubStatus> {
        Arc::new(HubStatus {
            storage,
            started: Instant::now(),
            clients: Arc::default(),
            refusals: Arc::default(),
            probes: Arc::default(),
            banks: Mutex::new(bank_ids.into_iter().map(|b| (b, false)).collect()),
            drivers: OnceLock::new(),
        })
    }

    /// Where `/healthz` reads the drivers' counters from (set once, when they start).
    pub fn set_drivers(&self, read: impl Fn() -> DriversHealth + Send + Sync + 'static) {
        let _ = self.drivers.set(Box::new(read));
    }

    /// Record a bank's reported presence. Banks that are not configured are ignored (and logged
    /// by the caller): a stranger cannot add itself to the health report.
    pub fn set_bank_online(&self, bank: &str, online: bool) -> bool {
        let Ok(mut banks) = self.banks.lock() else {
            return false;
        };
        match banks.get_mut(bank) {
            Some(state) => {
                *state = online;
                true
            }
            None => false,
        }
    }

    /// Is `bank` one of the configured banks?
    pub fn is_configured(&self, bank: &str) -> bool {
        self.banks.lock().is_ok_and(|b| b.contains_key(bank))
    }

    pub fn health(&self) -> Health {
        let banks = self.banks.lock().map(|b| b.clone()).unwrap_or_default();
        let (online, offline): (Vec<_>, Vec<_>) = banks.iter().partition(|(_, on)| **on);
        let mut problems = self.probes.problems();
        let storage = self.storage.snapshot();
        if let Some(p) = &storage.problem {
            problems.push(format!("{p}: requests that need recording are refused"));
        }
        Health {
            status: if problems.is_empty() {
                "ok"
            } else {
                "degraded"
            },
            problems,
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: self.started.elapsed().as_secs(),
            broker: BrokerHealth {
                clients_connected: self.clients.get(),
                probes: self.probes.health(),
                refusals: self.refusals.snapshot().into_iter().collect(),
            },
            banks: BanksHealth {
                configured: banks.len(),
                online: online.len(),
                online_ids: online.into_iter().map(|(b, _)| b.clone()).collect(),
                offline_ids: offline.into_iter().map(|(b, _)| b.clone()).collect(),
            },
            drivers: self.drivers.get().map(|read| read()).unwrap_or_default(),
            storage,
        }
    }
}

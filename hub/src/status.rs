//! What the hub knows about its own health, shared between the tasks that learn it and the web
//! page that reports it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use locker_app::health::{BanksHealth, BrokerHealth, DriversHealth, Health, HealthSource};

use crate::broker::front::{ClientCount, Refusals};
use crate::broker::probe::Probes;

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
    pub storage: Arc<locker_app::storage::StorageHealth>,
    /// Reads the hub's own drivers (set once they are started).
    drivers: OnceLock<Box<dyn Fn() -> DriversHealth + Send + Sync>>,
    /// Sync links and documents, when `[sync]` is configured.
    sync: OnceLock<Arc<locker_app::sync::SyncBoard>>,
}

impl HubStatus {
    pub fn new(
        bank_ids: impl IntoIterator<Item = String>,
        storage: Arc<locker_app::storage::StorageHealth>,
    ) -> Arc<HubStatus> {
        Arc::new(HubStatus {
            storage,
            started: Instant::now(),
            clients: Arc::default(),
            refusals: Arc::default(),
            probes: Arc::default(),
            banks: Mutex::new(bank_ids.into_iter().map(|b| (b, false)).collect()),
            drivers: OnceLock::new(),
            sync: OnceLock::new(),
        })
    }

    /// Where `/healthz` reads the drivers' counters from (set once, when they start).
    pub fn set_drivers(&self, read: impl Fn() -> DriversHealth + Send + Sync + 'static) {
        let _ = self.drivers.set(Box::new(read));
    }

    /// Where `/healthz` reads the sync links from (set once, when sync is configured).
    pub fn set_sync(&self, board: Arc<locker_app::sync::SyncBoard>) {
        let _ = self.sync.set(board);
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

    fn report(&self) -> Health {
        let banks = self.banks.lock().map(|b| b.clone()).unwrap_or_default();
        let (online, offline): (Vec<_>, Vec<_>) = banks.iter().partition(|(_, on)| **on);
        let mut problems = self.probes.problems();
        let storage = self.storage.snapshot();
        if let Some(p) = &storage.problem {
            problems.push(format!("{p}: requests that need recording are refused"));
        }
        if let Some(board) = self.sync.get() {
            problems.extend(board.problems());
        }
        Health {
            status: if problems.is_empty() {
                "ok"
            } else {
                "degraded"
            }
            .to_owned(),
            problems,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_s: self.started.elapsed().as_secs(),
            broker: BrokerHealth {
                clients_connected: self.clients.get(),
                probes: self.probes.health(),
                refusals: self
                    .refusals
                    .snapshot()
                    .into_iter()
                    .map(|(login, r)| (login, r.counts()))
                    .collect(),
            },
            banks: BanksHealth {
                configured: banks.len(),
                online: online.len(),
                online_ids: online.into_iter().map(|(b, _)| b.clone()).collect(),
                offline_ids: offline.into_iter().map(|(b, _)| b.clone()).collect(),
            },
            drivers: self.drivers.get().map(|read| read()).unwrap_or_default(),
            storage,
            sync: self.sync.get().map(|b| b.health()),
        }
    }
}

impl HealthSource for HubStatus {
    fn health(&self) -> Health {
        self.report()
    }
}

//! What the hub knows about its own health, shared between the tasks that learn it and the web
//! page that reports it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::broker::front::ClientCount;

/// Live health of the hub.
pub struct HubStatus {
    started: Instant,
    pub clients: Arc<ClientCount>,
    /// Configured bank id → online (its controller or driver reported in, and has not gone away).
    banks: Mutex<BTreeMap<String, bool>>,
}

/// The JSON answer of `GET /healthz`.
#[derive(Debug, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub uptime_s: u64,
    pub broker: BrokerHealth,
    pub banks: BanksHealth,
}

#[derive(Debug, Serialize)]
pub struct BrokerHealth {
    /// MQTT clients connected through the public listeners (the hub's own client not counted).
    pub clients_connected: usize,
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
    pub fn new(bank_ids: impl IntoIterator<Item = String>) -> Arc<HubStatus> {
        Arc::new(HubStatus {
            started: Instant::now(),
            clients: Arc::default(),
            banks: Mutex::new(bank_ids.into_iter().map(|b| (b, false)).collect()),
        })
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
        Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: self.started.elapsed().as_secs(),
            broker: BrokerHealth {
                clients_connected: self.clients.get(),
            },
            banks: BanksHealth {
                configured: banks.len(),
                online: online.len(),
                online_ids: online.into_iter().map(|(b, _)| b.clone()).collect(),
                offline_ids: offline.into_iter().map(|(b, _)| b.clone()).collect(),
            },
        }
    }
}

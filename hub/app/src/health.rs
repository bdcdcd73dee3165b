//! What `GET /healthz` and the system page report: the hub's health as plain data. The daemon
//! gathers it (broker, probes, drivers, storage) and implements [`HealthSource`]; the web crate
//! only shows it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where the current health is read from.
pub trait HealthSource: Send + Sync {
    fn health(&self) -> Health;
}

/// The JSON answer of `GET /healthz`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `degraded` with the reasons in `problems`.
    pub status: String,
    pub problems: Vec<String>,
    pub version: String,
    pub uptime_s: u64,
    pub broker: BrokerHealth,
    pub banks: BanksHealth,
    pub drivers: DriversHealth,
    pub storage: crate::storage::StorageState,
    /// Sync peers and documents; absent when `[sync]` is not configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<crate::sync::SyncHealth>,
}

/// The hub's own drivers: every bus it owns and every bank adapter on one.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DriversHealth {
    pub buses: Vec<BusHealth>,
    pub banks: Vec<AdapterHealth>,
}

/// Counters of one RS-485 port, TCP gateway or Modbus connection since the hub started.
#[derive(Debug, Serialize, Deserialize)]
pub struct BusHealth {
    /// Serial path or `host:port`.
    pub bus: String,
    /// `kerong`, `lockboard-8a` or `modbus`.
    pub protocol: String,
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

#[derive(Debug, Serialize, Deserialize)]
pub struct LastError {
    pub at_ms: u64,
    pub message: String,
}

/// One bank adapter (a bank without its own controller).
#[derive(Debug, Serialize, Deserialize)]
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

#[derive(Debug, Serialize, Deserialize)]
pub struct BrokerHealth {
    /// MQTT clients connected through the front door (the hub's own client not counted).
    pub clients_connected: usize,
    /// The end-to-end probe of each front-door listener.
    pub probes: Vec<ProbeHealth>,
    /// What the front door refused, per login (`connect`, `publish`, `subscribe`,
    /// `rate_limited`).
    pub refusals: BTreeMap<String, RefusalCounts>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BanksHealth {
    pub configured: usize,
    pub online: usize,
    /// Ids of the banks that are online.
    pub online_ids: Vec<String>,
    /// Ids of the banks that are not.
    pub offline_ids: Vec<String>,
}

/// One listener's end-to-end probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeHealth {
    pub listener: String,
    pub ok: bool,
    /// Seconds since the last successful round trip (`None`: never yet).
    pub last_ok_s_ago: Option<u64>,
    pub round_trip_ms: Option<f64>,
    pub last_error: Option<String>,
}

/// What the front door refused to one login.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefusalCounts {
    pub connect: u64,
    pub publish: u64,
    pub subscribe: u64,
    pub rate_limited: u64,
}

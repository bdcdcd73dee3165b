//! Per-bus counters and device health, readable at any time as a plain struct (the daemon shows
//! them on `/healthz`).

use std::collections::BTreeMap;
use std::time::SystemTime;

/// What one bus has been through since the link started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Serial path or `host:port`.
    pub bus: String,
    /// Whether the port (or gateway connection) is open right now.
    pub port_open: bool,
    /// Frames written, retries included.
    pub requests: u64,
    /// Replies matched to their request.
    pub replies: u64,
    /// Requests that got no (complete) reply in time, counted per attempt.
    pub timeouts: u64,
    /// Frames dropped for a wrong checksum.
    pub checksum_errors: u64,
    /// Modbus exception replies: the device answered, but refused the request (bad address,
    /// busy, ...). Zero for protocols without exceptions.
    pub exceptions: u64,
    /// Requests sent again after a timeout or a bad reply.
    pub retries: u64,
    /// Well-formed frames that answered nothing we asked (late replies, other boards).
    pub stray_frames: u64,
    /// Bytes that were no part of any frame, plus bytes thrown away while draining.
    pub garbage_bytes: u64,
    /// Times the port was (re)opened after the first.
    pub reopens: u64,
    /// Requests refused without touching the wire (device offline and not due, port down).
    pub refused: u64,
    /// Requests dropped unsent because their deadline passed while they waited (late unlocks).
    pub expired: u64,
    /// The most recent problem, and when.
    pub last_error: Option<(SystemTime, String)>,
    /// Health of every device (board or slave) the link has talked to.
    pub devices: BTreeMap<u8, DeviceHealth>,
}

/// One device on the bus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceHealth {
    /// `false` once it has failed `offline_after` requests in a row; it is then polled only
    /// every `offline_poll_interval` until it answers again.
    pub online: bool,
    pub consecutive_failures: u32,
}

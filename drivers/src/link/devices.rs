//! Which devices (boards, Modbus slaves) on a bus answer, shared by every kind of link: a device
//! goes offline after `offline_after` failures in a row, and is then probed (routine requests
//! only) once per `probe_every` until it answers again.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::DeviceHealth;

struct Device {
    failures: u32,
    online: bool,
    next_probe: Instant,
}

/// The devices one link has talked to.
pub(crate) struct Devices {
    map: HashMap<u8, Device>,
    offline_after: u32,
    probe_every: Duration,
    /// For logs: the bus, and what its devices are called ("board", "Modbus slave").
    bus: String,
    noun: &'static str,
}

/// Whether a routine request for a device may go on the wire now.
pub(crate) enum Gate {
    /// The device is online: send, with the usual retries.
    Send,
    /// The device is offline and due a probe: send once, without retries.
    Probe,
    /// The device is offline and not due: refuse without touching the wire.
    Refuse,
}

impl Devices {
    pub(crate) fn new(
        bus: String,
        noun: &'static str,
        offline_after: u32,
        probe_every: Duration,
    ) -> Self {
        Devices {
            map: HashMap::new(),
            offline_after,
            probe_every,
            bus,
            noun,
        }
    }

    /// Gate a routine request for device `d` at `now`.
    pub(crate) fn gate(&mut self, d: u8, now: Instant) -> Gate {
        match self.map.get_mut(&d).filter(|dev| !dev.online) {
            None => Gate::Send,
            Some(dev) if now < dev.next_probe => Gate::Refuse,
            Some(dev) => {
                dev.next_probe = now + self.probe_every;
                Gate::Probe
            }
        }
    }

    /// Device `d` answered; its health for the link's counters.
    pub(crate) fn answered(&mut self, d: u8) -> DeviceHealth {
        let dev = self.map.entry(d).or_insert_with(Device::new);
        let was_offline = !dev.online;
        dev.failures = 0;
        dev.online = true;
        if was_offline {
            info!(bus = %self.bus, device = d, "{} answers again", self.noun);
        }
        DeviceHealth {
            online: true,
            consecutive_failures: 0,
        }
    }

    /// Device `d` failed a request; its health for the link's counters.
    pub(crate) fn failed(&mut self, d: u8) -> DeviceHealth {
        let dev = self.map.entry(d).or_insert_with(Device::new);
        dev.failures += 1;
        if dev.online && dev.failures >= self.offline_after {
            dev.online = false;
            dev.next_probe = Instant::now() + self.probe_every;
            warn!(bus = %self.bus, device = d, failures = dev.failures,
                probe_every = ?self.probe_every, "{} offline", self.noun);
        }
        DeviceHealth {
            online: dev.online,
            consecutive_failures: dev.failures,
        }
    }
}

impl Device {
    fn new() -> Self {
        Device {
            failures: 0,
            online: true,
            next_probe: Instant::now(),
        }
    }
}

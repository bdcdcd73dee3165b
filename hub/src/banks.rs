//! Starting the drivers of banks that have no controller of their own.
//!
//! Each RS-485 port or TCP gateway gets one link (the task that owns the bus); each bank on it
//! gets an adapter that presents the bank on the MQTT bus exactly as a bank with its own
//! controller would. The adapters log in to the broker's internal listener with the hub's own
//! credentials. From there on the workflow core sees these banks like any other.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use locker_config::{
    BitPolarity, BoardLock as ConfigLock, Config, Driver, Parity as ConfigParity,
    Transport as ConfigTransport,
};
use locker_drivers::adapter::{self, BankHandle, BankSettings, BrokerTarget};
use locker_drivers::board::{BoardLock, DoorMap, Polarity};
use locker_drivers::kerong::{self, Kerong};
use locker_drivers::link::{Link, LinkSettings, Parity, SerialLine, Transport};
use locker_drivers::lockboard8a::{self, Lockboard8a};
use tracing::info;

/// The running adapters; dropping this stops them.
pub struct Drivers {
    _banks: Vec<BankHandle>,
}

/// Start a link per bus and an adapter per RS-485 bank. A bank whose driver cannot start is
/// left out with the reason in the returned list (the rest of the site keeps working, and the
/// bank shows as offline).
pub fn start(
    config: &Config,
    broker: SocketAddr,
    credentials: (&str, &str),
) -> (Drivers, Vec<String>) {
    let target = BrokerTarget {
        host: broker.ip().to_string(),
        port: broker.port(),
        credentials: Some((credentials.0.to_owned(), credentials.1.to_owned())),
    };
    let mut kerong_links: BTreeMap<String, Link<Kerong>> = BTreeMap::new();
    let mut lockboard_links: BTreeMap<String, Link<Lockboard8a>> = BTreeMap::new();
    let mut banks = Vec::new();
    let mut problems = Vec::new();
    for bank in &config.banks {
        let settings = |poll_interval| BankSettings {
            bank: bank.id.clone(),
            broker: target.clone(),
            poll_interval,
        };
        let handle = match &bank.driver {
            Driver::Kerong(k) => {
                let protocol = Kerong {
                    polarity: polarity(k.polarity),
                    pulse: Some(k.pulse),
                    ..Kerong::default()
                };
                let transport = transport(&k.transport);
                let link = kerong_links
                    .entry(transport.describe())
                    .or_insert_with(|| {
                        let mut s = LinkSettings::new(transport);
                        s.response_timeout = k.response_timeout;
                        s.retries = k.retries;
                        Link::spawn(protocol.clone(), s)
                    })
                    .clone();
                door_map(&bank.id, &k.doors, kerong::LIMITS).and_then(|map| {
                    adapter::spawn(protocol, link, map, settings(k.poll_interval))
                        .map_err(|e| e.to_string())
                })
            }
            Driver::Lockboard8a(l) => {
                let protocol = Lockboard8a::default();
                let transport = transport(&l.transport);
                let link = lockboard_links
                    .entry(transport.describe())
                    .or_insert_with(|| {
                        let mut s = LinkSettings::new(transport);
                        s.response_timeout = l.response_timeout;
                        s.retries = l.retries;
                        Link::spawn(protocol.clone(), s)
                    })
                    .clone();
                door_map(&bank.id, &l.doors, lockboard8a::LIMITS).and_then(|map| {
                    adapter::spawn(protocol, link, map, settings(l.poll_interval))
                        .map_err(|e| e.to_string())
                })
            }
            Driver::Modbus(_) => {
                Err("the modbus lock driver is not part of this release yet".into())
            }
            Driver::Mqtt | Driver::Sim(_) => continue,
        };
        match handle {
            Ok(handle) => {
                info!(bank = %bank.id, driver = bank.driver.kind(), "lock-board driver started");
                banks.push(handle);
            }
            Err(e) => problems.push(format!("bank {}: {e}", bank.id)),
        }
    }
    (Drivers { _banks: banks }, problems)
}

fn door_map(
    bank: &str,
    doors: &[ConfigLock],
    limits: locker_drivers::board::Limits,
) -> Result<DoorMap, String> {
    DoorMap::new(
        doors.iter().map(|d| {
            (
                d.door,
                BoardLock {
                    board: d.board,
                    lock: d.lock,
                },
            )
        }),
        limits,
    )
    .map_err(|e| format!("door map of bank {bank}: {e}"))
}

fn polarity(p: BitPolarity) -> Polarity {
    match p {
        BitPolarity::OneIsClosed => Polarity::OneIsClosed,
        BitPolarity::ZeroIsClosed => Polarity::ZeroIsClosed,
    }
}

fn transport(t: &ConfigTransport) -> Transport {
    match t {
        ConfigTransport::Serial(line) => Transport::Serial(SerialLine {
            path: line.path.clone(),
            baud: line.baud,
            parity: match line.parity {
                ConfigParity::None => Parity::None,
                ConfigParity::Even => Parity::Even,
                ConfigParity::Odd => Parity::Odd,
            },
            data_bits: line.data_bits,
            stop_bits: line.stop_bits,
        }),
        ConfigTransport::Tcp(target) => Transport::Tcp {
            host: target.host.clone(),
            port: target.port,
        },
    }
}

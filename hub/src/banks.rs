//! Starting the drivers of banks that have no controller of their own.
//!
//! Each RS-485 port or TCP gateway gets one link (the task that owns the bus); each bank on it
//! gets an adapter that presents the bank on the MQTT bus exactly as a bank with its own
//! controller would. Each bank's adapter and sensor poller log in through the front door's
//! loopback listener with that bank's own in-process login, so they have exactly a bank
//! controller's rights. From there on the workflow core sees these banks like any other.
//!
//! Modbus is the same with a Modbus link per bus: a `modbus` bank's adapter and every
//! `modbus-points` sensor on that bus (a sensor without its own `port`/`host` is on its
//! bank's bus) share it, because a bus has one master. Each bank's sensors publish their
//! readings over one MQTT connection of their own.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use locker_config::{
    BitPolarity, BoardLock as ConfigLock, Config, Driver, LockOutput, ModbusDriver,
    ModbusPointsSensor, ModbusTransport as ConfigModbusTransport, Parity as ConfigParity,
    RegisterFormat, RegisterType, SensorSource, SerialLine as ConfigSerialLine,
    Transport as ConfigTransport, WordOrder,
};
use locker_drivers::adapter::{self, BankHandle, BankSettings, BrokerTarget};
use locker_drivers::board::{BoardLock, DoorMap, Polarity};
use locker_drivers::kerong::{self, Kerong};
use locker_drivers::link::{Link, LinkSettings, LinkStats, Parity, SerialLine, Transport};
use locker_drivers::lockboard8a::{self, Lockboard8a};
use locker_drivers::modbus::io::{Feedback, IoDoor, ModbusIo, Output};
use locker_drivers::modbus::points::{self, PointSpec, Register, SensorSpec, SensorsHandle};
use locker_drivers::modbus::value::{self, Format};
use locker_drivers::modbus::{ModbusLink, ModbusSettings, ModbusTransport};
use tracing::info;

use locker_app::health::{AdapterHealth, BusHealth, DriversHealth, LastError};

/// The running adapters and sensor pollers; dropping this stops them.
pub struct Drivers {
    banks: Vec<(String, BankHandle)>,
    links: Vec<AnyLink>,
    _sensors: Vec<SensorsHandle>,
}

/// A bus-owning link of any protocol, for its counters.
enum AnyLink {
    Kerong(Link<Kerong>),
    Lockboard8a(Link<Lockboard8a>),
    Modbus(ModbusLink),
}

impl Drivers {
    /// Counters of every bus and the state of every adapter, for `/healthz` and the system page.
    pub fn health(&self) -> DriversHealth {
        let buses = self
            .links
            .iter()
            .map(|l| {
                let (protocol, stats) = match l {
                    AnyLink::Kerong(l) => ("kerong", l.stats()),
                    AnyLink::Lockboard8a(l) => ("lockboard-8a", l.stats()),
                    AnyLink::Modbus(l) => ("modbus", l.stats()),
                };
                bus_health(protocol, stats)
            })
            .collect();
        let banks = self
            .banks
            .iter()
            .map(|(bank, handle)| {
                let h = handle.health();
                AdapterHealth {
                    bank: bank.clone(),
                    mqtt_connected: h.mqtt_connected,
                    online: h.online,
                    silent_boards: h
                        .boards
                        .iter()
                        .filter(|(_, answers)| !**answers)
                        .map(|(b, _)| *b)
                        .collect(),
                    poll_cycles: h.cycles,
                    last_cycle_ms: h.last_cycle.map(|d| d.as_secs_f64() * 1000.0),
                }
            })
            .collect();
        DriversHealth { buses, banks }
    }
}

fn bus_health(protocol: &'static str, s: LinkStats) -> BusHealth {
    let (online, offline): (Vec<_>, Vec<_>) = s.devices.iter().partition(|(_, d)| d.online);
    BusHealth {
        bus: s.bus,
        protocol: protocol.to_owned(),
        port_open: s.port_open,
        requests: s.requests,
        replies: s.replies,
        timeouts: s.timeouts,
        checksum_errors: s.checksum_errors,
        exceptions: s.exceptions,
        retries: s.retries,
        stray_frames: s.stray_frames,
        garbage_bytes: s.garbage_bytes,
        reopens: s.reopens,
        refused: s.refused,
        expired: s.expired,
        last_error: s.last_error.map(|(at, message)| LastError {
            at_ms: at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            message,
        }),
        devices_online: online.into_iter().map(|(d, _)| *d).collect(),
        devices_offline: offline.into_iter().map(|(d, _)| *d).collect(),
    }
}

/// Start a link per bus and an adapter per RS-485 bank. A bank whose driver cannot start is
/// left out with the reason in the returned list (the rest of the site keeps working, and the
/// bank shows as offline).
pub fn start(
    config: &Config,
    broker: SocketAddr,
    login_of: impl Fn(&str) -> Option<(String, String)>,
) -> (Drivers, Vec<String>) {
    let target_of = |bank: &str| BrokerTarget {
        host: broker.ip().to_string(),
        port: broker.port(),
        credentials: login_of(bank),
    };
    let mut kerong_links: BTreeMap<String, Link<Kerong>> = BTreeMap::new();
    let mut lockboard_links: BTreeMap<String, Link<Lockboard8a>> = BTreeMap::new();
    let mut modbus_links: BTreeMap<String, ModbusLink> = BTreeMap::new();
    let mut banks = Vec::new();
    let mut problems = Vec::new();
    for bank in &config.banks {
        let settings = |poll_interval, idle_poll_interval, unreachable_after| BankSettings {
            bank: bank.id.clone(),
            broker: target_of(&bank.id),
            poll_interval,
            idle_poll_interval,
            unreachable_after,
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
                    adapter::spawn(
                        protocol,
                        link,
                        map,
                        settings(k.poll_interval, k.idle_poll_interval, k.unreachable_after),
                    )
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
                    adapter::spawn(
                        protocol,
                        link,
                        map,
                        settings(l.poll_interval, l.idle_poll_interval, l.unreachable_after),
                    )
                    .map_err(|e| e.to_string())
                })
            }
            Driver::Modbus(m) => {
                let link = modbus_link(&mut modbus_links, &m.transport, |s| {
                    s.response_timeout = m.response_timeout;
                    s.retries = m.retries;
                });
                ModbusIo::new(&io_doors(m), None)
                    .map_err(|e| format!("door map of bank {}: {e}", bank.id))
                    .and_then(|(protocol, map)| {
                        adapter::spawn(
                            protocol,
                            link,
                            map,
                            settings(m.poll_interval, m.idle_poll_interval, m.unreachable_after),
                        )
                        .map_err(|e| e.to_string())
                    })
            }
            Driver::Mqtt | Driver::Sim(_) => continue,
        };
        match handle {
            Ok(handle) => {
                info!(bank = %bank.id, driver = bank.driver.kind(), "lock-board driver started");
                banks.push((bank.id.clone(), handle));
            }
            Err(e) => problems.push(format!("bank {}: {e}", bank.id)),
        }
    }
    // Sensors after the lock banks, so a sensor on a bank's bus finds that bank's link (with
    // the bank's timing) rather than making one with its own.
    let mut sensors = Vec::new();
    for bank in &config.banks {
        let mut polled = Vec::new();
        for unit in &bank.units {
            for sensor in &unit.sensors {
                let SensorSource::ModbusPoints(m) = &sensor.source else {
                    continue;
                };
                let link = modbus_link(&mut modbus_links, &m.transport, |s| {
                    s.response_timeout = m.response_timeout;
                });
                polled.push((sensor_spec(&bank.id, &unit.id, &sensor.id, m), link));
            }
        }
        if polled.is_empty() {
            continue;
        }
        let count = polled.len();
        match points::spawn(&bank.id, polled, &target_of(&bank.id)) {
            Ok(handle) => {
                info!(bank = %bank.id, sensors = count, "modbus sensor poller started");
                sensors.push(handle);
            }
            Err(e) => problems.push(format!("bank {} sensors: {e}", bank.id)),
        }
    }
    (
        Drivers {
            banks,
            links: kerong_links
                .into_values()
                .map(AnyLink::Kerong)
                .chain(lockboard_links.into_values().map(AnyLink::Lockboard8a))
                .chain(modbus_links.into_values().map(AnyLink::Modbus))
                .collect(),
            _sensors: sensors,
        },
        problems,
    )
}

/// The link of the Modbus bus `t`, started with `tune` applied if it is the first user.
fn modbus_link(
    links: &mut BTreeMap<String, ModbusLink>,
    t: &ConfigModbusTransport,
    tune: impl FnOnce(&mut ModbusSettings),
) -> ModbusLink {
    let transport = modbus_transport(t);
    links
        .entry(transport.describe())
        .or_insert_with(|| {
            let mut s = ModbusSettings::new(transport);
            tune(&mut s);
            s.drain_quiet = s.response_timeout / 2;
            ModbusLink::spawn(s)
        })
        .clone()
}

fn io_doors(m: &ModbusDriver) -> Vec<IoDoor> {
    m.doors
        .iter()
        .map(|d| IoDoor {
            door: d.door,
            slave: d.slave,
            output: match d.output {
                LockOutput::Coil(a) => Output::Coil(a),
                LockOutput::CommandRegister(a) => Output::CommandRegister(a),
            },
            feedback: d.feedback.map(|f| Feedback {
                input: f.input,
                polarity: polarity(f.polarity),
            }),
            pulse: d.pulse,
        })
        .collect()
}

fn sensor_spec(bank: &str, unit: &str, sensor: &str, m: &ModbusPointsSensor) -> SensorSpec {
    SensorSpec {
        bank: bank.to_owned(),
        unit: unit.to_owned(),
        sensor: sensor.to_owned(),
        slave: m.slave,
        points: m
            .points
            .iter()
            .map(|p| PointSpec {
                name: p.name.clone(),
                register: match p.register {
                    RegisterType::Coil => Register::Coil,
                    RegisterType::Discrete => Register::Discrete,
                    RegisterType::Input => Register::Input,
                    RegisterType::Holding => Register::Holding,
                },
                address: p.address,
                format: match p.format {
                    RegisterFormat::S16 => Format::S16,
                    RegisterFormat::U16 => Format::U16,
                    RegisterFormat::S32(o) => Format::S32(word_order(o)),
                    RegisterFormat::U32(o) => Format::U32(word_order(o)),
                    RegisterFormat::F32(o) => Format::F32(word_order(o)),
                },
                scale: p.scale,
                writable: p.writable,
            })
            .collect(),
        poll_interval: m.poll_interval,
        response_timeout: m.response_timeout,
    }
}

fn word_order(o: WordOrder) -> value::WordOrder {
    match o {
        WordOrder::HighFirst => value::WordOrder::HighFirst,
        WordOrder::LowFirst => value::WordOrder::LowFirst,
    }
}

fn modbus_transport(t: &ConfigModbusTransport) -> ModbusTransport {
    match t {
        ConfigModbusTransport::Rtu(line) => ModbusTransport::Rtu(serial_line(line)),
        ConfigModbusTransport::Tcp(target) => ModbusTransport::Tcp {
            host: target.host.clone(),
            port: target.port,
        },
        ConfigModbusTransport::RtuOverTcp(target) => ModbusTransport::RtuOverTcp {
            host: target.host.clone(),
            port: target.port,
        },
    }
}

fn serial_line(line: &ConfigSerialLine) -> SerialLine {
    SerialLine {
        path: line.path.clone(),
        baud: line.baud,
        parity: match line.parity {
            ConfigParity::None => Parity::None,
            ConfigParity::Even => Parity::Even,
            ConfigParity::Odd => Parity::Odd,
        },
        data_bits: line.data_bits,
        stop_bits: line.stop_bits,
    }
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
        ConfigTransport::Serial(line) => Transport::Serial(serial_line(line)),
        ConfigTransport::Tcp(target) => Transport::Tcp {
            host: target.host.clone(),
            port: target.port,
        },
    }
}

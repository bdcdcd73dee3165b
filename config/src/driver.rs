//! How a bank's doors are driven (`driver = { kind = ..., ... }` in a `[[bank]]`).
//!
//! | kind           | hardware                                                     |
//! |----------------|--------------------------------------------------------------|
//! | `mqtt`         | the bank has its own controller that connects to the broker  |
//! | `sim`          | simulated doors, for demos and tests                         |
//! | `kerong`       | Kerong KR-CU12/CU16 RS-485 boards (serial or TCP gateway)    |
//! | `lockboard-8a` | "8A/80" RS-485 lock boards (Shuoming and clones)             |
//! | `modbus`       | Modbus RTU/TCP relay or I/O modules driving discrete locks   |
//!
//! Serial drivers take `port = "/dev/ttyUSB0"` (with `baud`, `parity`, `data_bits`,
//! `stop_bits`) or `host = "10.0.0.20:5000"` for a TCP-to-RS-485 gateway. Board drivers map
//! doors to (board, lock) with `map = [{ doors = "1-16", board = 0 }, ...]`: consecutive doors
//! take consecutive locks starting at `lock` (default 1). Without `map`, door n is lock
//! ((n-1) mod L) + 1 on board ((n-1) div L) + first board, L being the locks per board.
//! Modbus banks map doors to outputs with
//! `map = [{ doors = "1-8", slave = 1, coil = 0, feedback = 0, pulse = "500ms" }]`, addresses
//! counting up from the one given (`command_register = 1` instead of `coil` for Eletechsup-style
//! modules that time the pulse themselves).

use std::time::Duration;

use crate::doors;
use crate::duration;
use crate::raw::{Ctx, Item, Loc, Table};
use crate::transport::{
    read_modbus_transport, read_transport, BusUse, Endpoint, LineRules, ModbusTransport, Transport,
    KERONG_BAUDS, STANDARD_BAUDS,
};

/// The driver of one bank, with that driver's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Driver {
    /// The bank's own controller connects to the broker and speaks the topic schema.
    Mqtt,
    /// Simulated doors.
    Sim(SimDriver),
    /// Kerong CU12/CU16 boards.
    Kerong(KerongDriver),
    /// "8A/80" lock-control boards.
    Lockboard8a(Lockboard8aDriver),
    /// Modbus relay / digital-input modules.
    Modbus(ModbusDriver),
}

impl Driver {
    /// The `kind` string this driver is written as.
    pub fn kind(&self) -> &'static str {
        match self {
            Driver::Mqtt => "mqtt",
            Driver::Sim(_) => "sim",
            Driver::Kerong(_) => "kerong",
            Driver::Lockboard8a(_) => "lockboard-8a",
            Driver::Modbus(_) => "modbus",
        }
    }
}

/// Settings of the simulated driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDriver {
    /// Delay between an unlock command and the simulated door opening (default 200 ms).
    pub latency: Duration,
    /// Doors that never open when unlocked, to demonstrate jam handling (default none).
    pub stuck_doors: Vec<u16>,
}

/// Which level of a status bit means "closed" (lock latched, door shut). Boards and
/// switches differ, so it is configured rather than assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitPolarity {
    /// Bit set = closed (`"one-is-closed"`).
    OneIsClosed,
    /// Bit clear = closed (`"zero-is-closed"`).
    ZeroIsClosed,
}

/// Where one door's lock is on a lock-board bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoardLock {
    /// Door number (as on the compartment).
    pub door: u16,
    /// Board address (DIP switch).
    pub board: u8,
    /// Lock channel on the board, 1-based.
    pub lock: u8,
}

/// Kerong KR-CU12/CU16 boards: 19200 8N1 by default, boards 0-15, locks 1-16.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerongDriver {
    /// Serial port or TCP gateway (default TCP port 5000).
    pub transport: Transport,
    /// Meaning of lock status bits; sources disagree, verify on the hardware.
    pub polarity: BitPolarity,
    /// Unlock pulse set on the boards, in 10 ms steps: 500 ms suits solenoids, 1 s motor locks.
    pub pulse: Duration,
    /// How long to wait for a reply (default 500 ms).
    pub response_timeout: Duration,
    /// Retries after a timeout or bad frame (default 1).
    pub retries: u8,
    /// How often door state is polled (default 1 s).
    pub poll_interval: Duration,
    /// How often an idle board is polled (default: `poll_interval`, no difference): every door
    /// closed, no unlock in the last 5 s, answering. The longest a door forced open there goes
    /// unnoticed.
    pub idle_poll_interval: Duration,
    /// Failed polls in a row before a board's doors are reported unreachable (default 3); the
    /// first good poll brings them back.
    pub unreachable_after: u32,
    /// Door to (board, lock), one entry per door.
    pub doors: Vec<BoardLock>,
}

/// "8A/80" lock boards: 9600 8N1 by default, boards 1-32, locks 1-24.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockboard8aDriver {
    /// Serial port or TCP gateway (default TCP port 5000).
    pub transport: Transport,
    /// How long to wait for a reply (default 1 s).
    pub response_timeout: Duration,
    /// Retries after a timeout or bad frame (default 1).
    pub retries: u8,
    /// How often door state is polled (default 1 s).
    pub poll_interval: Duration,
    /// How often an idle board is polled (default: `poll_interval`, no difference): every door
    /// closed, no unlock in the last 5 s, answering. The longest a door forced open there goes
    /// unnoticed.
    pub idle_poll_interval: Duration,
    /// Failed polls in a row before a board's doors are reported unreachable (default 3); the
    /// first good poll brings them back.
    pub unreachable_after: u32,
    /// Door to (board, lock), one entry per door.
    pub doors: Vec<BoardLock>,
}

/// Modbus relay / I/O modules driving discrete locks: 9600 8N1 by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModbusDriver {
    /// Where the modules are.
    pub transport: ModbusTransport,
    /// How long to wait for a reply (default 500 ms).
    pub response_timeout: Duration,
    /// Retries after a timeout (default 1).
    pub retries: u8,
    /// How often door feedback inputs are polled (default 500 ms).
    pub poll_interval: Duration,
    /// How often an idle module is polled (default: `poll_interval`): as for the lock boards.
    pub idle_poll_interval: Duration,
    /// Failed polls in a row before a module's doors are reported unreachable (default 3).
    pub unreachable_after: u32,
    /// One entry per door.
    pub doors: Vec<ModbusDoor>,
}

/// One door on a Modbus module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModbusDoor {
    /// Door number.
    pub door: u16,
    /// Modbus slave id (1-247).
    pub slave: u8,
    /// What releases the lock.
    pub output: LockOutput,
    /// The door switch, if wired.
    pub feedback: Option<DoorFeedback>,
    /// How long the lock is energised. For command registers the module times the pulse
    /// itself (safer: a hub crash cannot leave a solenoid powered), in whole seconds.
    pub pulse: Duration,
}

/// What releases a lock on a Modbus module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutput {
    /// A coil (FC 05 on, wait `pulse`, off).
    Coil(u16),
    /// An Eletechsup-style command holding register (FC 06 `0x06SS`: on for SS seconds).
    CommandRegister(u16),
}

/// A door-switch discrete input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorFeedback {
    /// Discrete-input address (FC 02).
    pub input: u16,
    /// Which level means the door is shut.
    pub polarity: BitPolarity,
}

/// What reading a driver yields besides the driver: which doors it maps (for the bank to
/// compare with its compartments) and its bus use (for checks across banks).
pub(crate) struct DriverRead {
    pub(crate) driver: Driver,
    /// Doors the driver names, with where; each must be a compartment of the bank.
    pub(crate) named: Vec<(u16, Loc)>,
    /// Whether the driver reaches every door by itself; if not, every compartment must be
    /// among `named`.
    pub(crate) drives_all: bool,
    pub(crate) bus: Option<BusUse>,
    /// The driver's `map` key (or the driver table when there is none).
    pub(crate) map_loc: Loc,
}

const KINDS: [(&str, Kind); 5] = [
    ("mqtt", Kind::Mqtt),
    ("sim", Kind::Sim),
    ("kerong", Kind::Kerong),
    ("lockboard-8a", Kind::Lockboard8a),
    ("modbus", Kind::Modbus),
];

#[derive(Clone, Copy)]
enum Kind {
    Mqtt,
    Sim,
    Kerong,
    Lockboard8a,
    Modbus,
}

/// Board-protocol limits (board address range, locks per board).
struct BoardRules {
    boards: std::ops::RangeInclusive<u8>,
    locks: u8,
}

const KERONG_BOARDS: BoardRules = BoardRules {
    boards: 0..=15,
    locks: 16,
};
const LOCKBOARD_8A_BOARDS: BoardRules = BoardRules {
    boards: 1..=32,
    locks: 24,
};

/// Reads a bank's `driver`; `doors` are the bank's compartment doors (for default maps).
pub(crate) fn read(item: &Item, cx: &mut Ctx, doors: &[u16]) -> Option<DriverRead> {
    let mut t = item.table(cx)?;
    let kind = t.require(cx, "kind")?.choice(cx, "driver kind", &KINDS);
    let Some(kind) = kind else {
        // Which keys belong here depends on the kind, so unknown keys are not reported.
        return None;
    };
    let map_loc = t.peek("map").unwrap_or_else(|| t.loc());
    let read = match kind {
        Kind::Mqtt => Some(DriverRead {
            driver: Driver::Mqtt,
            named: Vec::new(),
            drives_all: true,
            bus: None,
            map_loc,
        }),
        Kind::Sim => read_sim(&mut t, cx, map_loc),
        Kind::Kerong => read_kerong(&mut t, cx, doors, map_loc),
        Kind::Lockboard8a => read_lockboard_8a(&mut t, cx, doors, map_loc),
        Kind::Modbus => read_modbus(&mut t, cx, map_loc),
    };
    t.finish(cx);
    read
}

fn read_sim(t: &mut Table, cx: &mut Ctx, map_loc: Loc) -> Option<DriverRead> {
    let latency = t.duration_within(
        cx,
        "latency",
        Duration::from_millis(200),
        Duration::ZERO,
        Duration::from_secs(30),
    );
    let mut named = Vec::new();
    if let Some(list) = t.get("stuck_doors").and_then(|l| l.array(cx)) {
        for item in list {
            if let Some(n) = item.int(cx, 1..=i64::from(doors::MAX_DOOR)) {
                named.push((n as u16, item.loc()));
            }
        }
    }
    Some(DriverRead {
        driver: Driver::Sim(SimDriver {
            latency,
            stuck_doors: named.iter().map(|(door, _)| *door).collect(),
        }),
        named,
        drives_all: true,
        bus: None,
        map_loc,
    })
}

/// Reply timeout, retries and poll interval, shared by the bus drivers.
struct Timing {
    response_timeout: Duration,
    retries: u8,
    poll_interval: Duration,
    idle_poll_interval: Duration,
    unreachable_after: u32,
}

fn read_timing(t: &mut Table, cx: &mut Ctx, response_ms: u64, poll_ms: u64) -> Timing {
    Timing {
        response_timeout: t.duration_within(
            cx,
            "response_timeout",
            Duration::from_millis(response_ms),
            Duration::from_millis(10),
            Duration::from_secs(10),
        ),
        retries: t.int_or(cx, "retries", 0..=5, 1) as u8,
        poll_interval: t.duration_within(
            cx,
            "poll_interval",
            Duration::from_millis(poll_ms),
            Duration::from_millis(50),
            Duration::from_secs(60),
        ),
        unreachable_after: t.int_or(cx, "unreachable_after", 1..=100, 3) as u32,
        idle_poll_interval: Duration::ZERO,
    }
    .with_idle(t, cx)
}

impl Timing {
    /// `idle_poll_interval`: at least `poll_interval` (equal: no board is ever polled less).
    fn with_idle(mut self, t: &mut Table, cx: &mut Ctx) -> Timing {
        // Off unless chosen: polling idle boards 5 times less often moved the pickup p99 by
        // about 1 ms (within the run-to-run spread; docs/performance.md), and it makes a door
        // forced open on an idle board known later.
        let default = self.poll_interval;
        self.idle_poll_interval = t.duration_within(
            cx,
            "idle_poll_interval",
            default,
            Duration::from_millis(50),
            Duration::from_secs(300),
        );
        if self.idle_poll_interval < self.poll_interval {
            if let Some(item) = t.get("idle_poll_interval") {
                cx.error(
                    &item.span(),
                    item.key(),
                    format!(
                        "{} is shorter than poll_interval ({}): idle boards are polled less often \
                         than busy ones, never more",
                        crate::duration::format(self.idle_poll_interval),
                        crate::duration::format(self.poll_interval)
                    ),
                );
            }
            self.idle_poll_interval = self.poll_interval;
        }
        self
    }
}

fn read_kerong(t: &mut Table, cx: &mut Ctx, doors: &[u16], map_loc: Loc) -> Option<DriverRead> {
    let rules = LineRules {
        baud: 19200,
        bauds: &KERONG_BAUDS,
        tcp_port: 5000,
    };
    let transport = read_transport(t, cx, &rules, "kerong", true);
    let polarity = read_polarity(t, cx, "polarity");
    let pulse = t.duration_within(
        cx,
        "pulse",
        Duration::from_millis(500),
        Duration::from_millis(10),
        Duration::from_secs(60),
    );
    if !pulse.as_millis().is_multiple_of(10) {
        if let Some(item) = t.get("pulse") {
            cx.error(
                &item.span(),
                item.key(),
                format!(
                    "{} cannot be set on a Kerong board: the pulse is set in 10 ms steps",
                    duration::format(pulse)
                ),
            );
        }
    }
    let timing = read_timing(t, cx, 500, 1000);
    let map = read_board_map(t, cx, &KERONG_BOARDS, "kerong", doors);
    let (transport, mut bus) = transport??;
    let (board_locks, named, drives_all, endpoints) = map?;
    bus.endpoints = endpoints;
    Some(DriverRead {
        driver: Driver::Kerong(KerongDriver {
            transport,
            polarity: polarity?,
            pulse,
            response_timeout: timing.response_timeout,
            retries: timing.retries,
            poll_interval: timing.poll_interval,
            idle_poll_interval: timing.idle_poll_interval,
            unreachable_after: timing.unreachable_after,
            doors: board_locks,
        }),
        named,
        drives_all,
        bus: Some(bus),
        map_loc,
    })
}

fn read_lockboard_8a(
    t: &mut Table,
    cx: &mut Ctx,
    doors: &[u16],
    map_loc: Loc,
) -> Option<DriverRead> {
    let rules = LineRules {
        baud: 9600,
        bauds: &STANDARD_BAUDS,
        tcp_port: 5000,
    };
    let transport = read_transport(t, cx, &rules, "lockboard-8a", true);
    let timing = read_timing(t, cx, 1000, 1000);
    let map = read_board_map(t, cx, &LOCKBOARD_8A_BOARDS, "lockboard-8a", doors);
    let (transport, mut bus) = transport??;
    let (board_locks, named, drives_all, endpoints) = map?;
    bus.endpoints = endpoints;
    Some(DriverRead {
        driver: Driver::Lockboard8a(Lockboard8aDriver {
            transport,
            response_timeout: timing.response_timeout,
            retries: timing.retries,
            poll_interval: timing.poll_interval,
            idle_poll_interval: timing.idle_poll_interval,
            unreachable_after: timing.unreachable_after,
            doors: board_locks,
        }),
        named,
        drives_all,
        bus: Some(bus),
        map_loc,
    })
}

fn read_polarity(t: &mut Table, cx: &mut Ctx, key: &'static str) -> Option<BitPolarity> {
    const POLARITIES: [(&str, BitPolarity); 2] = [
        ("one-is-closed", BitPolarity::OneIsClosed),
        ("zero-is-closed", BitPolarity::ZeroIsClosed),
    ];
    match t.get(key) {
        None => Some(BitPolarity::OneIsClosed),
        Some(item) => item.choice(cx, "polarity", &POLARITIES),
    }
}

type BoardMap = (Vec<BoardLock>, Vec<(u16, Loc)>, bool, Vec<Endpoint>);

/// `map = [{ doors = "1-16", board = 0, lock = 1 }, ...]`, or the default map.
fn read_board_map(
    t: &mut Table,
    cx: &mut Ctx,
    rules: &BoardRules,
    family: &str,
    compartment_doors: &[u16],
) -> Option<BoardMap> {
    let Some(list) = t.get("map") else {
        return default_board_map(t, cx, rules, family, compartment_doors);
    };
    let entries = list.array(cx)?;
    let before = cx.problem_count();
    let (mut locks, mut named, mut endpoints) = (Vec::new(), Vec::new(), Vec::new());
    for entry in &entries {
        let Some(mut e) = entry.table(cx) else {
            continue;
        };
        let span = doors::read(&mut e, cx);
        let board = e.require(cx, "board").and_then(|b| {
            b.int(
                cx,
                i64::from(*rules.boards.start())..=i64::from(*rules.boards.end()),
            )
        });
        let lock_item = e.get("lock");
        let first_lock = match &lock_item {
            None => Some(1),
            Some(l) => l.int(cx, 1..=i64::from(rules.locks)),
        };
        e.finish(cx);
        let (Some(span), Some(board), Some(first_lock)) = (span, board, first_lock) else {
            continue;
        };
        let last_lock = first_lock + span.doors.len() as i64 - 1;
        if last_lock > i64::from(rules.locks) {
            let loc = lock_item.map(|l| l.loc()).unwrap_or(span.loc.clone());
            cx.error_at(
                &loc,
                format!(
                    "{} doors from lock {first_lock} would need lock {last_lock}, but a {family} \
                     board has {} locks: split the range over boards",
                    span.doors.len(),
                    rules.locks
                ),
            );
            continue;
        }
        for (i, door) in span.doors.iter().enumerate() {
            let lock = (first_lock + i as i64) as u8;
            locks.push(BoardLock {
                door: *door,
                board: board as u8,
                lock,
            });
            named.push((*door, span.loc.clone()));
            endpoints.push(Endpoint {
                device: board as u16,
                point: Some(("lock", u16::from(lock))),
                loc: span.loc.clone(),
            });
        }
    }
    (cx.problem_count() == before).then_some((locks, named, false, endpoints))
}

/// Door n is lock ((n-1) mod L) + 1 on board first + (n-1) div L.
fn default_board_map(
    t: &Table,
    cx: &mut Ctx,
    rules: &BoardRules,
    family: &str,
    compartment_doors: &[u16],
) -> Option<BoardMap> {
    let first = *rules.boards.start();
    let board_count = u16::from(*rules.boards.end() - first) + 1;
    let reach = board_count * u16::from(rules.locks);
    let loc = t.loc();
    let (mut locks, mut endpoints) = (Vec::new(), Vec::new());
    for door in compartment_doors {
        if *door > reach {
            cx.error_at(
                &loc,
                format!(
                    "door {door} is beyond the default {family} map (doors 1-{reach}); \
                     give the bank a `map`"
                ),
            );
            return None;
        }
        let index = door - 1;
        let board = first + (index / u16::from(rules.locks)) as u8;
        let lock = (index % u16::from(rules.locks)) as u8 + 1;
        locks.push(BoardLock {
            door: *door,
            board,
            lock,
        });
        endpoints.push(Endpoint {
            device: u16::from(board),
            point: Some(("lock", u16::from(lock))),
            loc: loc.clone(),
        });
    }
    Some((locks, Vec::new(), true, endpoints))
}

fn read_modbus(t: &mut Table, cx: &mut Ctx, map_loc: Loc) -> Option<DriverRead> {
    let transport = read_modbus_transport(t, cx, true);
    let timing = read_timing(t, cx, 500, 500);
    let map = t.require(cx, "map").and_then(|m| read_modbus_map(&m, cx));
    let (transport, mut bus) = transport??;
    let (doors, named, endpoints) = map?;
    bus.endpoints = endpoints;
    Some(DriverRead {
        driver: Driver::Modbus(ModbusDriver {
            transport,
            response_timeout: timing.response_timeout,
            retries: timing.retries,
            poll_interval: timing.poll_interval,
            idle_poll_interval: timing.idle_poll_interval,
            unreachable_after: timing.unreachable_after,
            doors,
        }),
        named,
        drives_all: false,
        bus: Some(bus),
        map_loc,
    })
}

type ModbusMap = (Vec<ModbusDoor>, Vec<(u16, Loc)>, Vec<Endpoint>);

/// `map = [{ doors = "1-8", slave = 1, coil = 0, feedback = 0, pulse = "500ms" }, ...]`.
fn read_modbus_map(list: &Item, cx: &mut Ctx) -> Option<ModbusMap> {
    let entries = list.array(cx)?;
    let before = cx.problem_count();
    let (mut out, mut named, mut endpoints) = (Vec::new(), Vec::new(), Vec::new());
    for entry in &entries {
        let Some(mut e) = entry.table(cx) else {
            continue;
        };
        let span = doors::read(&mut e, cx);
        let slave = e.require(cx, "slave").and_then(|s| s.int(cx, 1..=247));
        let coil = e.get("coil");
        let register = e.get("command_register");
        let output = match (&coil, &register) {
            (Some(_), Some(r)) => {
                cx.error(
                    &r.span(),
                    r.key(),
                    "give either `coil` or `command_register`, not both",
                );
                None
            }
            (None, None) => {
                cx.error_at(
                    &e.loc(),
                    "missing `coil = ADDRESS` or `command_register = ADDRESS` (the first door's output)",
                );
                None
            }
            (Some(c), None) => c.int(cx, 0..=65535).map(|a| ("coil", a)),
            (None, Some(r)) => r.int(cx, 0..=65535).map(|a| ("register", a)),
        };
        let feedback_item = e.get("feedback");
        let feedback = feedback_item
            .as_ref()
            .map(|f| f.int(cx, 0..=65535))
            .map_or(Some(None), |a| a.map(Some));
        let polarity = read_polarity(&mut e, cx, "feedback_polarity");
        let is_register = matches!(output, Some(("register", _)));
        let default_pulse = if is_register { 1000 } else { 500 };
        let pulse_item = e.get("pulse").map(|p| p.loc());
        let pulse = e.duration_within(
            cx,
            "pulse",
            Duration::from_millis(default_pulse),
            Duration::from_millis(50),
            Duration::from_secs(255),
        );
        if is_register && (pulse.subsec_millis() != 0 || pulse.as_secs() == 0) {
            if let Some(loc) = &pulse_item {
                cx.error_at(
                    loc,
                    format!(
                        "{}: a command register times the pulse itself in whole seconds (1s to 255s)",
                        duration::format(pulse)
                    ),
                );
            }
        }
        e.finish(cx);
        let (Some(span), Some(slave), Some((kind, first)), Some(feedback), Some(polarity)) =
            (span, slave, output, feedback, polarity)
        else {
            continue;
        };
        let count = span.doors.len() as i64;
        let overflow = |first: i64| first + count - 1 > 65535;
        if overflow(first) || feedback.is_some_and(overflow) {
            cx.error_at(
                &span.loc,
                format!("{count} doors from address {first} run past address 65535"),
            );
            continue;
        }
        for (i, door) in span.doors.iter().enumerate() {
            let address = (first + i as i64) as u16;
            let output = if kind == "coil" {
                LockOutput::Coil(address)
            } else {
                LockOutput::CommandRegister(address)
            };
            let feedback = feedback.map(|f| DoorFeedback {
                input: (f + i as i64) as u16,
                polarity,
            });
            endpoints.push(Endpoint {
                device: slave as u16,
                point: Some((kind, address)),
                loc: span.loc.clone(),
            });
            if let Some(f) = feedback {
                endpoints.push(Endpoint {
                    device: slave as u16,
                    point: Some(("input", f.input)),
                    loc: span.loc.clone(),
                });
            }
            out.push(ModbusDoor {
                door: *door,
                slave: slave as u8,
                output,
                feedback,
                pulse,
            });
            named.push((*door, span.loc.clone()));
        }
    }
    (cx.problem_count() == before).then_some((out, named, endpoints))
}

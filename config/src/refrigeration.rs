//! Refrigerated and frozen units (`[[bank.unit]]`), their temperature sensors and alarm
//! thresholds.
//!
//! A unit is one cooled cabinet: the compartments it cools name it with `unit = "ID"`.
//!
//! ```toml
//! [[bank.unit]]
//! id = "fridge"
//! temperature = "refrigerated"     # or "frozen"
//! min_c = 1.0                      # alarm band; defaults 1..5 °C refrigerated, -30..-15 °C frozen
//! max_c = 5.0
//! alarm_after = "10m"              # only alarm when outside the band this long
//! door_grace = "5m"                # ignore readings this long after a door of the unit closes
//! hysteresis_c = 0.5               # an alarm clears only this far back inside the band
//! door_open_limit = "2m"           # the unit's door open longer than this alarms
//! excursion_limit = "30m"          # outside the band this long: its parcels are flagged
//! summary_interval = "15m"         # one min/max/mean summary per sensor per interval
//! silent_after = "1m"              # floor of the silence alarm (at least 3 × the interval)
//!
//! [[bank.unit.sensor]]
//! id = "cabinet"
//! kind = "modbus-points"           # or "mqtt" (reported by the bank controller) or "sim"
//! slave = 3
//! model = "carel-ir33"             # or "xy-md02", "eliwell-id974", or a custom `points` map
//! ```
//!
//! A sensor of kind `mqtt` or `sim` takes `interval` (default 30 s): how often it reports, which
//! the silence alarm is judged against. A Modbus sensor without `port`/`host` shares its bank's
//! Modbus bus. A custom map lists
//! points by name; `temperature` is required, and `device_address` (the controller's own
//! Modbus address register) can never be writable: writing it re-addresses the controller.
//!
//! ```toml
//! points = { temperature = { register = "holding", address = 0x0100, format = "s16", scale = 0.1 },
//!            device_address = { register = "holding", address = 0x0420 } }
//! ```
//!
//! Formats: `s16`, `u16` (default), and over two registers `s32`, `u32`, `f32`, with
//! `word_order = "high-first"` (default) or `"low-first"`.

use std::time::Duration;

use crate::raw::check_topic_id;
use crate::raw::{Ctx, Item, Loc, Table};
use crate::transport::{self, BusUse, Endpoint, ModbusTransport};

/// Compartment temperature classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TemperatureClass {
    /// Not cooled.
    Ambient,
    /// Cooled (groceries).
    Refrigerated,
    /// Frozen.
    Frozen,
}

/// One cooled cabinet and how its temperature is watched.
#[derive(Debug, Clone, PartialEq)]
pub struct RefrigeratedUnit {
    /// Identifier, unique in the bank; compartments refer to it.
    pub id: String,
    /// Human name (default: the id).
    pub name: String,
    /// [`TemperatureClass::Refrigerated`] or [`TemperatureClass::Frozen`].
    pub temperature: TemperatureClass,
    /// Lowest acceptable temperature, °C.
    pub min_c: f64,
    /// Highest acceptable temperature, °C.
    pub max_c: f64,
    /// How long a reading must stay outside the band before an alarm.
    pub alarm_after: Duration,
    /// How long readings are ignored after one of the unit's doors closes.
    pub door_grace: Duration,
    /// An alarm clears only once readings are this far back inside the band, °C (so a
    /// reading hovering at a threshold does not raise and clear alarms over and over).
    pub hysteresis_c: f64,
    /// The unit's own door (reported by its controller) open longer than this alarms.
    pub door_open_limit: Duration,
    /// Parcels in the unit are flagged to staff once an excursion lasts longer than this.
    pub excursion_limit: Duration,
    /// Length of the interval of one temperature summary (min/max/mean) per sensor.
    pub summary_interval: Duration,
    /// Least silence before a sensor-silent alarm; the alarm waits at least three of the
    /// sensor's intervals as well.
    pub silent_after: Duration,
    /// At least one sensor.
    pub sensors: Vec<TemperatureSensor>,
}

/// A temperature sensor of a unit.
#[derive(Debug, Clone, PartialEq)]
pub struct TemperatureSensor {
    /// Identifier, unique in the unit (part of MQTT topics).
    pub id: String,
    /// Where readings come from.
    pub source: SensorSource,
    /// How often a reading is expected: the poll interval of a Modbus sensor, `interval`
    /// (default 30 s) of a simulated or MQTT one. Silence is judged against it.
    pub interval: Duration,
}

/// Where a sensor's readings come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SensorSource {
    /// Simulated readings starting at `start_c` (default: middle of the band).
    Sim {
        /// First simulated reading, °C.
        start_c: f64,
    },
    /// Published by the bank's controller on the bus.
    Mqtt,
    /// Polled from a Modbus device.
    ModbusPoints(ModbusPointsSensor),
}

/// A Modbus temperature transmitter or refrigeration controller.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusPointsSensor {
    /// Where the device is (the bank's Modbus bus when not given).
    pub transport: ModbusTransport,
    /// Modbus slave id, 1-247.
    pub slave: u8,
    /// Built-in register map, or [`PointsModel::Custom`].
    pub model: PointsModel,
    /// The register map in effect (built-in or custom); always has a `temperature` point.
    pub points: Vec<ModbusPoint>,
    /// How often to read (default 30 s).
    pub poll_interval: Duration,
    /// How long to wait for a reply (default 500 ms).
    pub response_timeout: Duration,
}

impl ModbusPointsSensor {
    /// The point with this name.
    pub fn point(&self, name: &str) -> Option<&ModbusPoint> {
        self.points.iter().find(|p| p.name == name)
    }
}

/// Which register map a Modbus sensor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointsModel {
    /// XY-MD02 / SHT20 temperature and humidity transmitter (`"xy-md02"`).
    XyMd02,
    /// Carel ir33 refrigeration controller (`"carel-ir33"`).
    CarelIr33,
    /// Eliwell ID 974 LX refrigeration controller (`"eliwell-id974"`).
    EliwellId974,
    /// A map given in the file (`points = { ... }`).
    Custom,
}

/// One named value on a Modbus device.
#[derive(Debug, Clone, PartialEq)]
pub struct ModbusPoint {
    /// Point name: `temperature`, `humidity`, `setpoint`, `door`, `device_address`, ...
    pub name: String,
    /// Register table.
    pub register: RegisterType,
    /// 0-based PDU address.
    pub address: u16,
    /// How a 16-bit register is read (ignored for coils and discrete inputs).
    pub format: RegisterFormat,
    /// Multiplier from the raw value (e.g. 0.1 for tenths of a degree).
    pub scale: f64,
    /// Whether the hub may write it. Never true for `device_address`.
    pub writable: bool,
}

/// Modbus register tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterType {
    /// Read/write bit (FC 01/05).
    Coil,
    /// Read-only bit (FC 02).
    Discrete,
    /// Read-only 16-bit register (FC 04).
    Input,
    /// Read/write 16-bit register (FC 03/06).
    Holding,
}

/// How a point's register value is interpreted (`format`, with `word_order` for 32 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterFormat {
    /// Two's-complement signed (`"s16"`).
    S16,
    /// Unsigned (`"u16"`).
    U16,
    /// Signed 32-bit over two consecutive registers (`"s32"`).
    S32(WordOrder),
    /// Unsigned 32-bit over two registers (`"u32"`).
    U32(WordOrder),
    /// IEEE 754 single precision over two registers (`"f32"`).
    F32(WordOrder),
}

impl RegisterFormat {
    /// How many consecutive registers a value takes.
    pub fn registers(self) -> u16 {
        match self {
            RegisterFormat::S16 | RegisterFormat::U16 => 1,
            _ => 2,
        }
    }
}

/// Which of a 32-bit value's two registers comes first; devices differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordOrder {
    /// The high word at the lower address (`"high-first"`, the default; Modbus's big-endian).
    HighFirst,
    /// The low word at the lower address (`"low-first"`, common on PLC-style devices).
    LowFirst,
}

/// The point that holds the device's own Modbus address.
const DEVICE_ADDRESS: &str = "device_address";

impl PointsModel {
    /// The built-in register map (empty for [`PointsModel::Custom`]). Read-only: writing
    /// a controller's parameters needs a custom map that says so.
    pub fn builtin_points(self) -> Vec<ModbusPoint> {
        use RegisterFormat::{S16, U16};
        use RegisterType::{Coil, Discrete, Holding, Input};
        let table: &[(&str, RegisterType, u16, RegisterFormat, f64)] = match self {
            // Input 0x0001 temperature x0.1 (signed), 0x0002 humidity; address at 0x0101.
            PointsModel::XyMd02 => &[
                ("temperature", Input, 0x0001, S16, 0.1),
                ("humidity", Input, 0x0002, U16, 0.1),
                (DEVICE_ADDRESS, Holding, 0x0101, U16, 1.0),
            ],
            // Wiren Board template config-carel-ir33.json.
            PointsModel::CarelIr33 => &[
                ("temperature", Input, 403, S16, 0.1),
                ("evaporator", Input, 412, S16, 0.1),
                ("setpoint", Holding, 404, S16, 0.1),
                ("door", Discrete, 43, U16, 1.0),
                ("compressor", Discrete, 7, U16, 1.0),
                ("alarm_high", Coil, 5, U16, 1.0),
                ("alarm_low", Coil, 2, U16, 1.0),
            ],
            // Wiren Board template config-eliwell-id-974-lx-wb-ref.json.
            PointsModel::EliwellId974 => &[
                ("temperature", Input, 20286, S16, 0.1),
                ("setpoint", Holding, 24128, S16, 0.1),
                ("door", Discrete, 1947, U16, 1.0),
                ("alarm_high", Discrete, 1894, U16, 1.0),
                ("alarm_low", Discrete, 1895, U16, 1.0),
                (DEVICE_ADDRESS, Holding, 14182, U16, 1.0),
            ],
            PointsModel::Custom => &[],
        };
        table
            .iter()
            .map(|(name, register, address, format, scale)| ModbusPoint {
                name: (*name).to_owned(),
                register: *register,
                address: *address,
                format: *format,
                scale: *scale,
                writable: false,
            })
            .collect()
    }
}

/// A unit as read, with what the bank needs to check compartments against it.
pub(crate) struct UnitRead {
    pub(crate) unit: RefrigeratedUnit,
    pub(crate) loc: Loc,
}

/// Reads one `[[bank.unit]]`. `bank_bus` is the bank's Modbus transport, which sensors
/// without their own `port`/`host` share; their bus use is appended to `buses`.
pub(crate) fn read_unit(
    item: &Item,
    cx: &mut Ctx,
    bank_bus: Option<&ModbusTransport>,
    buses: &mut Vec<BusUse>,
) -> Option<UnitRead> {
    let mut t = item.table(cx)?;
    let loc = t.loc();
    let before = cx.problem_count();
    let id = t.require(cx, "id").and_then(|i| check_topic_id(&i, cx));
    let name = t.opt_string(cx, "name");
    const CLASSES: [(&str, TemperatureClass); 2] = [
        ("refrigerated", TemperatureClass::Refrigerated),
        ("frozen", TemperatureClass::Frozen),
    ];
    let temperature = match t.get("temperature") {
        None => Some(TemperatureClass::Refrigerated),
        Some(c) => c.choice(cx, "unit temperature class", &CLASSES),
    };
    let (default_min, default_max) = match temperature {
        Some(TemperatureClass::Frozen) => (-30.0, -15.0),
        _ => (1.0, 5.0),
    };
    let min_c = read_celsius(&mut t, cx, "min_c", default_min);
    let max_item = t.get("max_c").map(|m| m.loc());
    let max_c = read_celsius(&mut t, cx, "max_c", default_max);
    if let (Some(min), Some(max)) = (min_c, max_c) {
        if min >= max {
            cx.error_at(
                max_item.as_ref().unwrap_or(&loc),
                format!("max_c ({max}) must be above min_c ({min})"),
            );
        }
    }
    let alarm_after = t.duration_within(
        cx,
        "alarm_after",
        Duration::from_secs(600),
        Duration::ZERO,
        Duration::from_secs(86_400),
    );
    let door_grace = t.duration_within(
        cx,
        "door_grace",
        Duration::from_secs(300),
        Duration::ZERO,
        Duration::from_secs(3_600),
    );
    let hysteresis_item = t.get("hysteresis_c").map(|h| h.loc());
    let hysteresis_c = match t.get("hysteresis_c") {
        None => Some(0.5),
        Some(h) => h.float(cx).filter(|v| {
            let ok = (0.0..=5.0).contains(v);
            if !ok {
                cx.error(
                    &h.span(),
                    h.key(),
                    format!("hysteresis of {v} °C is outside 0 to 5 °C"),
                );
            }
            ok
        }),
    };
    if let (Some(min), Some(max), Some(h)) = (min_c, max_c, hysteresis_c) {
        if min < max && h * 2.0 >= max - min {
            cx.error_at(
                hysteresis_item.as_ref().unwrap_or(&loc),
                format!(
                    "hysteresis_c ({h}) must be less than half the band {min}..{max} °C, or an \
                     alarm could never clear"
                ),
            );
        }
    }
    let door_open_limit = t.duration_within(
        cx,
        "door_open_limit",
        Duration::from_secs(120),
        Duration::from_secs(1),
        Duration::from_secs(3_600),
    );
    let excursion_limit = t.duration_within(
        cx,
        "excursion_limit",
        Duration::from_secs(1_800),
        Duration::from_secs(1),
        Duration::from_secs(86_400),
    );
    let summary_interval = t.duration_within(
        cx,
        "summary_interval",
        Duration::from_secs(900),
        Duration::from_secs(1),
        Duration::from_secs(86_400),
    );
    let silent_after = t.duration_within(
        cx,
        "silent_after",
        Duration::from_secs(60),
        Duration::from_secs(1),
        Duration::from_secs(86_400),
    );
    let midpoint = match (min_c, max_c) {
        (Some(min), Some(max)) => (min + max) / 2.0,
        _ => 0.0,
    };
    let mut sensors = Vec::new();
    match t.get("sensor") {
        None => cx.error_at(
            &loc,
            "unit has no sensors: add a `[[bank.unit.sensor]]` so its temperature is watched",
        ),
        Some(list) => {
            if let Some(entries) = list.array(cx) {
                if entries.is_empty() {
                    cx.error(&list.span(), list.key(), "unit has no sensors");
                }
                let mut ids: Vec<String> = Vec::new();
                for entry in &entries {
                    let Some((sensor, id_loc)) = read_sensor(entry, cx, bank_bus, midpoint, buses)
                    else {
                        continue;
                    };
                    if ids.contains(&sensor.id) {
                        cx.error_at(
                            &id_loc,
                            format!("sensor id `{}` is used twice in this unit", sensor.id),
                        );
                    }
                    ids.push(sensor.id.clone());
                    sensors.push(sensor);
                }
            }
        }
    }
    t.finish(cx);
    if cx.problem_count() != before {
        return None;
    }
    let id = id?;
    Some(UnitRead {
        unit: RefrigeratedUnit {
            name: name.unwrap_or_else(|| id.clone()),
            id,
            temperature: temperature?,
            min_c: min_c?,
            max_c: max_c?,
            alarm_after,
            door_grace,
            hysteresis_c: hysteresis_c?,
            door_open_limit,
            excursion_limit,
            summary_interval,
            silent_after,
            sensors,
        },
        loc,
    })
}

/// A temperature in °C within what a locker cooling unit can plausibly reach.
fn read_celsius(t: &mut Table, cx: &mut Ctx, key: &'static str, default: f64) -> Option<f64> {
    let Some(item) = t.get(key) else {
        return Some(default);
    };
    let c = item.float(cx)?;
    if !(-50.0..=30.0).contains(&c) {
        cx.error(
            &item.span(),
            item.key(),
            format!("{c} °C is outside -50 to 30 °C (temperatures are in Celsius)"),
        );
        return None;
    }
    Some(c)
}

#[derive(Clone, Copy)]
enum SensorKind {
    Sim,
    Mqtt,
    ModbusPoints,
}

fn read_sensor(
    item: &Item,
    cx: &mut Ctx,
    bank_bus: Option<&ModbusTransport>,
    midpoint: f64,
    buses: &mut Vec<BusUse>,
) -> Option<(TemperatureSensor, Loc)> {
    let mut t = item.table(cx)?;
    let id_item = t.require(cx, "id");
    let id_loc = id_item.as_ref().map(|i| i.loc());
    let id = id_item.and_then(|i| check_topic_id(&i, cx));
    const KINDS: [(&str, SensorKind); 3] = [
        ("sim", SensorKind::Sim),
        ("mqtt", SensorKind::Mqtt),
        ("modbus-points", SensorKind::ModbusPoints),
    ];
    // With no known kind, which keys belong here is unknown: unknown keys are not reported.
    let kind = t
        .require(cx, "kind")
        .and_then(|k| k.choice(cx, "sensor kind", &KINDS))?;
    // Simulated and controller-reported sensors say how often they report; a Modbus sensor's
    // poll interval is read with its transport.
    let reported_interval = match kind {
        SensorKind::Sim | SensorKind::Mqtt => Some(t.duration_within(
            cx,
            "interval",
            Duration::from_secs(30),
            Duration::from_secs(1),
            Duration::from_secs(3_600),
        )),
        SensorKind::ModbusPoints => None,
    };
    let source = match kind {
        SensorKind::Sim => {
            let start_c = match t.get("start_c") {
                None => Some(midpoint),
                Some(s) => s.float(cx),
            };
            start_c.map(|start_c| SensorSource::Sim { start_c })
        }
        SensorKind::Mqtt => Some(SensorSource::Mqtt),
        SensorKind::ModbusPoints => {
            read_modbus_points(&mut t, cx, bank_bus, buses).map(SensorSource::ModbusPoints)
        }
    };
    t.finish(cx);
    let source = source?;
    let interval = match (&source, reported_interval) {
        (SensorSource::ModbusPoints(m), _) => m.poll_interval,
        (_, Some(i)) => i,
        (_, None) => Duration::from_secs(30),
    };
    Some((
        TemperatureSensor {
            id: id?,
            source,
            interval,
        },
        id_loc?,
    ))
}

fn read_modbus_points(
    t: &mut Table,
    cx: &mut Ctx,
    bank_bus: Option<&ModbusTransport>,
    buses: &mut Vec<BusUse>,
) -> Option<ModbusPointsSensor> {
    let transport = match transport::read_modbus_transport(t, cx, false) {
        None => None,
        Some(Some(found)) => Some(found),
        Some(None) => match bank_bus {
            Some(shared) => Some((shared.clone(), shared.bus_use(t.loc()))),
            None => {
                cx.error_at(
                    &t.loc(),
                    "sensor needs `port` or `host`: only a bank with the modbus driver has a \
                     Modbus bus to share",
                );
                None
            }
        },
    };
    let slave_item = t.require(cx, "slave");
    let slave = slave_item.as_ref().and_then(|s| s.int(cx, 1..=247));
    const MODELS: [(&str, PointsModel); 3] = [
        ("xy-md02", PointsModel::XyMd02),
        ("carel-ir33", PointsModel::CarelIr33),
        ("eliwell-id974", PointsModel::EliwellId974),
    ];
    let model = t.get("model");
    let custom = t.get("points");
    let map = match (model, custom) {
        (Some(_), Some(p)) => {
            cx.error(
                &p.span(),
                p.key(),
                "give either a built-in `model` or a custom `points` map, not both",
            );
            None
        }
        (None, None) => {
            cx.error_at(
                &t.loc(),
                "missing `model` (xy-md02, carel-ir33, eliwell-id974) or a custom `points` map",
            );
            None
        }
        (Some(m), None) => m
            .choice(cx, "sensor model", &MODELS)
            .map(|model| (model, model.builtin_points())),
        (None, Some(p)) => read_points(&p, cx).map(|points| (PointsModel::Custom, points)),
    };
    let poll_interval = t.duration_within(
        cx,
        "poll_interval",
        Duration::from_secs(30),
        Duration::from_secs(1),
        Duration::from_secs(3_600),
    );
    let response_timeout = t.duration_within(
        cx,
        "response_timeout",
        Duration::from_millis(500),
        Duration::from_millis(10),
        Duration::from_secs(10),
    );
    let ((transport, mut bus), slave, (model, points)) = (transport?, slave?, map?);
    if let Some(slave_item) = slave_item {
        bus.endpoints.push(Endpoint {
            device: slave as u16,
            point: None,
            loc: slave_item.loc(),
        });
    }
    buses.push(bus);
    Some(ModbusPointsSensor {
        transport,
        slave: slave as u8,
        model,
        points,
        poll_interval,
        response_timeout,
    })
}

/// A custom register map: `points = { NAME = { register, address, format, scale, writable } }`.
fn read_points(item: &Item, cx: &mut Ctx) -> Option<Vec<ModbusPoint>> {
    let table = item.table(cx)?;
    let before = cx.problem_count();
    let mut points = Vec::new();
    for (name, entry) in table.entries() {
        let well_formed = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            cx.error(
                &entry.span(),
                entry.key(),
                format!("point name `{name}` must be lowercase letters, digits and '_'"),
            );
            continue;
        }
        if let Some(point) = read_point(name, &entry, cx) {
            points.push(point);
        }
    }
    match points.iter().find(|p| p.name == "temperature") {
        None if cx.problem_count() == before => {
            cx.error(
                &item.span(),
                item.key(),
                "custom map has no `temperature` point: the unit's alarms need one",
            );
        }
        Some(p) if !matches!(p.register, RegisterType::Input | RegisterType::Holding) => {
            cx.error(
                &item.span(),
                &format!("{}.temperature", item.key()),
                "`temperature` must be an input or holding register",
            );
        }
        _ => {}
    }
    (cx.problem_count() == before).then_some(points)
}

fn read_point(name: &str, item: &Item, cx: &mut Ctx) -> Option<ModbusPoint> {
    let mut t = item.table(cx)?;
    const REGISTERS: [(&str, RegisterType); 4] = [
        ("coil", RegisterType::Coil),
        ("discrete", RegisterType::Discrete),
        ("input", RegisterType::Input),
        ("holding", RegisterType::Holding),
    ];
    const FORMATS: [(&str, RegisterFormat); 5] = [
        ("s16", RegisterFormat::S16),
        ("u16", RegisterFormat::U16),
        ("s32", RegisterFormat::S32(WordOrder::HighFirst)),
        ("u32", RegisterFormat::U32(WordOrder::HighFirst)),
        ("f32", RegisterFormat::F32(WordOrder::HighFirst)),
    ];
    const ORDERS: [(&str, WordOrder); 2] = [
        ("high-first", WordOrder::HighFirst),
        ("low-first", WordOrder::LowFirst),
    ];
    let register = t
        .require(cx, "register")
        .and_then(|r| r.choice(cx, "register type", &REGISTERS));
    let address = t.require(cx, "address").and_then(|a| a.int(cx, 0..=65535));
    let is_word = matches!(
        register,
        Some(RegisterType::Input) | Some(RegisterType::Holding)
    );
    let format = match t.get("format") {
        None => Some(RegisterFormat::U16),
        Some(f) if register.is_some() && !is_word => {
            cx.error(
                &f.span(),
                f.key(),
                "`format` applies to input and holding registers, not single bits",
            );
            None
        }
        Some(f) => f.choice(cx, "register format", &FORMATS),
    };
    let format = match (t.get("word_order"), format) {
        (None, f) => f,
        (Some(_), None) => None,
        (Some(o), Some(f)) if f.registers() == 1 => {
            cx.error(
                &o.span(),
                o.key(),
                "`word_order` applies to 32-bit formats (s32, u32, f32)",
            );
            None
        }
        (Some(o), Some(f)) => o.choice(cx, "word order", &ORDERS).map(|order| match f {
            RegisterFormat::S32(_) => RegisterFormat::S32(order),
            RegisterFormat::U32(_) => RegisterFormat::U32(order),
            RegisterFormat::F32(_) => RegisterFormat::F32(order),
            other => other,
        }),
    };
    let address = match (address, format) {
        (Some(a), Some(f)) if a + i64::from(f.registers()) - 1 > 65535 => {
            cx.error_at(
                &t.loc(),
                format!("a 32-bit value at address {a} runs past address 65535"),
            );
            None
        }
        (a, _) => a,
    };
    let scale = match t.get("scale") {
        None => Some(1.0),
        Some(s) if register.is_some() && !is_word => {
            cx.error(
                &s.span(),
                s.key(),
                "`scale` applies to input and holding registers, not single bits",
            );
            None
        }
        Some(s) => s.float(cx).filter(|f| {
            if *f == 0.0 {
                cx.error(&s.span(), s.key(), "scale must not be 0");
            }
            *f != 0.0
        }),
    };
    let writable = match t.get("writable") {
        None => Some(false),
        Some(w) => w.bool(cx).filter(|writable| {
            let problem = match register {
                _ if !writable => None,
                _ if name == DEVICE_ADDRESS => Some(
                    "the device-address register must never be writable: writing it \
                     re-addresses the controller and can take the whole bus down",
                ),
                Some(RegisterType::Discrete) | Some(RegisterType::Input) => {
                    Some("discrete inputs and input registers are read-only in Modbus")
                }
                _ if format.is_some_and(|f| f.registers() > 1) => Some(
                    "32-bit points cannot be writable: the hub writes single registers (FC 06)",
                ),
                _ => None,
            };
            if let Some(message) = problem {
                cx.error(&w.span(), w.key(), message);
            }
            problem.is_none()
        }),
    };
    t.finish(cx);
    Some(ModbusPoint {
        name: name.to_owned(),
        register: register?,
        address: address? as u16,
        format: format?,
        scale: scale?,
        writable: writable?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_maps_have_a_readable_temperature_and_no_writable_points() {
        for model in [
            PointsModel::XyMd02,
            PointsModel::CarelIr33,
            PointsModel::EliwellId974,
        ] {
            let points = model.builtin_points();
            let temperature = points.iter().find(|p| p.name == "temperature");
            assert!(
                matches!(temperature, Some(p) if p.register == RegisterType::Input && p.format == RegisterFormat::S16),
                "{model:?}"
            );
            assert!(points.iter().all(|p| !p.writable), "{model:?}");
        }
        assert!(PointsModel::Custom.builtin_points().is_empty());
    }
}

//! Locker banks (`[[bank]]`) and their compartments.
//!
//! ```toml
//! [[bank]]
//! id = "lobby"                           # unique; letters, digits, '_' and '-' (MQTT-topic safe)
//! name = "Lobby east wall"               # default: the id
//! location = "Ground floor, by the mailboxes"
//! driver = { kind = "mqtt" }             # see the driver module for every kind
//! mqtt = { username = "lobby", password_hash = "$argon2id$..." }   # optional broker login
//! kiosks = [{ id = "lobby-1", username = "kiosk-lobby-1", password_hash = "$argon2id$..." }]
//! compartments = [
//!   { doors = "1-8",  size = "S", column = 1 },
//!   { doors = "9-12", size = "M", column = 2, accessible = true },
//!   { door = 13, size = "bulk", column = 3, out_of_service = true },
//!   { doors = "14-15", size = "M", column = 4, unit = "fridge" },   # cooled by [[bank.unit]] "fridge"
//! ]
//! ```
//!
//! Each compartments entry describes one door (`door = N`) or a range (`doors = "A-B"`) that
//! share the same settings:
//! - `size`: `XS`, `S`, `M`, `L`, `XL` or `bulk` (required);
//! - `temperature`: `ambient` (default), `refrigerated` or `frozen`; cooled compartments
//!   name their unit with `unit = "ID"` and then take its temperature class by default;
//! - `accessible`: within wheelchair reach (default false);
//! - `out_of_service`: never assigned (default false);
//! - `column` (default 1) and `row`: where the door is, counted from the left and from the
//!   top. Doors of a range go down the column; `row` gives the first door's row and defaults
//!   to the row after the lowest one already in that column.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::credentials::{self, BankMqtt, KioskLogin};
use crate::diagnostics::did_you_mean;
use crate::doors;
use crate::driver::{self, Driver};
use crate::raw::{Ctx, Item, Loc};
use crate::refrigeration::{self, RefrigeratedUnit};
use crate::transport::BusUse;

/// One bank of lockers: a cabinet row driven by one controller or bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Bank {
    /// Identifier, unique on the site and safe in MQTT topics (`[A-Za-z0-9_-]+`).
    pub id: String,
    /// Human name (default: the id).
    pub name: String,
    /// Where the bank is, for staff and carriers (default empty).
    pub location: String,
    /// How the doors are driven.
    pub driver: Driver,
    /// The compartments, ordered by door number.
    pub compartments: Vec<Compartment>,
    /// Broker login of the bank's controller, if it has one.
    pub mqtt: Option<BankMqtt>,
    /// Broker logins of the bank's kiosks (screens or keypads that send kiosk requests).
    pub kiosks: Vec<KioskLogin>,
    /// Refrigerated and frozen units of this bank.
    pub units: Vec<RefrigeratedUnit>,
}

impl Bank {
    /// The compartment behind a door.
    pub fn compartment(&self, door: u16) -> Option<&Compartment> {
        self.compartments.iter().find(|c| c.door == door)
    }

    /// A unit by id.
    pub fn unit(&self, id: &str) -> Option<&RefrigeratedUnit> {
        self.units.iter().find(|u| u.id == id)
    }
}

/// One compartment (one door).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compartment {
    /// Door number as labelled on the bank, unique in the bank.
    pub door: u16,
    /// Size class.
    pub size: SizeClass,
    /// Temperature class.
    pub temperature: TemperatureClass,
    /// Within wheelchair reach.
    pub accessible: bool,
    /// Never assigned to deliveries.
    pub out_of_service: bool,
    /// Column from the left, 1-based.
    pub column: u16,
    /// Row from the top, 1-based.
    pub row: u16,
    /// The unit cooling this compartment (set exactly when not ambient).
    pub unit: Option<String>,
}

/// Compartment size classes, smallest to largest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SizeClass {
    /// Extra small (letters, small parcels).
    XS,
    /// Small.
    S,
    /// Medium.
    M,
    /// Large.
    L,
    /// Extra large.
    XL,
    /// Oversized items.
    Bulk,
}

pub(crate) use crate::raw::check_topic_id;
pub use crate::refrigeration::TemperatureClass;

const SIZES: [(&str, SizeClass); 6] = [
    ("XS", SizeClass::XS),
    ("S", SizeClass::S),
    ("M", SizeClass::M),
    ("L", SizeClass::L),
    ("XL", SizeClass::XL),
    ("bulk", SizeClass::Bulk),
];

const TEMPERATURES: [(&str, TemperatureClass); 3] = [
    ("ambient", TemperatureClass::Ambient),
    ("refrigerated", TemperatureClass::Refrigerated),
    ("frozen", TemperatureClass::Frozen),
];

/// A bank as read. Its id and MQTT username are kept even when the bank has problems, so
/// the site-wide uniqueness checks still run on them.
pub(crate) struct BankRead {
    /// `None` when the bank had problems (they are recorded).
    pub(crate) bank: Option<Bank>,
    pub(crate) id: Option<(String, Loc)>,
    /// Every MQTT username the bank declares (controller and kiosks), checked site-wide.
    pub(crate) usernames: Vec<(String, Loc)>,
}

/// A compartment before its unit is known.
struct Pending {
    compartment: Compartment,
    explicit_temperature: bool,
    loc: Loc,
    unit_loc: Option<Loc>,
}

/// Reads one `[[bank]]`. Bus uses of its driver and sensors are appended to `buses`.
pub(crate) fn read(item: &Item, cx: &mut Ctx, buses: &mut Vec<BusUse>) -> Option<BankRead> {
    let mut t = item.table(cx)?;
    let before = cx.problem_count();
    let id = t
        .require(cx, "id")
        .and_then(|i| Some((check_topic_id(&i, cx)?, i.loc())));
    let name = t.opt_string(cx, "name");
    let location = t.opt_string(cx, "location").unwrap_or_default();

    let pending = match t.require(cx, "compartments") {
        None => Vec::new(),
        Some(list) => read_compartments(&list, cx),
    };
    let doors: Vec<u16> = pending.iter().map(|p| p.compartment.door).collect();

    let driver = t
        .require(cx, "driver")
        .and_then(|d| driver::read(&d, cx, &doors));
    // Recorded before the units' sensors so a clash is reported at the sensor.
    let driver = driver.map(|mut read| {
        buses.extend(read.bus.take());
        read
    });
    let bank_modbus = match &driver {
        Some(read) => match &read.driver {
            Driver::Modbus(m) => Some(m.transport.clone()),
            _ => None,
        },
        None => None,
    };

    let mut units: Vec<refrigeration::UnitRead> = Vec::new();
    // Ids of units that failed to read: compartments naming them are not reported again.
    let mut broken_units: Vec<String> = Vec::new();
    if let Some(list) = t.get("unit").and_then(|u| u.array(cx)) {
        for entry in &list {
            let declared = entry.peek_str("id");
            let Some(unit) = refrigeration::read_unit(entry, cx, bank_modbus.as_ref(), buses)
            else {
                broken_units.extend(declared);
                continue;
            };
            if units.iter().any(|u| u.unit.id == unit.unit.id) {
                cx.error_at(
                    &unit.loc,
                    format!("unit id `{}` is used twice in this bank", unit.unit.id),
                );
                continue;
            }
            units.push(unit);
        }
    }

    let mqtt = t.get("mqtt").map(|m| credentials::read(&m, cx));
    let mut usernames = Vec::new();
    let mut kiosks: Vec<KioskLogin> = Vec::new();
    if let Some(list) = t.get("kiosks").and_then(|k| k.array(cx)) {
        for entry in &list {
            let loc = entry.loc();
            let (login, read) = credentials::read_kiosk(entry, cx);
            usernames.extend(read.username);
            let Some(login) = login else { continue };
            if kiosks.iter().any(|k| k.id == login.id) {
                cx.error_at(
                    &loc,
                    format!("kiosk id `{}` is used twice in this bank", login.id),
                );
                continue;
            }
            kiosks.push(login);
        }
    }
    t.finish(cx);

    let compartments = resolve_units(pending, &units, &broken_units, cx);
    if let Some(read) = &driver {
        check_driver_doors(read, &compartments, cx);
    }
    let credentials = match mqtt {
        None => Some(None),
        Some(read) => {
            usernames.extend(read.username);
            read.credentials.map(Some)
        }
    };
    let bank = (|| {
        if cx.problem_count() != before {
            return None;
        }
        let id = id.as_ref()?.0.clone();
        Some(Bank {
            name: name.unwrap_or_else(|| id.clone()),
            id,
            location,
            driver: driver?.driver,
            compartments,
            mqtt: credentials?,
            kiosks,
            units: units.into_iter().map(|u| u.unit).collect(),
        })
    })();
    Some(BankRead {
        bank,
        id,
        usernames,
    })
}

/// Expands the compartments list; door numbers and positions must be unique in the bank.
fn read_compartments(list: &Item, cx: &mut Ctx) -> Vec<Pending> {
    let Some(entries) = list.array(cx) else {
        return Vec::new();
    };
    if entries.is_empty() {
        cx.error(
            &list.span(),
            list.key(),
            "a bank needs at least one compartment",
        );
    }
    let mut out: Vec<Pending> = Vec::new();
    let mut seen: BTreeMap<u16, String> = BTreeMap::new();
    let mut places: BTreeMap<(u16, u16), u16> = BTreeMap::new();
    // Lowest row used so far in each column, so ranges without `row` stack downwards.
    let mut column_bottom: BTreeMap<u16, u16> = BTreeMap::new();
    for entry in &entries {
        let Some(mut e) = entry.table(cx) else {
            continue;
        };
        let span = doors::read(&mut e, cx);
        let size = e
            .require(cx, "size")
            .and_then(|s| s.choice(cx, "size class", &SIZES));
        let temperature_item = e.get("temperature");
        let temperature = match &temperature_item {
            None => Some(TemperatureClass::Ambient),
            Some(t) => t.choice(cx, "temperature class", &TEMPERATURES),
        };
        let unit_item = e.get("unit");
        let unit = unit_item
            .as_ref()
            .and_then(|u| u.str(cx))
            .map(str::to_owned);
        let accessible = e.bool_or(cx, "accessible", false);
        let out_of_service = e.bool_or(cx, "out_of_service", false);
        let column = e.int_or(cx, "column", 1..=999, 1) as u16;
        let row_item = e.get("row");
        let first_row = row_item.as_ref().and_then(|r| r.int(cx, 1..=999));
        e.finish(cx);
        let (Some(span), Some(size), Some(temperature)) = (span, size, temperature) else {
            continue;
        };
        let mut row = first_row
            .map(|r| r as u16)
            .unwrap_or_else(|| column_bottom.get(&column).map_or(1, |r| r + 1));
        for door in span.doors {
            if let Some(first) = seen.get(&door) {
                cx.error_at(
                    &span.loc,
                    format!("door {door} is already used by `{first}`"),
                );
                continue;
            }
            seen.insert(door, span.loc.key.clone());
            if let Some(other) = places.insert((column, row), door) {
                cx.error_at(
                    &span.loc,
                    format!("door {door} would be at column {column}, row {row}, where door {other} already is"),
                );
            }
            let bottom = column_bottom.entry(column).or_insert(row);
            *bottom = (*bottom).max(row);
            out.push(Pending {
                compartment: Compartment {
                    door,
                    size,
                    temperature,
                    accessible,
                    out_of_service,
                    column,
                    row,
                    unit: unit.clone(),
                },
                explicit_temperature: temperature_item.is_some(),
                loc: temperature_item
                    .as_ref()
                    .map(|t| t.loc())
                    .unwrap_or_else(|| span.loc.clone()),
                unit_loc: unit_item.as_ref().map(|u| u.loc()),
            });
            row = row.saturating_add(1);
        }
    }
    out.sort_by_key(|p| p.compartment.door);
    out
}

/// Cooled compartments must belong to a unit of the same class; every unit must cool at
/// least one compartment.
fn resolve_units(
    pending: Vec<Pending>,
    units: &[refrigeration::UnitRead],
    broken_units: &[String],
    cx: &mut Ctx,
) -> Vec<Compartment> {
    let unit_ids: Vec<&str> = units
        .iter()
        .map(|u| u.unit.id.as_str())
        .chain(broken_units.iter().map(String::as_str))
        .collect();
    let mut out = Vec::with_capacity(pending.len());
    // A range of doors shares one entry: report its problems once, on the first door.
    let mut reported: Vec<Range<usize>> = Vec::new();
    for mut p in pending {
        let entry_span = p.unit_loc.as_ref().unwrap_or(&p.loc).span.clone();
        if reported.contains(&entry_span) {
            out.push(p.compartment);
            continue;
        }
        let before = cx.problem_count();
        let c = &mut p.compartment;
        match (&c.unit, &p.unit_loc) {
            (None, _) if c.temperature != TemperatureClass::Ambient => {
                let class = name_of_temperature(c.temperature);
                let hint = if unit_ids.is_empty() {
                    "add a [[bank.unit]] with a sensor and name it here with `unit = \"ID\"`"
                        .to_owned()
                } else {
                    format!("name its unit with `unit = \"{}\"`", unit_ids[0])
                };
                cx.error_at(
                    &p.loc,
                    format!("{class} door {} belongs to no cooling unit: {hint}", c.door),
                );
            }
            (Some(id), Some(_)) if broken_units.contains(id) => {}
            (Some(id), Some(loc)) => match units.iter().find(|u| &u.unit.id == id) {
                None => {
                    let hint = match did_you_mean(id, unit_ids.iter().copied()) {
                        Some(close) => format!("; did you mean `{close}`?"),
                        None if unit_ids.is_empty() => {
                            " (this bank has no [[bank.unit]])".to_owned()
                        }
                        None => format!(" (units here: {})", unit_ids.join(", ")),
                    };
                    cx.error_at(loc, format!("no unit `{id}` in this bank{hint}"));
                }
                Some(unit) if !p.explicit_temperature => c.temperature = unit.unit.temperature,
                Some(unit) if unit.unit.temperature != c.temperature => {
                    cx.error_at(
                        &p.loc,
                        format!(
                            "door {} is {} but unit `{id}` is {}",
                            c.door,
                            name_of_temperature(c.temperature),
                            name_of_temperature(unit.unit.temperature)
                        ),
                    );
                }
                Some(_) => {}
            },
            _ => {}
        }
        if cx.problem_count() != before {
            reported.push(entry_span);
        }
        out.push(p.compartment);
    }
    for unit in units {
        if !out
            .iter()
            .any(|c| c.unit.as_deref() == Some(unit.unit.id.as_str()))
        {
            cx.error_at(
                &unit.loc,
                format!(
                    "unit `{}` cools no compartment: add `unit = \"{}\"` to its compartments",
                    unit.unit.id, unit.unit.id
                ),
            );
        }
    }
    out
}

fn name_of_temperature(class: TemperatureClass) -> &'static str {
    match class {
        TemperatureClass::Ambient => "ambient",
        TemperatureClass::Refrigerated => "refrigerated",
        TemperatureClass::Frozen => "frozen",
    }
}

/// Every door a driver names must be a compartment; a driver with an explicit map must
/// map every compartment, each once.
fn check_driver_doors(read: &driver::DriverRead, compartments: &[Compartment], cx: &mut Ctx) {
    let mut mapped: BTreeMap<u16, &Loc> = BTreeMap::new();
    for (door, loc) in &read.named {
        if !compartments.iter().any(|c| c.door == *door) {
            cx.error_at(
                loc,
                format!("door {door} is not a compartment of this bank"),
            );
        } else if mapped.insert(*door, loc).is_some() && !read.drives_all {
            cx.error_at(loc, format!("door {door} is mapped twice"));
        }
    }
    if read.drives_all {
        return;
    }
    let missing: Vec<String> = compartments
        .iter()
        .filter(|c| !mapped.contains_key(&c.door))
        .map(|c| c.door.to_string())
        .collect();
    if !missing.is_empty() {
        cx.error_at(
            &read.map_loc,
            format!(
                "doors {} have compartments but no place in the driver map",
                missing.join(", ")
            ),
        );
    }
}

//! Checks that need the whole file: things that must be unique across banks, and how banks
//! and sensors share RS-485 buses. Each section's own rules are checked where it is read.

use std::collections::HashMap;

use crate::bank::BankRead;
use crate::raw::{Ctx, Loc};
use crate::transport::{BusUse, Endpoint, Parity};

/// Bank ids and MQTT usernames (controllers, kiosks, observers) are unique on the site.
pub(crate) fn check_banks(banks: &[BankRead], observers: &[(String, Loc)], cx: &mut Ctx) {
    let mut ids: HashMap<&str, &Loc> = HashMap::new();
    for read in banks {
        if let Some((id, loc)) = &read.id {
            if let Some(first) = ids.insert(id, loc) {
                cx.error_at(
                    loc,
                    format!("duplicate bank id `{id}` (first used at `{}`)", first.key),
                );
            }
        }
    }
    let mut users: HashMap<&str, &Loc> = HashMap::new();
    for (username, loc) in observers
        .iter()
        .chain(banks.iter().flat_map(|b| &b.usernames))
    {
        if let Some(first) = users.insert(username, loc) {
            cx.error_at(
                loc,
                format!(
                    "MQTT username `{username}` is already used by `{}`: each client needs its own login",
                    first.key
                ),
            );
        }
    }
}

/// One RS-485 bus carries one protocol family at one line setting, and every board lock,
/// Modbus output or sensor on it is claimed once.
pub(crate) fn check_buses(buses: &[BusUse], cx: &mut Ctx) {
    let mut first_on_bus: HashMap<&str, &BusUse> = HashMap::new();
    let mut claimed: HashMap<(&str, u16), Vec<&Endpoint>> = HashMap::new();
    for bus in buses {
        match first_on_bus.get(bus.bus.as_str()) {
            None => {
                first_on_bus.insert(&bus.bus, bus);
            }
            Some(first) if first.family != bus.family => {
                cx.error_at(
                    &bus.loc,
                    format!(
                        "`{}` is already a {} bus (`{}`): do not mix protocol families on one RS-485 bus",
                        bus.bus, first.family, first.loc.key
                    ),
                );
                continue;
            }
            Some(first) if first.line != bus.line => {
                cx.error_at(
                    &bus.loc,
                    format!(
                        "`{}` is used at {} by `{}` but at {} here: everyone on a port must agree",
                        bus.bus,
                        describe_line(first.line),
                        first.loc.key,
                        describe_line(bus.line)
                    ),
                );
                continue;
            }
            Some(_) => {}
        }
        for endpoint in &bus.endpoints {
            let others = claimed.entry((&bus.bus, endpoint.device)).or_default();
            let taken = others
                .iter()
                .find(|other| match (other.point, endpoint.point) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                });
            if let Some(other) = taken {
                cx.error_at(
                    &endpoint.loc,
                    format!(
                        "{} on `{}` is already used by `{}`",
                        describe(bus.family, endpoint),
                        bus.bus,
                        other.loc.key
                    ),
                );
            } else {
                others.push(endpoint);
            }
        }
    }
}

fn describe(family: &str, endpoint: &Endpoint) -> String {
    match (family, endpoint.point) {
        ("modbus", None) => format!("slave {}", endpoint.device),
        ("modbus", Some(("register", a))) => {
            format!("slave {} command register {a}", endpoint.device)
        }
        ("modbus", Some((kind, a))) => format!("slave {} {kind} {a}", endpoint.device),
        (_, Some((kind, n))) => format!("board {} {kind} {n}", endpoint.device),
        (_, None) => format!("board {}", endpoint.device),
    }
}

fn describe_line(line: Option<(u32, Parity, u8, u8)>) -> String {
    match line {
        None => "TCP".into(),
        Some((baud, parity, data, stop)) => {
            let p = match parity {
                Parity::None => 'N',
                Parity::Even => 'E',
                Parity::Odd => 'O',
            };
            format!("{baud} {data}{p}{stop}")
        }
    }
}

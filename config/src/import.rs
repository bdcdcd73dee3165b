//! The rent-roll import (`[import]`): which property-management system's export the Residents
//! page expects, how its values are read, and how long a resident missing from the roll keeps
//! getting parcels. Every key is optional; the defaults are shown:
//!
//! ```toml
//! [import]
//! preset = "yardi"              # yardi, onesite, entrata, resman, rent_manager or custom
//! move_out_grace = "14d"        # a resident off the roll is moved out at an import after this
//! country_code = "1"            # local phone numbers are in this country (none: left as written)
//! encoding = "utf-8"            # or "windows-1252" (Excel's "CSV (Comma delimited)")
//! date_order = "month_first"    # 03/04/2025 is March 4th; "day_first": April 3rd
//! units = ["101", "102", "201..220"]   # the building's units (a..b: every number between); any if absent
//!
//! [import.columns]              # this site's own export (preset "custom"): each field's header
//! resident = "Tenant Code"      # optional: without it the id is made from unit and name
//! unit = "Apt"
//! name = "Name"                 # or first_name and last_name
//! email = "E-mail"
//! ```
//! Other fields of `[import.columns]`: `phone`, `lease_start`, `lease_end`, `move_in`,
//! `move_out`, `status`.

use std::time::Duration;

use crate::raw::{Ctx, Table};

const DAY: Duration = Duration::from_secs(86_400);

/// The systems whose exports have a preset, and a mapping by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollPreset {
    /// Yardi Voyager's or Breeze's rent roll.
    Yardi,
    /// RealPage OneSite's rent roll detail.
    Onesite,
    /// Entrata's rent roll.
    Entrata,
    /// ResMan's rent roll.
    ResMan,
    /// Rent Manager's tenant report.
    RentManager,
    /// The headers of `[import.columns]`.
    Custom,
}

/// `[import]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The export the Residents page expects unless staff choose another.
    pub preset: RollPreset,
    /// A resident off the roll is moved out at the first import this long after.
    pub move_out_grace: Duration,
    /// The country calling code of local phone numbers (digits only).
    pub country_code: Option<String>,
    /// Files are Windows-1252 unless staff choose otherwise.
    pub windows_1252: bool,
    /// `03/04/2025` is the 3rd of April.
    pub day_first: bool,
    /// The building's units (empty: any).
    pub units: Vec<String>,
    /// `[import.columns]`: field → headers.
    pub columns: Vec<(String, Vec<String>)>,
}

impl Default for Import {
    fn default() -> Self {
        Import {
            preset: RollPreset::Yardi,
            move_out_grace: 14 * DAY,
            country_code: None,
            windows_1252: false,
            day_first: false,
            units: Vec::new(),
            columns: Vec::new(),
        }
    }
}

/// The fields `[import.columns]` may name.
pub const ROLL_FIELDS: [&str; 12] = [
    "resident",
    "unit",
    "name",
    "first_name",
    "last_name",
    "email",
    "phone",
    "lease_start",
    "lease_end",
    "move_in",
    "move_out",
    "status",
];

/// The most units a `a..b` range may stand for.
const MAX_RANGE: u64 = 5_000;

pub(crate) fn read(root: &mut Table, cx: &mut Ctx) -> Option<Import> {
    let defaults = Import::default();
    let Some(item) = root.get("import") else {
        return Some(defaults);
    };
    let mut t = item.table(cx)?;
    let mut ok = true;
    let preset = match t.get("preset") {
        Some(p) => p
            .choice(
                cx,
                "preset",
                &[
                    ("yardi", RollPreset::Yardi),
                    ("onesite", RollPreset::Onesite),
                    ("entrata", RollPreset::Entrata),
                    ("resman", RollPreset::ResMan),
                    ("rent_manager", RollPreset::RentManager),
                    ("custom", RollPreset::Custom),
                ],
            )
            .unwrap_or_else(|| {
                ok = false;
                defaults.preset
            }),
        None => defaults.preset,
    };
    let move_out_grace = t.duration_within(
        cx,
        "move_out_grace",
        defaults.move_out_grace,
        Duration::ZERO,
        365 * DAY,
    );
    let country_code = match t.get("country_code") {
        Some(c) => match c.str(cx) {
            Some(code) => {
                let digits = code.trim_start_matches('+');
                if (1..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
                    Some(digits.to_owned())
                } else {
                    cx.error(
                        &c.span(),
                        c.key(),
                        format!("{code:?} is not a country calling code (1 to 3 digits, e.g. \"1\" or \"44\")"),
                    );
                    ok = false;
                    None
                }
            }
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    let windows_1252 = match t.get("encoding") {
        Some(e) => e
            .choice(cx, "encoding", &[("utf-8", false), ("windows-1252", true)])
            .unwrap_or_else(|| {
                ok = false;
                false
            }),
        None => false,
    };
    let day_first = match t.get("date_order") {
        Some(d) => d
            .choice(
                cx,
                "date order",
                &[("month_first", false), ("day_first", true)],
            )
            .unwrap_or_else(|| {
                ok = false;
                false
            }),
        None => false,
    };
    let mut units = Vec::new();
    if let Some(list) = t.get("units") {
        for u in list.array(cx).unwrap_or_default() {
            let Some(text) = u.str(cx) else {
                ok = false;
                continue;
            };
            match unit_range(text) {
                Ok(mut more) => units.append(&mut more),
                Err(message) => {
                    cx.error(&u.span(), u.key(), message);
                    ok = false;
                }
            }
        }
    }
    let mut columns = Vec::new();
    if let Some(c) = t.get("columns") {
        let mut table = c.table(cx)?;
        for field in ROLL_FIELDS {
            let Some(item) = table.get(field) else {
                continue;
            };
            match item.str(cx) {
                Some(h) if !h.trim().is_empty() => {
                    columns.push((field.to_owned(), vec![h.trim().to_owned()]))
                }
                Some(_) => {
                    cx.error(&item.span(), item.key(), "a header must not be empty");
                    ok = false;
                }
                None => ok = false,
            }
        }
        table.finish(cx);
    }
    let section = t.loc();
    t.finish(cx);
    if preset == RollPreset::Custom {
        let has = |f: &str| columns.iter().any(|(k, _)| k == f);
        if !has("unit") || !(has("name") || (has("first_name") && has("last_name"))) {
            cx.error_at(
                &section,
                "`preset = \"custom\"` needs `[import.columns]` with `unit` and `name` (or \
                 `first_name` and `last_name`)",
            );
            return None;
        }
    }
    ok.then_some(Import {
        preset,
        move_out_grace,
        country_code,
        windows_1252,
        day_first,
        units,
        columns,
    })
}

/// A unit, or `a..b`: every number from a to b.
fn unit_range(text: &str) -> Result<Vec<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("a unit must not be empty".into());
    }
    let Some((a, b)) = text.split_once("..") else {
        return Ok(vec![text.to_owned()]);
    };
    let (Ok(from), Ok(to)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>()) else {
        return Err(format!(
            "{text:?}: a range is two numbers, like \"201..220\""
        ));
    };
    if from > to || to - from >= MAX_RANGE {
        return Err(format!(
            "{text:?}: a range goes up, over at most {MAX_RANGE} units"
        ));
    }
    // "0101..0120" keeps its zeros: the units are written that way.
    let width = if a.trim().starts_with('0') {
        a.trim().len()
    } else {
        0
    };
    Ok((from..=to).map(|n| format!("{n:0width$}")).collect())
}

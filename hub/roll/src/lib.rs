//! Rent-roll exports read into rows for the core's import (`Request::ImportRoll`).
//!
//! Property-management systems export their rent roll as a spreadsheet; saved as CSV it keeps
//! the report's shape, which this crate reads as it comes:
//! * **Which columns**: a [`Preset`] per system names each field's headers (compared in lower
//!   case, letters and digits only, so `Move-In` and `move in` are one); a custom mapping
//!   names them by hand.
//! * **Where the header is**: report titles come first (4 rows in Yardi, 5 in OneSite, 7 in
//!   ResMan), and some headers span two rows (`Lease` over `Expiration`): the header is the
//!   first row, or pair of rows, among the first [`HEADER_SEARCH`] that has the unit and the
//!   name.
//! * **Delimiter**: comma, semicolon (Excel in many European locales), tab or bar, whichever
//!   finds the header.
//! * **Encoding**: UTF-8 (a byte-order mark is fine) and UTF-16 with its mark are read as they
//!   are; Windows-1252 when staff say so. Anything else that is not UTF-8 is refused with its
//!   line and what to do.
//! * **Rows that are not residents** are skipped and listed with why: blank lines and charge
//!   lines (no unit, no name), section headings, vacant, model and down units, rows whose
//!   status says vacant, applicant, future or past, and everything from a summary block
//!   (`Total Charges`, `Summary Groups`, …) on.
//! * **Values**: phone numbers put in international form with the configured country code,
//!   dates in `YYYY-MM-DD` from `M/D/YYYY` (or `D/M/YYYY`), ISO or Excel serial numbers.
//!   Whatever cannot be read is passed on as it is, and the core rejects the row with its line.
//!
//! No rule about residents is decided here: matching, checks and moving out are the core's.

use std::fmt;

use locker_core::{RollRow, Tenancy};
use serde::{Deserialize, Serialize};

/// How many rows from the top may precede the header.
pub const HEADER_SEARCH: usize = 30;
/// The biggest file read (a 100,000-resident roll is about 15 MB).
pub const MAX_BYTES: usize = 64 << 20;
/// The most rows read.
pub const MAX_ROWS: usize = 250_000;

/// The field a column fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Resident,
    Unit,
    Name,
    FirstName,
    LastName,
    Email,
    Phone,
    LeaseStart,
    LeaseEnd,
    MoveIn,
    MoveOut,
    Status,
}

impl Field {
    pub const ALL: [Field; 12] = [
        Field::Resident,
        Field::Unit,
        Field::Name,
        Field::FirstName,
        Field::LastName,
        Field::Email,
        Field::Phone,
        Field::LeaseStart,
        Field::LeaseEnd,
        Field::MoveIn,
        Field::MoveOut,
        Field::Status,
    ];

    /// The field's name in the configuration (`[import.columns]`).
    pub fn key(self) -> &'static str {
        match self {
            Field::Resident => "resident",
            Field::Unit => "unit",
            Field::Name => "name",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::Email => "email",
            Field::Phone => "phone",
            Field::LeaseStart => "lease_start",
            Field::LeaseEnd => "lease_end",
            Field::MoveIn => "move_in",
            Field::MoveOut => "move_out",
            Field::Status => "status",
        }
    }
}

/// The headers each field may have; the first one present wins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Columns {
    headers: Vec<(Field, Vec<String>)>,
}

impl Columns {
    /// A mapping of fields to headers (each field's headers in order of preference).
    pub fn new(headers: impl IntoIterator<Item = (Field, Vec<String>)>) -> Columns {
        Columns {
            headers: headers.into_iter().collect(),
        }
    }

    fn of(list: &[(Field, &[&str])]) -> Columns {
        Columns::new(
            list.iter()
                .map(|(f, h)| (*f, h.iter().map(|s| s.to_string()).collect())),
        )
    }

    /// The headers a field is looked for under.
    pub fn headers(&self, field: Field) -> &[String] {
        self.headers
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, h)| h.as_slice())
            .unwrap_or(&[])
    }
}

/// The systems whose exports are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Yardi Voyager's rent roll (and Yardi Breeze's).
    Yardi,
    /// RealPage OneSite's rent roll detail.
    Onesite,
    Entrata,
    ResMan,
    /// Rent Manager (its report columns can be renamed by the user: check them).
    RentManager,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::Yardi,
        Preset::Onesite,
        Preset::Entrata,
        Preset::ResMan,
        Preset::RentManager,
    ];

    /// The name used in the configuration, the API and the web page.
    pub fn key(self) -> &'static str {
        match self {
            Preset::Yardi => "yardi",
            Preset::Onesite => "onesite",
            Preset::Entrata => "entrata",
            Preset::ResMan => "resman",
            Preset::RentManager => "rent_manager",
        }
    }

    /// The name staff know.
    pub fn label(self) -> &'static str {
        match self {
            Preset::Yardi => "Yardi (Voyager or Breeze)",
            Preset::Onesite => "RealPage OneSite",
            Preset::Entrata => "Entrata",
            Preset::ResMan => "ResMan",
            Preset::RentManager => "Rent Manager",
        }
    }

    pub fn from_key(key: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.key() == key)
    }

    /// The headers of each field in this system's export. Rent rolls carry no email or phone;
    /// the names given for those are the resident-directory exports' and the common
    /// spellings.
    pub fn columns(self) -> Columns {
        use Field::*;
        const EMAIL: &[&str] = &["Email", "Email Address", "E-mail", "Primary Email"];
        const PHONE: &[&str] = &[
            "Cell Phone",
            "Mobile Phone",
            "Mobile",
            "Cell",
            "Phone",
            "Phone Number",
            "Primary Phone",
            "Home Phone",
        ];
        match self {
            Preset::Yardi => Columns::of(&[
                (
                    Resident,
                    &["Resident", "Tenant Code", "Resident Code", "Tenant"],
                ),
                (Unit, &["Unit"]),
                (Name, &["Name", "Tenant Name", "Resident Name"]),
                (Email, EMAIL),
                (Phone, PHONE),
                (LeaseStart, &["Lease From", "Lease Start"]),
                (LeaseEnd, &["Lease Expiration", "Lease To", "Lease End"]),
                (MoveIn, &["Move In", "Move In Date"]),
                (MoveOut, &["Move Out", "Move Out Date"]),
                (Status, &["Status", "Resident Status", "Tenant Status"]),
            ]),
            Preset::Onesite => Columns::of(&[
                (Resident, &["Resh ID", "Resident ID", "Household ID"]),
                (Unit, &["Bldg/Unit", "Unit", "Unit Number"]),
                (Name, &["Name", "Resident Name", "Resident"]),
                (Email, EMAIL),
                (Phone, PHONE),
                (LeaseStart, &["Lease Start", "Lease Begin"]),
                (LeaseEnd, &["Lease End", "Lease Expiration"]),
                (MoveIn, &["Move-In", "Move In Date"]),
                (MoveOut, &["Move-Out", "Move Out Date"]),
                (Status, &["Unit/Lease Status", "Lease Status", "Status"]),
            ]),
            Preset::Entrata => Columns::of(&[
                (Resident, &["Resident ID", "Customer ID"]),
                (Unit, &["Bldg-Unit", "Unit", "Unit Number"]),
                (Name, &["Resident", "Resident Name", "Name"]),
                (FirstName, &["First Name"]),
                (LastName, &["Last Name"]),
                (Email, EMAIL),
                (Phone, PHONE),
                (LeaseStart, &["Lease Start"]),
                (LeaseEnd, &["Lease End"]),
                (MoveIn, &["Move-In", "Move In Date"]),
                (MoveOut, &["Expected Move-Out", "Move-Out", "Move Out Date"]),
                (Status, &["Unit Status", "Lease Status", "Status"]),
            ]),
            Preset::ResMan => Columns::of(&[
                (Resident, &["Resident ID", "Person ID"]),
                (Unit, &["Unit"]),
                (Name, &["Residents", "Resident", "Name"]),
                (FirstName, &["Resident 1 First Name", "First Name"]),
                (LastName, &["Resident 1 Last Name", "Last Name"]),
                (
                    Email,
                    &["Resident 1 Email", "Email", "Email Address", "E-mail"],
                ),
                (
                    Phone,
                    &["Resident 1 Phone", "Mobile Phone", "Cell Phone", "Phone"],
                ),
                (LeaseStart, &["Lease Start", "Lease Start Date"]),
                (LeaseEnd, &["Lease End", "Lease End Date"]),
                (MoveIn, &["Move In", "Move in Date"]),
                (MoveOut, &["Move Out", "Move out Date"]),
                (Status, &["Status"]),
            ]),
            Preset::RentManager => Columns::of(&[
                (
                    Resident,
                    &[
                        "Tenant ID",
                        "TenantDisplayID",
                        "Tenant Display ID",
                        "TenantID",
                    ],
                ),
                (Unit, &["Unit", "Unit Name", "UnitName"]),
                (Name, &["Name", "Tenant Name", "Tenant"]),
                (FirstName, &["First Name", "FirstName"]),
                (LastName, &["Last Name", "LastName"]),
                (Email, EMAIL),
                (Phone, PHONE),
                (LeaseStart, &["Lease Start", "Lease Start Date"]),
                (LeaseEnd, &["Lease End", "Lease End Date"]),
                (MoveIn, &["Move In Date", "Move In", "MoveInDate"]),
                (
                    MoveOut,
                    &[
                        "Move Out Date",
                        "Expected Move Out Date",
                        "ExpectedMoveOutDate",
                        "Move Out",
                    ],
                ),
                (Status, &["Status", "Tenant Status"]),
            ]),
        }
    }
}

/// The text encoding of an export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// UTF-8; a file with a UTF-16 byte-order mark is read as UTF-16.
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// Excel's "CSV (Comma delimited)" on Windows in Western languages.
    #[serde(rename = "windows-1252")]
    Windows1252,
}

/// Whether `03/04/2025` is the 4th of March or the 3rd of April.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateOrder {
    #[default]
    MonthFirst,
    DayFirst,
}

/// How to read a file.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub columns: Columns,
    pub encoding: Encoding,
    pub date_order: DateOrder,
    /// The country calling code local numbers are in (`1` for the US and Canada); without
    /// one, a number without `+` is passed on as it is (and refused by the core).
    pub country_code: Option<String>,
}

/// A row that is not a resident, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub line: u64,
    pub reason: String,
}

/// What a file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roll {
    pub rows: Vec<RollRow>,
    pub skipped: Vec<Skipped>,
    /// The header's (first) line.
    pub header_line: u64,
    pub delimiter: char,
    /// Which header each field was read from.
    pub found: Vec<(String, String)>,
    /// The first summary block skipped (rows from it up to the header again, if it comes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Skipped>,
}

/// Why a file cannot be read at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RollError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {bytes} bytes; the most read is {MAX_BYTES} (split the roll, or export only current residents)")]
    TooBig { bytes: usize },
    #[error("the file has more than {MAX_ROWS} rows; export only current residents")]
    TooManyRows,
    #[error("line {line} is not UTF-8 (byte 0x{byte:02X}): save it as \"CSV UTF-8\", or choose the Windows-1252 encoding")]
    NotUtf8 { line: u64, byte: u8 },
    #[error("no header found in the first {HEADER_SEARCH} rows: a header names the unit ({unit}) and the name ({name}) columns; the first line reads {first:?}")]
    NoHeader {
        unit: String,
        name: String,
        first: String,
    },
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
}

/// Lower case, letters and digits only: how headers are compared.
fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Decode `bytes` as the file's text.
fn decode(bytes: &[u8], encoding: Encoding) -> Result<String, RollError> {
    if bytes.len() > MAX_BYTES {
        return Err(RollError::TooBig { bytes: bytes.len() });
    }
    if let Some((enc, _)) = encoding_rs::Encoding::for_bom(bytes) {
        if enc != encoding_rs::UTF_8 {
            let (text, _, _) = enc.decode(bytes);
            return Ok(text.into_owned());
        }
    }
    match encoding {
        Encoding::Windows1252 => {
            let (text, _, _) = encoding_rs::WINDOWS_1252.decode(bytes);
            Ok(text.into_owned())
        }
        Encoding::Utf8 => {
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            match std::str::from_utf8(bytes) {
                Ok(s) => Ok(s.to_owned()),
                Err(e) => {
                    let at = e.valid_up_to();
                    let line = bytes[..at].iter().filter(|b| **b == b'\n').count() as u64 + 1;
                    Err(RollError::NotUtf8 {
                        line,
                        byte: bytes[at],
                    })
                }
            }
        }
    }
}

/// Where each field is, by column index.
#[derive(Clone, Debug, Default)]
struct Layout {
    at: Vec<(Field, usize, String)>,
}

impl Layout {
    fn find(header: &[String], columns: &Columns) -> Layout {
        let normed: Vec<String> = header.iter().map(|h| norm(h)).collect();
        let mut at = Vec::new();
        for field in Field::ALL {
            let hit = columns.headers(field).iter().find_map(|h| {
                let want = norm(h);
                normed
                    .iter()
                    .position(|n| !want.is_empty() && *n == want)
                    .map(|i| (i, header[i].trim().to_owned()))
            });
            if let Some((i, h)) = hit {
                at.push((field, i, h));
            }
        }
        Layout { at }
    }

    fn has(&self, field: Field) -> bool {
        self.at.iter().any(|(f, _, _)| *f == field)
    }

    /// A header: the unit, and the name or both its parts.
    fn is_header(&self) -> bool {
        self.has(Field::Unit)
            && (self.has(Field::Name) || (self.has(Field::FirstName) && self.has(Field::LastName)))
    }

    fn get<'r>(&self, field: Field, record: &'r csv::StringRecord) -> &'r str {
        self.at
            .iter()
            .find(|(f, _, _)| *f == field)
            .and_then(|(_, i, _)| record.get(*i))
            .map(str::trim)
            .unwrap_or("")
    }
}

/// Read a rent-roll export.
pub fn read(bytes: &[u8], options: &Options) -> Result<Roll, RollError> {
    let text = decode(bytes, options.encoding)?;
    if text.trim().is_empty() {
        return Err(RollError::Empty);
    }
    for delimiter in [b',', b';', b'\t', b'|'] {
        if let Some(roll) = read_with(&text, delimiter, options)? {
            return Ok(roll);
        }
    }
    let headers = |f: Field| {
        options
            .columns
            .headers(f)
            .iter()
            .map(|h| format!("{h:?}"))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let name = match options.columns.headers(Field::Name) {
        [] => format!(
            "{} and {}",
            headers(Field::FirstName),
            headers(Field::LastName)
        ),
        _ => headers(Field::Name),
    };
    Err(RollError::NoHeader {
        unit: headers(Field::Unit),
        name,
        first: text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .chars()
            .take(120)
            .collect(),
    })
}

fn reader(text: &str, delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes())
}

fn csv_error(e: csv::Error) -> RollError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    RollError::Csv {
        line,
        message: e.to_string(),
    }
}

/// Statuses of rows that are not current residents: the status's first word begins with one
/// (`Vacant-Leased`, `Past`, `Evicted`; not `Current - Past Due`).
const NOT_RESIDENT: [&str; 11] = [
    "vacant",
    "applicant",
    "future",
    "past",
    "former",
    "evict",
    "model",
    "down",
    "admin",
    "cancel",
    "denied",
];

/// Names and ids that stand for no one, written alone or followed by `unit` (`VACANT`,
/// `-- Vacant --`, `Model Unit`); never a part of a name (`Downs, Mary`).
const PLACEHOLDERS: [&str; 5] = ["vacant", "model", "down", "admin", "notready"];

/// The words of a cell, in lower case, letters and digits only.
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A cell that stands for no one.
fn placeholder(s: &str) -> bool {
    let w = words(s);
    let joined = w.concat();
    PLACEHOLDERS.contains(&joined.as_str())
        || (w.len() == 2 && w[1] == "unit" && PLACEHOLDERS.contains(&w[0].as_str()))
}

/// A status that says the row is not a current resident.
fn not_resident(status: &str) -> bool {
    words(status)
        .first()
        .is_some_and(|w| NOT_RESIDENT.iter().any(|s| w.starts_with(s)))
}

/// A heading row's word for the section it begins: `Some(true)` for future residents and
/// applicants, `Some(false)` for current ones, `None` for a row that is no section heading.
fn section(heading: &str) -> Option<bool> {
    let h = norm(heading);
    if h.contains("future") || h.contains("applicant") {
        Some(true)
    } else if ["current", "notice", "resident", "tenant", "occupied"]
        .iter()
        .any(|w| h.contains(w))
    {
        Some(false)
    } else {
        None
    }
}

/// First cells that begin a report's summary block: nothing after them is a resident.
const SUMMARY: [&str; 5] = [
    "totalcharges",
    "summarygroups",
    "summaryofcharges",
    "averagecharges",
    "totalallproperties",
];

fn read_with(text: &str, delimiter: u8, options: &Options) -> Result<Option<Roll>, RollError> {
    // Find the header among the first rows: one row, or two joined cell by cell.
    let mut top: Vec<(u64, Vec<String>)> = Vec::new();
    for record in reader(text, delimiter).records().take(HEADER_SEARCH + 1) {
        let record = record.map_err(csv_error)?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        top.push((line, record.iter().map(str::to_owned).collect()));
    }
    let mut header = None;
    for (i, (line, row)) in top.iter().enumerate().take(HEADER_SEARCH) {
        let one = Layout::find(row, &options.columns);
        if !one.is_header() {
            continue;
        }
        let two = top.get(i + 1).map(|(_, next)| {
            let joined: Vec<String> = (0..row.len().max(next.len()))
                .map(|k| {
                    let a = row.get(k).map(|s| s.trim()).unwrap_or("");
                    let b = next.get(k).map(|s| s.trim()).unwrap_or("");
                    format!("{a} {b}")
                })
                .collect();
            Layout::find(&joined, &options.columns)
        });
        header = Some(match two {
            Some(two) if two.is_header() && two.at.len() > one.at.len() => (*line, i + 2, two),
            _ => (*line, i + 1, one),
        });
        break;
    }
    let Some((header_line, skip, layout)) = header else {
        return Ok(None);
    };

    let mut roll = Roll {
        rows: Vec::new(),
        skipped: Vec::new(),
        header_line,
        delimiter: delimiter as char,
        found: layout
            .at
            .iter()
            .map(|(f, _, h)| (f.key().to_owned(), h.clone()))
            .collect(),
        stopped_at: None,
    };
    let mut future_section = false;
    // Inside a summary block (totals by charge code, averages by unit type): skipped until the
    // header comes again (an export of several properties repeats it for each).
    let mut summary_from: Option<u64> = None;
    let header_key = |record: &csv::StringRecord| -> Vec<String> {
        layout
            .at
            .iter()
            .map(|(_, i, _)| norm(record.get(*i).unwrap_or("")))
            .collect()
    };
    let header_cells: Vec<String> = layout.at.iter().map(|(_, _, h)| norm(h)).collect();
    for (n, record) in reader(text, delimiter).records().enumerate() {
        if n < skip {
            continue;
        }
        if n >= MAX_ROWS + skip {
            return Err(RollError::TooManyRows);
        }
        let record = record.map_err(csv_error)?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let filled: Vec<&str> = record
            .iter()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if filled.is_empty() {
            continue;
        }
        let first = norm(filled[0]);
        if let Some(from) = summary_from {
            // The header again (or the first row of a two-row header): residents follow.
            let key = header_key(&record);
            let again = key
                .iter()
                .zip(&header_cells)
                .filter(|(k, h)| !k.is_empty() && h.starts_with(k.as_str()))
                .count()
                >= 2;
            if again {
                summary_from = None;
                roll.skipped.push(Skipped {
                    line,
                    reason: format!("the header again, after a summary block from line {from}"),
                });
            }
            continue;
        }
        if SUMMARY.iter().any(|s| first.starts_with(s)) {
            summary_from = Some(line);
            if roll.stopped_at.is_none() {
                roll.stopped_at = Some(Skipped {
                    line,
                    reason: format!("a summary block begins ({:?})", filled[0]),
                });
            }
            continue;
        }
        let mut skip_row = |reason: String| roll.skipped.push(Skipped { line, reason });
        let unit = layout.get(Field::Unit, &record);
        let id = layout.get(Field::Resident, &record);
        let name = match layout.get(Field::Name, &record) {
            "" => {
                let (f, l) = (
                    layout.get(Field::FirstName, &record),
                    layout.get(Field::LastName, &record),
                );
                format!("{f} {l}").trim().to_owned()
            }
            n => n.to_owned(),
        };
        if filled.len() == 1 && name.is_empty() && id.is_empty() {
            // A section heading ("Current/Notice/Vacant Residents", "Future Residents/…"), or
            // a lone total: only a heading changes the section.
            if let Some(future) = section(filled[0]) {
                future_section = future;
            }
            continue;
        }
        if unit.is_empty() && name.is_empty() && id.is_empty() {
            // A charge line of the resident above, or a subtotal.
            continue;
        }
        if norm(unit).starts_with("total") || norm(&name).starts_with("total") {
            skip_row(format!("a total ({:?})", filled[0]));
            continue;
        }
        if future_section {
            skip_row("a future resident or applicant".into());
            continue;
        }
        let status = layout.get(Field::Status, &record);
        if not_resident(status) {
            skip_row(format!("status {status:?}"));
            continue;
        }
        if placeholder(&name) || placeholder(id) {
            skip_row(format!(
                "no resident ({})",
                if name.is_empty() { id } else { &name }
            ));
            continue;
        }
        let date = |f: Field| {
            let v = layout.get(f, &record);
            (!v.is_empty()).then(|| date(v, options.date_order))
        };
        let text = |f: Field| {
            let v = layout.get(f, &record);
            (!v.is_empty()).then(|| v.to_owned())
        };
        roll.rows.push(RollRow {
            line,
            resident: text(Field::Resident),
            unit: unit.to_owned(),
            name,
            email: text(Field::Email),
            phone: text(Field::Phone).map(|p| phone(&p, options.country_code.as_deref())),
            tenancy: Tenancy {
                lease_start: date(Field::LeaseStart),
                lease_end: date(Field::LeaseEnd),
                move_in: date(Field::MoveIn),
                move_out: date(Field::MoveOut),
            },
        });
    }
    Ok(Some(roll))
}

/// A phone number in international form where it can be: separators dropped, `00` read as
/// `+`, a local number given the country code (and its trunk `0` dropped, outside `+1`).
/// Anything else is returned as written, for the core to refuse.
pub fn phone(raw: &str, country_code: Option<&str>) -> String {
    let kept: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}'))
        .collect();
    if let Some(rest) = kept.strip_prefix('+') {
        return format!("+{rest}");
    }
    if let Some(rest) = kept.strip_prefix("00") {
        return format!("+{rest}");
    }
    let Some(cc) = country_code.map(|c| c.trim_start_matches('+')) else {
        return raw.trim().to_owned();
    };
    if kept.is_empty() || !kept.chars().all(|c| c.is_ascii_digit()) {
        return raw.trim().to_owned();
    }
    if cc == "1" {
        return match kept.len() {
            10 => format!("+1{kept}"),
            11 if kept.starts_with('1') => format!("+{kept}"),
            _ => raw.trim().to_owned(),
        };
    }
    let national = kept.strip_prefix('0').unwrap_or(&kept);
    format!("+{cc}{national}")
}

/// A date as `YYYY-MM-DD` where it can be read: ISO (`2025-03-04`, `2025/03/04`), `M/D/YYYY`
/// or `D/M/YYYY` (per `order`; `/`, `-` or `.` between; two-digit years are 20xx below 70),
/// or an Excel serial number. Anything else is returned as written.
pub fn date(raw: &str, order: DateOrder) -> String {
    let s = raw.trim();
    // A spreadsheet date-time ("3/28/2025 12:00:00 AM"): the date part.
    let s = s.split_whitespace().next().unwrap_or(s);
    let parts: Vec<&str> = s.split(['/', '-', '.']).collect();
    let num = |p: &str| -> Option<u32> {
        (!p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let ymd = match parts.as_slice() {
        [a, b, c] => match (num(a), num(b), num(c)) {
            (Some(y), Some(m), Some(d)) if a.len() == 4 => Some((y, m, d)),
            (Some(x), Some(y2), Some(year)) if c.len() == 4 || c.len() == 2 => {
                let year = if c.len() == 2 {
                    if year < 70 {
                        2000 + year
                    } else {
                        1900 + year
                    }
                } else {
                    year
                };
                Some(match order {
                    DateOrder::MonthFirst => (year, x, y2),
                    DateOrder::DayFirst => (year, y2, x),
                })
            }
            _ => None,
        },
        [serial] if serial.len() == 5 => serial
            .parse::<u32>()
            .ok()
            .filter(|n| (20_000..=80_000).contains(n))
            .map(|n| civil(i64::from(n) - 25_569)),
        _ => None,
    };
    match ymd {
        Some((y, m, d)) => format!("{y:04}-{m:02}-{d:02}"),
        None => raw.trim().to_owned(),
    }
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as u32, m as u32, d as u32)
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests;

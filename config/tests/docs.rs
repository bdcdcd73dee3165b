//! `docs/config.md` and the configuration model must not drift apart.
//!
//! The model is not a serde model. Each section is read by hand through `raw::Table`, which
//! remembers every key a reader asks for and reports any other key as unknown, naming the keys
//! it knows: "unknown key `x` (known keys here: a, b, c)". That message is the model's own list
//! of keys, so this test lists keys by asking the model. It puts a probe key into every table the
//! document describes, in a fixture that has every table and every variant, and reads the list
//! back. There is no second, hand-written list of keys.
//!
//! Checked both ways:
//! - every key the model reads, in every table and every variant (driver and sensor kinds), has
//!   a row in the document, or a row in its list of removed keys;
//! - every row names a key the model reads in that table and variant.
//!
//! Then each row is checked against the model:
//! - its type, from the model's "expected ..., found a date/time" for a value of the wrong type;
//! - its default, when written as a TOML value: leaving the key out must give the same `Config`
//!   as writing that value;
//! - "required": leaving the key out is refused, and every key whose absence the model reports as
//!   a missing required key says "required";
//! - the names a choice key accepts ("expected one of: ..."), and ranges written "A to B" for
//!   integers and durations ("expected A to B" when out of range);
//! - removed keys are refused with their own message, not as unknown keys.
//!
//! The document's notation is explained at its top: keys in full from the top of the file, `[]`
//! after a list of tables, `<name>` for names the user chooses, and variant tables under a
//! heading ending "(when `path.kind = "value"`)".

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use locker_config::{parse, Config, Diagnostics};
use toml::{Table, Value};

/// A key no table knows, far from every real key (so no "did you mean" replaces the list), and a
/// well-formed point name (so a map of named points takes it as a name).
const PROBE: &str = "zq_docs_probe_xk";

const MAIN_HEADER: [&str; 5] = ["Key", "Type", "Default", "Allowed values", "Meaning"];
const REMOVED_HEADER: [&str; 4] = ["Key", "Status", "Reason", "Instead"];

/// Every table of the model and every variant, with values that differ from the defaults where
/// that is possible, so that omitting a key changes something the default check can see.
/// `@CERT@` is replaced by a readable file (TLS files are only checked to be readable).
const FIXTURE: &str = r#"
[site]
id = "docs-fixture"
name = "Docs fixture"
data_dir = "state"
time_zone = "Europe/Berlin"
retention_months = 12
storage_reserve_mib = 32

[mqtt]
listener = { enabled = true, bind = "127.0.0.1:1883", allow = ["127.0.0.1", "10.0.0.0/8"] }
tls = { bind = "127.0.0.1:8883", cert = '@CERT@', key = '@CERT@', bank_certificates = true }
allow_anonymous = true
max_connections = 100
max_payload_bytes = 65536
observers = [{ username = "bms", password_hash = "$argon2id$v=19$m=19456,t=2,p=1$jaBgQfrZqAiDm4Pdf8jTIg$T/i2cYNjHD0i/ADq2hdBJsN1kkd3etdxrrgvdsz6c5I" }]

[web]
bind = "127.0.0.1:8080"
tls = { cert = '@CERT@', key = '@CERT@' }

[policies]
hold = { ambient = "4d", refrigerated = "12h", frozen = "36h" }
reminders = ["12h", "48h"]
expiring_notice = "12h"
pin_length = 8
lockout = { max_failures = 3, window = "10m", base_lockout = "2m", max_lockout = "2h", check_every = "30s" }
reservation_timeout = "5m"
door_ajar_after = "90s"
unlock_deadline = "2s"
alert_grace = "10s"
max_vacation_hold = "14d"
carrier_open_reservations = 2
carrier_overflows_per_hour = 10

[sync]
endpoints = ["wss://sync.example.org/v1", "ws://10.0.0.9:3030"]
hubs = ["ws://10.0.0.3:7300"]
listen = "0.0.0.0:7300"
token_file = "sync.token"
ca_file = '@CERT@'
allow_plaintext = true
reply_timeout = "30s"
max_backoff = "5m"
execute_requests = true
remote_open_max_age = "5m"
remote_opens_per_hour = 3

[notify]
max_attempts = 5
per_minute = 12
retry_wait = "10s"
max_retry_wait = "30m"
alert_after = "2h"
templates = "."

[notify.email]
server = "smtp.example.org"
tls = "tls"
port = 2465
from = "Lockers <lockers@example.org>"
username = "lockers@example.org"
password_file = "smtp.password"
ca_file = '@CERT@'
timeout = "20s"

[notify.webhook]
url = "http://10.0.0.7:8088/notify"
secret_file = "webhook.secret"
ca_file = '@CERT@'
timeout = "5s"
allow_plaintext = true

[import]
preset = "custom"
move_out_grace = "30d"
country_code = "44"
encoding = "windows-1252"
date_order = "day_first"
units = ["1A", "101..104"]

[import.columns]
resident = "Tenant Code"
unit = "Apt"
name = "Name"
first_name = "First"
last_name = "Last"
email = "E-mail"
phone = "Mobile"
lease_start = "From"
lease_end = "To"
move_in = "In"
move_out = "Out"
status = "State"

# Its own controller, logins, a refrigerated unit with an MQTT sensor, a frozen one with a
# simulated sensor.
[[bank]]
id = "controller"
name = "Controller bank"
location = "Lobby"
driver = { kind = "mqtt" }
mqtt = { username = "bank-controller", password_hash = "$argon2id$v=19$m=19456,t=2,p=1$jaBgQfrZqAiDm4Pdf8jTIg$T/i2cYNjHD0i/ADq2hdBJsN1kkd3etdxrrgvdsz6c5I" }
kiosks = [{ id = "screen", username = "kiosk-controller", password_hash = "$argon2id$v=19$m=19456,t=2,p=1$jaBgQfrZqAiDm4Pdf8jTIg$T/i2cYNjHD0i/ADq2hdBJsN1kkd3etdxrrgvdsz6c5I" }]
compartments = [
  { doors = "1-4", size = "S", column = 1 },
  { door = 5, size = "M", column = 2, row = 2, accessible = true, out_of_service = true },
  { doors = "6-7", size = "L", column = 3, temperature = "refrigerated", unit = "fridge" },
  { door = 8, size = "XL", column = 4, unit = "freezer" },
]

[[bank.unit]]
id = "fridge"
name = "Fridge"
temperature = "refrigerated"
min_c = 2.0
max_c = 6.0
alarm_after = "5m"
door_grace = "2m"
hysteresis_c = 0.3
door_open_limit = "1m"
excursion_limit = "20m"
summary_interval = "5m"
silent_after = "2m"

[[bank.unit.sensor]]
id = "reported"
kind = "mqtt"
interval = "10s"

[[bank.unit]]
id = "freezer"
temperature = "frozen"

[[bank.unit.sensor]]
id = "simulated"
kind = "sim"
interval = "15s"
start_c = -20.0

[[bank]]
id = "simulated"
driver = { kind = "sim", latency = "100ms", stuck_doors = [2] }
compartments = [{ doors = "1-2", size = "M" }]

[[bank]]
id = "kerong-serial"
driver = { kind = "kerong", port = "/dev/ttyS0", baud = 9600, parity = "even", data_bits = 8, stop_bits = 1, polarity = "zero-is-closed", pulse = "1s", response_timeout = "300ms", retries = 2, poll_interval = "2s", unreachable_after = 5, map = [{ doors = "1-4", board = 1, lock = 3 }, { door = 5, board = 2 }] }
compartments = [{ doors = "1-5", size = "S" }]

[[bank]]
id = "kerong-gateway"
driver = { kind = "kerong", host = "10.0.0.20:5001" }
compartments = [{ doors = "1-3", size = "S" }]

[[bank]]
id = "lockboard-serial"
driver = { kind = "lockboard-8a", port = "/dev/ttyS1", baud = 19200, parity = "odd", data_bits = 7, stop_bits = 2, response_timeout = "2s", retries = 0, poll_interval = "500ms", unreachable_after = 2, map = [{ doors = "1-2", board = 3, lock = 5 }, { door = 3, board = 4 }] }
compartments = [{ doors = "1-3", size = "S" }]

[[bank]]
id = "lockboard-gateway"
driver = { kind = "lockboard-8a", host = "10.0.0.21" }
compartments = [{ door = 1, size = "M" }]

# Modbus on a serial port, with a unit whose sensors share the bus, have their own port, or
# sit behind gateways; one has a custom register map.
[[bank]]
id = "modbus-serial"
driver = { kind = "modbus", port = "/dev/ttyS2", baud = 19200, parity = "even", data_bits = 8, stop_bits = 2, response_timeout = "300ms", retries = 2, poll_interval = "1s", unreachable_after = 4, map = [
  { doors = "1-2", slave = 1, coil = 10, feedback = 20, feedback_polarity = "zero-is-closed", pulse = "700ms" },
  { doors = "3-4", slave = 2, command_register = 5, pulse = "2s" },
] }
compartments = [{ doors = "1-3", size = "M" }, { door = 4, size = "M", unit = "cooler" }]

[[bank.unit]]
id = "cooler"

[[bank.unit.sensor]]
id = "shared-bus"
kind = "modbus-points"
slave = 9
model = "xy-md02"
poll_interval = "10s"
response_timeout = "200ms"

[[bank.unit.sensor]]
id = "own-port"
kind = "modbus-points"
port = "/dev/ttyS3"
baud = 19200
parity = "even"
data_bits = 8
stop_bits = 1
slave = 4
points = { temperature = { register = "holding", address = 0x100, format = "s16", scale = 0.1, writable = false }, evaporator = { register = "input", address = 0x200, format = "f32", word_order = "low-first" }, defrost = { register = "coil", address = 3, writable = true } }

[[bank.unit.sensor]]
id = "gateway"
kind = "modbus-points"
host = "10.0.0.30:1502"
framing = "rtu"
slave = 7
model = "eliwell-id974"

[[bank.unit.sensor]]
id = "tcp"
kind = "modbus-points"
host = "10.0.0.31"
slave = 1
model = "carel-ir33"

[[bank]]
id = "modbus-gateway"
driver = { kind = "modbus", host = "10.0.0.40", framing = "rtu", map = [{ door = 1, slave = 1, coil = 0 }] }
compartments = [{ door = 1, size = "S" }]
"#;

// ---------------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------------

/// One segment of a documented key: `bank`, `bank[]` (an entry of a list of tables) or `<name>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Key(String),
    List(String),
    Named,
}

type Pattern = Vec<Seg>;

fn show(pattern: &[Seg]) -> String {
    let parts: Vec<String> = pattern
        .iter()
        .map(|s| match s {
            Seg::Key(k) => k.clone(),
            Seg::List(k) => format!("{k}[]"),
            Seg::Named => "<name>".to_owned(),
        })
        .collect();
    parts.join(".")
}

fn parse_key(text: &str) -> Result<Pattern, String> {
    let word = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    text.split('.')
        .map(|part| {
            if part == "<name>" {
                Ok(Seg::Named)
            } else if let Some(list) = part.strip_suffix("[]").filter(|w| word(w)) {
                Ok(Seg::List(list.to_owned()))
            } else if word(part) {
                Ok(Seg::Key(part.to_owned()))
            } else {
                Err(format!("`{text}` is not a key in the notation of the page"))
            }
        })
        .collect()
}

/// A variant: the key (in full) that selects it, and its value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Cond {
    at: Pattern,
    value: String,
}

impl Cond {
    /// The table holding the selecting key.
    fn table(&self) -> &[Seg] {
        &self.at[..self.at.len() - 1]
    }

    fn key(&self) -> &str {
        match self.at.last() {
            Some(Seg::Key(k)) => k,
            _ => unreachable!("checked when read"),
        }
    }
}

fn show_cond(cond: &Option<Cond>) -> String {
    match cond {
        None => String::new(),
        Some(c) => format!(" (when `{} = \"{}\"`)", show(&c.at), c.value),
    }
}

#[derive(Clone, Debug)]
struct Row {
    line: usize,
    key: String,
    /// The table the key is in.
    parent: Pattern,
    /// The key's own name: `Seg::Key` or `Seg::Named`.
    name: Seg,
    cond: Option<Cond>,
    ty: String,
    default: String,
    allowed: String,
    removed: bool,
}

impl Row {
    /// The table this row describes, if its type is a table or a list of tables.
    fn table(&self) -> Option<Pattern> {
        let mut p = self.parent.clone();
        match (self.ty.as_str(), &self.name) {
            ("table", Seg::Key(k)) => p.push(Seg::Key(k.clone())),
            ("table", Seg::Named) => p.push(Seg::Named),
            ("array of tables", Seg::Key(k)) => p.push(Seg::List(k.clone())),
            _ => return None,
        }
        Some(p)
    }

    /// The name to write in the file: a probe name stands for `<name>`.
    fn file_key(&self) -> &str {
        match &self.name {
            Seg::Key(k) => k,
            _ => PROBE,
        }
    }

    fn at(&self) -> String {
        format!(
            "docs/config.md:{}: `{}`{}",
            self.line,
            self.key,
            show_cond(&self.cond)
        )
    }
}

/// The variant a heading introduces: "... (when `bank[].driver.kind = "kerong"`)".
fn heading_cond(line: &str) -> Result<Option<Cond>, String> {
    let Some(start) = line.find("(when `") else {
        return Ok(None);
    };
    let rest = &line[start + "(when `".len()..];
    let inner = rest
        .find("`)")
        .map(|end| &rest[..end])
        .ok_or_else(|| format!("unfinished variant in heading `{line}`"))?;
    let (path, value) = inner
        .split_once(" = ")
        .ok_or_else(|| format!("a variant is written `KEY = \"VALUE\"`: `{inner}`"))?;
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(|| format!("the variant's value must be a quoted name: `{inner}`"))?;
    let at = parse_key(path)?;
    if !matches!(at.last(), Some(Seg::Key(_))) {
        return Err(format!("a variant is selected by a plain key: `{inner}`"));
    }
    Ok(Some(Cond {
        at,
        value: value.to_owned(),
    }))
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_owned()).collect()
}

/// The contents of the code spans of a cell.
fn spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

fn read_doc(text: &str, failures: &mut Vec<String>) -> Vec<Row> {
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Main,
        Removed,
        Other,
    }
    let mut rows = Vec::new();
    let mut cond = None;
    let mut fenced = false;
    // The kind of the table being read, and whether its separator line is still to come.
    let mut table: Option<(Kind, bool)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if t.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if t.starts_with('#') {
            cond = heading_cond(t).unwrap_or_else(|e| {
                failures.push(format!("docs/config.md:{n}: {e}"));
                None
            });
        }
        if !t.starts_with('|') {
            table = None;
            continue;
        }
        let row = cells(t);
        let (kind, separator_next) = match table {
            None => {
                let kind = if row == MAIN_HEADER {
                    Kind::Main
                } else if row == REMOVED_HEADER {
                    Kind::Removed
                } else if row.first().is_some_and(|c| c == "Key") {
                    failures.push(format!(
                        "docs/config.md:{n}: a table of keys needs the columns {} (or {} for removed keys)",
                        MAIN_HEADER.join(" | "),
                        REMOVED_HEADER.join(" | ")
                    ));
                    Kind::Other
                } else {
                    Kind::Other
                };
                table = Some((kind, true));
                continue;
            }
            Some(state) => state,
        };
        if separator_next {
            table = Some((kind, false));
            continue;
        }
        if kind == Kind::Other {
            continue;
        }
        let width = if kind == Kind::Main {
            MAIN_HEADER.len()
        } else {
            REMOVED_HEADER.len()
        };
        if row.len() != width {
            failures.push(format!(
                "docs/config.md:{n}: expected {width} cells, found {} (a `|` inside a cell?)",
                row.len()
            ));
            continue;
        }
        let key = match row[0].strip_prefix('`').and_then(|k| k.strip_suffix('`')) {
            Some(k) if !k.contains('`') => k.to_owned(),
            _ => {
                failures.push(format!(
                    "docs/config.md:{n}: the Key cell must be one key in backticks, found `{}`",
                    row[0]
                ));
                continue;
            }
        };
        let mut pattern = match parse_key(&key) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("docs/config.md:{n}: {e}"));
                continue;
            }
        };
        let name = match pattern.pop() {
            Some(Seg::List(k)) => {
                failures.push(format!(
                    "docs/config.md:{n}: write the list's own key without `[]`: `{}`",
                    key.replace(&format!("{k}[]"), &k)
                ));
                continue;
            }
            Some(last) => last,
            None => continue,
        };
        let (ty, default, allowed) = if kind == Kind::Main {
            (row[1].clone(), row[2].clone(), row[3].clone())
        } else {
            (String::new(), String::new(), String::new())
        };
        rows.push(Row {
            line: n,
            key,
            parent: pattern,
            name,
            cond: if kind == Kind::Main {
                cond.clone()
            } else {
                None
            },
            ty,
            default,
            allowed,
            removed: kind == Kind::Removed,
        });
    }
    let mut seen = BTreeMap::new();
    for row in &rows {
        if let Some(c) = &row.cond {
            if !row.parent.starts_with(c.table()) {
                failures.push(format!(
                    "{}: its variant is selected outside the table it is in",
                    row.at()
                ));
            }
        }
        if let Some(first) = seen.insert((row.key.clone(), row.cond.clone()), row.line) {
            failures.push(format!(
                "{}: listed twice (first on line {first})",
                row.at()
            ));
        }
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// The model, asked through the fixture
// ---------------------------------------------------------------------------------------------

/// A step to a concrete table of the fixture: a key, or an entry of a list.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// How problems name a place: `bank[2].driver.map[0]`.
fn show_steps(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn key_at(table: &[Step], name: &str) -> String {
    let base = show_steps(table);
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}.{name}")
    }
}

fn value_at<'a>(root: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    steps.iter().try_fold(root, |v, step| match step {
        Step::Key(k) => v.as_table()?.get(k),
        Step::Index(i) => v.as_array()?.get(*i),
    })
}

fn value_at_mut<'a>(root: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    steps.iter().try_fold(root, |v, step| match step {
        Step::Key(k) => v.as_table_mut()?.get_mut(k),
        Step::Index(i) => v.as_array_mut()?.get_mut(*i),
    })
}

fn steps_len(pattern: &[Seg]) -> usize {
    pattern
        .iter()
        .map(|s| if matches!(s, Seg::List(_)) { 2 } else { 1 })
        .sum()
}

/// A change to the fixture: in the table at the steps, set a key or remove it.
type Edit<'a> = (&'a [Step], &'a str, Option<Value>);

struct Fixture {
    root: Value,
}

impl Fixture {
    fn new() -> Fixture {
        let cert = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let text = FIXTURE.replace("@CERT@", &cert.display().to_string());
        let table: Table = text.parse().expect("the fixture is TOML");
        let fixture = Fixture {
            root: Value::Table(table),
        };
        if let Err(problems) = fixture.run(&[]) {
            panic!(
                "the fixture of config/tests/docs.rs must be a valid configuration:\n{problems}"
            );
        }
        fixture
    }

    /// Parses the fixture with some changes, through the real `locker_config::parse`.
    fn run(&self, edits: &[Edit]) -> Result<Config, Diagnostics> {
        let mut root = self.root.clone();
        for (table, key, value) in edits {
            let t = value_at_mut(&mut root, table)
                .and_then(Value::as_table_mut)
                .expect("edits are made in tables of the fixture");
            match value {
                Some(v) => {
                    t.insert((*key).to_owned(), v.clone());
                }
                None => {
                    t.remove(*key);
                }
            }
        }
        let text =
            toml::to_string(root.as_table().expect("a document")).expect("the fixture serialises");
        parse(&text, "hub.toml")
    }

    fn with(&self, table: &[Step], key: &str, value: Option<Value>) -> Result<Config, Diagnostics> {
        self.run(&[(table, key, value)])
    }

    fn has(&self, table: &[Step], key: &str) -> bool {
        value_at(&self.root, table)
            .and_then(Value::as_table)
            .is_some_and(|t| t.contains_key(key))
    }

    /// Every table of the fixture that the pattern matches, in the variant if one is given.
    fn places(&self, pattern: &[Seg], cond: Option<&Cond>) -> Vec<Vec<Step>> {
        fn walk(v: &Value, pattern: &[Seg], here: Vec<Step>, out: &mut Vec<Vec<Step>>) {
            let Some(t) = v.as_table() else {
                return;
            };
            let Some((first, rest)) = pattern.split_first() else {
                out.push(here);
                return;
            };
            let step = |here: &[Step], s: Step| {
                let mut next = here.to_vec();
                next.push(s);
                next
            };
            match first {
                Seg::Key(k) => {
                    if let Some(child) = t.get(k) {
                        walk(child, rest, step(&here, Step::Key(k.clone())), out);
                    }
                }
                Seg::List(k) => {
                    if let Some(Value::Array(items)) = t.get(k) {
                        let at = step(&here, Step::Key(k.clone()));
                        for (i, item) in items.iter().enumerate() {
                            walk(item, rest, step(&at, Step::Index(i)), out);
                        }
                    }
                }
                Seg::Named => {
                    for (k, child) in t {
                        walk(child, rest, step(&here, Step::Key(k.clone())), out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, pattern, Vec::new(), &mut out);
        out.retain(|steps| cond.is_none_or(|c| self.holds(steps, c)));
        out
    }

    /// Whether the concrete table at `steps` is in the variant.
    fn holds(&self, steps: &[Step], cond: &Cond) -> bool {
        let len = steps_len(cond.table());
        len <= steps.len()
            && value_at(&self.root, &steps[..len])
                .and_then(Value::as_table)
                .and_then(|t| t.get(cond.key()))
                .and_then(Value::as_str)
                .is_some_and(|v| v == cond.value)
    }
}

fn messages<'a>(result: &'a Result<Config, Diagnostics>, key: &str) -> Vec<&'a str> {
    match result {
        Ok(_) => Vec::new(),
        Err(d) => d
            .problems()
            .iter()
            .filter(|p| p.key == key)
            .map(|p| p.message.as_str())
            .collect(),
    }
}

/// The keys the model reads in a table (in a variant): the union over every such table of the
/// fixture of the model's "known keys here" for a probe key. A variant the fixture lacks is made
/// by setting its selecting key in the first table of the pattern.
fn known_keys(
    fx: &Fixture,
    pattern: &[Seg],
    cond: Option<&Cond>,
) -> Result<BTreeSet<String>, String> {
    let prefix = format!("unknown key `{PROBE}` (known keys here: ");
    let mut places: Vec<(Vec<Step>, Option<Value>)> = fx
        .places(pattern, cond)
        .into_iter()
        .map(|p| (p, None))
        .collect();
    if places.is_empty() {
        if let Some(c) = cond.filter(|c| c.table() == pattern) {
            if let Some(first) = fx.places(pattern, None).into_iter().next() {
                places.push((first, Some(Value::String(c.value.clone()))));
            }
        }
    }
    if places.is_empty() {
        return Err(format!(
            "the fixture in config/tests/docs.rs has no table `{}`{}: add one",
            show(pattern),
            show_cond(&cond.cloned())
        ));
    }
    let mut known = BTreeSet::new();
    let mut answered = false;
    for (table, select) in &places {
        let mut edits: Vec<Edit> = vec![(table, PROBE, Some(Value::Integer(1)))];
        if let (Some(value), Some(c)) = (select, cond) {
            edits.push((table, c.key(), Some(value.clone())));
        }
        let result = fx.run(&edits);
        for m in messages(&result, &key_at(table, PROBE)) {
            if let Some(list) = m.strip_prefix(&prefix).and_then(|l| l.strip_suffix(')')) {
                answered = true;
                known.extend(list.split(", ").map(str::to_owned));
            }
        }
    }
    if answered {
        Ok(known)
    } else {
        Err(format!(
            "the model did not report a probe key in `{}`{}, so its keys cannot be listed \
             (is the table read there?)",
            show(pattern),
            show_cond(&cond.cloned())
        ))
    }
}

/// The names a choice key accepts, from "unknown ... (expected one of: a, b)".
fn model_choices(fx: &Fixture, places: &[Vec<Step>], key: &str) -> Option<Vec<String>> {
    const MARK: &str = "(expected one of: ";
    places.iter().find_map(|table| {
        let result = fx.with(table, key, Some(Value::String(PROBE.to_owned())));
        messages(&result, &key_at(table, key))
            .into_iter()
            .find_map(|m| {
                let list = &m[m.find(MARK)? + MARK.len()..];
                let list = list.strip_suffix(')')?;
                Some(list.split(", ").map(str::to_owned).collect())
            })
    })
}

/// What the model expects, from "expected X, found a date/time".
fn model_type(fx: &Fixture, places: &[Vec<Step>], key: &str) -> Option<String> {
    let date: toml::value::Datetime = "1979-05-27T07:32:00Z".parse().expect("a TOML date");
    places.iter().find_map(|table| {
        let result = fx.with(table, key, Some(Value::Datetime(date)));
        messages(&result, &key_at(table, key))
            .into_iter()
            .find_map(|m| {
                m.strip_prefix("expected ")?
                    .strip_suffix(", found a date/time")
                    .map(str::to_owned)
            })
    })
}

/// The range the model states for a value far too large: "... is out of range: expected A to B".
fn model_range(fx: &Fixture, places: &[Vec<Step>], key: &str, too_large: &Value) -> Option<String> {
    const MARK: &str = "is out of range: expected ";
    places.iter().find_map(|table| {
        let result = fx.with(table, key, Some(too_large.clone()));
        messages(&result, &key_at(table, key))
            .into_iter()
            .find_map(|m| Some(m[m.find(MARK)? + MARK.len()..].to_owned()))
    })
}

/// The type of the model's "expected ..." message a documented type stands for.
fn expected_for(doc_type: &str) -> Option<&'static str> {
    Some(match doc_type {
        "string" | "duration" | "path" | "address" => "a string",
        "integer" => "a whole number",
        "float" => "a number",
        "boolean" => "true or false",
        "table" => "a table",
        "array of tables" | "array of strings" | "array of durations" | "array of integers" => {
            "a list"
        }
        _ => return None,
    })
}

/// A default written as one TOML value in backticks, or `None` for a described default.
fn default_value(cell: &str) -> Option<Value> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    if inner.contains('`') {
        return None;
    }
    let doc: Table = format!("v = {inner}").parse().ok()?;
    doc.get("v").cloned()
}

/// The first line where two configurations' debug output differs, to show what a default changed.
fn first_difference(a: &Config, b: &Config) -> String {
    let (a, b) = (format!("{a:#?}"), format!("{b:#?}"));
    a.lines()
        .zip(b.lines())
        .find(|(x, y)| x != y)
        .map(|(x, y)| format!("`{}` instead of `{}`", y.trim(), x.trim()))
        .unwrap_or_default()
}

fn doc_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn fail_if_any(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "docs/config.md and the configuration model (config/src) disagree, {} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// Every key the model reads is documented, and every documented key is read.
#[test]
fn every_key_of_the_model_is_documented_and_every_documented_key_exists() {
    let mut failures = Vec::new();
    let rows = read_doc(&doc_text(), &mut failures);
    let fx = Fixture::new();

    // The tables the page describes (the top level and every key of type table or list of
    // tables), each with the variants it is documented in.
    let mut tables: BTreeMap<Pattern, BTreeSet<Option<Cond>>> = BTreeMap::new();
    tables.entry(Vec::new()).or_default().insert(None);
    for row in rows.iter().filter(|r| !r.removed) {
        if let Some(t) = row.table() {
            tables.entry(t).or_default().insert(row.cond.clone());
        }
    }
    for row in &rows {
        match tables.get_mut(&row.parent) {
            Some(conds) if !row.removed => {
                conds.insert(row.cond.clone());
            }
            Some(_) => {}
            None => failures.push(format!(
                "{}: `{}` is not documented as a table or a list of tables",
                row.at(),
                show(&row.parent)
            )),
        }
    }
    // A table that selects variants is probed in every variant the model has, documented or not.
    let selectors: BTreeSet<Pattern> = rows
        .iter()
        .filter_map(|r| r.cond.as_ref().map(|c| c.at.clone()))
        .collect();
    for at in &selectors {
        let probe = Cond {
            at: at.clone(),
            value: String::new(),
        };
        let parent = probe.table().to_vec();
        let places = fx.places(&parent, None);
        let Some(values) = model_choices(&fx, &places, probe.key()) else {
            failures.push(format!(
                "variants are selected by `{}`, but the model does not read it as a choice of names",
                show(at)
            ));
            continue;
        };
        for row in &rows {
            if let Some(c) = row.cond.as_ref().filter(|c| &c.at == at) {
                if !values.contains(&c.value) {
                    failures.push(format!(
                        "{}: the model has no `{} = \"{}\"` (it has {})",
                        row.at(),
                        show(at),
                        c.value,
                        values.join(", ")
                    ));
                }
            }
        }
        if let Some(conds) = tables.get_mut(&parent) {
            for value in values {
                conds.insert(Some(Cond {
                    at: at.clone(),
                    value,
                }));
            }
        }
    }

    let mut probed = 0;
    for (pattern, conds) in &tables {
        let mut conds: Vec<Option<Cond>> = conds.iter().cloned().collect();
        if conds.iter().any(Option::is_some) {
            conds.retain(Option::is_some);
        }
        let children: Vec<&Row> = rows.iter().filter(|r| &r.parent == pattern).collect();
        let named = children.iter().filter(|r| r.name == Seg::Named).count();
        if named > 0 {
            // A map of names the user chooses: any name is taken, none is unknown.
            if named != children.len() {
                failures.push(format!(
                    "`{}` is documented both as a map of names (`<name>`) and with fixed keys",
                    show(pattern)
                ));
            }
            for cond in &conds {
                let places = fx.places(pattern, cond.as_ref());
                if places.is_empty() {
                    failures.push(format!(
                        "the fixture in config/tests/docs.rs has no table `{}`{}: add one",
                        show(pattern),
                        show_cond(cond)
                    ));
                }
                for table in places {
                    let result = fx.with(&table, PROBE, Some(Value::Integer(1)));
                    let found = messages(&result, &key_at(&table, PROBE));
                    if found.is_empty() || found.iter().any(|m| m.starts_with("unknown key")) {
                        failures.push(format!(
                            "`{}`{} is documented as a map of names you choose, but the model \
                             does not take `{PROBE}` as a name there: {found:?}",
                            show(pattern),
                            show_cond(cond)
                        ));
                    }
                }
            }
            continue;
        }
        for cond in &conds {
            let known = match known_keys(&fx, pattern, cond.as_ref()) {
                Ok(k) => k,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            probed += 1;
            // Model to page.
            for key in &known {
                let documented = children.iter().any(|r| {
                    r.name == Seg::Key(key.clone())
                        && (r.removed || r.cond.is_none() || &r.cond == cond)
                });
                if !documented {
                    let mut full = pattern.clone();
                    full.push(Seg::Key(key.clone()));
                    failures.push(format!(
                        "docs/config.md does not document `{}`{}, which the model reads",
                        show(&full),
                        show_cond(cond)
                    ));
                }
            }
            // Page to model.
            for row in children.iter().filter(|r| !r.removed) {
                let applies = row.cond.is_none() || &row.cond == cond;
                if applies && !known.contains(row.file_key()) {
                    failures.push(format!(
                        "{}: the model does not accept this key{}; it reads: {}",
                        row.at(),
                        if row.cond.is_none() {
                            show_cond(cond)
                        } else {
                            String::new()
                        },
                        known.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
    }
    // Removed keys are refused with their own message, not as unknown keys.
    for row in rows.iter().filter(|r| r.removed) {
        let places = fx.places(&row.parent, None);
        if places.is_empty() {
            failures.push(format!(
                "{}: the fixture has no `{}`",
                row.at(),
                show(&row.parent)
            ));
        }
        for table in places {
            let result = fx.with(&table, row.file_key(), Some(Value::Integer(1)));
            let found = messages(&result, &key_at(&table, row.file_key()));
            if found.is_empty() || found.iter().any(|m| m.starts_with("unknown key")) {
                failures.push(format!(
                    "{}: listed as removed, but the model does not refuse it with a reason: {found:?}",
                    row.at()
                ));
            }
        }
    }
    println!(
        "docs/config.md: {} rows, {} tables and variants listed by the model",
        rows.len(),
        probed
    );
    fail_if_any(&failures);
}

/// Types, defaults, "required", choices and ranges on the page are what the model does.
#[test]
fn documented_types_defaults_and_allowed_values_match_the_model() {
    let mut failures = Vec::new();
    let rows = read_doc(&doc_text(), &mut failures);
    let fx = Fixture::new();
    let (mut defaults_checked, mut defaults_described) = (0, 0);

    for row in rows.iter().filter(|r| !r.removed) {
        let key = row.file_key();
        let places = fx.places(&row.parent, row.cond.as_ref());
        if places.is_empty() {
            failures.push(format!(
                "{}: the fixture in config/tests/docs.rs has no `{}` to check it in: add one",
                row.at(),
                show(&row.parent)
            ));
            continue;
        }

        // Type.
        match expected_for(&row.ty) {
            None => failures.push(format!(
                "{}: unknown type `{}` (see \"How to read the tables\")",
                row.at(),
                row.ty
            )),
            Some(expected) => match model_type(&fx, &places, key) {
                Some(found) if found == expected => {}
                Some(found) => failures.push(format!(
                    "{}: documented as {}, but the model expects {found}",
                    row.at(),
                    row.ty
                )),
                None => failures.push(format!(
                    "{}: no place in the fixture makes the model say what type it expects",
                    row.at()
                )),
            },
        }
        if row.name == Seg::Named {
            continue;
        }

        // Default: leaving the key out is the same as writing the documented value.
        if let Some(value) = default_value(&row.default) {
            let mut compared = 0;
            for table in &places {
                let (Ok(without), Ok(with)) = (
                    fx.with(table, key, None),
                    fx.with(table, key, Some(value.clone())),
                ) else {
                    continue;
                };
                compared += 1;
                if without != with {
                    failures.push(format!(
                        "{}: the documented default {} is not the default: writing it gives {} (in `{}`)",
                        row.at(),
                        row.default,
                        first_difference(&without, &with),
                        show_steps(table)
                    ));
                    break;
                }
            }
            if compared == 0 {
                failures.push(format!(
                    "{}: no place in the fixture accepts both leaving it out and {}, so the \
                     default cannot be checked (add one, or describe the default in words)",
                    row.at(),
                    row.default
                ));
            }
            defaults_checked += 1;
        } else if !row.default.starts_with("required") {
            defaults_described += 1;
        }

        // Required, both ways.
        let present: Vec<&Vec<Step>> = places.iter().filter(|t| fx.has(t, key)).collect();
        let doc_required = row.default.starts_with("required");
        if doc_required && present.is_empty() {
            failures.push(format!(
                "{}: documented as required, but the fixture never gives it",
                row.at()
            ));
        }
        for table in present {
            let result = fx.with(table, key, None);
            if doc_required && result.is_ok() {
                failures.push(format!(
                    "{}: documented as required, but a file without it is accepted (in `{}`)",
                    row.at(),
                    show_steps(table)
                ));
            }
            let model_required = messages(&result, &key_at(table, key))
                .iter()
                .any(|m| m.starts_with("missing required key"));
            if model_required && !doc_required {
                failures.push(format!(
                    "{}: the model requires it, but its default says `{}` (write \"required\")",
                    row.at(),
                    row.default
                ));
            }
        }

        // Names of a choice.
        let quoted: BTreeSet<String> = spans(&row.allowed)
            .iter()
            .filter_map(|s| s.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
            .map(str::to_owned)
            .collect();
        match model_choices(&fx, &places, key) {
            Some(names) => {
                let names: BTreeSet<String> = names.into_iter().collect();
                if names != quoted {
                    failures.push(format!(
                        "{}: the model accepts {:?}, the page lists {:?}",
                        row.at(),
                        names,
                        quoted
                    ));
                }
            }
            None => {
                let mut rest = row.allowed.clone();
                for s in spans(&row.allowed) {
                    rest = rest.replacen(&format!("`{s}`"), "", 1);
                }
                let only_names = rest
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .all(|w| w.is_empty() || w == "or");
                if only_names && !quoted.is_empty() {
                    failures.push(format!(
                        "{}: the page lists names {:?}, but the model does not limit it to names",
                        row.at(),
                        quoted
                    ));
                }
            }
        }

        // A range "A to B" at the start of the allowed values of an integer or a duration.
        let too_large = match row.ty.as_str() {
            "integer" => Value::Integer(1 << 40),
            "duration" => Value::String("100000d".to_owned()),
            _ => continue,
        };
        let plain = row.allowed.replace('`', "");
        let words: Vec<&str> = plain.split_whitespace().collect();
        if let [low, "to", high, ..] = words[..] {
            let doc_range = format!("{low} to {}", high.trim_end_matches([',', ';', '.']));
            match model_range(&fx, &places, key, &too_large) {
                Some(found) if found == doc_range => {}
                Some(found) => failures.push(format!(
                    "{}: the page says {doc_range}, the model accepts {found}",
                    row.at()
                )),
                None => failures.push(format!(
                    "{}: the page says {doc_range}, but the model states no range for it",
                    row.at()
                )),
            }
        }
    }
    println!(
        "docs/config.md: {defaults_checked} defaults checked against the model, \
         {defaults_described} described in words (not checked)"
    );
    fail_if_any(&failures);
}

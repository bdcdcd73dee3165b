//! Broken configuration files: each mistake must be reported on the right line, under the
//! right key, with a message that says what is wrong, and mistakes must not hide each other.

use locker_config::{parse, Diagnostics, Problem};

/// One broken file and the single problem it must produce.
struct Case {
    name: &'static str,
    lines: Vec<String>,
    line: usize,
    key: &'static str,
    says: &'static str,
}

const SITE: [&str; 2] = ["[site]", "id = \"test-site\""];
const BANK: [&str; 4] = [
    "[[bank]]",
    "id = \"lobby\"",
    "driver = { kind = \"mqtt\" }",
    "compartments = [{ doors = \"1-8\", size = \"S\" }]",
];

/// Builds a file from line fragments; line numbers in the cases count these.
fn file(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|l| (*l).to_owned()))
        .collect()
}

fn case(
    name: &'static str,
    lines: Vec<String>,
    line: usize,
    key: &'static str,
    says: &'static str,
) -> Case {
    Case {
        name,
        lines,
        line,
        key,
        says,
    }
}

fn problems(text: &str) -> Diagnostics {
    match parse(text, "hub.toml") {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(d) => d,
    }
}

fn cases(existing_file: &str) -> Vec<Case> {
    let tls_line =
        format!(r#"tls = {{ cert = "/nonexistent/tls/hub.crt", key = "{existing_file}" }}"#);
    vec![
        case(
            "unknown key with a suggestion",
            file(&[&SITE, &["nmae = \"Maple Court\""], &BANK]),
            3, "site.nmae", "unknown key `nmae`; did you mean `name`?",
        ),
        case(
            "unknown section with a suggestion",
            file(&[&SITE, &BANK, &["[mqt]", "allow_anonymous = true"]]),
            7, "mqt", "did you mean `mqtt`?",
        ),
        case(
            "duplicate bank id",
            file(&[&SITE, &BANK, &BANK]),
            8, "bank[1].id", "duplicate bank id `lobby` (first used at `bank[0].id`)",
        ),
        case(
            "door number reused",
            file(&[&SITE, &BANK[..3], &[
                "compartments = [",
                "  { doors = \"1-8\", size = \"S\" },",
                "  { door = 8, size = \"M\", column = 2 },",
                "]",
            ]]),
            8, "bank[0].compartments[1].door", "door 8 is already used by `bank[0].compartments[0].doors`",
        ),
        case(
            "size class misspelt",
            file(&[&SITE, &BANK[..3], &["compartments = [{ doors = \"1-8\", size = \"XXL\" }]"]]),
            6, "bank[0].compartments[0].size", "unknown size class `XXL`; did you mean `XL`?",
        ),
        case(
            "temperature class misspelt",
            file(&[&SITE, &BANK[..3], &["compartments = [{ doors = \"1-8\", size = \"S\", temperature = \"frozn\" }]"]]),
            6, "bank[0].compartments[0].temperature", "did you mean `frozen`?",
        ),
        case(
            "door range backwards",
            file(&[&SITE, &BANK[..3], &["compartments = [{ doors = \"8-1\", size = \"S\" }]"]]),
            6, "bank[0].compartments[0].doors", "runs backwards",
        ),
        case(
            "listener port out of range",
            file(&[&SITE, &["[mqtt]", "listener = { bind = \"0.0.0.0:70000\" }"], &BANK]),
            4, "mqtt.listener.bind", "port 70000 is out of range: expected 1 to 65535",
        ),
        case(
            "missing certificate file",
            file(&[&SITE, &["[mqtt]", &tls_line], &BANK]),
            4, "mqtt.tls.cert", "file `/nonexistent/tls/hub.crt` does not exist",
        ),
        case(
            "two listeners on one port",
            file(&[&SITE, &["[web]", "bind = \"0.0.0.0:1883\""], &BANK]),
            4, "web.bind", "clashes with `mqtt.listener.bind` = 0.0.0.0:1883 (by default)",
        ),
        case(
            "time zone not an IANA name",
            file(&[&SITE, &["time_zone = \"Berlin\""], &BANK]),
            3, "site.time_zone", "not an IANA time-zone name",
        ),
        case(
            "hub id that cannot be part of a fact id",
            file(&[&SITE, &["hub_id = \"hub-2 west\""], &BANK]),
            3, "site.hub_id", "must be 1 to 40 letters, digits",
        ),
        case(
            "hub id that is the cloud's author name",
            file(&[&SITE, &["hub_id = \"cloud\""], &BANK]),
            3, "site.hub_id", "author name of the cloud's facts",
        ),
        case(
            "plain WebSocket without allow_plaintext",
            file(&[&SITE, &BANK, &["[sync]", "endpoints = [\"ws://10.0.0.2:3030\"]", "token_file = \"t\""]]),
            8, "sync.endpoints[0]", "plain WebSocket",
        ),
        case(
            "a cloud without a token",
            file(&[&SITE, &BANK, &["[sync]", "endpoints = [\"wss://sync.example.org/s\"]"]]),
            7, "sync", "needs `token_file`",
        ),
        case(
            "sync with nothing to sync with",
            file(&[&SITE, &BANK, &["[sync]", "token_file = \"t\""]]),
            7, "sync", "names nothing to sync with",
        ),
        case(
            "notify with no channel",
            file(&[&SITE, &BANK, &["[notify]", "per_minute = 10"]]),
            7, "notify", "names no channel",
        ),
        case(
            "a webhook over plain HTTP without allow_plaintext",
            file(&[&SITE, &BANK, &["[notify.webhook]", "url = \"http://10.0.0.7/notify\"", "secret_file = \"s\""]]),
            8, "notify.webhook.url", "plain HTTP",
        ),
        case(
            "an SMTP login without its password file",
            file(&[&SITE, &BANK, &["[notify.email]", "server = \"smtp.example.org\"", "from = \"lockers@example.org\"", "username = \"lockers\""]]),
            7, "notify.email", "go together",
        ),
        case(
            "an SMTP sender that is not an address",
            file(&[&SITE, &BANK, &["[notify.email]", "server = \"smtp.example.org\"", "from = \"the lockers\""]]),
            9, "notify.email.from", "is not a sender",
        ),
        case(
            "an unknown SMTP TLS mode",
            file(&[&SITE, &BANK, &["[notify.email]", "server = \"smtp.example.org\"", "from = \"lockers@example.org\"", "tls = \"ssl\""]]),
            10, "notify.email.tls", "unknown TLS mode",
        ),
        case(
            "an unknown rent-roll preset",
            file(&[&SITE, &BANK, &["[import]", "preset = \"yardy\""]]),
            8, "import.preset", "did you mean `yardi`",
        ),
        case(
            "a custom rent roll without the unit's column",
            file(&[&SITE, &BANK, &["[import]", "preset = \"custom\"", "[import.columns]", "name = \"Name\""]]),
            7, "import", "needs `[import.columns]` with `unit`",
        ),
        case(
            "an unknown rent-roll column field",
            file(&[&SITE, &BANK, &["[import.columns]", "unit = \"Apt\"", "apartment = \"Apt\""]]),
            9, "import.columns.apartment", "unknown key",
        ),
        case(
            "a unit range that goes down",
            file(&[&SITE, &BANK, &["[import]", "units = [\"220..201\"]"]]),
            8, "import.units[0]", "a range goes up",
        ),
        case(
            "a country code with letters",
            file(&[&SITE, &BANK, &["[import]", "country_code = \"US\""]]),
            8, "import.country_code", "not a country calling code",
        ),
        case(
            "retention out of range",
            file(&[&SITE, &["retention_months = 0"], &BANK]),
            3, "site.retention_months", "out of range",
        ),
        case(
            "missing required site id",
            file(&[&["[site]", "name = \"Maple Court\""], &BANK]),
            1, "site.id", "missing required key `id` in `site`",
        ),
        case(
            "bank id not safe in MQTT topics",
            file(&[&SITE, &["[[bank]]", "id = \"lobby/east\""], &BANK[2..]]),
            4, "bank[0].id", "used in MQTT topics",
        ),
        case(
            "plain password instead of a hash",
            file(&[&SITE, &BANK, &["mqtt = { username = \"lobby\", password_hash = \"hunter2\" }"]]),
            7, "bank[0].mqtt.password_hash", "store a hash: run `locker-hub hash-password`",
        ),
        case(
            "driver kind misspelt",
            file(&[&SITE, &BANK[..2], &["driver = { kind = \"kerrong\", port = \"/dev/ttyUSB0\" }"], &BANK[3..]]),
            5, "bank[0].driver.kind", "unknown driver kind `kerrong`; did you mean `kerong`?",
        ),
        case(
            "baud rate a Kerong board cannot use",
            file(&[&SITE, &BANK[..2], &["driver = { kind = \"kerong\", port = \"/dev/ttyUSB0\", baud = 4800 }"], &BANK[3..]]),
            5, "bank[0].driver.baud", "4800 baud is not supported by kerong",
        ),
        case(
            "idle boards polled more often than busy ones",
            file(&[&SITE, &BANK[..2], &["driver = { kind = \"kerong\", port = \"/dev/ttyUSB0\", poll_interval = \"2s\", idle_poll_interval = \"1s\" }"], &BANK[3..]]),
            5, "bank[0].driver.idle_poll_interval", "1s is shorter than poll_interval (2s)",
        ),
        case(
            "Kerong board address out of range",
            file(&[&SITE, &BANK[..2], &["driver = { kind = \"kerong\", port = \"/dev/ttyUSB0\", map = [{ doors = \"1-8\", board = 16 }] }"], &BANK[3..]]),
            5, "bank[0].driver.map[0].board", "16 is out of range: expected 0 to 15",
        ),
        case(
            "door range runs past the last lock of a board",
            file(&[&SITE, &BANK[..2], &["driver = { kind = \"lockboard-8a\", port = \"/dev/ttyUSB0\", map = [{ doors = \"1-8\", board = 1, lock = 20 }] }"], &BANK[3..]]),
            5, "bank[0].driver.map[0].lock", "would need lock 27, but a lockboard-8a board has 24 locks",
        ),
        case(
            "Modbus slave id 0",
            file(&[&SITE, &BANK[..2], &["driver = { kind = \"modbus\", port = \"/dev/ttyUSB1\", map = [{ doors = \"1-8\", slave = 0, coil = 0 }] }"], &BANK[3..]]),
            5, "bank[0].driver.map[0].slave", "0 is out of range: expected 1 to 247",
        ),
        case(
            "driver map names a door that is no compartment",
            file(&[&SITE, &BANK[..2], &["driver = { kind = \"modbus\", port = \"/dev/ttyUSB1\", map = [{ doors = \"1-9\", slave = 1, coil = 0 }] }"], &BANK[3..]]),
            5, "bank[0].driver.map[0].doors", "door 9 is not a compartment of this bank",
        ),
        case(
            "compartments missing from the driver map",
            file(&[&SITE, &BANK[..2], &["driver = { kind = \"modbus\", port = \"/dev/ttyUSB1\", map = [{ doors = \"1-4\", slave = 1, coil = 0 }] }"], &BANK[3..]]),
            5, "bank[0].driver.map", "doors 5, 6, 7, 8 have compartments but no place in the driver map",
        ),
        case(
            "two protocol families on one serial port",
            file(&[&SITE,
                &["[[bank]]", "id = \"a\"", "driver = { kind = \"kerong\", port = \"/dev/ttyUSB0\" }", BANK[3]],
                &["[[bank]]", "id = \"b\"", "driver = { kind = \"modbus\", port = \"/dev/ttyUSB0\", map = [{ doors = \"1-8\", slave = 1, coil = 0 }] }", BANK[3]],
            ]),
            9, "bank[1].driver.port", "do not mix protocol families",
        ),
        case(
            "refrigerated compartment without a cooling unit",
            file(&[&SITE, &BANK[..3], &["compartments = [{ doors = \"1-8\", size = \"S\", temperature = \"refrigerated\" }]"]]),
            6, "bank[0].compartments[0].temperature", "refrigerated door 1 belongs to no cooling unit",
        ),
        case(
            "cooling unit without sensors",
            file(&[&SITE, &BANK[..3], &["compartments = [{ doors = \"1-8\", size = \"S\", unit = \"fridge\" }]", "[[bank.unit]]", "id = \"fridge\""]]),
            7, "bank[0].unit[0]", "unit has no sensors",
        ),
        case(
            "compartment names a unit that is misspelt",
            file(&[&SITE, &BANK[..3], &[
                "compartments = [{ doors = \"1-4\", size = \"S\", unit = \"fridge\" }, { doors = \"5-8\", size = \"S\", unit = \"fridg\" }]",
                "[[bank.unit]]", "id = \"fridge\"", "[[bank.unit.sensor]]", "id = \"probe\"", "kind = \"sim\"",
            ]]),
            6, "bank[0].compartments[1].unit", "no unit `fridg` in this bank; did you mean `fridge`?",
        ),
        case(
            "hysteresis so wide an alarm could never clear",
            file(&[&SITE, &BANK[..3], &[
                "compartments = [{ doors = \"1-8\", size = \"S\", unit = \"fridge\" }]",
                "[[bank.unit]]", "id = \"fridge\"", "min_c = 1.0", "max_c = 2.0", "hysteresis_c = 0.6",
                "[[bank.unit.sensor]]", "id = \"probe\"", "kind = \"sim\"",
            ]]),
            11, "bank[0].unit[0].hysteresis_c", "must be less than half the band",
        ),
        case(
            "negative hysteresis",
            file(&[&SITE, &BANK[..3], &[
                "compartments = [{ doors = \"1-8\", size = \"S\", unit = \"fridge\" }]",
                "[[bank.unit]]", "id = \"fridge\"", "hysteresis_c = -1.0",
                "[[bank.unit.sensor]]", "id = \"probe\"", "kind = \"sim\"",
            ]]),
            9, "bank[0].unit[0].hysteresis_c", "outside 0 to 5 °C",
        ),
        case(
            "a simulated sensor that would report every 0 s",
            file(&[&SITE, &BANK[..3], &[
                "compartments = [{ doors = \"1-8\", size = \"S\", unit = \"fridge\" }]",
                "[[bank.unit]]", "id = \"fridge\"",
                "[[bank.unit.sensor]]", "id = \"probe\"", "kind = \"sim\"", "interval = \"0s\"",
            ]]),
            12, "bank[0].unit[0].sensor[0].interval", "",
        ),
        case(
            "device-address register made writable",
            file(&[&SITE, &BANK[..3], &[
                "compartments = [{ doors = \"1-8\", size = \"S\", unit = \"fridge\" }]",
                "[[bank.unit]]", "id = \"fridge\"", "[[bank.unit.sensor]]", "id = \"probe\"",
                "kind = \"modbus-points\"", "port = \"/dev/ttyUSB3\"", "slave = 3",
                "[bank.unit.sensor.points]",
                "temperature = { register = \"input\", address = 1, format = \"s16\", scale = 0.1 }",
                "device_address = { register = \"holding\", address = 0x0420, writable = true }",
            ]]),
            16, "bank[0].unit[0].sensor[0].points.device_address.writable", "must never be writable",
        ),
        case(
            "word order given for a 16-bit point",
            file(&[&SITE, &BANK[..3], &[
                "compartments = [{ doors = \"1-8\", size = \"S\", unit = \"fridge\" }]",
                "[[bank.unit]]", "id = \"fridge\"", "[[bank.unit.sensor]]", "id = \"probe\"",
                "kind = \"modbus-points\"", "port = \"/dev/ttyUSB3\"", "slave = 3",
                "[bank.unit.sensor.points]",
                "temperature = { register = \"input\", address = 1, format = \"s16\", word_order = \"low-first\" }",
            ]]),
            15, "bank[0].unit[0].sensor[0].points.temperature.word_order", "applies to 32-bit formats",
        ),
        case(
            "a 32-bit point made writable",
            file(&[&SITE, &BANK[..3], &[
                "compartments = [{ doors = \"1-8\", size = \"S\", unit = \"fridge\" }]",
                "[[bank.unit]]", "id = \"fridge\"", "[[bank.unit.sensor]]", "id = \"probe\"",
                "kind = \"modbus-points\"", "port = \"/dev/ttyUSB3\"", "slave = 3",
                "[bank.unit.sensor.points]",
                "temperature = { register = \"holding\", address = 1, format = \"f32\", word_order = \"low-first\", writable = true }",
            ]]),
            15, "bank[0].unit[0].sensor[0].points.temperature.writable", "32-bit points cannot be writable",
        ),
        case(
            "sensor on the bank's bus reuses a lock module's slave id",
            file(&[&SITE, &BANK[..2], &[
                "driver = { kind = \"modbus\", port = \"/dev/ttyUSB1\", map = [{ doors = \"1-8\", slave = 1, coil = 0 }] }",
                "compartments = [{ doors = \"1-8\", size = \"S\", unit = \"fridge\" }]",
                "[[bank.unit]]", "id = \"fridge\"", "[[bank.unit.sensor]]", "id = \"probe\"",
                "kind = \"modbus-points\"", "model = \"xy-md02\"", "slave = 1",
            ]]),
            13, "bank[0].unit[0].sensor[0].slave", "slave 1 on `/dev/ttyUSB1` is already used by `bank[0].driver.map[0].doors`",
        ),
        case(
            "PIN length out of range",
            file(&[&SITE, &BANK, &["[policies]", "pin_length = 12"]]),
            8, "policies.pin_length", "12 is out of range: expected 4 to 10",
        ),
        case(
            "value of the wrong type",
            file(&[&SITE, &BANK, &["[policies]", "pin_length = \"6\""]]),
            8, "policies.pin_length", "expected a whole number, found a string",
        ),
        case(
            "a setting that was removed says why",
            file(&[&SITE, &BANK, &["[policies]", "unlock_retries = 2"]]),
            8, "policies.unlock_retries", "an unlock is never re-sent",
        ),
        case(
            "duration with an unknown unit",
            file(&[&SITE, &BANK, &["[policies]", "reservation_timeout = \"3 minutes\""]]),
            8, "policies.reservation_timeout", "unknown unit `minutes`",
        ),
        case(
            "reminders out of order",
            file(&[&SITE, &BANK, &["[policies]", "reminders = [\"72h\", \"24h\"]"]]),
            8, "policies.reminders[1]", "reminders must be in increasing order",
        ),
        case(
            "sync endpoint is not a WebSocket URL",
            file(&[&SITE, &BANK, &["[sync]", "endpoint = \"https://sync.example.org\"", "token_file = \"/etc/locker-hub/sync.token\""]]),
            8, "sync.endpoint", "must be a WebSocket URL",
        ),
        case(
            "bank written as a single table",
            file(&[&SITE, &["[bank]"], &BANK[1..]]),
            3, "bank", "write each entry as `[[bank]]`",
        ),
        case(
            "same key twice",
            file(&[&SITE, &["id = \"other-site\""], &BANK]),
            3, "id", "duplicate key `id`",
        ),
        case(
            "TOML syntax error",
            file(&[&SITE, &BANK[..3], &["compartments = [{ doors = \"1-8\", size = S }]"]]),
            6, "syntax", "TOML syntax error",
        ),
    ]
}

fn find<'a>(found: &'a Diagnostics, line: usize, key: &str) -> Option<&'a Problem> {
    found.0.iter().find(|p| p.line == line && p.key == key)
}

#[test]
fn each_broken_file_names_line_key_and_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("hub.key");
    std::fs::write(&key_file, "key").expect("key file");
    let cases = cases(&key_file.display().to_string());
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for c in &cases {
        let text = c.lines.join("\n");
        let found = problems(&text);
        let matched = find(&found, c.line, c.key).filter(|p| p.message.contains(c.says));
        if matched.is_none() || found.0.len() != 1 {
            failures.push(format!(
                "{}: wanted exactly `hub.toml:{}: {}: ...{}...`, got:\n{found}\n",
                c.name, c.line, c.key, c.says
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn three_mistakes_are_all_reported_in_file_order() {
    let text = r#"[site]
id = "maple"
colour = "blue"
[mqtt]
listener = { bind = "0.0.0.0:99999" }
[[bank]]
id = "lobby"
driver = { kind = "mqtt" }
compartments = [{ doors = "1-8", size = "XXL" }]
"#;
    let found = problems(text);
    let summary: Vec<(usize, &str)> = found.0.iter().map(|p| (p.line, p.key.as_str())).collect();
    assert_eq!(
        summary,
        vec![
            (3, "site.colour"),
            (5, "mqtt.listener.bind"),
            (9, "bank[0].compartments[0].size"),
        ],
        "{found}"
    );
    let shown = found.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with("hub.toml:3: site.colour: unknown key `colour`"),
        "{shown}"
    );
    assert!(
        lines[1].starts_with("hub.toml:5: mqtt.listener.bind: port 99999 is out of range"),
        "{shown}"
    );
    assert!(
        lines[2].starts_with("hub.toml:9: bank[0].compartments[0].size: unknown size class `XXL`"),
        "{shown}"
    );
}

#[test]
fn mistakes_in_different_banks_and_sections_do_not_hide_each_other() {
    let text = r#"[site]
id = "maple"
[[bank]]
id = "a"
driver = { kind = "sim", stuck_doors = [9] }
compartments = [{ doors = "1-8", size = "S" }]
[[bank]]
id = "a"
driver = { kind = "kerong", port = "/dev/ttyUSB0", pulse = "505ms" }
compartments = [{ doors = "1-8", size = "M", acessible = true }]
mqtt = { username = "a", password_hash = "secret" }
[policies]
lockout = { base_lockout = "2h", max_lockout = "1h" }
"#;
    let found = problems(text);
    let expect = [
        (
            5,
            "bank[0].driver.stuck_doors[0]",
            "door 9 is not a compartment",
        ),
        (8, "bank[1].id", "duplicate bank id"),
        (9, "bank[1].driver.pulse", "10 ms steps"),
        (
            10,
            "bank[1].compartments[0].acessible",
            "did you mean `accessible`?",
        ),
        (11, "bank[1].mqtt.password_hash", "plain password"),
        (
            13,
            "policies.lockout.max_lockout",
            "shorter than base_lockout",
        ),
    ];
    for (line, key, says) in expect {
        assert!(
            find(&found, line, key).is_some_and(|p| p.message.contains(says)),
            "missing {line} {key} ({says}) in:\n{found}"
        );
    }
    assert_eq!(found.0.len(), expect.len(), "{found}");
}

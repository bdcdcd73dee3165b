//! Files that must be accepted: the shipped example, the demo, a minimal site, and the
//! compact compartment and driver-map syntax.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use locker_config::{
    demo, load, parse, BitPolarity, BoardLock, Config, Driver, LockOutput, ModbusTransport, Parity,
    PointsModel, RegisterFormat, RegisterType, SensorSource, SizeClass, TemperatureClass,
    Transport, WordOrder,
};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);

fn ok(text: &str) -> Config {
    match parse(text, "hub.toml") {
        Ok(config) => config,
        Err(problems) => panic!("expected a valid config, got:\n{problems}"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

#[test]
fn shipped_example_is_valid_and_means_what_its_comments_say() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("hub.example.toml");
    let config = match load(&path) {
        Ok(config) => config,
        Err(problems) => panic!("hub.example.toml has problems:\n{problems}"),
    };
    assert_eq!(
        config.summary(),
        "3 banks, 68 compartments, 1 refrigerated unit"
    );
    assert_eq!(config.site.id, "maple-court");
    assert_eq!(config.site.time_zone.as_deref(), Some("America/New_York"));
    assert_eq!(
        config.mqtt.listener.as_ref().map(|l| l.bind),
        Some(addr("0.0.0.0:1883"))
    );
    assert!(config.mqtt.tls.is_none());
    assert!(!config.mqtt.allow_anonymous);
    assert!(config.sync.is_none());
    assert_eq!(config.import.preset, locker_config::RollPreset::Yardi);
    assert_eq!(config.import.move_out_grace, 14 * DAY);
    assert_eq!(config.import.country_code.as_deref(), Some("1"));
    assert_eq!(config.import.units.len(), 32 + 32 + 2);
    assert!(config.import.units.iter().any(|u| u == "PH2"));

    let lobby = config.bank("lobby").expect("lobby bank");
    assert_eq!(lobby.driver, Driver::Mqtt);
    assert_eq!(lobby.compartments.len(), 32);
    assert_eq!(
        lobby.mqtt.as_ref().map(|m| m.username.as_str()),
        Some("lobby")
    );
    assert_eq!(lobby.compartment(32).map(|c| c.size), Some(SizeClass::Bulk));

    let mailroom = config.bank("mailroom").expect("mailroom bank");
    let Driver::Kerong(kerong) = &mailroom.driver else {
        panic!("mailroom should be kerong, is {}", mailroom.driver.kind());
    };
    assert!(
        matches!(&kerong.transport, Transport::Serial(line) if line.baud == 19200 && line.parity == Parity::None)
    );
    assert_eq!(kerong.polarity, BitPolarity::OneIsClosed);
    assert_eq!(kerong.pulse, Duration::from_millis(500));
    assert_eq!(kerong.doors.len(), 24);
    assert!(kerong.doors.contains(&BoardLock {
        door: 17,
        board: 1,
        lock: 1
    }));
    assert!(kerong.doors.contains(&BoardLock {
        door: 16,
        board: 0,
        lock: 16
    }));
    let out: Vec<u16> = mailroom
        .compartments
        .iter()
        .filter(|c| c.out_of_service)
        .map(|c| c.door)
        .collect();
    assert_eq!(out, vec![17, 18, 19, 20]);

    let grocery = config.bank("grocery").expect("grocery bank");
    let Driver::Modbus(modbus) = &grocery.driver else {
        panic!("grocery should be modbus");
    };
    let door9 = modbus
        .doors
        .iter()
        .find(|d| d.door == 9)
        .expect("door 9 mapped");
    assert_eq!(door9.slave, 2);
    assert_eq!(door9.output, LockOutput::CommandRegister(1));
    assert_eq!(door9.feedback.map(|f| f.input), Some(0));
    assert_eq!(door9.pulse, Duration::from_secs(1));
    let door8 = modbus
        .doors
        .iter()
        .find(|d| d.door == 8)
        .expect("door 8 mapped");
    assert_eq!(door8.output, LockOutput::Coil(7));
    assert_eq!(door8.feedback.map(|f| f.input), Some(7));

    let fridge = grocery.unit("fridge").expect("fridge unit");
    assert_eq!(fridge.temperature, TemperatureClass::Refrigerated);
    assert_eq!((fridge.min_c, fridge.max_c), (1.0, 5.0));
    let cooled: Vec<u16> = grocery
        .compartments
        .iter()
        .filter(|c| c.temperature == TemperatureClass::Refrigerated)
        .map(|c| c.door)
        .collect();
    assert_eq!(cooled, vec![9, 10, 11, 12]);
    let SensorSource::ModbusPoints(sensor) = &fridge.sensors[0].source else {
        panic!("fridge sensor should be modbus-points");
    };
    assert_eq!(sensor.model, PointsModel::CarelIr33);
    // No port/host on the sensor: it shares the bank's RTU bus.
    assert_eq!(sensor.transport, modbus.transport);
    assert!(
        matches!(&sensor.transport, ModbusTransport::Rtu(line) if line.path == Path::new("/dev/ttyUSB1"))
    );
    let temperature = sensor.point("temperature").expect("temperature point");
    assert_eq!(
        (temperature.register, temperature.address),
        (RegisterType::Input, 403)
    );
}

#[test]
fn demo_config_is_two_simulated_banks() {
    let config = demo();
    assert_eq!(config.site.id, "demo");
    assert!(config.mqtt.allow_anonymous);
    assert_eq!(
        config.summary(),
        "2 banks, 36 compartments, 1 refrigerated unit"
    );

    let a = config.bank("A").expect("bank A");
    assert!(matches!(a.driver, Driver::Sim(_)));
    assert_eq!(a.compartments.len(), 24);
    for size in [
        SizeClass::XS,
        SizeClass::S,
        SizeClass::M,
        SizeClass::L,
        SizeClass::XL,
    ] {
        assert!(a.compartments.iter().any(|c| c.size == size), "{size:?}");
    }
    assert_eq!(
        a.compartments
            .iter()
            .filter(|c| c.size == SizeClass::Bulk)
            .count(),
        1
    );
    assert!(a.compartments.iter().filter(|c| c.accessible).count() >= 3);
    assert!(a.compartments.iter().map(|c| c.column).max() > Some(1));

    let b = config.bank("B").expect("bank B");
    assert_eq!(b.compartments.len(), 12);
    let cold: Vec<_> = b
        .compartments
        .iter()
        .filter(|c| c.temperature == TemperatureClass::Refrigerated)
        .collect();
    assert_eq!(cold.len(), 4);
    assert!(cold.iter().all(|c| c.unit.as_deref() == Some("fridge")));
    let unit = b.unit("fridge").expect("fridge");
    assert!(unit.min_c < unit.max_c);
    assert!(
        matches!(unit.sensors[0].source, SensorSource::Sim { start_c } if (unit.min_c..=unit.max_c).contains(&start_c))
    );
    // Cold-chain defaults where the demo sets nothing, and the short interval it does set.
    assert_eq!(unit.hysteresis_c, 0.5);
    assert_eq!(unit.door_open_limit, 2 * MIN);
    assert_eq!(unit.excursion_limit, 30 * MIN);
    assert_eq!(unit.summary_interval, MIN);
    assert_eq!(unit.silent_after, MIN);
    assert_eq!(unit.sensors[0].interval, Duration::from_secs(5));
    assert_eq!(
        locker_config::demo_toml()
            .lines()
            .next()
            .map(|l| l.starts_with('#')),
        Some(true)
    );
}

#[test]
fn minimal_site_file_gets_documented_defaults() {
    let text = r#"[site]
id = "maple"
[[bank]]
id = "lobby"
driver = { kind = "mqtt" }
compartments = [{ doors = "1-8", size = "S" }]
"#;
    assert!(text.lines().count() <= 6);
    let config = ok(text);
    assert_eq!(config.site.name, "maple");
    assert_eq!(config.site.data_dir, PathBuf::from("/var/lib/locker-hub"));
    assert_eq!(config.site.time_zone, None);
    assert_eq!(config.site.retention_months, 24);
    assert_eq!(
        config.mqtt.listener.as_ref().map(|l| l.bind),
        Some(addr("0.0.0.0:1883"))
    );
    assert!(config.mqtt.tls.is_none());
    assert!(!config.mqtt.allow_anonymous);
    assert_eq!(config.mqtt.max_connections, 256);
    assert_eq!(config.mqtt.max_payload_bytes, 256 * 1024);
    assert_eq!(config.web.bind, addr("0.0.0.0:8080"));
    assert!(config.web.tls.is_none());
    assert!(config.sync.is_none());

    let p = &config.policies;
    assert_eq!(
        (p.hold.ambient, p.hold.refrigerated, p.hold.frozen),
        (5 * DAY, DAY, DAY)
    );
    assert_eq!(p.hold.for_class(TemperatureClass::Frozen), DAY);
    assert_eq!(p.reminders, vec![DAY, 3 * DAY]);
    assert_eq!(p.pin_length, 6);
    assert_eq!(p.lockout.max_failures, 5);
    assert_eq!(
        (
            p.lockout.window,
            p.lockout.base_lockout,
            p.lockout.max_lockout
        ),
        (15 * MIN, MIN, HOUR)
    );
    assert_eq!(p.reservation_timeout, 3 * MIN);
    assert_eq!(p.door_ajar_after, MIN);
    assert_eq!(p.unlock_deadline, Duration::from_secs(3));
    assert_eq!(p.alert_grace, Duration::from_secs(30));
    assert_eq!(p.max_vacation_hold, 30 * DAY);

    let bank = &config.banks[0];
    assert_eq!(bank.name, "lobby");
    assert_eq!(bank.location, "");
    assert!(bank.mqtt.is_none() && bank.units.is_empty());
    let doors: Vec<(u16, u16, u16)> = bank
        .compartments
        .iter()
        .map(|c| (c.door, c.column, c.row))
        .collect();
    assert_eq!(doors, (1..=8).map(|d| (d, 1, d)).collect::<Vec<_>>());
    assert!(bank.compartments.iter().all(|c| c.size == SizeClass::S
        && c.temperature == TemperatureClass::Ambient
        && !c.accessible
        && !c.out_of_service
        && c.unit.is_none()));
}

#[test]
fn compartment_ranges_stack_down_their_columns() {
    let config = ok(r#"[site]
id = "s"
[[bank]]
id = "b"
driver = { kind = "sim" }
compartments = [
  { doors = "1-3", size = "xs", column = 1 },
  { doors = "4-5", size = "M", column = 2, row = 2 },
  { door = 6, size = "Bulk", column = 1, accessible = true },
  { door = 7, size = "XL", column = 2, out_of_service = true },
]
"#);
    let c = |door| config.banks[0].compartment(door).expect("door").clone();
    assert_eq!((c(3).column, c(3).row), (1, 3));
    assert_eq!((c(4).column, c(4).row), (2, 2));
    assert_eq!((c(5).column, c(5).row), (2, 3));
    assert_eq!(
        (c(6).row, c(6).size, c(6).accessible),
        (4, SizeClass::Bulk, true)
    );
    assert_eq!((c(7).row, c(7).out_of_service), (4, true));
    assert_eq!(
        c(1).size,
        SizeClass::XS,
        "size classes are case-insensitive"
    );
    assert!(SizeClass::XS < SizeClass::S && SizeClass::XL < SizeClass::Bulk);
}

#[test]
fn board_drivers_default_maps_and_tcp_gateways() {
    let config = ok(r#"[site]
id = "s"
[[bank]]
id = "k"
driver = { kind = "kerong", host = "10.0.0.9" }
compartments = [{ doors = "1-20", size = "S" }]
[[bank]]
id = "e"
driver = { kind = "lockboard-8a", port = "/dev/ttyUSB2" }
compartments = [{ doors = "1-30", size = "S" }]
"#);
    let Driver::Kerong(k) = &config.banks[0].driver else {
        panic!("kerong")
    };
    assert!(matches!(&k.transport, Transport::Tcp(t) if t.host == "10.0.0.9" && t.port == 5000));
    assert!(k.doors.contains(&BoardLock {
        door: 17,
        board: 1,
        lock: 1
    }));
    assert!(k.doors.contains(&BoardLock {
        door: 1,
        board: 0,
        lock: 1
    }));
    let Driver::Lockboard8a(e) = &config.banks[1].driver else {
        panic!("8a")
    };
    assert!(
        matches!(&e.transport, Transport::Serial(l) if l.baud == 9600 && l.data_bits == 8 && l.stop_bits == 1)
    );
    assert!(e.doors.contains(&BoardLock {
        door: 25,
        board: 2,
        lock: 1
    }));
    assert!(e.doors.contains(&BoardLock {
        door: 24,
        board: 1,
        lock: 24
    }));
}

#[test]
fn custom_register_map_and_frozen_unit() {
    let config = ok(r#"[site]
id = "s"
[[bank]]
id = "cold"
driver = { kind = "mqtt" }
compartments = [{ doors = "1-2", size = "M", unit = "freezer" }]
[[bank.unit]]
id = "freezer"
temperature = "frozen"
[[bank.unit.sensor]]
id = "dixell"
kind = "modbus-points"
host = "10.0.0.30"
framing = "rtu"
slave = 5
points = { temperature = { register = "holding", address = 0x0100, format = "s16", scale = 0.1 }, setpoint = { register = "holding", address = 0x042D, format = "s16", scale = 0.1, writable = true }, device_address = { register = "holding", address = 0x0420 }, evaporator = { register = "input", address = 0x0200, format = "f32", word_order = "low-first" }, hours = { register = "input", address = 0x0210, format = "u32" } }
"#);
    let bank = &config.banks[0];
    assert!(bank
        .compartments
        .iter()
        .all(|c| c.temperature == TemperatureClass::Frozen));
    let unit = bank.unit("freezer").expect("unit");
    assert_eq!((unit.min_c, unit.max_c), (-30.0, -15.0));
    let SensorSource::ModbusPoints(s) = &unit.sensors[0].source else {
        panic!("modbus")
    };
    assert!(matches!(&s.transport, ModbusTransport::RtuOverTcp(t) if t.port == 502));
    assert_eq!(s.model, PointsModel::Custom);
    assert!(s
        .point("setpoint")
        .is_some_and(|p| p.writable && p.address == 0x042D));
    assert!(s.point("device_address").is_some_and(|p| !p.writable));
    assert_eq!(
        s.point("evaporator").map(|p| p.format),
        Some(RegisterFormat::F32(WordOrder::LowFirst))
    );
    assert_eq!(
        s.point("hours").map(|p| (p.format, p.format.registers())),
        Some((RegisterFormat::U32(WordOrder::HighFirst), 2))
    );
}

#[test]
fn tls_files_and_relative_paths_resolve_against_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("tls")).expect("mkdir");
    std::fs::write(dir.path().join("tls/hub.crt"), "cert").expect("cert");
    std::fs::write(dir.path().join("tls/hub.key"), "key").expect("key");
    let path = dir.path().join("hub.toml");
    std::fs::write(
        &path,
        r#"[site]
id = "s"
data_dir = "state"
[mqtt]
listener = { enabled = false }
tls = { bind = "127.0.0.1:0", cert = "tls/hub.crt", key = "tls/hub.key" }
[web]
bind = "127.0.0.1:0"
tls = { cert = "tls/hub.crt", key = "tls/hub.key" }
[[bank]]
id = "b"
driver = { kind = "sim" }
compartments = [{ door = 1, size = "M" }]
"#,
    )
    .expect("write config");
    let config = match load(&path) {
        Ok(c) => c,
        Err(problems) => panic!("{problems}"),
    };
    assert!(config.mqtt.listener.is_none());
    let tls = config.mqtt.tls.expect("tls listener");
    assert_eq!(tls.cert, dir.path().join("tls/hub.crt"));
    assert_eq!(tls.bind, addr("127.0.0.1:0"));
    assert_eq!(
        config.web.tls.map(|t| t.key),
        Some(dir.path().join("tls/hub.key"))
    );
    assert_eq!(config.site.data_dir, dir.path().join("state"));
}

#[test]
fn unreadable_file_is_one_problem_without_a_line() {
    let err = load(Path::new("/nonexistent/locker-hub/hub.toml")).expect_err("missing file");
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].line, 0);
    assert!(err
        .to_string()
        .starts_with("/nonexistent/locker-hub/hub.toml: file: cannot read"));
}

#[test]
fn a_site_with_no_banks_yet_is_valid() {
    // What the Debian package installs: the hub must start before banks are configured.
    let config = ok("[site]\nid = \"new-site\"\n");
    assert!(config.banks.is_empty());
    assert_eq!(
        config.summary(),
        "0 banks, 0 compartments, 0 refrigerated units"
    );
}

#[test]
fn unit_ranges_keep_their_leading_zeros() {
    let config = ok("[site]\nid = \"s\"\n[import]\nunits = [\"0101..0103\", \"9..10\"]\n");
    assert_eq!(config.import.units, vec!["0101", "0102", "0103", "9", "10"]);
}

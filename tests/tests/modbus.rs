//! Banks and refrigerated units on Modbus, through the real binary, against a peer we did not
//! write: pymodbus (`tests/peers/modbus_server.py`, in the venv `tests/run` makes under
//! `target/pyenv`) serving an XY-MD02 transmitter (slave 1), a Carel ir33 controller (slave 2)
//! and a coil / discrete-input lock module (slave 3), over Modbus TCP and over Modbus RTU on a
//! pseudo-terminal the hub opens by path. What the hub does is seen only where a site would
//! see it: on the MQTT bus and in the module's coil writes.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use locker_drivers::link::{LinkError, Priority, SerialLine};
use locker_drivers::modbus::link::{ModbusData, ModbusRequest, Op};
use locker_drivers::modbus::{ModbusLink, ModbusSettings, ModbusTransport};
use locker_tests::kiosk::Kiosk;
use locker_tests::{base_config, kiosks, Hub};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};

/// The pymodbus peer process.
struct Peer {
    child: Child,
    stdin: Mutex<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    /// `host = "..."` or `port = "..."` for the hub's config.
    endpoint: String,
    _dir: tempfile::TempDir,
}

fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join("target/pyenv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: tests/run makes the pymodbus venv (python3 -m venv target/pyenv && \
         target/pyenv/bin/pip install pymodbus==3.16.1 pyserial==3.5)",
        venv.display()
    );
    venv
}

#[derive(Clone, Copy, Debug)]
enum Wire {
    Tcp,
    Rtu,
}

impl Peer {
    fn start(wire: Wire) -> Peer {
        let dir = tempfile::tempdir().expect("tempdir");
        let tty = dir.path().join("ttyMODBUS");
        Self::start_at(wire, tty, dir)
    }

    /// A peer whose RTU side appears at `tty` (a restarted peer comes back at the same path,
    /// like a re-plugged USB adapter under /dev/serial/by-id).
    fn start_at(wire: Wire, tty: PathBuf, dir: tempfile::TempDir) -> Peer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/modbus_server.py");
        let mut cmd = Command::new(python());
        cmd.arg(&script);
        match wire {
            Wire::Tcp => cmd.arg("tcp"),
            Wire::Rtu => cmd.arg("rtu").arg(&tty),
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the pymodbus peer");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take().expect("stdin");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                l.lock().unwrap().push(line);
            }
        });
        let mut peer = Peer {
            child,
            stdin: Mutex::new(stdin),
            lines,
            endpoint: String::new(),
            _dir: dir,
        };
        let ready = peer.wait_line(|l| l.starts_with("ready "), Duration::from_secs(20));
        peer.endpoint = match wire {
            Wire::Tcp => {
                let port = ready.rsplit(' ').next().expect("a port");
                format!("host = \"127.0.0.1:{port}\"")
            }
            Wire::Rtu => format!("port = \"{}\"", tty.display()),
        };
        peer
    }

    fn wait_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| pred(l)) {
                return l.clone();
            }
            assert!(
                start.elapsed() < timeout,
                "the peer never printed the line; it printed {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send a control command and wait for the peer to have carried it out: for this sending's
    /// own "ok" line, not one left by the same command sent earlier (which raced the next
    /// request past a command not yet applied, under load).
    fn send(&self, command: &str) {
        let done = format!("ok {command}");
        let count = |lines: &Vec<String>| lines.iter().filter(|l| **l == done).count();
        let before = count(&self.lines.lock().unwrap());
        writeln!(self.stdin.lock().unwrap(), "{command}").expect("peer stdin");
        let start = Instant::now();
        while count(&self.lines.lock().unwrap()) <= before {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the peer never carried out {command:?}; it printed {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Coil writes to `slave` at `address` so far, in order (`true` = on).
    fn coil_writes(&self, slave: u8, address: u16) -> Vec<bool> {
        let prefix = format!("coil {slave} {address} ");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|v| v == "1")
            .collect()
    }

    fn all_coil_writes(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("coil "))
            .cloned()
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bank of 8 doors, 1-4 on the coil lock module (slave 3, coils 0-3, door switches 0-3) and
/// 5-8 on the Eletechsup relay module (slave 4, command registers 1-4, door switches 0-3), and a
/// fridge cooled by doors 7-8 with an XY-MD02 probe and a Carel controller on the same bus.
fn site(dir: &Path, endpoint: &str, extra_sensor: &str) -> String {
    let kiosks = kiosks(&["modbus-kiosk"]);
    base_config(dir).replace("[mqtt]\n", "[mqtt]\nallow_anonymous = true\n")
        + &format!(
            r#"
[[bank]]
id = "M"
{kiosks}compartments = [{{ doors = "1-4", size = "S" }}, {{ doors = "5-6", size = "M", column = 2 }},
                {{ doors = "7-8", size = "M", column = 3, unit = "fridge" }}]

[bank.driver]
kind = "modbus"
{endpoint}
poll_interval = "100ms"
response_timeout = "300ms"
map = [{{ doors = "1-4", slave = 3, coil = 0, feedback = 0, pulse = "300ms" }},
       {{ doors = "5-8", slave = 4, command_register = 1, feedback = 0, pulse = "2s" }}]

[[bank.unit]]
id = "fridge"
min_c = 1.0
max_c = 5.0

[[bank.unit.sensor]]
id = "probe"
kind = "modbus-points"
slave = 1
model = "xy-md02"
poll_interval = "1s"
response_timeout = "300ms"

[[bank.unit.sensor]]
id = "ctrl"
kind = "modbus-points"
slave = 2
model = "carel-ir33"
poll_interval = "1s"
response_timeout = "300ms"
{extra_sensor}
"#
        )
}

/// Everything published on `filter`, as (topic, JSON) in arrival order.
struct Watcher {
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    async fn start(hub: &Hub, id: &str, filter: &str) -> Watcher {
        let addr = hub.mqtt();
        let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut events) = AsyncClient::new(opts, 64);
        let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let (s, f) = (seen.clone(), filter.to_owned());
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        let task = tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = client.subscribe(&f, QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        s.lock().unwrap().push((p.topic.clone(), value));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("watcher: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                }
            }
        });
        let subscribed = tokio::time::timeout(Duration::from_secs(10), subscribed_rx).await;
        assert!(
            matches!(subscribed, Ok(Ok(()))),
            "{id} not subscribed in time\nhub:\n{}",
            hub.output()
        );
        Watcher { seen, _task: task }
    }

    fn on(&self, topic: &str) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| t == topic)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

async fn wait_for(what: &str, hub: &Hub, timeout: Duration, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for {what}\nhub:\n{}",
            hub.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start_hub(peer: &Peer, extra_sensor: &str) -> Arc<Hub> {
    let endpoint = peer.endpoint.clone();
    let extra = extra_sensor.to_owned();
    let hub = tokio::task::spawn_blocking(move || Hub::start(|d| site(d, &endpoint, &extra)))
        .await
        .unwrap();
    Arc::new(hub)
}

async fn api(
    hub: &Arc<Hub>,
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
) -> Value {
    let h = hub.clone();
    let (code, reply) = tokio::task::spawn_blocking(move || {
        h.api(method, path, body.map(|b| b.to_string()).as_deref())
    })
    .await
    .unwrap();
    assert!(code == 200, "{method} {path}: {code} {reply}");
    reply
}

async fn door_seen(hub: &Arc<Hub>, door: u64, open: bool) {
    let start = Instant::now();
    loop {
        let list = api(hub, "GET", "/api/v1/compartments", None).await;
        let seen = list
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["door"] == door && c["door_open"] == open);
        if seen {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the hub never saw door {door} open={open}\n{}",
            hub.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn readings_and_drop_off_and_pickup(wire: Wire) {
    let peer = Peer::start(wire);
    let hub = start_hub(&peer, "").await;
    let readings = Watcher::start(
        &hub,
        "reading-watcher",
        "lockerhub/v1/bank/M/unit/+/sensor/+",
    )
    .await;
    let doors = Watcher::start(&hub, "door-watcher", "lockerhub/v1/bank/M/door/+").await;

    // Start-up: every lock coil is written off before anything else, so a crash mid-pulse
    // leaves no solenoid on for longer than one restart.
    wait_for(
        "the lock coils written off",
        &hub,
        Duration::from_secs(20),
        || (0..4).all(|c| peer.coil_writes(3, c).first() == Some(&false)),
    )
    .await;
    assert!(
        peer.all_coil_writes()
            .iter()
            .take(4)
            .all(|l| l.ends_with(" 0")),
        "{:?}",
        peer.all_coil_writes()
    );

    // Temperatures: the XY-MD02 (4.5 °C, 55 %) and the ir33 (3.8 °C, setpoint 4.0 °C, door shut).
    let probe = "lockerhub/v1/bank/M/unit/fridge/sensor/probe";
    let ctrl = "lockerhub/v1/bank/M/unit/fridge/sensor/ctrl";
    wait_for(
        "readings of both sensors",
        &hub,
        Duration::from_secs(20),
        || !readings.on(probe).is_empty() && !readings.on(ctrl).is_empty(),
    )
    .await;
    assert_eq!(
        readings.on(probe)[0],
        json!({"temperature_c": 4.5, "humidity_pct": 55.0})
    );
    assert_eq!(
        readings.on(ctrl)[0],
        json!({"temperature_c": 3.8, "door_open": false, "setpoint_c": 4.0})
    );
    peer.send("temp 1 7.5");
    wait_for("the new temperature", &hub, Duration::from_secs(10), || {
        readings
            .on(probe)
            .iter()
            .any(|r| r["temperature_c"] == json!(7.5))
    })
    .await;
    peer.send("temp 2 -2.4");
    wait_for(
        "the new controller temperature",
        &hub,
        Duration::from_secs(10),
        || {
            readings
                .on(ctrl)
                .iter()
                .any(|r| r["temperature_c"] == json!(-2.4))
        },
    )
    .await;

    // A carrier drop-off and a resident pickup at the modbus-io bank.
    for (i, body) in [
        json!({"type": "register_resident", "resident": "r-7", "unit": "7"}),
        json!({"type": "register_carrier", "carrier": "acme", "name": "Acme"}),
        json!({"type": "issue_carrier_code", "carrier": "acme", "code": "555777"}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = body;
        body["request_id"] = json!(format!("setup-{i}"));
        api(&hub, "POST", "/api/v1/commands", Some(body)).await;
    }
    {
        let h = hub.clone();
        wait_for(
            "the bank online through its driver",
            &hub,
            Duration::from_secs(20),
            move || h.health()["banks"]["online_ids"] == json!(["M"]),
        )
        .await;
    }
    let kiosk = Kiosk::connect_configured(hub.mqtt(), "M", "modbus-kiosk").await;
    let ask = |request: Value| {
        let kiosk = &kiosk;
        async move {
            kiosk
                .request(request, Duration::from_secs(10))
                .await
                .expect("a reply")
        }
    };
    let reserved = ask(
        json!({"request_id": "d1", "type": "start_drop_off", "bank": "M",
        "carrier_code": "555777", "recipient": {"type": "unit", "unit": "7"}, "size": "s"}),
    )
    .await;
    assert_eq!(reserved["type"], "reserved", "{reserved}");
    let door = reserved["door"].as_u64().unwrap();
    assert!((1..=4).contains(&door), "an S parcel goes into an S door");
    let coil = (door - 1) as u16;
    // Door n is coil n-1: switched on, and off again after the 300 ms pulse (timed by the hub).
    wait_for(
        "the unlock pulse on the coil",
        &hub,
        Duration::from_secs(10),
        || peer.coil_writes(3, coil).ends_with(&[true, false]),
    )
    .await;
    // The module's door switch opened; the driver's poll published it, and the hub saw it.
    let door_topic = format!("lockerhub/v1/bank/M/door/{door}");
    wait_for(
        "the door-open observation on MQTT",
        &hub,
        Duration::from_secs(10),
        || doors.on(&door_topic).contains(&json!({"open": true})),
    )
    .await;
    door_seen(&hub, door, true).await;
    let confirmed = ask(json!({"request_id": "d2", "type": "confirm_parcel",
        "reservation": reserved["reservation"]}))
    .await;
    assert_eq!(confirmed["type"], "parcel_confirmed", "{confirmed}");
    peer.send(&format!("door 3 {coil} 1"));
    door_seen(&hub, door, false).await;
    let pin = {
        let start = Instant::now();
        loop {
            let items = api(&hub, "GET", "/api/v1/outbox", None).await;
            if let Some(pin) = items[0]["notification"]["pin"].as_str() {
                break pin.to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no notification\n{}",
                hub.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let opening =
        ask(json!({"request_id": "p1", "type": "pickup_by_pin", "bank": "M", "pin": pin})).await;
    assert_eq!(opening["type"], "opening", "{opening}");
    assert_eq!(opening["doors"], json!([door]));
    wait_for(
        "the pickup pulse on the coil",
        &hub,
        Duration::from_secs(10),
        || {
            peer.coil_writes(3, coil)
                .ends_with(&[true, false, true, false])
        },
    )
    .await;
    door_seen(&hub, door, true).await;
    peer.send(&format!("door 3 {coil} 1"));
    let start = Instant::now();
    loop {
        let list = api(&hub, "GET", "/api/v1/compartments", None).await;
        let free = list
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["door"] == door && c["status"] == "free");
        if free {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "compartment never freed\n{}",
            hub.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No other lock was ever switched on.
    for c in (0..4).filter(|c| *c != coil) {
        assert!(
            !peer.coil_writes(3, c).contains(&true),
            "coil {c}: {:?}",
            peer.all_coil_writes()
        );
    }
    // Staff open door 6, on the relay module: one command word, 0x0602 (on for 2 s, timed by
    // the module), and the door switch reports it open.
    api(
        &hub,
        "POST",
        "/api/v1/commands",
        Some(
            json!({"request_id": "staff-1", "type": "staff_open_door", "bank": "M", "door": 6,
                    "reason": "test"}),
        ),
    )
    .await;
    peer.wait_line(|l| l == "register 4 2 0x0602", Duration::from_secs(10));
    wait_for("door 6 open on MQTT", &hub, Duration::from_secs(10), || {
        doors
            .on("lockerhub/v1/bank/M/door/6")
            .contains(&json!({"open": true}))
    })
    .await;
    door_seen(&hub, 6, true).await;
    let registers = peer
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("register "))
        .count();
    assert_eq!(registers, 1, "one command word, and no off from the hub");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_tcp_readings_drop_off_and_pickup_through_the_real_binary() {
    readings_and_drop_off_and_pickup(Wire::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_rtu_readings_drop_off_and_pickup_through_the_real_binary() {
    readings_and_drop_off_and_pickup(Wire::Rtu).await;
}

/// A silent lock module takes the bank offline (retained status on MQTT, the hub's health) and
/// back online when it answers again; a silent sensor publishes nothing until it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_silent_devices_through_the_real_binary() {
    let peer = Peer::start(Wire::Tcp);
    let hub = start_hub(&peer, "").await;
    let status = Watcher::start(&hub, "status-watcher", "lockerhub/v1/bank/M/status").await;
    let readings = Watcher::start(
        &hub,
        "reading-watcher",
        "lockerhub/v1/bank/M/unit/+/sensor/+",
    )
    .await;
    let status_topic = "lockerhub/v1/bank/M/status";
    wait_for("the bank online", &hub, Duration::from_secs(20), || {
        status
            .on(status_topic)
            .last()
            .is_some_and(|s| s["online"] == json!(true))
    })
    .await;

    // Both lock modules of the bank fall silent (one answering keeps the bank online).
    peer.send("silent 3 on");
    peer.send("silent 4 on");
    wait_for("the bank offline", &hub, Duration::from_secs(20), || {
        status
            .on(status_topic)
            .last()
            .is_some_and(|s| s["online"] == json!(false))
    })
    .await;
    {
        let h = hub.clone();
        wait_for(
            "the hub's health to show it offline",
            &hub,
            Duration::from_secs(10),
            move || h.health()["banks"]["online_ids"] == json!([]),
        )
        .await;
    }
    peer.send("silent 3 off");
    peer.send("silent 4 off");
    // An offline module is probed every 10 s.
    wait_for(
        "the bank back online",
        &hub,
        Duration::from_secs(30),
        || {
            status
                .on(status_topic)
                .last()
                .is_some_and(|s| s["online"] == json!(true))
        },
    )
    .await;

    // A silent sensor: its readings stop (nothing made up), and resume.
    let probe = "lockerhub/v1/bank/M/unit/fridge/sensor/probe";
    wait_for("a probe reading", &hub, Duration::from_secs(10), || {
        !readings.on(probe).is_empty()
    })
    .await;
    peer.send("silent 1 on");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = readings.on(probe).len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        readings.on(probe).len(),
        before,
        "readings from a silent sensor"
    );
    hub.wait_output(
        "no temperature reading; nothing published",
        Duration::from_secs(5),
    );
    peer.send("silent 1 off");
    wait_for("readings again", &hub, Duration::from_secs(30), || {
        readings.on(probe).len() > before
    })
    .await;
}

/// A point the device does not have: the exception reply is named in the log and no reading
/// is published for that sensor, while the other sensor on the bus keeps reporting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_exception_reply_is_a_clear_error_through_the_real_binary() {
    let peer = Peer::start(Wire::Tcp);
    let endpoint = peer.endpoint.clone();
    // The XY-MD02 sensor with a custom map whose temperature is at input 0x0009 (absent).
    let hub = tokio::task::spawn_blocking(move || {
        Hub::start(|d| {
            site(d, &endpoint, "").replace(
                "slave = 1\nmodel = \"xy-md02\"",
                "slave = 1\npoints = { temperature = { register = \"input\", address = 9, format = \"s16\", scale = 0.1 } }",
            )
        })
    })
    .await
    .unwrap();
    let hub = Arc::new(hub);
    let readings = Watcher::start(
        &hub,
        "reading-watcher",
        "lockerhub/v1/bank/M/unit/+/sensor/+",
    )
    .await;
    hub.wait_output(
        "refused the request: illegal data address (0x02)",
        Duration::from_secs(20),
    );
    wait_for(
        "the other sensor's readings",
        &hub,
        Duration::from_secs(10),
        || {
            readings
                .on("lockerhub/v1/bank/M/unit/fridge/sensor/ctrl")
                .len()
                >= 2
        },
    )
    .await;
    assert!(
        readings
            .on("lockerhub/v1/bank/M/unit/fridge/sensor/probe")
            .is_empty(),
        "a sensor whose temperature cannot be read publishes nothing"
    );
}

/// The refrigerated-unit monitoring of the core, fed by the Modbus poller: the XY-MD02 reads
/// 9 °C in a 1..5 °C unit for longer than `alarm_after` and `too_warm` is raised (on MQTT and in
/// the API); back at 4 °C it is cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_excursion_alarm_raised_and_cleared_through_the_real_binary() {
    let peer = Peer::start(Wire::Tcp);
    let endpoint = peer.endpoint.clone();
    let hub = tokio::task::spawn_blocking(move || {
        Hub::start(|d| {
            site(d, &endpoint, "").replace(
                "max_c = 5.0\n",
                "max_c = 5.0\nalarm_after = \"2s\"\ndoor_grace = \"0s\"\n",
            )
        })
    })
    .await
    .unwrap();
    let hub = Arc::new(hub);
    let alerts = Watcher::start(&hub, "alert-watcher", "lockerhub/v1/site/alerts").await;
    let readings = Watcher::start(
        &hub,
        "reading-watcher",
        "lockerhub/v1/bank/M/unit/+/sensor/+",
    )
    .await;
    let probe = "lockerhub/v1/bank/M/unit/fridge/sensor/probe";
    wait_for("a probe reading", &hub, Duration::from_secs(20), || {
        !readings.on(probe).is_empty()
    })
    .await;
    let warm = || {
        alerts
            .on("lockerhub/v1/site/alerts")
            .into_iter()
            .find(|a| a["event"] == "raised" && a["kind"] == "too_warm")
    };
    peer.send("temp 1 9.0");
    let started = Instant::now();
    wait_for("too_warm raised", &hub, Duration::from_secs(20), || {
        warm().is_some()
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "raised only after alarm_after"
    );
    let raised = warm().unwrap();
    assert_eq!(raised["bank"], "M", "{raised}");
    let id = raised["alert"].clone();
    let open = api(&hub, "GET", "/api/v1/alerts", None).await;
    assert!(
        open.to_string().contains(id.as_str().unwrap()),
        "the API lists the alert: {open}"
    );
    peer.send("temp 1 4.0");
    wait_for("too_warm cleared", &hub, Duration::from_secs(20), || {
        alerts
            .on("lockerhub/v1/site/alerts")
            .iter()
            .any(|a| a["event"] == "cleared" && a["alert"] == id)
    })
    .await;
    let open = api(&hub, "GET", "/api/v1/alerts", None).await;
    assert!(
        !open.to_string().contains(id.as_str().unwrap()),
        "cleared alerts are not open: {open}"
    );
}

// The link on its own, against the same peer: what the end-to-end tests cannot count.

fn link_to(peer: &Peer, wire: Wire, tty: &Path) -> ModbusLink {
    let transport = match wire {
        Wire::Tcp => {
            let port = peer
                .endpoint
                .rsplit(':')
                .next()
                .unwrap()
                .trim_end_matches('"');
            ModbusTransport::Tcp {
                host: "127.0.0.1".into(),
                port: port.parse().unwrap(),
            }
        }
        Wire::Rtu => ModbusTransport::Rtu(SerialLine::new(tty, 9600)),
    };
    let mut s = ModbusSettings::new(transport);
    s.response_timeout = Duration::from_millis(200);
    s.drain_quiet = Duration::from_millis(150);
    s.offline_poll_interval = Duration::from_millis(500);
    s.reopen_backoff_max = Duration::from_millis(400);
    ModbusLink::spawn(s)
}

fn read_input(slave: u8, address: u16) -> ModbusRequest {
    ModbusRequest::new(slave, Op::ReadInputRegisters { address, count: 1 })
}

async fn words(link: &ModbusLink, slave: u8, address: u16) -> Result<Vec<u16>, LinkError> {
    match link
        .request(read_input(slave, address), Priority::Routine)
        .await?
    {
        Some(reply) => match reply.data {
            ModbusData::Words(w) => Ok(w),
            other => panic!("registers expected, got {other:?}"),
        },
        None => panic!("a read always has a reply"),
    }
}

fn peer_and_tty(wire: Wire) -> (Peer, PathBuf) {
    let peer = Peer::start(wire);
    let tty = peer._dir.path().join("ttyMODBUS");
    (peer, tty)
}

async fn late_replies_are_never_the_next_answer(wire: Wire) {
    let (peer, tty) = peer_and_tty(wire);
    let link = link_to(&peer, wire, &tty);
    assert_eq!(words(&link, 1, 1).await.unwrap(), vec![45]);
    for round in 0..3 {
        // Temperature answered after 300 ms, 100 ms past the deadline (within the 150 ms the
        // line must be quiet before the next request; the test's settings)...
        peer.send("slow 1 0.3");
        let err = words(&link, 1, 1).await.unwrap_err();
        assert!(matches!(err, LinkError::Timeout { .. }), "{err}");
        peer.send("slow 1 0");
        // ...must not be taken for the humidity asked next (same slave, same function, same
        // length: only the value would tell).
        assert_eq!(
            words(&link, 1, 2).await.unwrap(),
            vec![550],
            "round {round}"
        );
        assert_eq!(words(&link, 1, 1).await.unwrap(), vec![45], "round {round}");
    }
    let stats = link.stats();
    assert!(stats.timeouts >= 3, "{stats:?}");
    assert!(
        stats.reopens >= 3,
        "a fresh context after every timeout: {stats:?}"
    );
    assert_eq!(stats.exceptions, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_link_rtu_late_replies_are_never_the_next_answer() {
    late_replies_are_never_the_next_answer(Wire::Rtu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_link_tcp_late_replies_are_never_the_next_answer() {
    late_replies_are_never_the_next_answer(Wire::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_link_counts_exceptions_apart_and_the_device_stays_online() {
    let (peer, tty) = peer_and_tty(Wire::Rtu);
    let link = link_to(&peer, Wire::Rtu, &tty);
    let err = words(&link, 1, 9).await.unwrap_err();
    assert!(matches!(err, LinkError::Exception { .. }), "{err}");
    assert!(
        err.to_string().contains("illegal data address (0x02)"),
        "{err}"
    );
    let stats = link.stats();
    assert_eq!(stats.exceptions, 1, "{stats:?}");
    assert_eq!(
        stats.retries, 0,
        "an exception is an answer, not retried: {stats:?}"
    );
    assert_eq!(stats.timeouts, 0, "{stats:?}");
    assert!(stats.devices[&1].online, "{stats:?}");
    assert_eq!(words(&link, 1, 1).await.unwrap(), vec![45]);
    // Broadcast would wait forever for a reply that never comes: refused at once.
    let start = Instant::now();
    let err = link
        .request(read_input(0, 1), Priority::Urgent)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("broadcast"), "{err}");
    assert!(start.elapsed() < Duration::from_millis(100));
}

/// A write whose echo is not the request (a clone answering with the relay's state, or a late
/// reply) is no confirmation: a clear error, counted, and the link carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_link_refuses_a_write_echo_that_is_not_the_request() {
    let (peer, tty) = peer_and_tty(Wire::Rtu);
    let link = link_to(&peer, Wire::Rtu, &tty);
    let write = |address, value| ModbusRequest::new(4, Op::WriteRegister { address, value });
    let ok = link.request(write(1, 0x0602), Priority::Urgent).await;
    assert!(matches!(ok, Ok(Some(_))), "{ok:?}");
    let err = link
        .request(write(8, 0x0602), Priority::Urgent)
        .await
        .unwrap_err();
    assert!(matches!(err, LinkError::BadReply { .. }), "{err}");
    let stats = link.stats();
    assert_eq!(stats.stray_frames, 1, "{stats:?}");
    assert_eq!(stats.retries, 0, "writes are never repeated: {stats:?}");
    // The task lives on.
    assert_eq!(words(&link, 1, 1).await.unwrap(), vec![45]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_link_takes_a_silent_device_offline_and_back() {
    let (peer, tty) = peer_and_tty(Wire::Rtu);
    let link = link_to(&peer, Wire::Rtu, &tty);
    peer.send("silent 2 on");
    for _ in 0..3 {
        let e = words(&link, 2, 403).await.unwrap_err();
        assert!(matches!(e, LinkError::Timeout { .. }), "{e}");
    }
    let stats = link.stats();
    assert!(!stats.devices[&2].online, "{stats:?}");
    assert_eq!(stats.retries, 3, "reads are retried once: {stats:?}");
    // Routine traffic for an offline device is refused without touching the wire...
    let start = Instant::now();
    let e = words(&link, 2, 403).await.unwrap_err();
    assert!(matches!(e, LinkError::Offline { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_millis(50));
    // ...while the other devices on the bus are served as before.
    assert_eq!(words(&link, 1, 1).await.unwrap(), vec![45]);
    peer.send("silent 2 off");
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(w) = words(&link, 2, 403).await {
            assert_eq!(w, vec![38]);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            link.stats()
        );
    }
    assert!(link.stats().devices[&2].online);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_link_reopens_a_vanished_port_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let tty = dir.path().join("ttyGONE");
    let peer = Peer::start_at(Wire::Rtu, tty.clone(), tempfile::tempdir().unwrap());
    let link = link_to(&peer, Wire::Rtu, &tty);
    assert_eq!(words(&link, 1, 1).await.unwrap(), vec![45]);
    // The adapter is unplugged: the PTY goes away with the peer.
    drop(peer);
    let start = Instant::now();
    loop {
        if let Err(LinkError::PortDown { .. }) = words(&link, 1, 1).await {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            link.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!link.stats().port_open);
    // Plugged in again (a new PTY at the same path): the link finds it by itself.
    let _peer = Peer::start_at(Wire::Rtu, tty.clone(), tempfile::tempdir().unwrap());
    let start = Instant::now();
    loop {
        if let Ok(w) = words(&link, 1, 1).await {
            assert_eq!(w, vec![45]);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            link.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = link.stats();
    assert!(stats.port_open && stats.reopens >= 1, "{stats:?}");
}

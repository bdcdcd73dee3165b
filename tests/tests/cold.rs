//! Refrigerated-unit monitoring end to end, through the real binary: a probe publishes readings
//! on the bus with rumqttc (and mosquitto_pub, a client we did not write, where installed), a
//! refrigerated parcel is delivered through the API and the simulated bank controller, and the
//! hub raises and clears a too-warm alarm (with its hysteresis), flags the parcel after the
//! excursion limit, alarms on silence, records summaries, and serves the units page and API.
//! Also: demo mode's simulated fridge reports by itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use locker_drivers::sim::{self, SimHandle, SimOptions};
use locker_tests::{base_config, hash_password, have, hub_binary, Hub};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const USER: &str = "bank-a";
const PASS: &str = "bank a password";
const READING: &str = "lockerhub/v1/bank/A/unit/fridge/sensor/probe";

fn site(dir: &std::path::Path) -> String {
    base_config(dir)
        + &format!(
            r#"
[[bank]]
id = "A"
name = "Lobby"
driver = {{ kind = "mqtt" }}
mqtt = {{ username = "{USER}", password_hash = "{}" }}
compartments = [
  {{ doors = "1-2", size = "S", column = 1 }},
  {{ doors = "3-4", size = "M", column = 2, unit = "fridge" }},
]

[[bank.unit]]
id = "fridge"
name = "Test fridge"
min_c = 1.0
max_c = 5.0
alarm_after = "2s"
door_grace = "0s"
hysteresis_c = 0.5
excursion_limit = "4s"
summary_interval = "2s"
silent_after = "2s"

[[bank.unit.sensor]]
id = "probe"
kind = "mqtt"
interval = "1s"
"#,
            hash_password(PASS)
        )
}

fn command(hub: &Hub, body: Value) -> Value {
    let (code, reply) = hub.api("POST", "/api/v1/commands", Some(&body.to_string()));
    assert_eq!(code, 200, "{body} -> {reply}");
    reply
}

fn wait_until(what: &str, hub: &Hub, secs: u64, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}\nhub:\n{}",
            hub.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mqtt_options(id: &str, addr: SocketAddr, login: bool) -> MqttOptions {
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    if login {
        opts.set_credentials(USER, PASS);
    }
    opts
}

/// Messages on `filter`, as JSON, as a staff tool sees them (the read-only observer login, or
/// anonymously where the site allows it).
async fn watch(
    addr: SocketAddr,
    id: &str,
    filter: &str,
    login: bool,
) -> mpsc::UnboundedReceiver<Value> {
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    if login {
        opts.set_credentials(locker_tests::OBSERVER.0, locker_tests::OBSERVER.1);
    }
    let (client, mut events) = AsyncClient::new(opts, 16);
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _client = client;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if let Ok(v) = serde_json::from_slice(&p.payload) {
                        let _ = tx.send(v);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    rx
}

/// The next alert event matching `pred` within `secs`.
async fn expect(
    rx: &mut mpsc::UnboundedReceiver<Value>,
    what: &str,
    secs: u64,
    hub: &Hub,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(a)) if pred(&a) => return a,
            Ok(Some(_)) => {}
            _ => panic!("no {what} within {secs} s\nhub:\n{}", hub.output()),
        }
    }
}

fn raised(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |a| a["event"] == "raised" && a["kind"] == kind
}

fn cleared(alert: Value) -> impl Fn(&Value) -> bool {
    move |a| a["event"] == "cleared" && a["alert"] == alert
}

/// A temperature probe on the bus: publishes `temperature` (tenths of °C) every 500 ms unless
/// `quiet`, like a bank controller reporting its fridge.
struct Probe {
    temperature: Arc<AtomicI32>,
    quiet: Arc<AtomicBool>,
}

impl Probe {
    async fn start(addr: SocketAddr) -> Probe {
        let (client, mut events) = AsyncClient::new(mqtt_options("probe", addr, true), 64);
        tokio::spawn(async move {
            loop {
                if events.poll().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        let probe = Probe {
            temperature: Arc::new(AtomicI32::new(35)),
            quiet: Arc::new(AtomicBool::new(false)),
        };
        let (t, q) = (probe.temperature.clone(), probe.quiet.clone());
        tokio::spawn(async move {
            loop {
                if !q.load(Ordering::SeqCst) {
                    let c = f64::from(t.load(Ordering::SeqCst)) / 10.0;
                    let payload = json!({"temperature_c": c}).to_string();
                    let _ = client
                        .publish(READING, QoS::AtLeastOnce, false, payload)
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        probe
    }

    fn set(&self, decicelsius: i32) {
        self.temperature.store(decicelsius, Ordering::SeqCst);
    }
}

fn open_alerts(hub: &Hub, kind: &str) -> Vec<Value> {
    let (code, list) = hub.api("GET", "/api/v1/alerts", None);
    assert_eq!(code, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind)
        .cloned()
        .collect()
}

fn fridge(hub: &Hub) -> Value {
    let (code, units) = hub.api("GET", "/api/v1/units", None);
    assert_eq!(code, 200, "{units}");
    units[0].clone()
}

/// A refrigerated parcel delivered into the fridge through the API and the simulated bank.
fn deliver(hub: &Hub, bank: &SimHandle) -> (String, u64) {
    for body in [
        json!({"request_id": "d1", "type": "register_resident", "resident": "r-101", "unit": "101"}),
        json!({"request_id": "d2", "type": "register_carrier", "carrier": "acme", "name": "Acme"}),
        json!({"request_id": "d3", "type": "issue_carrier_code", "carrier": "acme", "code": "135790"}),
    ] {
        assert_eq!(command(hub, body)["type"], "accepted");
    }
    let reserved = command(
        hub,
        json!({"request_id": "c1", "type": "start_drop_off", "bank": "A", "carrier_code": "135790",
               "recipient": {"type": "unit", "unit": "101"}, "size": "m",
               "temperature": "refrigerated"}),
    );
    assert_eq!(reserved["type"], "reserved", "{reserved}");
    let door = reserved["door"].as_u64().unwrap();
    assert!(
        (3..=4).contains(&door),
        "a refrigerated parcel goes into the fridge"
    );
    let compartment = |hub: &Hub| {
        let (_, list) = hub.api("GET", "/api/v1/compartments", None);
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["door"] == door)
            .cloned()
            .unwrap()
    };
    wait_until("the fridge door to open", hub, 15, || {
        compartment(hub)["door_open"] == true
    });
    let confirmed = command(
        hub,
        json!({"request_id": "c2", "type": "confirm_parcel", "reservation": reserved["reservation"]}),
    );
    assert_eq!(confirmed["type"], "parcel_confirmed", "{confirmed}");
    // The carrier closes the door.
    bank.close(door as u16);
    wait_until("the delivery", hub, 15, || {
        compartment(hub)["status"] == "occupied"
    });
    (confirmed["parcel"].as_str().unwrap().to_owned(), door)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_warm_clears_with_hysteresis_flags_the_parcel_and_silence_alarms() {
    let hub = tokio::task::spawn_blocking(|| Hub::start(site))
        .await
        .unwrap();
    let addr = hub.mqtt();
    let bank = sim::spawn(SimOptions {
        bank: "A".into(),
        doors: 4,
        host: addr.ip().to_string(),
        port: addr.port(),
        credentials: Some((USER.into(), PASS.into())),
        latency: Duration::ZERO,
        stuck_doors: vec![],
        // The test closes the door after the carrier confirmed the parcel.
        auto_close_after: None,
        sensors: vec![],
    });
    if tokio::time::timeout(Duration::from_secs(15), bank.wait_connected())
        .await
        .is_err()
    {
        panic!("the simulated bank never connected\nhub:\n{}", hub.output());
    }
    let mut alerts = watch(addr, "alert-watcher", "lockerhub/v1/site/alerts", true).await;
    let probe = Probe::start(addr).await;
    let hub = Arc::new(hub);
    let run = |f: Box<dyn FnOnce(&Hub) -> Value + Send>| {
        let h = hub.clone();
        async move { tokio::task::spawn_blocking(move || f(&h)).await.unwrap() }
    };

    let b = bank.clone();
    let parcel = run(Box::new(move |hub| {
        wait_until("bank A online and a first reading", hub, 15, || {
            hub.health()["banks"]["online_ids"] == json!(["A"])
                && fridge(hub)["sensors"][0]["temperature_c"] == json!(3.5)
        });
        let (parcel, _) = deliver(hub, &b);
        let f = fridge(hub);
        assert_eq!(f["alarm"], false, "{f}");
        assert_eq!(
            f["band"],
            json!({"min_c": 1.0, "max_c": 5.0, "hysteresis_c": 0.5})
        );
        json!(parcel)
    }))
    .await;
    let parcel = parcel.as_str().unwrap().to_owned();

    // Too warm: the alarm waits `alarm_after` (2 s), then comes on the bus and the API.
    let warm_from = Instant::now();
    probe.set(80);
    let warm = expect(&mut alerts, "too_warm", 15, &hub, raised("too_warm")).await;
    assert!(
        warm_from.elapsed() >= Duration::from_millis(1500),
        "the alarm waited for the delay ({:?})",
        warm_from.elapsed()
    );
    assert_eq!(
        (&warm["bank"], &warm["unit"], &warm["sensor"]),
        (&json!("A"), &json!("fridge"), &json!("probe")),
        "{warm}"
    );
    assert!(
        warm["message"].as_str().unwrap().contains("Test fridge"),
        "{warm}"
    );
    // The excursion outlasts its limit (4 s): the parcel inside is flagged and named.
    let flagged = expect(
        &mut alerts,
        "perishable_at_risk",
        15,
        &hub,
        raised("perishable_at_risk"),
    )
    .await;
    assert!(
        flagged["message"].as_str().unwrap().contains(&parcel),
        "{flagged}"
    );
    let p = parcel.clone();
    run(Box::new(move |hub| {
        assert_eq!(open_alerts(hub, "too_warm").len(), 1);
        let (_, parcels) = hub.api("GET", "/api/v1/parcels", None);
        let mine = parcels
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == p.as_str())
            .cloned()
            .expect("the parcel");
        assert_eq!(mine["perishable"]["unit"], "fridge", "{mine}");
        let f = fridge(hub);
        assert_eq!(f["alarm"], true);
        assert_eq!(f["sensors"][0]["temperature_c"], json!(8.0));
        assert!(f["excursion_since"].is_u64(), "{f}");
        Value::Null
    }))
    .await;

    // Back inside the band but within the hysteresis margin: still alarmed, while 4.8 °C
    // readings keep arriving (a stalled sensor would keep the alarm on trivially). The window
    // starts at the hub's first 4.8 °C reading, and the hub must have taken newer readings by
    // its end: the probe publishes every 500 ms, so 2 s hold about four.
    probe.set(48);
    let first = run(Box::new(|hub| {
        wait_until("the hub to take a 4.8 °C reading", hub, 10, || {
            fridge(hub)["sensors"][0]["temperature_c"] == json!(4.8)
        });
        fridge(hub)["sensors"][0]["last_reading_at"].clone()
    }))
    .await;
    let first = first
        .as_u64()
        .unwrap_or_else(|| panic!("last_reading_at of the first 4.8 °C reading: {first}"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    run(Box::new(move |hub| {
        assert_eq!(
            open_alerts(hub, "too_warm").len(),
            1,
            "4.8 °C is within 0.5 °C of 5 °C"
        );
        let sensor = fridge(hub)["sensors"][0].clone();
        assert_eq!(sensor["temperature_c"], json!(4.8), "{sensor}");
        let last = sensor["last_reading_at"].as_u64().unwrap_or(0);
        assert!(
            last >= first + 1000,
            "readings stopped during the hysteresis window: the last one is {} ms after the \
             first 4.8 °C reading, 2 s into the window (the probe publishes every 500 ms), so \
             the alarm staying on proves nothing\n{sensor}",
            last.saturating_sub(first)
        );
        Value::Null
    }))
    .await;
    // Properly back: cleared, on the bus and in the API.
    probe.set(40);
    expect(
        &mut alerts,
        "too_warm cleared",
        10,
        &hub,
        cleared(warm["alert"].clone()),
    )
    .await;
    run(Box::new(|hub| {
        assert!(open_alerts(hub, "too_warm").is_empty());
        Value::Null
    }))
    .await;

    // Malformed readings and readings of unknown sensors are refused with a warning; nothing
    // stops, and they raise nothing.
    let (client, mut events) = AsyncClient::new(mqtt_options("stray", addr, true), 16);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    client
        .publish(READING, QoS::AtLeastOnce, false, r#"{"temperature":4}"#)
        .await
        .unwrap();
    client
        .publish(
            "lockerhub/v1/bank/A/unit/fridge/sensor/nosuch",
            QoS::AtLeastOnce,
            false,
            r#"{"temperature_c":30}"#,
        )
        .await
        .unwrap();
    if have("mosquitto_pub") {
        // A client we did not write: a well-formed reading is taken like any other.
        let out = Command::new("mosquitto_pub")
            .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .args(["-u", USER, "-P", PASS, "-q", "1", "-t", READING])
            .args(["-m", r#"{"temperature_c": 4.1, "door_open": false}"#])
            .output()
            .expect("mosquitto_pub");
        assert!(out.status.success(), "{out:?}");
    }
    run(Box::new(|hub| {
        hub.wait_output("malformed unit reading", Duration::from_secs(10));
        hub.wait_output("does not name", Duration::from_secs(10));
        assert_eq!(hub.health()["status"], "ok");
        Value::Null
    }))
    .await;

    // Silence: no reading for max(3 × 1 s, 2 s) is an alarm; the next reading clears it.
    probe.quiet.store(true, Ordering::SeqCst);
    let silent = expect(
        &mut alerts,
        "sensor_silent",
        15,
        &hub,
        raised("sensor_silent"),
    )
    .await;
    probe.quiet.store(false, Ordering::SeqCst);
    expect(
        &mut alerts,
        "sensor_silent cleared",
        10,
        &hub,
        cleared(silent["alert"].clone()),
    )
    .await;

    // Summaries, not readings: one per 2 s interval, with the excursion in them.
    run(Box::new(|hub| {
        let (code, h) = hub.api("GET", "/api/v1/units/A/fridge/history?hours=1", None);
        assert_eq!(code, 200, "{h}");
        let summaries = h["summaries"].as_array().unwrap();
        assert!(summaries.len() >= 4, "{h}");
        assert!(summaries.iter().all(|s| s["count"].as_u64() >= Some(1)));
        assert!(summaries
            .iter()
            .any(|s| s["excursion"] == true && s["max_c"] == json!(8.0)));
        for bad in [
            "/api/v1/units/A/fridge/history?hours=0",
            "/api/v1/units/A/fridge/history?hours=abc",
            "/api/v1/units/A/fridge/history?hours=100000",
        ] {
            let (code, body) = hub.api("GET", bad, None);
            assert_eq!(code, 400, "{bad}: {body}");
            assert!(body["error"].as_str().unwrap().contains("hours"), "{body}");
        }
        let (code, body) = hub.api("GET", "/api/v1/units/A/freezer/history", None);
        assert_eq!(code, 404, "{body}");
        Value::Null
    }))
    .await;
}

// --- the page, signed in and not ---

/// One raw HTTP/1.1 request: (status, headers, body).
fn req(
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    let method = if form.is_some() { "POST" } else { "GET" };
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        head += &format!("Cookie: {c}\r\n");
    }
    let body = form.unwrap_or("");
    if form.is_some() {
        head += &format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    write!(s, "{head}\r\n{body}").expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let (h, b) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (code, h.to_owned(), b.to_owned())
}

fn cookie(headers: &str, name: &str) -> String {
    headers
        .lines()
        .filter_map(|l| {
            l.split_once(": ")
                .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        })
        .map(|(_, v)| v)
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .expect("cookie")
        .to_owned()
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s.find(start).expect("marker") + start.len();
    &s[i..i + s[i..].find(end).expect("end")]
}

fn sign_in(hub: &Hub) -> String {
    let mut child = Command::new(hub_binary())
        .args(["user", "add", "sam", "--role", "staff", "--config"])
        .arg(hub.dir.path().join("hub.toml"))
        .args(["--web", &hub.web.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run user add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"a long staff password\n")
        .expect("password");
    let out = child.wait_with_output().expect("user add");
    assert!(out.status.success(), "{out:?}");
    let (_, h, b) = req(hub.web, "/login", None, None);
    let pre = cookie(&h, "lh_login_csrf");
    let token = between(&b, "name=csrf value=\"", "\"").to_owned();
    let (code, h, _) = req(
        hub.web,
        "/login",
        Some(&pre),
        Some(&format!(
            "csrf={token}&user=sam&password=a+long+staff+password"
        )),
    );
    assert_eq!(code, 303);
    cookie(&h, "lh_session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_units_page_and_api_need_a_session_and_show_the_fridge() {
    let hub = tokio::task::spawn_blocking(|| Hub::start(site))
        .await
        .unwrap();
    let probe = Probe::start(hub.mqtt()).await;
    probe.set(42);
    let hub = Arc::new(hub);
    let h = hub.clone();
    tokio::task::spawn_blocking(move || {
        let hub = &h;
        // Nobody signed in: the page sends to the sign-in, the API refuses.
        let (code, headers, _) = req(hub.web, "/units", None, None);
        assert_eq!(code, 303);
        assert!(headers.contains("location: /login"), "{headers}");
        for path in ["/api/v1/units", "/api/v1/units/A/fridge/history"] {
            let (code, _, body) = req(hub.web, path, None, None);
            assert_eq!(code, 401, "{path}: {body}");
        }
        wait_until("a first reading", hub, 15, || {
            fridge(hub)["sensors"][0]["temperature_c"] == json!(4.2)
        });
        // Let a few summaries close so the chart has a line.
        std::thread::sleep(Duration::from_secs(5));
        let session = sign_in(hub);
        let (code, _, page) = req(hub.web, "/units", Some(&session), None);
        assert_eq!(code, 200, "{page}");
        for needle in [
            "Test fridge",
            "4.2 °C",
            "1.0 °C to 5.0 °C",
            "<svg",
            "<polyline",
            "href=/units aria-current=page",
        ] {
            assert!(page.contains(needle), "{needle} not in:\n{page}");
        }
        assert!(!page.contains("<script"), "no JavaScript needed");
        assert!(
            page.len() < 200 * 1024,
            "the page stays light ({} bytes)",
            page.len()
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_mode_has_a_live_simulated_fridge() {
    let hub = tokio::task::spawn_blocking(|| Hub::demo(&["--mqtt-port", "0", "--web-port", "0"]))
        .await
        .unwrap();
    // Demo mode lets clients in without a login.
    let mut readings = watch(
        hub.mqtt(),
        "demo-watcher",
        "lockerhub/v1/bank/B/unit/fridge/sensor/cabinet",
        false,
    )
    .await;
    for _ in 0..2 {
        let r = expect(&mut readings, "a simulated reading", 15, &hub, |_| true).await;
        let c = r["temperature_c"].as_f64().expect("temperature_c");
        assert!((3.3..=3.7).contains(&c), "gentle noise around 3.5 °C: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_sensor_reports_and_can_be_driven_out_of_its_band() {
    let hub = tokio::task::spawn_blocking(|| Hub::start(site))
        .await
        .unwrap();
    let addr = hub.mqtt();
    let bank = sim::spawn(SimOptions {
        bank: "A".into(),
        doors: 4,
        host: addr.ip().to_string(),
        port: addr.port(),
        credentials: Some((USER.into(), PASS.into())),
        latency: Duration::ZERO,
        stuck_doors: vec![],
        auto_close_after: None,
        sensors: vec![sim::SimSensor {
            unit: "fridge".into(),
            sensor: "probe".into(),
            start_c: 3.0,
            interval: Duration::from_millis(200),
        }],
    });
    let hub = Arc::new(hub);
    let h = hub.clone();
    let reads_around = move |c: f64| {
        let h = h.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                wait_until(&format!("readings around {c} °C"), &h, 15, || {
                    fridge(&h)["sensors"][0]["temperature_c"]
                        .as_f64()
                        .is_some_and(|t| (t - c).abs() <= 0.25)
                });
            })
            .await
            .unwrap()
        }
    };
    reads_around(3.0).await;
    bank.set_temperature("fridge", "probe", 8.5);
    reads_around(8.5).await;
    let h = hub.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("the too-warm alarm", &h, 15, || {
            !open_alerts(&h, "too_warm").is_empty()
        });
    })
    .await
    .unwrap();
}

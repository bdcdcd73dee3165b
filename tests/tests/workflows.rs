//! Locker workflows end to end, through the documented MQTT API only: a bank controller written
//! with rumqttc (the `drivers::sim` controller, doors moved by the test) and a kiosk written with
//! paho-mqtt (`tests/peers/kiosk.py`, a client we did not write) drive the real binary through a
//! carrier drop-off, a resident pickup with the PIN from the notification, a door-ajar alert and
//! a wrong-PIN lockout.

use std::process::Command;
use std::time::{Duration, Instant};

use locker_drivers::sim::{self, SimHandle, SimOptions};
use locker_tests::{
    base_config, hash_password, kiosk_login, kiosks, Hub, KIOSK_PASSWORD, OBSERVER,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

const USER: &str = "bank-a";
const PASS: &str = "bank a password";

fn site(dir: &std::path::Path) -> String {
    base_config(dir)
        + &format!(
            r#"
[policies]
door_ajar_after = "5s"
lockout = {{ max_failures = 3, window = "10m", base_lockout = "1m", max_lockout = "1h" }}

[[bank]]
id = "A"
name = "Lobby"
driver = {{ kind = "mqtt" }}
mqtt = {{ username = "{USER}", password_hash = "{}" }}
{}compartments = [
  {{ doors = "1-4", size = "S", column = 1 }},
  {{ doors = "5-6", size = "M", column = 2 }},
]
"#,
            hash_password(PASS),
            kiosks(&["paho", "rr", "v5"]),
        )
}

/// One request through the paho kiosk: the reply as JSON.
fn kiosk(hub: &Hub, request: Value) -> Value {
    kiosk_keeping_alive(hub, request, 10)
}

/// The same, the kiosk asking for a keep-alive of `keep_alive` seconds (0: none).
fn kiosk_keeping_alive(hub: &Hub, request: Value, keep_alive: u16) -> Value {
    let addr = hub.mqtt();
    let out = Command::new("/usr/bin/python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/peers/kiosk.py"))
        .args([addr.ip().to_string(), addr.port().to_string()])
        .args([
            "A",
            &kiosk_login("paho").0,
            KIOSK_PASSWORD,
            &request.to_string(),
            "paho",
            &keep_alive.to_string(),
        ])
        .output()
        .expect("run the paho kiosk (Debian's python3-paho-mqtt; tests/run installs it)");
    assert!(
        out.status.success(),
        "kiosk failed: {}\nhub:\n{}",
        String::from_utf8_lossy(&out.stderr),
        hub.output()
    );
    serde_json::from_slice(&out.stdout).expect("reply is JSON")
}

fn command(hub: &Hub, body: Value) -> Value {
    let (code, reply) = hub.api("POST", "/api/v1/commands", Some(&body.to_string()));
    assert_eq!(code, 200, "{body} -> {reply}");
    reply
}

fn compartment(hub: &Hub, door: u64) -> Value {
    let (code, list) = hub.api("GET", "/api/v1/compartments", None);
    assert_eq!(code, 200);
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["door"] == door)
        .cloned()
        .expect("compartment in the list")
}

fn wait_until(what: &str, hub: &Hub, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}\nhub:\n{}",
            hub.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Alerts published on `lockerhub/v1/site/alerts`, as a staff tool would see them.
async fn watch_alerts(hub: &Hub) -> mpsc::UnboundedReceiver<Value> {
    let addr = hub.mqtt();
    let mut opts = MqttOptions::new("alert-watcher", addr.ip().to_string(), addr.port());
    opts.set_credentials(OBSERVER.0, OBSERVER.1);
    let (client, mut events) = AsyncClient::new(opts, 16);
    client
        .subscribe("lockerhub/v1/site/alerts", QoS::AtLeastOnce)
        .await
        .unwrap();
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

async fn expect_alert(rx: &mut mpsc::UnboundedReceiver<Value>, kind: &str, hub: &Hub) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(a)) if a["event"] == "raised" && a["kind"] == kind => return a,
            Ok(Some(_)) => {}
            _ => panic!("no {kind} alert\nhub:\n{}", hub.output()),
        }
    }
}

fn start_bank(hub: &Hub) -> SimHandle {
    let addr = hub.mqtt();
    sim::spawn(SimOptions {
        bank: "A".into(),
        doors: 6,
        host: addr.ip().to_string(),
        port: addr.port(),
        credentials: Some((USER.into(), PASS.into())),
        latency: Duration::ZERO,
        stuck_doors: vec![],
        // The test moves the doors itself.
        auto_close_after: None,
        sensors: Vec::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_off_pickup_door_ajar_and_lockout_over_mqtt() {
    let hub = tokio::task::spawn_blocking(|| Hub::start(site))
        .await
        .unwrap();
    let bank = start_bank(&hub);
    bank.wait_connected().await;
    let mut alerts = watch_alerts(&hub).await;
    let hub = std::sync::Arc::new(hub);
    let h = hub.clone();
    let blocking = move |f: Box<dyn FnOnce(&Hub) -> Value + Send>| {
        let h = h.clone();
        async move { tokio::task::spawn_blocking(move || f(&h)).await.unwrap() }
    };

    // Staff set up the directory through the API.
    blocking(Box::new(|hub| {
        wait_until("bank A online", hub, || {
            hub.health()["banks"]["online_ids"] == json!(["A"])
        });
        for body in [
            json!({"request_id": "d1", "type": "register_resident", "resident": "r-101", "unit": "101"}),
            json!({"request_id": "d2", "type": "register_carrier", "carrier": "acme", "name": "Acme Parcels"}),
            json!({"request_id": "d3", "type": "issue_carrier_code", "carrier": "acme", "code": "135790"}),
        ] {
            let reply = command(hub, body);
            assert_eq!(reply["type"], "accepted", "{reply}");
        }
        Value::Null
    }))
    .await;

    // Carrier drop-off at the paho kiosk: the hub reserves the smallest fitting door and opens it.
    let reserved = blocking(Box::new(|hub| {
        kiosk(
            hub,
            json!({"type": "start_drop_off", "bank": "A", "carrier_code": "135790",
                   "recipient": {"type": "unit", "unit": "101"}, "size": "s"}),
        )
    }))
    .await;
    assert_eq!(reserved["type"], "reserved", "{reserved}");
    let door = reserved["door"].as_u64().unwrap();
    assert!((1..=4).contains(&door), "an S parcel goes into an S door");
    let reservation = reserved["reservation"].clone();
    blocking(Box::new(move |hub| {
        wait_until("the reserved door to open", hub, || {
            compartment(hub, door)["door_open"] == true
        });
        let confirmed = kiosk(
            hub,
            json!({"type": "confirm_parcel", "reservation": reservation, "tracking": "1Z999"}),
        );
        assert_eq!(confirmed["type"], "parcel_confirmed", "{confirmed}");
        Value::Null
    }))
    .await;
    // The carrier closes the door: only now is the delivery complete and the resident notified.
    bank.close(door as u16);
    let pin = blocking(Box::new(move |hub| {
        let mut pin = Value::Null;
        wait_until("the delivery notification in the outbox", hub, || {
            let (_, items) = hub.api("GET", "/api/v1/outbox", None);
            pin = items
                .as_array()
                .and_then(|a| a.first())
                .map(|n| n["notification"]["pin"].clone())
                .unwrap_or(Value::Null);
            pin.is_string()
        });
        assert_eq!(compartment(hub, door)["status"], "occupied");
        pin
    }))
    .await;
    let pin = pin.as_str().unwrap().to_owned();
    assert_eq!(pin.len(), 6, "default PIN length");
    let last_pin = pin.clone();

    // Resident pickup with the PIN; the door opens and is left open: door-ajar alert.
    let p = pin.clone();
    let opening = blocking(Box::new(move |hub| {
        kiosk(hub, json!({"type": "pickup_by_pin", "bank": "A", "pin": p}))
    }))
    .await;
    assert_eq!(opening["type"], "opening", "{opening}");
    assert_eq!(opening["doors"], json!([door]));
    let ajar = expect_alert(&mut alerts, "door_ajar", &hub).await;
    assert_eq!(ajar["door"], door);
    bank.close(door as u16);
    blocking(Box::new(move |hub| {
        wait_until("the compartment to be free again", hub, || {
            compartment(hub, door)["status"] == "free"
        });
        // A used code never opens anything again.
        let again = kiosk(
            hub,
            json!({"type": "pickup_by_pin", "bank": "A", "pin": pin}),
        );
        assert_eq!(again["type"], "rejected", "{again}");
        Value::Null
    }))
    .await;

    // Wrong PINs: after three the keypad locks and staff are alerted.
    let last = blocking(Box::new(|hub| {
        let mut last = Value::Null;
        for _ in 0..4 {
            last = kiosk(
                hub,
                json!({"type": "pickup_by_pin", "bank": "A", "pin": "000000"}),
            );
            assert_eq!(last["type"], "rejected", "{last}");
        }
        last
    }))
    .await;
    assert_eq!(last["code"], "keypad_locked", "{last}");
    assert!(
        last["until"].as_u64().is_some(),
        "a lockout says until when"
    );
    expect_alert(&mut alerts, "keypad_lockout", &hub).await;

    // The notifier hands the notifications off (the pickup's own "picked up" one among them):
    // their plaintext codes are erased from the outbox.
    let secret_pin = last_pin.clone();
    blocking(Box::new(|hub| {
        let (_, items) = hub.api("GET", "/api/v1/outbox", None);
        let items = items.as_array().cloned().unwrap_or_default();
        assert!(
            items
                .iter()
                .any(|i| i["notification"]["kind"] == "picked_up"
                    && i["notification"]["pin"].is_null()),
            "the resident is told of the pickup, without a code: {items:?}"
        );
        for item in items {
            let id = item["id"].as_str().unwrap().to_owned();
            let (code, _) = hub.api("DELETE", &format!("/api/v1/outbox/{id}"), None);
            assert_eq!(code, 204);
        }
        let (_, items) = hub.api("GET", "/api/v1/outbox", None);
        assert_eq!(items, json!([]));
        Value::Null
    }))
    .await;

    // Secrets never enter the documents: stop the hub, then scan every byte of every saved
    // document (history included) for the PIN and the carrier code used above.
    drop(blocking);
    let mut hub = std::sync::Arc::try_unwrap(hub)
        .ok()
        .expect("only owner left");
    let (status, _) = tokio::task::spawn_blocking(move || {
        let r = hub.terminate();
        (r, hub)
    })
    .await
    .map(|(r, hub)| (r, scan_for_secrets(&hub, &[&secret_pin, "135790"])))
    .unwrap();
    assert_eq!(status.0.code(), Some(0));
}

fn scan_for_secrets(hub: &Hub, needles: &[&str]) {
    let (store, facts) = locker_tests::store::open(hub);
    assert!(facts.len() > 10, "the scenario left facts to scan");
    let hits = store.scan_for_secrets(needles).expect("scan");
    assert!(
        hits.is_empty(),
        "plaintext secrets in saved documents: {hits:?}"
    );
    // The scanner does see the documents: a value that belongs in them is found.
    let control = store.scan_for_secrets(&["r-101"]).expect("scan");
    assert!(
        !control.is_empty(),
        "the scan found not even the resident id"
    );
}

// `the_api_refuses_callers_without_the_token_and_explains_bad_bodies` runs in-process:
// `hub/tests/in_process.rs` (it needs no outside peer).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_requests_are_answered_on_their_response_topic_with_their_correlation_data() {
    use rumqttc::v5::mqttbytes::v5::{Packet as P5, PublishProperties};
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::{AsyncClient as Client5, Event as E5, MqttOptions as Options5};

    let hub = tokio::task::spawn_blocking(|| Hub::start(site))
        .await
        .unwrap();
    let addr = hub.mqtt();
    let request = json!({"request_id": "rr-1", "type": "suggest_size",
        "dimensions": {"length_mm": 300, "width_mm": 200, "height_mm": 50}});

    // mosquitto_rr: Mosquitto's own MQTT 5 request/response client.
    let out = Command::new("mosquitto_rr")
        .args(["-V", "5", "-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args([
            "-u",
            &kiosk_login("rr").0,
            "-P",
            KIOSK_PASSWORD,
            "-t",
            "lockerhub/v1/bank/A/kiosk/request",
        ])
        .args([
            "-e",
            "lockerhub/v1/bank/A/kiosk/reply/rr",
            "-W",
            "10",
            "-m",
            &request.to_string(),
        ])
        .output()
        .expect("run mosquitto_rr");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).expect("JSON reply");
    assert_eq!(reply["type"], "size_suggested", "{reply}");
    assert_eq!(reply["size"], "extra_small");

    // rumqttc in MQTT 5 mode: the correlation data comes back with the reply.
    let mut opts = Options5::new("v5-kiosk", addr.ip().to_string(), addr.port());
    opts.set_credentials(kiosk_login("v5").0, KIOSK_PASSWORD);
    let (client, mut events) = Client5::new(opts, 16);
    client
        .subscribe("lockerhub/v1/bank/A/kiosk/reply/v5", Q5::AtLeastOnce)
        .await
        .unwrap();
    let mut request = request;
    request["request_id"] = json!("rr-2");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut sent = false;
    loop {
        let event = tokio::time::timeout_at(deadline, events.poll())
            .await
            .expect("an answer within 15 s")
            .expect("connection");
        match event {
            E5::Incoming(P5::SubAck(_)) if !sent => {
                let props = PublishProperties {
                    response_topic: Some("lockerhub/v1/bank/A/kiosk/reply/v5".into()),
                    correlation_data: Some(b"corr-42".to_vec().into()),
                    ..Default::default()
                };
                client
                    .publish_with_properties(
                        "lockerhub/v1/bank/A/kiosk/request",
                        Q5::AtLeastOnce,
                        false,
                        request.to_string(),
                        props,
                    )
                    .await
                    .unwrap();
                sent = true;
            }
            E5::Incoming(P5::Publish(p)) => {
                let reply: Value = serde_json::from_slice(&p.payload).unwrap();
                assert_eq!(reply["request_id"], "rr-2");
                let corr = p.properties.and_then(|p| p.correlation_data);
                assert_eq!(corr.as_deref(), Some(&b"corr-42"[..]));
                return;
            }
            _ => {}
        }
    }
}

/// MQTT's keep-alive 0 ("none"), which some controllers send: rumqttd refuses it, so the front
/// door gives the broker leg its own and keeps it alive. Before, such a client was refused with
/// "server unavailable" after its password had been checked. The client is paho-mqtt.
#[test]
fn a_kiosk_that_asks_for_no_keep_alive_connects_and_is_answered() {
    let hub = Hub::start(site);
    let reply = kiosk_keeping_alive(
        &hub,
        json!({"type": "suggest_size", "dimensions": {"length_mm": 300, "width_mm": 200, "height_mm": 50}}),
        0,
    );
    assert_eq!(reply["type"], "size_suggested", "{reply}");
    assert!(!hub.output().contains("ZeroKeepAlive"), "{}", hub.output());
}

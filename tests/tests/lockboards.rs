//! Banks wired to RS-485 lock boards, through the real binary: simulated Kerong and 8A/80 boards
//! on a pseudo-terminal that the hub opens by path like a real serial port. A carrier drop-off
//! and a resident pickup are seen only on the MQTT bus (kiosk) and on the simulated wire.

use std::time::{Duration, Instant};

use locker_drivers::boardsim::{SimBus, SimSettings};
use locker_tests::kiosk::Kiosk;
use locker_tests::{base_config, kiosks, Hub};
use serde_json::{json, Value};

fn site(dir: &std::path::Path, kind: &str, port: &std::path::Path) -> String {
    let kiosks = kiosks(&["board-kiosk"]);
    base_config(dir).replace("[mqtt]\n", "[mqtt]\nallow_anonymous = true\n")
        + &format!(
            r#"
[[bank]]
id = "L"
{kiosks}compartments = [{{ doors = "1-4", size = "S" }}, {{ doors = "5-8", size = "M", column = 2 }}]

[bank.driver]
kind = "{kind}"
port = "{}"
poll_interval = "100ms"
map = [{{ doors = "1-8", board = 1 }}]
"#,
            port.display()
        )
}

async fn wait_for(what: &str, hub: &Hub, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}\nhub:\n{}",
            hub.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until the hub's own view (its API) shows `door` open.
async fn hub_sees_door_open(hub: &std::sync::Arc<Hub>, door: u8) {
    let h = hub.clone();
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        loop {
            let (_, list) = h.api("GET", "/api/v1/compartments", None);
            let open = list
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["door"] == u64::from(door) && c["door_open"] == true);
            if open {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the hub never saw the door open\n{}",
                h.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
}

async fn drop_off_and_pickup(kind: &str, settings: SimSettings) {
    let dir = tempfile::tempdir().unwrap();
    let port = dir.path().join("ttyLOCK");
    let bus = SimBus::on_pty(settings, &port).expect("simulated boards on a PTY");
    let p = port.clone();
    let kind_owned = kind.to_owned();
    let hub = tokio::task::spawn_blocking(move || Hub::start(|d| site(d, &kind_owned, &p)))
        .await
        .unwrap();
    let hub = std::sync::Arc::new(hub);
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
        let h = hub.clone();
        let (code, reply) = tokio::task::spawn_blocking(move || {
            h.api("POST", "/api/v1/commands", Some(&body.to_string()))
        })
        .await
        .unwrap();
        assert_eq!(code, 200, "{reply}");
    }
    {
        let h = hub.clone();
        let hb = hub.clone();
        wait_for(
            "the bank to come online through its driver",
            &hb,
            move || h.health()["banks"]["online_ids"] == json!(["L"]),
        )
        .await;
    }
    let kiosk = Kiosk::connect_configured(hub.mqtt(), "L", "board-kiosk").await;
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
        json!({"request_id": "d1", "type": "start_drop_off", "bank": "L",
        "carrier_code": "555777", "recipient": {"type": "unit", "unit": "7"}, "size": "m"}),
    )
    .await;
    assert_eq!(reserved["type"], "reserved", "{reserved}");
    let door = reserved["door"].as_u64().unwrap() as u8;
    assert!((5..=8).contains(&door), "an M parcel goes into an M door");
    // Door n is board 1, lock n: the unlock frame reached the wire and the door swung open.
    wait_for("the unlock on the wire", &hub, || bus.is_open(1, door)).await;
    // The hub learns of the open door from the driver's next poll; the carrier places the
    // parcel once the door is open.
    hub_sees_door_open(&hub, door).await;
    let confirmed = ask(json!({"request_id": "d2", "type": "confirm_parcel",
        "reservation": reserved["reservation"]}))
    .await;
    assert_eq!(confirmed["type"], "parcel_confirmed", "{confirmed}");
    bus.set_door(1, door, false);
    let h = hub.clone();
    let pin = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        loop {
            let (_, items) = h.api("GET", "/api/v1/outbox", None);
            if let Some(pin) = items[0]["notification"]["pin"].as_str() {
                return pin.to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no notification\n{}",
                h.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let opening =
        ask(json!({"request_id": "p1", "type": "pickup_by_pin", "bank": "L", "pin": pin})).await;
    assert_eq!(opening["type"], "opening", "{opening}");
    assert_eq!(opening["doors"], json!([door]));
    let before = bus.pulses(1, door);
    wait_for("the pickup unlock on the wire", &hub, || {
        bus.pulses(1, door) > before || bus.is_open(1, door)
    })
    .await;
    wait_for("the door open", &hub, || bus.is_open(1, door)).await;
    // The resident takes the parcels while the door is open (the hub sees it open), then closes it.
    hub_sees_door_open(&hub, door).await;
    bus.set_door(1, door, false);
    let h = hub.clone();
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        loop {
            let (_, list) = h.api("GET", "/api/v1/compartments", None);
            let free = list
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["door"] == u64::from(door) && c["status"] == "free");
            if free {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "compartment never freed\n{}",
                h.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerong_bank_drop_off_and_pickup_through_the_real_binary() {
    drop_off_and_pickup("kerong", SimSettings::kerong(&[1])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockboard_8a_bank_drop_off_and_pickup_through_the_real_binary() {
    drop_off_and_pickup("lockboard-8a", SimSettings::lockboard8a(&[1])).await;
}

/// A board that stops answering shows on `/healthz` (bus counters, device offline, the adapter's
/// silent boards) while the rest of the bank stays online, and clears when it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_board_shows_on_healthz_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let port = dir.path().join("ttyLOCK");
    let bus = SimBus::on_pty(SimSettings::kerong(&[1, 2]), &port).expect("simulated boards");
    let p = port.clone();
    let hub = tokio::task::spawn_blocking(move || {
        Hub::start(|d| {
            site(d, "kerong", &p).replace(
                r#"map = [{ doors = "1-8", board = 1 }]"#,
                r#"map = [{ doors = "1-4", board = 1 }, { doors = "5-8", board = 2 }]"#,
            )
        })
    })
    .await
    .unwrap();
    let drivers = |hub: &Hub| hub.health()["drivers"].clone();
    wait_for("both boards answering", &hub, || {
        let d = drivers(&hub);
        d["buses"][0]["devices_online"] == json!([1, 2]) && d["banks"][0]["online"] == true
    })
    .await;
    let d = drivers(&hub);
    assert_eq!(d["buses"][0]["protocol"], "kerong", "{d}");
    assert_eq!(d["buses"][0]["port_open"], true, "{d}");
    assert_eq!(d["banks"][0]["bank"], "L", "{d}");

    bus.set_silent(2, true);
    wait_for("board 2 reported silent", &hub, || {
        let d = drivers(&hub);
        d["banks"][0]["silent_boards"] == json!([2])
            && d["buses"][0]["devices_offline"] == json!([2])
    })
    .await;
    let d = drivers(&hub);
    assert!(d["buses"][0]["timeouts"].as_u64().unwrap() > 0, "{d}");
    assert!(d["buses"][0]["last_error"]["message"].is_string(), "{d}");
    assert_eq!(
        d["banks"][0]["online"], true,
        "one board still answers: {d}"
    );
    assert_eq!(hub.health()["banks"]["online_ids"], json!(["L"]));

    bus.set_silent(2, false);
    wait_for("board 2 back", &hub, || {
        let d = drivers(&hub);
        d["banks"][0]["silent_boards"] == json!([])
            && d["buses"][0]["devices_online"] == json!([1, 2])
    })
    .await;
}

fn open_alerts(hub: &Hub, kind: &str) -> Vec<Value> {
    hub.alerts_of(kind)
}

fn compartment_status(hub: &Hub, door: u64) -> Value {
    hub.compartment(door)["status"].clone()
}

/// With one of two boards silent the bank stays online, but the hub stops assigning that board's
/// doors, shows them offline and alerts staff; all of it clears when the board answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doors_of_a_silent_board_get_no_deliveries_and_raise_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let port = dir.path().join("ttyLOCK");
    let bus = SimBus::on_pty(SimSettings::kerong(&[1, 2]), &port).expect("simulated boards");
    let p = port.clone();
    // Board 2's doors are the small ones, so a small parcel would go there first.
    let hub = tokio::task::spawn_blocking(move || {
        Hub::start(|d| {
            let sizes = r#"compartments = [{ doors = "1-4", size = "M" }, { doors = "5-8", size = "S", column = 2 }]"#;
            let boards = r#"map = [{ doors = "1-4", board = 1 }, { doors = "5-8", board = 2 }]"#;
            let config = site(d, "kerong", &p)
                .replace(
                    r#"compartments = [{ doors = "1-4", size = "S" }, { doors = "5-8", size = "M", column = 2 }]"#,
                    sizes,
                )
                .replace(r#"map = [{ doors = "1-8", board = 1 }]"#, boards);
            assert!(config.contains(sizes) && config.contains(boards), "{config}");
            // The alert waits out a grace period (30 s by default) so that a board that
            // hiccups raises nothing; a short one here.
            config + "\n[policies]\nalert_grace = \"1s\"\n"
        })
    })
    .await
    .unwrap();
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
        let (code, reply) = hub.api("POST", "/api/v1/commands", Some(&body.to_string()));
        assert_eq!(code, 200, "{reply}");
    }
    wait_for("both boards answering", &hub, || {
        let d = hub.health()["drivers"].clone();
        // A few poll cycles in, the hub's start-up reconciliation (a query of every door) is
        // over: this test is about a board going silent later.
        d["buses"][0]["devices_online"] == json!([1, 2])
            && d["banks"][0]["online"] == true
            && d["banks"][0]["poll_cycles"].as_u64().unwrap_or(0) >= 5
    })
    .await;
    assert!(open_alerts(&hub, "doors_unreachable").is_empty());

    bus.set_silent(2, true);
    wait_for("the doors_unreachable alert", &hub, || {
        !open_alerts(&hub, "doors_unreachable").is_empty()
    })
    .await;
    let alerts = open_alerts(&hub, "doors_unreachable");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["bank"], "L", "{alerts:?}");
    assert_eq!(
        alerts[0]["message"], "board of bank L silent: doors 5–8 cannot be opened",
        "{alerts:?}"
    );
    assert!(open_alerts(&hub, "bank_offline").is_empty());
    assert_eq!(compartment_status(&hub, 5), "offline");
    assert_eq!(compartment_status(&hub, 1), "free");

    let kiosk = Kiosk::connect_configured(hub.mqtt(), "L", "board-kiosk").await;
    let reserved = kiosk
        .request(
            json!({"request_id": "d1", "type": "start_drop_off", "bank": "L",
            "carrier_code": "555777", "recipient": {"type": "unit", "unit": "7"}, "size": "s"}),
            Duration::from_secs(10),
        )
        .await
        .expect("a reply");
    assert_eq!(reserved["type"], "reserved", "{reserved}");
    let door = reserved["door"].as_u64().unwrap();
    assert!((1..=4).contains(&door), "a door on board 1: {reserved}");
    // The unlock reaches board 1 on the wire.
    wait_for("the unlock on the wire", &hub, || {
        bus.is_open(1, door as u8)
    })
    .await;

    bus.set_silent(2, false);
    wait_for("the alert cleared", &hub, || {
        open_alerts(&hub, "doors_unreachable").is_empty()
    })
    .await;
    assert_eq!(compartment_status(&hub, 5), "free");
}

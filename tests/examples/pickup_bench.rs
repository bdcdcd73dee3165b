//! Pickup latency through the real binary: from a resident's `pickup_by_pin` request published
//! on MQTT to the unlock frame fully on the RS-485 wire.
//!
//! ```text
//! cargo build --release -p locker-hub
//! LOCKER_HUB_BIN=target/release/locker-hub cargo run --release -p locker-tests --example pickup_bench
//! ```
//!
//! The whole path of the issue's target: a kiosk (rumqttc) → the hub's front door → rumqttd →
//! the hub's bus client → the workflow core and its durable redb commit → the `unlock` command
//! back through rumqttd → the Kerong bank adapter → the bus-owning link → a pseudo-terminal,
//! where simulated boards (8 × 16 doors) emulate 19200 baud: a frame counts as on the wire when
//! its last byte would have left at 19200 8N1. Routine polling runs at the default 1 s.
//!
//! Set-up first delivers one parcel per door, then picks them up one at a time. Each drop-off and
//! each pickup starts at a random moment 150–1150 ms after the previous one's reply, so they land
//! at every phase of the poll cycle (and, as at a real bank, not inside the previous unlock's
//! reply window, which holds the bus for up to 100 ms).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use locker_drivers::boardsim::{AnyRequest, SimBus, SimSettings};
use locker_drivers::kerong;
use locker_tests::kiosk::Kiosk;
use locker_tests::{base_config, kiosks, Hub};
use serde_json::{json, Value};

const BAUD: u32 = 19_200;
const BOARDS: u8 = 8;
const LOCKS: u16 = 16;

fn site(dir: &std::path::Path, port: &std::path::Path, poll: &str, idle: &str) -> String {
    let kiosks = kiosks(&["bench-kiosk"]);
    let map: Vec<String> = (0..BOARDS)
        .map(|b| {
            let first = u16::from(b) * LOCKS + 1;
            format!(
                "{{ doors = \"{first}-{}\", board = {b} }}",
                first + LOCKS - 1
            )
        })
        .collect();
    let columns: Vec<String> = (0..BOARDS)
        .map(|b| {
            let first = u16::from(b) * LOCKS + 1;
            format!(
                "{{ doors = \"{first}-{}\", size = \"M\", column = {} }}",
                first + LOCKS - 1,
                b + 1
            )
        })
        .collect();
    base_config(dir).replace("[mqtt]\n", "[mqtt]\nallow_anonymous = true\n")
        + &format!(
            r#"
[[bank]]
id = "K"
{kiosks}compartments = [{}]

[bank.driver]
kind = "kerong"
port = "{}"
baud = {BAUD}
poll_interval = "{poll}"
idle_poll_interval = "{idle}"
map = [{}]
"#,
            columns.join(", "),
            port.display(),
            map.join(", ")
        )
}

fn board_lock(door: u16) -> (u8, u8) {
    (((door - 1) / LOCKS) as u8, ((door - 1) % LOCKS) as u8 + 1)
}

async fn api(
    hub: &Arc<Hub>,
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
) -> Value {
    let h = hub.clone();
    let (code, v) = tokio::task::spawn_blocking(move || {
        h.api(method, path, body.map(|b| b.to_string()).as_deref())
    })
    .await
    .expect("api task");
    assert!(code < 300, "{method} {path}: {code} {v}");
    v
}

async fn wait_until(what: &str, mut pred: impl FnMut() -> bool) {
    let start = Instant::now();
    while !pred() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let doors = u16::from(BOARDS) * LOCKS;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = dir.path().join("ttyK");
    let mut settings = SimSettings::kerong(&(0..BOARDS).collect::<Vec<_>>());
    settings.baud = Some(BAUD);
    settings.turnaround = Duration::ZERO;
    let sim = SimBus::on_pty(settings, &port).expect("simulated boards on a PTY");
    // PICKUP_BENCH_IDLE_POLL="1s" polls idle boards as often as busy ones (as before there was
    // a difference), for comparison.
    let idle = std::env::var("PICKUP_BENCH_IDLE_POLL").unwrap_or_else(|_| "5s".into());
    let idle_shown = idle.clone();
    let p = port.clone();
    let hub = Arc::new(
        tokio::task::spawn_blocking(move || Hub::start(|d| site(d, &p, "1s", &idle)))
            .await
            .expect("hub"),
    );
    {
        let h = hub.clone();
        wait_until("bank K online", move || {
            h.health()["banks"]["online_ids"] == json!(["K"])
        })
        .await;
    }
    println!("Kerong bank through the real binary: {BOARDS} boards × {LOCKS} doors, {BAUD} baud emulated, polling every 1 s (idle boards every {idle_shown})");

    // Directory: one resident per door, so every parcel has its own PIN.
    let mut setup = vec![
        json!({"type": "register_carrier", "carrier": "acme", "name": "Acme"}),
        json!({"type": "issue_carrier_code", "carrier": "acme", "code": "555777"}),
    ];
    for d in 1..=doors {
        setup.push(json!({"type": "register_resident", "resident": format!("r-{d}"), "unit": format!("{d}")}));
    }
    for (i, mut body) in setup.into_iter().enumerate() {
        body["request_id"] = json!(format!("setup-{i}"));
        api(&hub, "POST", "/api/v1/commands", Some(body)).await;
    }

    let kiosk = Kiosk::connect_configured(hub.mqtt(), "K", "bench-kiosk").await;
    let ask = |request: Value| {
        let kiosk = &kiosk;
        let hub = &hub;
        async move {
            match kiosk
                .request(request.clone(), Duration::from_secs(10))
                .await
            {
                Some(reply) => reply,
                None => panic!("no reply to {request}\nhub:\n{}", hub.output()),
            }
        }
    };

    // Drop-offs one at a time, as at a real bank (a carrier has at most a few in progress):
    // reserve (the unlock opens the door on the wire), wait until the hub has seen it open,
    // confirm the parcel, shut the door.
    let started = Instant::now();
    let mut drop_latency = Vec::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut pause = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        Duration::from_micros(150_000 + rng % 1_000_000)
    };
    for d in 1..=doors {
        tokio::time::sleep(pause()).await;
        let from = sim.received_count();
        let sent = Instant::now();
        let r = ask(json!({"request_id": format!("d-{d}"), "type": "start_drop_off", "bank": "K",
            "carrier_code": "555777", "recipient": {"type": "unit", "unit": format!("{d}")}, "size": "m"}))
        .await;
        assert_eq!(r["type"], "reserved", "{r}");
        let door = r["door"].as_u64().expect("door") as u16;
        let at = unlock_on_wire(&sim, from, door, sent).await;
        drop_latency.push(at.saturating_duration_since(sent));
        {
            let h = hub.clone();
            wait_until("the door seen open", move || {
                let (_, list) = h.api("GET", "/api/v1/compartments", None);
                list.as_array().is_some_and(|l| {
                    l.iter()
                        .any(|c| c["door"] == json!(door) && c["door_open"] == true)
                })
            })
            .await;
        }
        // The carrier puts the parcel in (and a kiosk may ask 2 things a second).
        tokio::time::sleep(Duration::from_millis(600)).await;
        let c = ask(json!({"request_id": format!("c-{d}"), "type": "confirm_parcel", "reservation": r["reservation"]})).await;
        assert_eq!(c["type"], "parcel_confirmed", "{c}");
        let (b, l) = board_lock(door);
        sim.set_door(b, l, false);
    }
    // Every delivery is notified once its door is seen closed: collect the PINs.
    let closed = Instant::now();
    let pins: HashMap<String, String> = loop {
        let items = api(&hub, "GET", "/api/v1/outbox", None).await;
        let pins: HashMap<String, String> = items
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|it| {
                        let n = &it["notification"];
                        Some((
                            n["resident"].as_str()?.to_owned(),
                            n["pin"].as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if pins.len() == usize::from(doors) {
            break pins;
        }
        assert!(
            closed.elapsed() < Duration::from_secs(30),
            "only {} PINs",
            pins.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "set-up: {doors} deliveries in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Pickups, one at a time, at random phases of the poll cycle.
    let mut latency = Vec::new();
    let mut reply_latency = Vec::new();
    for (i, pin) in pins.values().enumerate() {
        tokio::time::sleep(pause()).await;
        let from = sim.received_count();
        let sent = Instant::now();
        let r = ask(json!({"request_id": format!("p-{i}"), "type": "pickup_by_pin", "bank": "K", "pin": pin})).await;
        let replied = sent.elapsed();
        assert_eq!(r["type"], "opening", "{r}");
        let door = r["doors"][0].as_u64().expect("door") as u16;
        let at = unlock_on_wire(&sim, from, door, sent).await;
        latency.push(at.saturating_duration_since(sent));
        reply_latency.push(replied);
        // The resident takes the parcel and shuts the door (the lock popped it open).
        let (b, l) = board_lock(door);
        tokio::time::sleep(Duration::from_millis(100)).await;
        sim.set_door(b, l, false);
    }
    report(
        "drop-off: start_drop_off published → unlock frame on the wire",
        &mut drop_latency,
    );
    report(
        "pickup: pickup_by_pin published → unlock frame on the wire",
        &mut latency,
    );
    report(
        "pickup: pickup_by_pin published → kiosk has the reply",
        &mut reply_latency,
    );
    let floor = 5.0 * 10.0 / f64::from(BAUD) * 1000.0;
    println!("wire time of the 5-byte unlock frame alone: {floor:.2} ms");
}

/// When the unlock frame of `door` was fully on the wire (among the frames after the `from`th).
async fn unlock_on_wire(sim: &SimBus, from: usize, door: u16, sent: Instant) -> Instant {
    let (board, lock) = board_lock(door);
    let want = AnyRequest::Kerong(kerong::Request::Unlock { board, lock });
    loop {
        if let Some(rec) = sim
            .received_after(from)
            .into_iter()
            .find(|x| x.request == want)
        {
            return rec.at;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "the unlock of door {door} never reached the wire"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        ms(pick(0.5)),
        ms(pick(0.9)),
        ms(pick(0.99)),
        ms(pick(1.0)),
    );
}

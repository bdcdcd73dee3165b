//! Crash safety of the real binary: a workload of drop-offs and pickups over MQTT while the hub
//! is killed with SIGKILL at random moments. After every restart:
//! - every request the hub confirmed gets the same answer when sent again (its facts, including
//!   the answer, were durable before the confirmation left the process);
//! - every parcel whose placement was confirmed still exists;
//! - no compartment holds parcels of two residents, and no parcel is in two places.
//!
//! Seeded and reproducible: `LOCKER_CRASH_SEED` (default 42), `LOCKER_CRASH_KILLS` (default 100).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use locker_drivers::sim::{self, SimOptions};
use locker_tests::kiosk::Kiosk;
use locker_tests::Hub;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const LOGIN: (&str, &str) = ("crash-bank", "crash bank password");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn config(dir: &std::path::Path, mqtt: u16, web: u16, hash: &str) -> String {
    let kiosks = locker_tests::kiosks(&["crash-kiosk"]);
    format!(
        r#"[site]
id = "crash-site"
data_dir = "{}/data"

[mqtt]
listener = {{ bind = "127.0.0.1:{mqtt}" }}

[web]
bind = "127.0.0.1:{web}"

[[bank]]
id = "A"
driver = {{ kind = "mqtt" }}
mqtt = {{ username = "{}", password_hash = "{hash}" }}
{kiosks}compartments = [
  {{ doors = "1-12", size = "S", column = 1 }},
  {{ doors = "13-20", size = "M", column = 2 }},
  {{ doors = "21-24", size = "L", column = 3 }},
]
"#,
        dir.display(),
        LOGIN.0
    )
}

/// What the hub confirmed: the request and the answer it gave.
#[derive(Default)]
struct Ledger {
    confirmed: Vec<(Value, Value)>,
    parcels: BTreeSet<String>,
    used_pins: BTreeSet<String>,
}

async fn api(
    hub: &Arc<Mutex<SocketAddr>>,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let addr = *hub.lock().unwrap();
    let (token, method, path) = (token.to_owned(), method.to_owned(), path.to_owned());
    tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(|| {
            let body = body.map(|b| b.to_string());
            let (code, text) =
                locker_tests::http(addr, &method, &path, Some(&token), body.as_deref());
            (code, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
        .ok()
    })
    .await
    .ok()
    .flatten()
}

/// Drop-offs and pickups until aborted. Every answer that is not a refusal is written down.
async fn workload(
    kiosk: Arc<Kiosk>,
    web: Arc<Mutex<SocketAddr>>,
    token: String,
    ledger: Arc<Mutex<Ledger>>,
    mut rng: rand::rngs::StdRng,
    cycle: usize,
) {
    let units = ["101", "102", "103", "104", "105", "106"];
    let mut n = 0;
    loop {
        n += 1;
        let id = |what: &str| format!("c{cycle}-{n}-{what}");
        if rng.random_bool(0.6) {
            let unit = units[rng.random_range(0..units.len())];
            let size = ["s", "m", "l"][rng.random_range(0..3)];
            let start = json!({"request_id": id("start"), "type": "start_drop_off", "bank": "A",
                "carrier_code": "864209", "recipient": {"type": "unit", "unit": unit}, "size": size});
            let Some(reply) = kiosk.request(start.clone(), Duration::from_secs(3)).await else {
                continue;
            };
            if reply["type"] != "reserved" {
                continue;
            }
            ledger
                .lock()
                .unwrap()
                .confirmed
                .push((start, reply.clone()));
            let confirm = json!({"request_id": id("confirm"), "type": "confirm_parcel",
                "reservation": reply["reservation"]});
            if let Some(done) = kiosk.request(confirm.clone(), Duration::from_secs(3)).await {
                if done["type"] == "parcel_confirmed" {
                    let mut l = ledger.lock().unwrap();
                    l.parcels
                        .insert(done["parcel"].as_str().unwrap_or_default().to_owned());
                    l.confirmed.push((confirm, done));
                }
            }
        } else {
            let Some((200, items)) = api(&web, &token, "GET", "/api/v1/outbox", None).await else {
                continue;
            };
            let pin = items.as_array().into_iter().flatten().find_map(|i| {
                let pin = i["notification"]["pin"].as_str()?.to_owned();
                (!ledger.lock().unwrap().used_pins.contains(&pin)).then_some(pin)
            });
            let Some(pin) = pin else { continue };
            ledger.lock().unwrap().used_pins.insert(pin.clone());
            let pickup = json!({"request_id": id("pickup"), "type": "pickup_by_pin", "bank": "A", "pin": pin});
            if let Some(reply) = kiosk.request(pickup.clone(), Duration::from_secs(3)).await {
                if reply["type"] == "opening" {
                    ledger.lock().unwrap().confirmed.push((pickup, reply));
                }
            }
        }
    }
}

/// The invariants, from the hub's own API after a restart.
async fn check(
    web: &Arc<Mutex<SocketAddr>>,
    token: &str,
    kiosk: &Kiosk,
    ledger: &Ledger,
    replay: &[(Value, Value)],
    cycle: usize,
) {
    // Confirmed answers are durable: asking again gives the same answer.
    for (request, reply) in replay {
        let again = kiosk
            .request(request.clone(), Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("cycle {cycle}: no answer to a replayed {request}"));
        assert_eq!(
            &again, reply,
            "cycle {cycle}: a confirmed answer changed after a crash: {request}"
        );
    }
    let (code, parcels) = api(web, token, "GET", "/api/v1/parcels", None)
        .await
        .expect("parcels");
    assert_eq!(code, 200);
    let parcels = parcels.as_array().expect("parcel list").clone();
    let ids: Vec<&str> = parcels.iter().filter_map(|p| p["id"].as_str()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(
        ids.len(),
        unique.len(),
        "cycle {cycle}: a parcel is listed twice"
    );
    for p in &ledger.parcels {
        assert!(
            unique.contains(p.as_str()),
            "cycle {cycle}: confirmed parcel {p} is gone"
        );
    }
    // No compartment holds parcels of two residents.
    let mut holders: BTreeMap<(String, u64), BTreeSet<String>> = BTreeMap::new();
    for p in &parcels {
        if p["location"]["type"] == "compartment" {
            let key = (
                p["location"]["bank"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                p["location"]["door"].as_u64().unwrap_or_default(),
            );
            holders
                .entry(key)
                .or_default()
                .insert(p["resident"].as_str().unwrap_or_default().to_owned());
        }
    }
    for (door, residents) in holders {
        assert!(
            residents.len() <= 1,
            "cycle {cycle}: compartment {door:?} holds parcels of {residents:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_facts_survive_sigkill_at_random_moments() {
    let seed: u64 = std::env::var("LOCKER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    let kills: usize = std::env::var("LOCKER_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mqtt_port, web_port) = (free_port(), free_port());
    let hash = tokio::task::spawn_blocking(|| locker_tests::hash_password(LOGIN.1))
        .await
        .unwrap();
    let mut hub = tokio::task::spawn_blocking(move || {
        Hub::start(|dir| config(dir, mqtt_port, web_port, &hash))
    })
    .await
    .unwrap();
    let web = Arc::new(Mutex::new(hub.web));
    let token = hub.api_token();
    for (i, body) in [
        json!({"type": "register_carrier", "carrier": "acme", "name": "Acme"}),
        json!({"type": "issue_carrier_code", "carrier": "acme", "code": "864209"}),
    ]
    .into_iter()
    .chain((101..=106).map(|u| json!({"type": "register_resident", "resident": format!("r-{u}"), "unit": u.to_string()})))
    .enumerate()
    {
        let mut body = body;
        body["request_id"] = json!(format!("setup-{i}"));
        let (code, reply) = api(&web, &token, "POST", "/api/v1/commands", Some(body)).await.unwrap();
        assert_eq!(code, 200, "{reply}");
    }
    let addr = hub.mqtt();
    let bank = sim::spawn(SimOptions {
        bank: "A".into(),
        doors: 24,
        host: addr.ip().to_string(),
        port: addr.port(),
        credentials: Some((LOGIN.0.into(), LOGIN.1.into())),
        latency: Duration::ZERO,
        stuck_doors: vec![],
        // The carrier confirms the parcel, then the door closes.
        auto_close_after: Some(Duration::from_millis(250)),
        sensors: Vec::new(),
    });
    // The bank's controller connects within moments; one that never does fails the test here
    // instead of hanging it.
    if tokio::time::timeout(Duration::from_secs(15), bank.wait_connected())
        .await
        .is_err()
    {
        panic!(
            "the simulated bank A never connected within 15 s\nhub:\n{}",
            hub.output()
        );
    }
    let kiosk = Arc::new(Kiosk::connect_configured(addr, "A", "crash-kiosk").await);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut restart_ms = Vec::new();
    let mut replayed = 0;
    for cycle in 0..kills {
        // Work only starts once the bank's controller is back: a drop-off at an offline bank is
        // refused, and a cycle of refusals proves nothing. A bank that is not back within the
        // deadline fails the test here (with the last /healthz answer), not quietly later.
        let w = web.clone();
        let waited = tokio::task::spawn_blocking(move || {
            let addr = *w.lock().unwrap();
            let start = std::time::Instant::now();
            let mut last = (0, String::new());
            while start.elapsed() < Duration::from_secs(15) {
                last = locker_tests::http_get(addr, "/healthz");
                if last.0 == 200 && last.1.contains(r#""online_ids":["A"]"#) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(last)
        })
        .await
        .unwrap();
        if let Err((code, body)) = waited {
            let output = hub.output();
            let mut tail: Vec<&str> = output.lines().rev().take(40).collect();
            tail.reverse();
            panic!(
                "cycle {cycle}: bank A was not online within 15 s of the hub's (re)start; \
                 last /healthz answer: {code} {body}\nthe hub's last lines:\n{}",
                tail.join("\n")
            );
        }
        let task = tokio::spawn(workload(
            kiosk.clone(),
            web.clone(),
            token.clone(),
            ledger.clone(),
            rand::rngs::StdRng::seed_from_u64(rng.random()),
            cycle,
        ));
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..700))).await;
        // The kill lands wherever the workload is: mid-request, mid-commit, mid-publish.
        let subscriptions = kiosk.subscriptions();
        let (h, took) = tokio::task::spawn_blocking(move || {
            let took = hub.crash_and_restart();
            (hub, took)
        })
        .await
        .unwrap();
        hub = h;
        task.abort();
        restart_ms.push(took.as_millis());
        kiosk.resubscribed_since(subscriptions).await;
        // Replay what was confirmed since the last kill, plus a few older confirmations (all of
        // them every time would make the test quadratic).
        let (snapshot, replay) = {
            let l = ledger.lock().unwrap();
            let mut replay: Vec<(Value, Value)> = l.confirmed[replayed..].to_vec();
            for _ in 0..5.min(replayed) {
                replay.push(l.confirmed[rng.random_range(0..replayed)].clone());
            }
            replayed = l.confirmed.len();
            let snapshot = Ledger {
                confirmed: Vec::new(),
                parcels: l.parcels.clone(),
                used_pins: BTreeSet::new(),
            };
            (snapshot, replay)
        };
        check(&web, &token, &kiosk, &snapshot, &replay, cycle).await;
    }
    let l = ledger.lock().unwrap();
    let pickups = l
        .confirmed
        .iter()
        .filter(|(_, r)| r["type"] == "opening")
        .count();
    restart_ms.sort_unstable();
    println!(
        "crash test: seed {seed}, {kills} SIGKILLs, {} confirmed answers ({} parcels placed, {pickups} pickups), restart to ready p50 {} ms, max {} ms",
        l.confirmed.len(),
        l.parcels.len(),
        restart_ms[restart_ms.len() / 2],
        restart_ms[restart_ms.len() - 1]
    );
    assert!(
        l.parcels.len() >= 10,
        "the workload did too little to prove anything"
    );
    assert!(
        pickups >= 3,
        "the workload did too few pickups to prove anything"
    );
}

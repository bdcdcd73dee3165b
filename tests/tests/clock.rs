//! Steps of the system clock under the real binary, faked with libfaketime (preloaded into the
//! hub; the monotonic clock stays real): a step forward by an hour does not end a keypad lockout,
//! and a step back by two hours records nothing as happening before what came earlier.

use std::path::Path;
use std::time::{Duration, Instant};

use locker_tests::{base_config, Hub};
use serde_json::{json, Value};

fn config(dir: &Path) -> String {
    base_config(dir)
        + r#"
[[bank]]
id = "A"
driver = { kind = "mqtt" }
compartments = [{ doors = "1-4", size = "S" }]
"#
}

fn command(hub: &Hub, id: &str, body: Value) -> Value {
    hub.command(id, body)
}

/// Fact times from the audit trail, in the order the trail lists them (newest first).
fn audit_times(hub: &Hub) -> Vec<(String, u64)> {
    let (code, list) = hub.api("GET", "/api/v1/audit?limit=1000", None);
    assert_eq!(code, 200, "{list}");
    list.as_array()
        .expect("a list")
        .iter()
        .filter_map(|f| Some((f["id"].as_str()?.to_owned(), f["at"].as_u64()?)))
        .collect()
}

#[test]
fn clock_steps_do_not_end_a_lockout_or_reorder_the_record() {
    // Fails (does not skip) without libfaketime: tests/run installs it.
    let clock = locker_tests::faketime::FakeClock::new();
    let env = clock.env();
    let hub = Hub::start_with_env(config, &env);
    for (i, body) in [
        json!({"type": "register_resident", "resident": "r-7", "unit": "7"}),
        json!({"type": "register_carrier", "carrier": "acme", "name": "Acme"}),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = command(&hub, &format!("setup-{i}"), body);
        assert_eq!(reply["type"], "accepted", "{reply}");
    }
    // Five wrong codes lock bank A's keypad (for a minute, checking one code per 15 s).
    for i in 0..5 {
        let reply = command(
            &hub,
            &format!("wrong-{i}"),
            json!({"type": "pickup_by_pin", "bank": "A", "pin": "000000"}),
        );
        assert_eq!(reply["type"], "rejected", "{reply}");
    }
    let reply = command(
        &hub,
        "locked",
        json!({"type": "pickup_by_pin", "bank": "A", "pin": "000000"}),
    );
    assert_eq!(reply["code"], "keypad_locked", "{reply}");

    // NTP steps the clock forward an hour. A minute's lockout is not over because of it.
    clock.set("+1h");
    let reply = command(
        &hub,
        "after-forward-step",
        json!({"type": "pickup_by_pin", "bank": "A", "pin": "000000"}),
    );
    assert_eq!(
        reply["code"],
        "keypad_locked",
        "a step of the clock ended the lockout: {reply}\n{}",
        hub.output()
    );
    assert!(
        hub.output().contains("the system clock stepped"),
        "the step is logged\n{}",
        hub.output()
    );

    // Then back two hours. What happens next is recorded as happening after what came before.
    let before = audit_times(&hub);
    let newest_before = before.iter().map(|(_, at)| *at).max().expect("facts");
    clock.set("-1h");
    let started = Instant::now();
    let reply = command(
        &hub,
        "after-backward-step",
        json!({"type": "register_resident", "resident": "r-8", "unit": "8"}),
    );
    assert_eq!(reply["type"], "accepted", "{reply}");
    let after = audit_times(&hub);
    let new: Vec<&(String, u64)> = after
        .iter()
        .filter(|f| !before.iter().any(|b| b.0 == f.0))
        .collect();
    assert!(!new.is_empty(), "the new fact is in the audit trail");
    for (id, at) in &new {
        assert!(
            *at >= newest_before,
            "fact {id} is dated {at}, before {newest_before}, after the clock went back"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let health = hub.health();
    assert_eq!(health["status"], "ok", "{health}");
}

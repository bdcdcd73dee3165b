//! Secrets never enter facts; the wire format (JSON) of inputs, facts and outputs round-trips.

mod common;

use common::*;
use locker_core::*;
use serde_json::Value;

/// Every string anywhere in a JSON value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

#[test]
fn no_fact_contains_a_plaintext_code_badge_or_carrier_code() {
    let mut s = Site::new();
    let a = s.deliver("A", "r1", Size::Small, 2);
    let b = s.deliver("B", "r3", Size::Medium, 1);
    s.collect(&a);
    s.cmd(Request::PickupByQr {
        bank: "B".into(),
        token: b.qr.clone(),
    });
    let wrong = s.wrong_pin(&[&b.pin]);
    s.pin("A", &wrong);
    let c = s.deliver("A", "r1", Size::Small, 1);
    s.ok(Request::ReassignParcels {
        by: staff(),
        parcels: c.parcels.clone(),
        to: "r3".into(),
    });

    let mut secrets: Vec<String> = vec![CARRIER_CODE.into(), BADGE.into(), wrong];
    for e in &s.effects {
        if let Effect::Notify { pin, qr, .. } = e {
            secrets.extend(pin.iter().cloned());
            secrets.extend(qr.iter().cloned());
            // The signed body of a QR token is as sensitive as the token.
            if let Some(q) = qr {
                secrets.extend(q.split('.').skip(1).map(str::to_owned));
            }
        }
    }
    assert!(secrets.len() > 8, "the scenario issued codes: {secrets:?}");

    for f in &s.log {
        let json = serde_json::to_value(f).expect("facts serialise");
        let mut all = Vec::new();
        strings(&json, &mut all);
        for text in all {
            for secret in &secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "fact {} contains a secret: {text}",
                    f.id
                );
            }
        }
    }
    // Replies never carry codes either (they are stored in facts for idempotency).
    let issued = s
        .log
        .iter()
        .filter(|f| matches!(f.kind, FactKind::CodeIssued { .. }))
        .count();
    assert_eq!(issued, 4);
}

#[test]
fn the_same_code_hashes_differently_under_another_site_key() {
    let mut s = Site::new();
    s.deliver("A", "r1", Size::Small, 1);
    let hash_here = s.log.iter().find_map(|f| match &f.kind {
        FactKind::CodeIssued { pin_hash, .. } => Some(pin_hash.clone()),
        _ => None,
    });
    // A core with another key cannot use these facts' codes.
    let other = Core::new(layout(), s.policies.clone(), [7; 32], "hub1", s.log.clone());
    let pin = s
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Notify { pin: Some(p), .. } => Some(p.clone()),
            _ => None,
        })
        .expect("pin");
    let mut other = other;
    let out = other.handle(
        s.now,
        Input::Command(Command {
            request_id: "x".into(),
            request: Request::PickupByPin {
                bank: "A".into(),
                pin,
            },
        }),
        &mut Rng(3, Default::default()),
    );
    assert!(unlocks(&out).is_empty());
    assert!(hash_here.is_some_and(|h| h.len() == 64));
}

#[test]
fn commands_and_observations_parse_from_documented_json() {
    let cmd: Input = serde_json::from_str(
        r#"{"input":"command","body":{"request_id":"kiosk-7-0001","type":"pickup_by_pin","bank":"A","pin":"123456"}}"#,
    )
    .expect("pickup parses");
    assert_eq!(
        cmd,
        Input::Command(Command {
            request_id: "kiosk-7-0001".into(),
            request: Request::PickupByPin {
                bank: "A".into(),
                pin: "123456".into()
            }
        })
    );
    let drop: Command = serde_json::from_str(
        r#"{"request_id":"k1","type":"start_drop_off","bank":"A","carrier_code":"774411",
            "recipient":{"type":"unit","unit":"101"},"size":"small"}"#,
    )
    .expect("drop-off parses with defaults");
    assert!(matches!(
        drop.request,
        Request::StartDropOff {
            temperature: TempClass::Ambient,
            share: false,
            ..
        }
    ));
    let staff: Command = serde_json::from_str(
        r#"{"request_id":"s1","type":"staff_open_door","by":{"kind":"staff","id":"sam"},"bank":"A","door":3,"reason":"stuck"}"#,
    )
    .expect("staff command parses");
    assert!(matches!(
        staff.request,
        Request::StaffOpenDoor { door: 3, .. }
    ));
    let obs: Observation =
        serde_json::from_str(r#"{"type":"door_opened","bank":"A","door":2}"#).expect("observation");
    assert_eq!(
        obs,
        Observation::DoorOpened {
            bank: "A".into(),
            door: 2
        }
    );
    // Bad input is an error with a location, never a panic.
    let err =
        serde_json::from_str::<Command>(r#"{"request_id":"x","type":"pickup_by_pin","bank":"A"}"#)
            .expect_err("missing pin");
    assert!(err.to_string().contains("pin"), "{err}");
    assert!(serde_json::from_str::<Command>(r#"{"request_id":"x","type":"fly"}"#).is_err());
}

#[test]
fn facts_and_outputs_round_trip_through_json() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    let out = s.pin("A", &d.pin);
    s.advance(6 * DAY);
    for f in &s.log {
        let text = serde_json::to_string(f).expect("serialise");
        let back: Fact = serde_json::from_str(&text).expect("deserialise");
        assert_eq!(&back, f, "{text}");
    }
    let text = serde_json::to_string(&out).expect("output serialises");
    let back: Output = serde_json::from_str(&text).expect("output parses");
    assert_eq!(back, out);
    let reply = out.reply.expect("reply");
    let id = reply.request_id.to_string();
    let reply = serde_json::to_value(reply).expect("reply");
    assert_eq!(reply["type"], "opening");
    assert_eq!(reply["request_id"], id.as_str());
    let rejected = serde_json::to_value(s.pin("A", &d.pin).reply.expect("reply")).expect("json");
    assert_eq!(rejected["type"], "rejected");
    assert_eq!(rejected["code"], "bad_credential");
}

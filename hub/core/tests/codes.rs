//! Codes a resident can use again: a reminder names the live code that opens its parcels and
//! carries its QR token (the shell adds the PIN it kept); staff resend a live code (recorded
//! without the code); a code stops being live once its parcels are collected.

mod common;

use common::*;
use locker_core::*;

const DAY: u64 = 86_400_000;

/// A notice's kind, PIN, QR token and code.
type Notice = (NotifyKind, Option<String>, Option<String>, Option<CodeId>);

fn notices(out: &Output) -> Vec<Notice> {
    out.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify {
                kind,
                pin,
                qr,
                code,
                ..
            } => Some((*kind, pin.clone(), qr.clone(), code.clone())),
            _ => None,
        })
        .collect()
}

/// The code the delivery notice named.
fn delivered_code(s: &mut Site) -> (Delivered, CodeId) {
    let d = s.deliver("A", "r1", Size::Small, 1);
    let code = s
        .effects
        .iter()
        .rev()
        .find_map(|e| match e {
            Effect::Notify {
                kind: NotifyKind::Delivered,
                code: Some(c),
                ..
            } => Some(c.clone()),
            _ => None,
        })
        .expect("the delivery notice names its code");
    (d, code)
}

#[test]
fn a_reminder_carries_the_live_codes_qr_token_and_names_the_code() {
    let mut s = Site::new();
    let (d, code) = delivered_code(&mut s);
    let out = s.advance(DAY + 1000);
    let reminders: Vec<_> = notices(&out)
        .into_iter()
        .filter(|n| n.0 == NotifyKind::Reminder)
        .collect();
    assert_eq!(reminders.len(), 1, "{out:?}");
    let (_, pin, qr, named) = &reminders[0];
    assert_eq!(pin, &None, "the core never has the PIN again");
    assert_eq!(
        qr.as_deref(),
        Some(d.qr.as_str()),
        "the same token as at delivery"
    );
    assert_eq!(named.as_ref(), Some(&code));
    assert!(s.core.code_is_live(&code));
    // The token in the reminder opens the door.
    let out = s.cmd(Request::PickupByQr {
        bank: "A".into(),
        token: qr.clone().unwrap_or_default(),
    });
    assert!(matches!(outcome(&out), Outcome::Opening { .. }), "{out:?}");
}

#[test]
fn staff_resend_a_live_code_recorded_without_it_and_not_once_collected() {
    let mut s = Site::new();
    let (d, code) = delivered_code(&mut s);
    let out = s.cmd(Request::ResendCode {
        by: staff(),
        parcel: d.parcels[0].clone(),
    });
    assert_eq!(outcome(&out), Outcome::Accepted);
    let sent = notices(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, NotifyKind::Delivered);
    assert_eq!(sent[0].2.as_deref(), Some(d.qr.as_str()));
    assert_eq!(sent[0].3.as_ref(), Some(&code));
    // Recorded, without the PIN or the token.
    assert!(has_fact(&out, |k| matches!(k, FactKind::CodeResent { .. })));
    let recorded = serde_json::to_string(&out.facts).unwrap_or_default();
    assert!(!recorded.contains(&d.pin) && !recorded.contains(&d.qr));

    s.collect(&d);
    assert!(
        !s.core.code_is_live(&code),
        "collected: the code opens nothing"
    );
    let refused = s.refused(
        Request::ResendCode {
            by: staff(),
            parcel: d.parcels[0].clone(),
        },
        RejectCode::NotAllowedNow,
    );
    assert!(refused.message.contains("not waiting"), "{refused:?}");
}

#[test]
fn a_pickup_at_the_lockers_or_the_desk_tells_the_resident_without_a_code() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    let before = s.effects.len();
    s.collect(&d);
    let told: Vec<_> = s.effects[before..]
        .iter()
        .filter_map(|e| match e {
            Effect::Notify {
                resident,
                parcels,
                kind: NotifyKind::PickedUp,
                pin,
                qr,
                code,
            } => Some((
                resident.clone(),
                parcels.clone(),
                pin.clone(),
                qr.clone(),
                code.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        vec![("r1".into(), d.parcels.clone(), None, None, None)]
    );

    let Outcome::CheckedIn { parcel } = s.ok(Request::DeskCheckIn {
        by: staff(),
        resident: "r2".into(),
        tracking: None,
        carrier: None,
    }) else {
        panic!()
    };
    let out = s.cmd(Request::DeskPickup {
        by: staff(),
        parcels: vec![parcel.clone()],
    });
    assert_eq!(
        notices(&out)
            .into_iter()
            .filter(|n| n.0 == NotifyKind::PickedUp)
            .count(),
        1
    );
    assert!(out.effects.iter().any(|e| matches!(
        e,
        Effect::Notify { resident, parcels, kind: NotifyKind::PickedUp, .. }
            if resident.as_str() == "r2" && parcels == &vec![parcel.clone()]
    )));
}

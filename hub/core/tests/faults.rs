//! Scenario tests of every fault: unlock retries and failure, door ajar, forced open, controller
//! offline/online, unknown unlock outcome after a restart, inconsistent reports, temperature.

mod common;

use common::*;
use locker_core::*;

#[test]
fn unlock_sent_acknowledged_and_door_seen_open_are_separate_facts() {
    let mut s = Site::new();
    let out = s.start_drop_off("A", "r1", Size::Small);
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::UnlockSent { attempt: 1, .. }
    )));
    let out = s.acked("A", 1);
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::UnlockAcked { .. }
    )));
    let out = s.opened("A", 1);
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::DoorOpened { unlock: Some(_) }
    )));
}

#[test]
fn unacknowledged_unlock_is_retried_then_compartment_goes_out_of_service_and_another_is_offered() {
    let mut s = Site::new();
    let out = s.start_drop_off("A", "r1", Size::Small);
    let Outcome::Reserved { reservation, .. } = outcome(&out) else {
        panic!()
    };
    let first = unlocks(&out)[0].2.clone();
    let ack = s.policies.unlock_ack_timeout_ms;
    assert_eq!(s.core.next_deadline(), Some(s.now.plus(ack)));
    for attempt in 2..=s.policies.unlock_max_attempts {
        let out = s.advance(ack);
        assert_eq!(
            unlocks(&out),
            vec![("A".to_owned(), 1, first.clone())],
            "retry {attempt}"
        );
        assert!(has_fact(
            &out,
            |k| matches!(k, FactKind::UnlockSent { attempt: a, .. } if *a == attempt)
        ));
    }
    let out = s.advance(ack);
    assert!(unlocks(&out).is_empty(), "bounded retries");
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::UnlockFailed { .. }
    )));
    assert!(raised(&out, AlertKind::UnlockFailed));
    assert!(s.compartment("A", 1).out_of_service);
    let offered = out.effects.iter().find_map(|e| match e {
        Effect::Kiosk {
            update: KioskUpdate::DoorOffered { failed_door, door },
            ..
        } => Some((*failed_door, *door)),
        _ => None,
    });
    assert_eq!(offered, Some((1, 2)));
    // The carrier accepts the offer; the new door opens and the delivery completes there.
    let out = s.ok(Request::OpenReservation {
        reservation: reservation.clone(),
    });
    assert!(matches!(out, Outcome::Reserved { door: 2, .. }));
    s.acked("A", 2);
    s.opened("A", 2);
    s.ok(Request::ConfirmParcel {
        reservation,
        tracking: None,
    });
    let out = s.closed("A", 2);
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::DeliveryCompleted { .. }
    )));
}

#[test]
fn unlock_failure_with_nothing_else_free_sends_the_parcel_to_the_desk() {
    let mut s = Site::new();
    s.deliver("B", "r3", Size::Large, 1); // B door 2 taken
    let out = s.start_drop_off("B", "r1", Size::Small);
    let Outcome::Reserved { door: 1, .. } = outcome(&out) else {
        panic!("{out:?}")
    };
    let mut last = Output::default();
    for _ in 0..s.policies.unlock_max_attempts {
        last = s.advance(s.policies.unlock_ack_timeout_ms);
    }
    assert!(has_fact(&last, |k| matches!(
        k,
        FactKind::ReservationReleased {
            reason: ReleaseReason::DoorFailed,
            ..
        }
    )));
    let parcel = last
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Kiosk {
                update: KioskUpdate::Overflow { parcel },
                ..
            } => Some(parcel.clone()),
            _ => None,
        })
        .expect("overflow offered");
    assert_eq!(s.parcel(&parcel).location, Location::Desk);
}

#[test]
fn pickup_door_that_never_acknowledges_leaves_parcels_in_place_and_tells_the_kiosk() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    s.pin("A", &d.pin);
    let mut last = Output::default();
    for _ in 0..s.policies.unlock_max_attempts {
        last = s.advance(s.policies.unlock_ack_timeout_ms);
    }
    assert!(last.effects.iter().any(|e| matches!(
        e,
        Effect::Kiosk {
            update: KioskUpdate::PickupDoorFailed { .. },
            ..
        }
    )));
    let p = s.parcel(&d.parcels[0]);
    assert!(matches!(p.location, Location::Compartment { .. }));
}

#[test]
fn acknowledged_unlock_not_opened_lapses_and_the_code_works_again() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    s.pin("A", &d.pin);
    s.acked("A", d.door);
    assert!(
        unlocks(&s.pin("A", &d.pin)).is_empty(),
        "code in use while its door is unlocked"
    );
    let out = s.advance(s.policies.open_window_ms);
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::UnlockLapsed { .. }
    )));
    // Nobody took the parcel, so the resident can try again.
    assert_eq!(unlocks(&s.pin("A", &d.pin)).len(), 1);
}

#[test]
fn door_ajar_alert_after_configured_time_and_cleared_on_close() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    s.pin("A", &d.pin);
    s.acked("A", d.door);
    s.opened("A", d.door);
    let ajar = s.policies.door_ajar_ms;
    assert_eq!(s.core.next_deadline(), Some(s.now.plus(ajar)));
    assert!(!raised(&s.advance(ajar - 1), AlertKind::DoorAjar));
    let out = s.advance(1);
    assert!(raised(&out, AlertKind::DoorAjar));
    assert!(
        !raised(&s.advance(ajar), AlertKind::DoorAjar),
        "raised once"
    );
    let out = s.closed("A", d.door);
    assert!(out
        .effects
        .iter()
        .any(|e| matches!(e, Effect::ClearAlert { .. })));
    assert!(s.alerts_of(AlertKind::DoorAjar).is_empty());
}

#[test]
fn door_opened_without_unlock_raises_tamper_alert() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    let out = s.opened("A", d.door);
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::DoorOpened { unlock: None }
    )));
    assert!(raised(&out, AlertKind::ForcedOpen));
    // Nothing is assumed taken: the parcel is still recorded where it was.
    assert!(matches!(
        s.parcel(&d.parcels[0]).location,
        Location::Compartment { .. }
    ));
}

#[test]
fn door_opened_after_the_unlock_lapsed_is_a_forced_open() {
    let mut s = Site::new();
    s.cmd(Request::StaffOpenDoor {
        by: staff(),
        bank: "A".into(),
        door: 1,
        reason: "check".into(),
    });
    s.acked("A", 1);
    s.advance(s.policies.open_window_ms);
    assert!(raised(&s.opened("A", 1), AlertKind::ForcedOpen));
}

#[test]
fn controller_offline_makes_bank_unavailable_and_back_online_reconciles_doors() {
    let mut s = Site::new();
    let out = s.obs(Observation::ControllerOffline { bank: "A".into() });
    assert!(raised(&out, AlertKind::BankOffline));
    assert!(out
        .effects
        .iter()
        .any(|e| matches!(e, Effect::PublishBank { bank } if bank == "A")));
    assert_eq!(s.compartment("A", 1).status, CompartmentStatus::Offline);
    s.refused(
        drop_off_request("A", "r1", Size::Small, false),
        RejectCode::BankOffline,
    );
    // Bank B still works.
    assert!(matches!(
        outcome(&s.start_drop_off("B", "r1", Size::Small)),
        Outcome::Reserved { .. }
    ));

    let out = s.obs(Observation::ControllerOnline { bank: "A".into() });
    assert!(has_fact(&out, |k| matches!(k, FactKind::BankOnline)));
    let queried = out
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::QueryDoor { bank, .. } if bank == "A"))
        .count();
    assert_eq!(queried, 6, "every door of the bank is queried");
    assert!(s.alerts_of(AlertKind::BankOffline).is_empty());
    // A door found open during reconciliation, with nothing authorising it, is a forced open.
    let out = s.obs(Observation::DoorState {
        bank: "A".into(),
        door: 3,
        open: true,
        occupied: Some(false),
    });
    assert!(raised(&out, AlertKind::ForcedOpen));
    assert!(s.compartment("A", 3).door_open);
}

#[test]
fn unlock_in_flight_at_restart_is_never_resent_and_a_person_decides() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    let out = s.pin("A", &d.pin);
    let unlock = unlocks(&out)[0].2.clone();
    // The hub stops before hearing back.
    s.restart();
    assert_eq!(
        s.core.next_deadline(),
        Some(Millis(0)),
        "immediate attention"
    );
    let out = s.tick();
    assert!(unlocks(&out).is_empty());
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::UnlockOutcomeUnknown { .. }
    )));
    assert!(out
        .effects
        .iter()
        .any(|e| matches!(e, Effect::QueryDoor { door, .. } if *door == d.door)));
    assert!(raised(&out, AlertKind::UnlockOutcomeUnknown));
    for _ in 0..5 {
        assert!(unlocks(&s.advance(s.policies.unlock_ack_timeout_ms)).is_empty());
    }
    // Parcels are neither collectable nor collected until someone decides.
    assert!(unlocks(&s.pin("A", &d.pin)).is_empty());
    s.ok(Request::ResolveUnlock {
        by: staff(),
        unlock: unlock.clone(),
        opened: true,
    });
    assert_eq!(s.parcel(&d.parcels[0]).location, Location::PickedUp);
    assert!(s.alerts_of(AlertKind::UnlockOutcomeUnknown).is_empty());
    s.refused(
        Request::ResolveUnlock {
            by: staff(),
            unlock,
            opened: true,
        },
        RejectCode::NotAllowedNow,
    );
}

#[test]
fn unknown_unlock_resolved_as_not_opened_makes_the_code_work_again() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    let unlock = unlocks(&s.pin("A", &d.pin))[0].2.clone();
    s.restart();
    s.tick();
    s.ok(Request::ResolveUnlock {
        by: staff(),
        unlock,
        opened: false,
    });
    assert_eq!(unlocks(&s.pin("A", &d.pin)).len(), 1);
}

#[test]
fn door_seen_open_after_restart_settles_the_unknown_unlock() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    s.pin("A", &d.pin);
    s.restart();
    s.tick();
    let out = s.obs(Observation::DoorState {
        bank: "A".into(),
        door: d.door,
        open: true,
        occupied: None,
    });
    assert!(!raised(&out, AlertKind::ForcedOpen));
    assert_eq!(s.parcel(&d.parcels[0]).location, Location::PickedUp);
    assert!(s.alerts_of(AlertKind::UnlockOutcomeUnknown).is_empty());
}

#[test]
fn occupancy_report_contradicting_the_record_raises_inconsistency_without_overwrite() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    let out = s.obs(Observation::DoorState {
        bank: "A".into(),
        door: 2,
        open: false,
        occupied: Some(true),
    });
    assert!(raised(&out, AlertKind::Inconsistency));
    assert_eq!(s.compartment("A", 2).status, CompartmentStatus::Free);
    let out = s.obs(Observation::DoorState {
        bank: "A".into(),
        door: d.door,
        open: false,
        occupied: Some(false),
    });
    assert!(raised(&out, AlertKind::Inconsistency));
    assert_eq!(s.compartment("A", d.door).parcels, d.parcels, "record kept");
    // Repeated reports do not pile up alerts.
    let out = s.obs(Observation::DoorState {
        bank: "A".into(),
        door: d.door,
        open: false,
        occupied: Some(false),
    });
    assert!(!raised(&out, AlertKind::Inconsistency));
    // The audit walk settles it and clears the alert.
    s.ok(Request::AuditRecord {
        by: staff(),
        bank: "A".into(),
        door: d.door,
        finding: AuditFinding::FoundEmpty,
    });
    assert_eq!(s.alerts_of(AlertKind::Inconsistency).len(), 1);
}

// Refrigerated units (alarms with delay and hysteresis, silence, door, perishables,
// summaries) are tested in `cold.rs`.

#[test]
fn repeated_or_unknown_door_reports_change_nothing() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    assert!(s.closed("A", d.door).facts.is_empty());
    assert!(s.opened("Z", 1).facts.is_empty());
    assert!(s.acked("A", d.door).facts.is_empty());
    s.pin("A", &d.pin);
    s.opened("A", d.door);
    assert!(s.opened("A", d.door).facts.is_empty());
}

#[test]
fn controller_reconnecting_after_a_hub_restart_is_reconciled() {
    let mut s = Site::new();
    let d = s.deliver("B", "r1", Size::Medium, 1);
    s.restart();
    let out = s.obs(Observation::ControllerOnline { bank: "B".into() });
    assert!(out.facts.is_empty(), "the bank was never offline");
    let queried: Vec<u16> = out
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::QueryDoor { door, .. } => Some(*door),
            _ => None,
        })
        .collect();
    assert_eq!(queried, vec![1, 2]);
    // The parcel went missing while the hub was down: flagged, not overwritten.
    let out = s.obs(Observation::DoorState {
        bank: "B".into(),
        door: d.door,
        open: false,
        occupied: Some(false),
    });
    assert!(raised(&out, AlertKind::Inconsistency));
}

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
fn an_unanswered_unlock_is_never_resent_nor_called_failed() {
    let mut s = Site::new();
    let out = s.start_drop_off("A", "r1", Size::Small);
    let Outcome::Reserved { reservation, .. } = outcome(&out) else {
        panic!()
    };
    let (_, _, unlock, deadline) = unlock_effects(&out)[0].clone();
    let p = s.policies.clone();
    assert_eq!(
        deadline,
        s.now.plus(p.unlock_deadline_ms),
        "every unlock carries its deadline"
    );
    let silent_until = p.unlock_deadline_ms + p.unlock_ack_timeout_ms;
    assert_eq!(s.core.next_deadline(), Some(s.now.plus(silent_until)));
    let out = s.advance(silent_until);
    assert!(unlocks(&out).is_empty(), "never re-sent");
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::UnlockOutcomeUnknown { .. }
    )));
    assert!(!has_fact(&out, |k| matches!(
        k,
        FactKind::UnlockFailed { .. }
    )));
    assert!(!s.compartment("A", 1).out_of_service);
    assert!(kiosk_told(&out, |u| matches!(
        u,
        KioskUpdate::DoorMayBeOpen { door: 1 }
    )));
    assert!(queried(&out).contains(&1), "the door is asked about");
    // Staff hear of it only if it is still unknown after the grace period.
    assert!(!raised(&out, AlertKind::UnlockOutcomeUnknown));
    let out = s.advance(p.alert_grace_ms);
    assert!(raised(&out, AlertKind::UnlockOutcomeUnknown));
    assert!(unlocks(&out).is_empty());
    // The door is seen open: the unknown was the unlock's doing, and the drop-off goes on.
    let out = s.opened("A", 1);
    assert!(has_fact(
        &out,
        |k| matches!(k, FactKind::DoorOpened { unlock: Some(u) } if *u == unlock)
    ));
    assert!(!raised(&out, AlertKind::ForcedOpen));
    assert!(s.alerts_of(AlertKind::UnlockOutcomeUnknown).is_empty());
    s.ok(Request::ConfirmParcel {
        reservation,
        tracking: None,
    });
    let out = s.closed("A", 1);
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::DeliveryCompleted { .. }
    )));
}

#[test]
fn a_board_that_cannot_pulse_takes_the_compartment_out_of_service_and_another_is_offered() {
    let mut s = Site::new();
    let out = s.start_drop_off("A", "r1", Size::Small);
    let Outcome::Reserved { reservation, .. } = outcome(&out) else {
        panic!()
    };
    let out = s.not_pulsed("A", 1, UnlockReport::Failed);
    assert!(unlocks(&out).is_empty(), "never re-sent");
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
fn a_failed_unlock_with_nothing_else_free_sends_the_parcel_to_the_desk() {
    let mut s = Site::new();
    s.deliver("B", "r3", Size::Large, 1); // B door 2 taken
    let out = s.start_drop_off("B", "r1", Size::Small);
    let Outcome::Reserved { door: 1, .. } = outcome(&out) else {
        panic!("{out:?}")
    };
    let last = s.not_pulsed("B", 1, UnlockReport::Failed);
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
fn a_pickup_whose_board_went_silent_completes_when_the_door_is_seen_open() {
    // The board goes silent just as the pickup arrives: the frame left, nobody confirmed. The
    // resident is told to check the door; when the board answers again the door is open, and
    // that is the pickup, not tamper.
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    let out = s.pin("A", &d.pin);
    let unlock = unlocks(&out)[0].2.clone();
    let out = s.not_pulsed("A", d.door, UnlockReport::Unknown);
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::UnlockOutcomeUnknown { .. }
    )));
    assert!(!has_fact(&out, |k| matches!(
        k,
        FactKind::UnlockFailed { .. }
    )));
    assert!(kiosk_told(
        &out,
        |u| matches!(u, KioskUpdate::DoorMayBeOpen { door } if *door == d.door)
    ));
    assert!(!kiosk_told(&out, |u| matches!(
        u,
        KioskUpdate::PickupDoorFailed { .. }
    )));
    assert!(!s.compartment("A", d.door).out_of_service);
    let p = s.parcel(&d.parcels[0]);
    assert!(matches!(p.location, Location::Compartment { .. }));
    let out = s.advance(1_500);
    assert!(unlocks(&out).is_empty());
    let out = s.obs(Observation::DoorState {
        bank: "A".into(),
        door: d.door,
        open: true,
        occupied: None,
    });
    assert!(has_fact(
        &out,
        |k| matches!(k, FactKind::DoorOpened { unlock: Some(u) } if *u == unlock)
    ));
    assert!(!raised(&out, AlertKind::ForcedOpen));
    assert_eq!(s.parcel(&d.parcels[0]).location, Location::PickedUp);
    // Nothing for staff to do: it was resolved before the grace period ended.
    let out = s.advance(s.policies.alert_grace_ms * 2);
    assert!(!raised(&out, AlertKind::UnlockOutcomeUnknown));
    assert!(s.alerts_of(AlertKind::UnlockOutcomeUnknown).is_empty());
}

#[test]
fn a_door_that_opens_soon_after_a_failed_unlock_is_that_unlocks_doing() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    let out = s.pin("A", &d.pin);
    let unlock = unlocks(&out)[0].2.clone();
    s.not_pulsed("A", d.door, UnlockReport::Failed);
    s.advance(2_000);
    let out = s.opened("A", d.door);
    assert!(has_fact(
        &out,
        |k| matches!(k, FactKind::DoorOpened { unlock: Some(u) } if *u == unlock)
    ));
    assert!(!raised(&out, AlertKind::ForcedOpen));
    assert_eq!(s.parcel(&d.parcels[0]).location, Location::PickedUp);
    s.closed("A", d.door);
    // Long after, a door opening with nothing behind it is tamper again.
    s.advance(s.policies.open_window_ms + 1);
    let out = s.opened("A", d.door);
    assert!(raised(&out, AlertKind::ForcedOpen));
}

#[test]
fn an_unlock_not_sent_in_time_leaves_the_door_as_it_was_and_the_person_tries_again() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    s.pin("A", &d.pin);
    let out = s.not_pulsed("A", d.door, UnlockReport::NotSent);
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::UnlockNotSent { .. }
    )));
    assert!(kiosk_told(
        &out,
        |u| matches!(u, KioskUpdate::DoorNotOpened { door } if *door == d.door)
    ));
    assert!(out
        .effects
        .iter()
        .all(|e| !matches!(e, Effect::RaiseAlert { .. })));
    assert!(!s.compartment("A", d.door).out_of_service);
    // The resident asks again: a new unlock, a new deadline.
    let out = s.pin("A", &d.pin);
    assert_eq!(unlocks(&out).len(), 1);
    // A drop-off whose unlock was not sent keeps its reservation; the carrier re-opens it.
    let out = s.start_drop_off("A", "r2", Size::Small);
    let Outcome::Reserved {
        reservation, door, ..
    } = outcome(&out)
    else {
        panic!("{out:?}")
    };
    let out = s.not_pulsed("A", door, UnlockReport::NotSent);
    assert!(out.effects.iter().any(|e| matches!(e, Effect::Kiosk {
        reservation: Some(r),
        update: KioskUpdate::DoorNotOpened { .. },
        ..
    } if *r == reservation)));
    assert!(matches!(
        s.ok(Request::OpenReservation { reservation }),
        Outcome::Reserved { .. }
    ));
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
    assert!(has_fact(&out, |k| matches!(k, FactKind::BankOffline)));
    assert!(
        !raised(&out, AlertKind::BankOffline),
        "staff hear of it after the grace period"
    );
    assert!(out
        .effects
        .iter()
        .any(|e| matches!(e, Effect::PublishBank { bank } if bank == "A")));
    let out = s.advance(s.policies.alert_grace_ms);
    assert!(raised(&out, AlertKind::BankOffline));
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
    let asked: Vec<(String, Vec<u16>)> = out
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::QueryDoors { bank, doors } => Some((bank.clone(), doors.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        asked,
        vec![("A".to_owned(), (1..=6).collect())],
        "every door of the bank is queried, in one command"
    );
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
    assert!(queried(&out).contains(&d.door));
    assert!(raised(&out, AlertKind::UnlockOutcomeUnknown));
    for _ in 0..5 {
        assert!(unlocks(&s.advance(s.policies.unlock_ack_timeout_ms)).is_empty());
    }
    // Parcels are not recorded collected until someone decides; the resident at the closed
    // door may ask again (a new unlock, not a re-send of the old one).
    assert!(matches!(
        s.parcel(&d.parcels[0]).location,
        Location::Compartment { .. }
    ));
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
    assert_eq!(queried(&out), vec![1, 2]);
    // The parcel went missing while the hub was down: flagged, not overwritten.
    let out = s.obs(Observation::DoorState {
        bank: "B".into(),
        door: d.door,
        open: false,
        occupied: Some(false),
    });
    assert!(raised(&out, AlertKind::Inconsistency));
}

fn queried(out: &Output) -> Vec<u16> {
    out.effects
        .iter()
        .filter_map(|e| match e {
            Effect::QueryDoors { doors, .. } => Some(doors.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn kiosk_told(out: &Output, pred: impl Fn(&KioskUpdate) -> bool) -> bool {
    out.effects.iter().any(|e| match e {
        Effect::Kiosk { update, .. } => pred(update),
        _ => false,
    })
}

#[test]
fn a_short_outage_raises_no_alert_unless_someone_is_turned_away() {
    let mut s = Site::new();
    // Offline and back within the grace period: facts, but no alert raised and cleared.
    let out = s.obs(Observation::ControllerOffline { bank: "A".into() });
    assert!(has_fact(&out, |k| matches!(k, FactKind::BankOffline)));
    s.advance(s.policies.alert_grace_ms / 2);
    let out = s.obs(Observation::ControllerOnline { bank: "A".into() });
    assert!(has_fact(&out, |k| matches!(k, FactKind::BankOnline)));
    let out = s.advance(s.policies.alert_grace_ms * 2);
    assert!(!raised(&out, AlertKind::BankOffline));
    // A board silent for a moment: the same.
    let out = s.obs(Observation::DoorsUnreachable {
        bank: "A".into(),
        doors: vec![1, 2],
    });
    assert!(!raised(&out, AlertKind::DoorsUnreachable));
    s.advance(1_000);
    s.obs(Observation::DoorsUnreachable {
        bank: "A".into(),
        doors: vec![],
    });
    let out = s.advance(s.policies.alert_grace_ms * 2);
    assert!(!raised(&out, AlertKind::DoorsUnreachable));
    assert!(s.alerts_of(AlertKind::DoorsUnreachable).is_empty());
    // One that lasts is alerted once, and once only, even after staff acknowledge it.
    s.obs(Observation::DoorsUnreachable {
        bank: "A".into(),
        doors: vec![3],
    });
    let out = s.advance(s.policies.alert_grace_ms);
    assert!(raised(&out, AlertKind::DoorsUnreachable));
    // A resident turned away by an outage: staff hear of it at once.
    let d = s.deliver("B", "r1", Size::Small, 1);
    s.obs(Observation::ControllerOffline { bank: "B".into() });
    let out = s.cmd(Request::PickupByPin {
        bank: "B".into(),
        pin: d.pin.clone(),
    });
    assert!(raised(&out, AlertKind::BankOffline));
    let out = s.advance(s.policies.alert_grace_ms * 2);
    assert!(!raised(&out, AlertKind::BankOffline), "once per outage");
}

//! Doors behind a silent board: the bank stays online, but the core stops assigning them, shows
//! them offline and keeps one alert open naming them until the board answers again.

mod common;

use common::*;
use locker_core::*;

fn unreachable(s: &mut Site, bank: &str, doors: &[u16]) -> Output {
    s.obs(Observation::DoorsUnreachable {
        bank: bank.into(),
        doors: doors.to_vec(),
    })
}

fn reserved_door(out: &Output) -> u16 {
    match outcome(out) {
        Outcome::Reserved { door, .. } => door,
        other => panic!("not reserved: {other:?}"),
    }
}

#[test]
fn assignment_skips_unreachable_doors_and_uses_them_again_once_reachable() {
    let mut s = Site::new();
    let out = unreachable(&mut s, "A", &[1, 2]);
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::DoorsUnreachable { doors } if doors == &vec![1, 2]
    )));
    assert!(!has_fact(&out, |k| matches!(k, FactKind::BankOnline)));
    assert_eq!(s.compartment("A", 1).status, CompartmentStatus::Offline);
    assert_eq!(s.compartment("A", 3).status, CompartmentStatus::Free);
    // Small ambient would be door 1; the smallest reachable ambient door that fits is 6.
    let door = reserved_door(&s.start_drop_off("A", "r1", Size::Small));
    assert_eq!(door, 6);

    s.advance(1_000);
    let out = unreachable(&mut s, "A", &[]);
    assert!(has_fact(&out, |k| matches!(
        k,
        FactKind::DoorsUnreachable { doors } if doors.is_empty()
    )));
    assert_eq!(s.compartment("A", 1).status, CompartmentStatus::Free);
    let door = reserved_door(&s.start_drop_off("A", "r3", Size::Small));
    assert_eq!(door, 1);
}

#[test]
fn one_alert_while_doors_are_unreachable_replaced_when_the_set_changes_and_cleared_when_empty() {
    let mut s = Site::new();
    let out = unreachable(&mut s, "A", &[5, 6, 2, 3]);
    assert!(
        !raised(&out, AlertKind::DoorsUnreachable),
        "not before the grace period"
    );
    let out = s.advance(s.policies.alert_grace_ms);
    assert!(raised(&out, AlertKind::DoorsUnreachable));
    let open = s.alerts_of(AlertKind::DoorsUnreachable);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].bank.as_deref(), Some("A"));
    assert_eq!(
        open[0].message,
        "board of bank A silent: doors 2–3, 5–6 cannot be opened"
    );

    // The same set again (a repeated retained status) records nothing.
    s.advance(1_000);
    let out = unreachable(&mut s, "A", &[2, 3, 5, 6]);
    assert!(out.facts.is_empty(), "{:?}", out.facts);

    // Unknown doors are dropped; a changed set replaces the alert.
    let out = unreachable(&mut s, "A", &[4, 99]);
    assert!(raised(&out, AlertKind::DoorsUnreachable));
    let open = s.alerts_of(AlertKind::DoorsUnreachable);
    assert_eq!(open.len(), 1);
    assert_eq!(
        open[0].message,
        "board of bank A silent: door 4 cannot be opened"
    );

    s.advance(1_000);
    unreachable(&mut s, "A", &[]);
    assert!(s.alerts_of(AlertKind::DoorsUnreachable).is_empty());
    // Bank B was never affected.
    unreachable(&mut s, "B", &[2]);
    s.advance(s.policies.alert_grace_ms);
    assert_eq!(s.alerts_of(AlertKind::DoorsUnreachable).len(), 1);
    assert_eq!(s.compartment("A", 4).status, CompartmentStatus::Free);
    assert_eq!(s.compartment("B", 2).status, CompartmentStatus::Offline);
}

#[test]
fn the_whole_bank_going_offline_takes_over_from_the_door_alert() {
    let mut s = Site::new();
    unreachable(&mut s, "A", &[1, 2]);
    s.advance(s.policies.alert_grace_ms);
    assert_eq!(s.alerts_of(AlertKind::DoorsUnreachable).len(), 1);
    s.obs(Observation::ControllerOffline { bank: "A".into() });
    assert!(s.alerts_of(AlertKind::DoorsUnreachable).is_empty());
    let out = s.advance(s.policies.alert_grace_ms);
    assert!(raised(&out, AlertKind::BankOffline));
    assert_eq!(s.alerts_of(AlertKind::BankOffline).len(), 1);

    // Back with one board still silent: online again, and the door alert returns once the
    // silence has lasted.
    s.advance(1_000);
    let out = unreachable(&mut s, "A", &[2]);
    assert!(has_fact(&out, |k| matches!(k, FactKind::BankOnline)));
    assert!(s.alerts_of(AlertKind::BankOffline).is_empty());
    s.advance(s.policies.alert_grace_ms);
    assert_eq!(s.alerts_of(AlertKind::DoorsUnreachable).len(), 1);
    assert_eq!(s.compartment("A", 2).status, CompartmentStatus::Offline);
    assert_eq!(s.compartment("A", 1).status, CompartmentStatus::Free);
}

#[test]
fn replaying_the_facts_reproduces_unreachable_doors_and_the_alert() {
    let mut s = Site::new();
    unreachable(&mut s, "A", &[1, 2]);
    s.advance(1_000);
    unreachable(&mut s, "A", &[2]);
    let before = (
        s.core.compartments(),
        s.alerts_of(AlertKind::DoorsUnreachable),
    );
    s.restart();
    let after = (
        s.core.compartments(),
        s.alerts_of(AlertKind::DoorsUnreachable),
    );
    assert_eq!(before, after);
    assert_eq!(s.compartment("A", 2).status, CompartmentStatus::Offline);
    // Still skipped after the restart: medium ambient would be door 2.
    let door = reserved_door(&s.start_drop_off("A", "r1", Size::Medium));
    assert_eq!(door, 6);
    // And the fold knows the set, so the same report records nothing new.
    let out = unreachable(&mut s, "A", &[2]);
    assert!(out.facts.is_empty());
}

fn queried(out: &Output, bank: &str) -> Vec<u16> {
    out.effects
        .iter()
        .filter_map(|e| match e {
            Effect::QueryDoors { bank: b, doors } if b == bank => Some(doors.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn doors_of_a_silent_board_are_never_queried_and_come_back_with_a_query() {
    let mut s = Site::new();
    // A board going silent while the bank is online: nothing to reconcile, and queries to the
    // silent board would only hold up the bus.
    let out = unreachable(&mut s, "A", &[4, 5, 6]);
    assert_eq!(queried(&out, "A"), Vec::<u16>::new());
    // The same status again (the controller or the hub reconnected): every reachable door.
    s.advance(1_000);
    let out = unreachable(&mut s, "A", &[4, 5, 6]);
    assert_eq!(queried(&out, "A"), vec![1, 2, 3]);
    // The board answers again: only its doors need a look.
    let out = unreachable(&mut s, "A", &[]);
    assert_eq!(queried(&out, "A"), vec![4, 5, 6]);
    // Back from offline with a board still silent: the reachable doors.
    s.obs(Observation::ControllerOffline { bank: "A".into() });
    let out = unreachable(&mut s, "A", &[1]);
    assert_eq!(queried(&out, "A"), vec![2, 3, 4, 5, 6]);
}

#[test]
fn a_pickup_whose_only_door_is_unreachable_is_told_at_once_and_the_pin_stays_live() {
    let mut s = Site::new();
    let d = s.deliver("A", "r1", Size::Small, 1);
    assert_eq!(d.door, 1);
    unreachable(&mut s, "A", &[1]);
    let out = s.pin("A", &d.pin);
    assert!(unlocks(&out).is_empty(), "no unlock sent to a silent board");
    match outcome(&out) {
        Outcome::Rejected(r) => {
            assert_eq!(r.code, RejectCode::BankOffline);
            assert!(r.message.contains("front desk"), "{}", r.message);
        }
        other => panic!("{other:?}"),
    }
    // Someone was turned away: staff hear of the silent board now, not after the grace.
    assert!(raised(&out, AlertKind::DoorsUnreachable));
    // Once the board answers, the same PIN opens the door.
    s.advance(60_000);
    unreachable(&mut s, "A", &[]);
    let out = s.pin("A", &d.pin);
    assert_eq!(unlocks(&out).len(), 1, "{out:?}");
}

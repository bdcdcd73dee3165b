//! Conflict rules between concurrent facts of two replicas: what physically happened wins over
//! what someone intended. One named test per rule (see `src/conflict.rs`).

mod common;

use common::*;
use locker_core::*;

/// Both replicas exchange facts and must then agree on everything.
fn sync(a: &mut Site, b: &mut Site) -> (Output, Output) {
    let oa = a.merge_from(b);
    let ob = b.merge_from(a);
    assert_eq!(a.core.compartments(), b.core.compartments());
    assert_eq!(a.core.parcels(), b.core.parcels());
    assert_eq!(a.core.alerts(), b.core.alerts());
    (oa, ob)
}

fn conflicts(s: &Site) -> Vec<Alert> {
    s.alerts_of(AlertKind::Conflict)
}

fn reassign(s: &mut Site, parcels: &[ParcelId], to: &str) {
    s.ok(Request::ReassignParcels {
        by: Operator::Cloud,
        parcels: parcels.to_vec(),
        to: to.into(),
    });
}

#[test]
fn pickup_beats_concurrent_reassignment() {
    // The other hub reassigns first (earlier fact ids; the cloud asks a hub, it never writes the
    // fact itself); this hub, offline, lets r1 collect with the
    // old code afterwards.
    let mut hub = Site::new();
    let d = hub.deliver("A", "r1", Size::Small, 1);
    let mut cloud = hub.replica("hub2", 9);
    cloud.now = cloud.now.plus(5_000);
    reassign(&mut cloud, &d.parcels, "r3");
    hub.now = hub.now.plus(10_000);
    hub.collect(&d);

    let (on_hub, on_cloud) = sync(&mut hub, &mut cloud);
    let p = hub.parcel(&d.parcels[0]);
    assert_eq!(p.location, Location::PickedUp);
    assert_eq!(
        p.resident,
        Some("r1".into()),
        "collected by r1, whatever the cloud intended"
    );
    let c = conflicts(&hub);
    assert_eq!(c.len(), 1);
    assert!(c[0].message.contains("voided"), "{}", c[0].message);
    assert!(on_cloud.effects.iter().any(|e| matches!(
        e,
        Effect::RaiseAlert {
            kind: AlertKind::Conflict,
            ..
        }
    )));
    assert!(on_hub.effects.iter().any(|e| matches!(
        e,
        Effect::RaiseAlert {
            kind: AlertKind::Conflict,
            ..
        }
    )));
    // The code the cloud issued to r3 opens nothing.
    let r3_pin = cloud
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Notify {
                resident,
                pin: Some(p),
                ..
            } if resident.as_str() == "r3" => Some(p.clone()),
            _ => None,
        })
        .expect("cloud issued r3 a code");
    assert!(unlocks(&hub.pin("A", &r3_pin)).is_empty());
    assert_eq!(hub.compartment("A", d.door).status, CompartmentStatus::Free);
}

#[test]
fn reassignment_of_collected_parcel_is_voided() {
    // The pickup happened first; the cloud's later reassignment meets a parcel already gone.
    let mut hub = Site::new();
    let d = hub.deliver("A", "r1", Size::Small, 1);
    let mut cloud = hub.replica("hub2", 9);
    hub.now = hub.now.plus(5_000);
    hub.collect(&d);
    cloud.now = cloud.now.plus(10_000);
    reassign(&mut cloud, &d.parcels, "r3");

    sync(&mut hub, &mut cloud);
    let p = cloud.parcel(&d.parcels[0]);
    assert_eq!(
        (p.location, p.resident),
        (Location::PickedUp, Some("r1".into()))
    );
    let c = conflicts(&cloud);
    assert_eq!(c.len(), 1);
    assert!(
        c[0].message.contains("already picked up"),
        "{}",
        c[0].message
    );
}

#[test]
fn two_hubs_reserving_one_compartment_delivery_wins() {
    let mut a = Site::new();
    let mut b = a.replica("hub2", 7);
    // Both reserve bank B door 1 before hearing of each other; hub2's reservation is earlier.
    let rb = b.start_drop_off("B", "r3", Size::Small);
    let Outcome::Reserved {
        door: 1,
        reservation: lost,
        ..
    } = outcome(&rb)
    else {
        panic!("{rb:?}")
    };
    a.now = a.now.plus(1_000);
    b.now = a.now;
    let d = a.deliver("B", "r1", Size::Small, 1);
    assert_eq!(d.door, 1);

    sync(&mut a, &mut b);
    let c = a.compartment("B", 1);
    assert_eq!(c.status, CompartmentStatus::Occupied);
    assert_eq!(c.resident, Some("r1".into()));
    assert_eq!(c.reservation, None, "the other reservation was released");
    assert_eq!(conflicts(&a).len(), 1);
    assert!(conflicts(&a)[0].message.contains(lost.as_str()));
    // hub2's carrier can no longer use the lost reservation.
    b.refused(
        Request::ConfirmParcel {
            reservation: lost,
            tracking: None,
        },
        RejectCode::NotAllowedNow,
    );
}

#[test]
fn two_deliveries_into_one_compartment_are_disputed() {
    let mut a = Site::new();
    let mut b = a.replica("hub2", 7);
    let first = b.deliver("B", "r3", Size::Small, 1);
    a.now = a.now.plus(1_000);
    b.now = a.now;
    let second = a.deliver("B", "r1", Size::Small, 1);
    assert_eq!((first.door, second.door), (1, 1));

    sync(&mut a, &mut b);
    // The earlier delivery holds the compartment; the later one's parcel is disputed, so no
    // compartment ever holds two residents' parcels.
    assert!(matches!(
        a.parcel(&first.parcels[0]).location,
        Location::Compartment { .. }
    ));
    assert_eq!(
        a.parcel(&second.parcels[0]).location,
        Location::Disputed {
            bank: "B".into(),
            door: 1
        }
    );
    assert_eq!(a.compartment("B", 1).status, CompartmentStatus::Disputed);
    assert!(!conflicts(&a).is_empty());
    // Staff sort it out by taking everything to the package room.
    let out = a.cmd(Request::RemoveParcels {
        by: staff(),
        bank: "B".into(),
        door: 1,
        disposition: Disposition::PackageRoom,
        reason: "disputed delivery".into(),
    });
    assert_eq!(unlocks(&out).len(), 1);
    a.acked("B", 1);
    a.opened("B", 1);
    assert_eq!(a.parcel(&first.parcels[0]).location, Location::Desk);
    assert_eq!(a.parcel(&second.parcels[0]).location, Location::Desk);
}

#[test]
fn merging_the_same_facts_twice_changes_nothing() {
    let mut a = Site::new();
    let mut b = a.replica("hub2", 7);
    b.deliver("B", "r3", Size::Small, 1);
    sync(&mut a, &mut b);
    let before = a.core.compartments();
    let facts: Vec<Fact> = b.log.clone();
    let out = a.core.merge(a.now, facts, &mut a.rng);
    assert!(out.effects.is_empty());
    assert_eq!(a.core.compartments(), before);
}

#[test]
fn facts_merged_from_a_replica_with_a_later_clock_keep_local_ids_ordered() {
    let mut a = Site::new();
    let mut b = a.replica("hub2", 7);
    b.now = b.now.plus(DAY); // hub2's clock is a day ahead
    b.deliver("B", "r3", Size::Small, 1);
    a.merge_from(&b);
    let out = a.start_drop_off("A", "r1", Size::Small);
    let newest_remote = b.log.iter().map(|f| f.id.clone()).max();
    for f in &out.facts {
        assert!(
            Some(&f.id) > newest_remote.as_ref(),
            "{} sorts after remote facts",
            f.id
        );
        assert_eq!(f.at, a.now, "the fact keeps the real time");
    }
    // And the incrementally applied state equals a fresh fold.
    let fresh = Core::new(layout(), a.policies.clone(), KEY, "hub1", a.log.clone());
    assert_eq!(fresh.compartments(), a.core.compartments());
}

#[test]
fn reassignment_that_would_split_a_compartment_is_voided() {
    // Two hubs deliver to r2 in the same (accessible) compartment before syncing; one then
    // reassigns only the parcel it knows about.
    let mut a = Site::new();
    let mut b = a.replica("hub2", 7);
    let first = b.deliver("A", "r2", Size::Small, 1);
    a.now = a.now.plus(1_000);
    b.now = a.now;
    let second = a.deliver("A", "r2", Size::Small, 1);
    assert_eq!(first.door, second.door);
    b.now = b.now.plus(1_000);
    reassign(&mut b, &first.parcels, "r3");

    sync(&mut a, &mut b);
    assert_eq!(a.parcel(&first.parcels[0]).resident, Some("r2".into()));
    assert_eq!(a.compartment("A", first.door).resident, Some("r2".into()));
    assert!(conflicts(&a)
        .iter()
        .any(|c| c.message.contains("another resident")));
    // r2's code from the delivery that still stands opens the whole compartment.
    let out = a.pin("A", &second.pin);
    let Outcome::Opening { parcels, .. } = outcome(&out) else {
        panic!("{out:?}")
    };
    assert_eq!(parcels.len(), 2);
}

/// A merge of facts newer than everything folded (a live change from the other hub) folds them
/// one by one instead of folding everything again; the state must be what a fold from scratch
/// gives (a restart), and the same as the other hub's.
#[test]
fn a_live_merge_folds_incrementally_to_the_same_state_as_a_fold_from_scratch() {
    let mut a = Site::new();
    let mut b = a.replica("hub2", 7);
    b.now = b.now.plus(1_000);
    let d = b.deliver("A", "r2", Size::Small, 2);
    b.collect(&d);
    b.deliver("A", "r3", Size::Small, 1);
    a.now = b.now;
    a.merge_from(&b);
    let (compartments, parcels) = (a.core.compartments(), a.core.parcels());
    assert_eq!(compartments, b.core.compartments());
    assert_eq!(parcels, b.core.parcels());
    a.restart();
    assert_eq!(a.core.compartments(), compartments);
    assert_eq!(a.core.parcels(), parcels);
}

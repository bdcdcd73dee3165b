//! Automerge-level access for sync: the sync protocol between two stores, and bad input.

mod common;

use common::*;
use locker_sync::{DocKey, Family, Store, StoreError, SyncState};

type S = Store<Fact>;

#[test]
fn two_stores_converge_over_the_sync_protocol_and_report_new_facts_durably() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _, _) = S::open(da.path(), "hub-a", opts_at(NOV_15)).unwrap();
    let (mut b, _, _) = S::open(db.path(), "hub-b", opts_at(NOV_15)).unwrap();
    let key = DocKey::monthly(Family::Parcels, NOV_15);
    let mut ga = Gen::new("hub-a");
    let mut gb = Gen::new("hub-b");
    let from_a = ga.parcel_life(NOV_15, "pa", 1, false);
    let from_b = gb.parcel_life(NOV_15 + 5, "pb", 2, true);
    a.append(&from_a).unwrap();
    b.append(&from_b).unwrap();

    let (mut sa, mut sb) = (SyncState::new(), SyncState::new());
    let (mut new_at_a, mut new_at_b) = (Vec::new(), Vec::new());
    for _round in 0..10 {
        let ma = a.generate_sync_message(&key, &mut sa).unwrap();
        if let Some(m) = &ma {
            new_at_b.extend(b.receive_sync_message(&key, &mut sb, m).unwrap());
        }
        let mb = b.generate_sync_message(&key, &mut sb).unwrap();
        if let Some(m) = &mb {
            new_at_a.extend(a.receive_sync_message(&key, &mut sa, m).unwrap());
        }
        if ma.is_none() && mb.is_none() {
            break;
        }
    }
    assert_eq!(new_at_a, from_b, "a learns exactly b's facts");
    assert_eq!(new_at_b, from_a, "b learns exactly a's facts");
    assert_eq!(a.heads(&key).unwrap(), b.heads(&key).unwrap());
    drop((a, b));
    // Durable: both come back with the union, and b's picked-up parcel is closed at a too.
    let (_, fa, _) = S::open(da.path(), "hub-a", opts_at(NOV_15)).unwrap();
    let (_, fb, _) = S::open(db.path(), "hub-b", opts_at(NOV_15)).unwrap();
    assert_eq!(fa, fb);
    assert_eq!(fa.len(), from_a.len() + from_b.len());
}

#[test]
fn garbage_changes_are_rejected_with_the_document_named_and_nothing_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _, _) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
    let key = DocKey::monthly(Family::Alerts, NOV_15);
    let mut g = Gen::new("hub-a");
    store
        .append(&[g.fact(NOV_15, None, None, Kind::Alert { what: "x".into() })])
        .unwrap();
    let heads = store.heads(&key).unwrap();

    let err = store
        .merge_changes(&key, b"definitely not automerge")
        .unwrap_err();
    assert!(
        matches!(err, StoreError::BadChanges { ref doc, .. } if doc == "alerts-2026-11"),
        "{err}"
    );

    // A real change, truncated in transit.
    let mut other = Gen::new("hub-b");
    let db = tempfile::tempdir().unwrap();
    let (mut peer, _, _) = S::open(db.path(), "hub-b", opts_at(NOV_15)).unwrap();
    peer.append(&[other.fact(NOV_15 + 1, None, None, Kind::Alert { what: "y".into() })])
        .unwrap();
    let bytes = peer.save(&key).unwrap();
    let err = store
        .merge_changes(&key, &bytes[..bytes.len() - 7])
        .unwrap_err();
    assert!(matches!(err, StoreError::BadChanges { .. }), "{err}");
    assert_eq!(store.heads(&key).unwrap(), heads, "nothing applied");

    let err = store
        .receive_sync_message(&key, &mut SyncState::new(), b"\x42junk")
        .unwrap_err();
    assert!(matches!(err, StoreError::BadChanges { .. }), "{err}");
    assert_eq!(store.facts_in(&key).unwrap().len(), 1);
    // The intact version merges fine afterwards.
    assert_eq!(store.merge_changes(&key, &bytes).unwrap().len(), 1);
}

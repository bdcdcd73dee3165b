//! A large sync message merged off the store's thread (`Store::offload`, `Offload::prepare`,
//! `Store::adopt`): the same facts as merging it in place, what was written here meanwhile
//! kept, everything durable, and a bad message applied nowhere.

mod common;

use common::*;
use locker_sync::{DocKey, Family, PrepareError, Store, SyncState};

type S = Store<Fact>;

/// Hub b's sync message for `key` to a that has nothing of b's facts (a fresh sync state each
/// side): b's first message only says what b has; the second, after a's answer, carries the
/// changes. Returns (a's sync state, the message with the changes).
fn message_with_changes(a: &mut S, b: &mut S, key: &DocKey) -> (SyncState, Vec<u8>) {
    let mut sa = SyncState::new();
    let mut sb = SyncState::new();
    let hello = b.generate_sync_message(key, &mut sb).unwrap().unwrap();
    a.receive_sync_message(key, &mut sa, &hello).unwrap();
    let answer = a.generate_sync_message(key, &mut sa).unwrap().unwrap();
    b.receive_sync_message(key, &mut sb, &answer).unwrap();
    let changes = b.generate_sync_message(key, &mut sb).unwrap().unwrap();
    (sa, changes)
}

#[test]
fn a_message_merged_off_the_thread_gives_what_merging_in_place_gives_and_keeps_local_writes() {
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let key = DocKey::monthly(Family::Parcels, NOV_15);
    let (mut a, mut b, mut c) = (
        open_maple(da.path(), "hub-a"),
        open_maple(db.path(), "hub-b"),
        open_maple(dc.path(), "hub-a"),
    );
    // b worked offline: 200 parcels' lives in the month a also writes in.
    let mut gb = Gen::new("hub-b");
    for i in 0..200u64 {
        b.append(&gb.parcel_life(NOV_15 + i * 1000, &format!("b{i}"), (i % 50) as u32, true))
            .unwrap();
    }
    let mut ga = Gen::new("hub-a");
    let first = ga.parcel_life(NOV_15, "a0", 1, false);
    a.append(&first).unwrap();
    c.append(&first).unwrap();

    // In place, on c (a's twin), for comparison.
    let (mut sc, changes) = message_with_changes(&mut c, &mut b, &key);
    let in_place = c.receive_sync_message(&key, &mut sc, &changes).unwrap();
    assert!(in_place.len() > 500, "{} facts", in_place.len());

    // Off the thread, on a: prepared on another thread while a goes on writing.
    let (sa, changes) = message_with_changes(&mut a, &mut b, &key);
    let offload = a.offload("hub-b", &key, sa, &changes);
    let worker = std::thread::spawn(move || offload.prepare::<Fact>());
    let local = ga.parcel_life(NOV_15 + 5_000_000, "a1", 2, false);
    a.append(&local).unwrap();
    let prepared = worker.join().unwrap().unwrap();
    let adopted = a.adopt(prepared).unwrap();
    let ids = |v: &[Fact]| v.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&adopted),
        ids(&in_place),
        "the same new facts, in id order"
    );

    // Everything is there: a's two parcels and b's, in memory and after a reopen.
    let total = first.len() + local.len() + in_place.len();
    let in_memory = a.facts_in(&key).unwrap();
    assert!(
        in_memory.iter().any(|f| f.id == local[0].id),
        "the local write survived the swap"
    );
    assert_eq!(in_memory.len(), total);
    drop(a);
    let mut a = open_maple(da.path(), "hub-a");
    assert_eq!(a.facts_in(&key).unwrap().len(), total, "durable");

    // A small message on the large document (loaded from disk for the prepare), then a local
    // write: each stores what is new, not the document again.
    let stored = |s: &S| {
        s.documents()
            .iter()
            .find(|d| d.key == key)
            .map(|d| d.stored_bytes)
            .unwrap_or_default()
    };
    let before = stored(&a);
    b.append(&gb.parcel_life(NOV_15 + 900_000, "b-late", 3, false))
        .unwrap();
    let (sa, changes) = message_with_changes(&mut a, &mut b, &key);
    let prepared = a
        .offload("hub-b", &key, sa, &changes)
        .prepare::<Fact>()
        .unwrap();
    assert!(!a.adopt(prepared).unwrap().is_empty());
    a.append(&ga.parcel_life(NOV_15 + 950_000, "a2", 4, false))
        .unwrap();
    let grew = stored(&a) - before;
    assert!(
        grew < before / 10,
        "{grew} bytes for two parcels on a document of {before}"
    );
    // A message that brings nothing new: no facts.
    let mut sb = SyncState::new();
    let hello = b.generate_sync_message(&key, &mut sb).unwrap().unwrap();
    let again = a
        .offload("hub-b", &key, SyncState::new(), &hello)
        .prepare::<Fact>()
        .unwrap();
    assert!(a.adopt(again).unwrap().is_empty());
}

#[test]
fn a_bad_message_prepared_off_the_thread_applies_nothing() {
    let da = tempfile::tempdir().unwrap();
    let key = DocKey::monthly(Family::Parcels, NOV_15);
    let mut a = open_maple(da.path(), "hub-a");
    a.append(&Gen::new("hub-a").parcel_life(NOV_15, "a0", 1, false))
        .unwrap();
    let before = a.heads(&key).unwrap();
    let bad = a.offload("hub-b", &key, SyncState::new(), b"\x42 not a sync message");
    assert!(matches!(
        bad.prepare::<Fact>(),
        Err(PrepareError::BadMessage(_))
    ));
    assert_eq!(a.heads(&key).unwrap(), before);
}

/// Two sessions, a merging every message over 1 KiB on another thread: they converge as
/// sessions that merge in place do, and the session took no frame while a merge was out.
#[test]
fn a_session_that_merges_large_messages_elsewhere_converges() {
    use locker_sync::{Session, Step};
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = DocKey::monthly(Family::Parcels, NOV_15);
    let (mut a, mut b) = (
        open_maple(da.path(), "hub-a"),
        open_maple(db.path(), "hub-b"),
    );
    let mut gb = Gen::new("hub-b");
    for i in 0..200u64 {
        b.append(&gb.parcel_life(NOV_15 + i * 1000, &format!("b{i}"), (i % 50) as u32, true))
            .unwrap();
    }
    let mut ga = Gen::new("hub-a");
    for i in 0..20u64 {
        a.append(&ga.parcel_life(NOV_15 + i * 1000, &format!("a{i}"), (i % 50) as u32, true))
            .unwrap();
    }
    let (mut sa, join) = Session::dial(session_cfg("hub-a", "hub-b", Some(1024)), NOV_15);
    let mut sb = Session::accept(session_cfg("hub-b", "hub-a", None), NOV_15);
    let (mut to_b, mut to_a) = (vec![join], Vec::<Vec<u8>>::new());
    let mut offloads = 0;
    while !(to_a.is_empty() && to_b.is_empty()) {
        for frame in std::mem::take(&mut to_b) {
            let step: Step<Fact> = sb.receive(&mut b, NOV_15, &frame).unwrap();
            assert!(step.close.is_none(), "{:?}", step.close);
            to_a.extend(step.send);
        }
        for frame in std::mem::take(&mut to_a) {
            assert!(!sa.is_merging(), "a frame given while a merge was out");
            let mut step: Step<Fact> = sa.receive(&mut a, NOV_15, &frame).unwrap();
            while let Some(offload) = step.offload.take() {
                offloads += 1;
                assert!(sa.is_merging());
                to_b.extend(std::mem::take(&mut step.send));
                let prepared = std::thread::spawn(move || offload.prepare::<Fact>())
                    .join()
                    .unwrap();
                step = sa.merged(&mut a, NOV_15, prepared).unwrap();
            }
            assert!(step.close.is_none(), "{:?}", step.close);
            to_b.extend(step.send);
        }
    }
    assert!(offloads > 0, "nothing was large enough to offload");
    let ids = |s: &mut S| {
        let mut v: Vec<String> = s
            .facts_in(&key)
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&mut a), ids(&mut b), "converged");
    let heads = |s: &mut S| {
        let mut h = s.heads(&key).unwrap();
        h.sort();
        h
    };
    assert_eq!(heads(&mut a), heads(&mut b), "the same document");
}

//! Crash safety at rest: damaged document chunks and an unreadable database file are reported
//! (which table, which document), set aside, and the store starts with what is intact.

mod common;

use common::*;
use locker_sync::{DocKey, Family, Store, StoreOptions};

type S = Store<Fact>;

fn opts() -> StoreOptions {
    StoreOptions {
        now_ms: Some(NOV_15),
        compact_hard_limit: 1_000_000,
        ..Default::default()
    }
}

/// Three appends to November's parcels, then the caller damages one stored chunk.
fn three_chunks(dir: &std::path::Path, picked_up: bool) -> (Vec<Vec<Fact>>, String) {
    let mut g = Gen::new("hub-a");
    let batches: Vec<Vec<Fact>> = (0..3)
        .map(|i| g.parcel_life(NOV_15 + i * 1000, &format!("p{i}"), i as u32, picked_up))
        .collect();
    let (mut store, _, _) = S::open(dir, "hub-a", opts()).unwrap();
    for b in &batches {
        store.append(b).unwrap();
    }
    let id = store.doc_id(&DocKey::monthly(Family::Parcels, NOV_15));
    (batches, id)
}

#[test]
fn a_damaged_incremental_chunk_is_quarantined_and_the_rest_loads() {
    let dir = tempfile::tempdir().unwrap();
    // Finished parcels (the lost chunk's facts are nowhere else).
    let (batches, doc_id) = three_chunks(dir.path(), true);
    // Find the chunk holding the second batch and flip a byte in its middle.
    let (victim, original) = {
        let (store, _, _) = S::open(dir.path(), "hub-a", opts()).unwrap();
        let chunks = store.chunk_store();
        let rows = chunks.load_range(&format!("{doc_id}/incremental")).unwrap();
        assert_eq!(rows.len(), 3);
        let needle = batches[1][0].id.as_bytes();
        let (key, bytes) = rows
            .into_iter()
            .find(|(_, b)| b.windows(needle.len()).any(|w| w == needle))
            .expect("chunk of batch 1");
        let mut bad = bytes.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        chunks.put(&key, &bad).unwrap();
        (key, bytes)
    };
    let (store, loaded, report) = S::open(dir.path(), "hub-a", opts()).unwrap();
    assert_eq!(report.quarantined.len(), 1, "{report}");
    let q = &report.quarantined[0];
    assert_eq!(
        (q.table.as_str(), q.document.as_str(), q.key.as_str()),
        ("chunks", "parcels-2026-11", victim.as_str())
    );
    assert!(
        report
            .to_string()
            .contains("QUARANTINED table chunks document parcels-2026-11"),
        "{report}"
    );
    // Batches 0 and 2 are intact. Batch 2's chunk depends on batch 1's change, so it waits.
    let ids: Vec<&str> = loaded.iter().map(|f| f.id.as_str()).collect();
    for f in &batches[0] {
        assert!(ids.contains(&f.id.as_str()));
    }
    for f in &batches[1] {
        assert!(!ids.contains(&f.id.as_str()));
    }
    assert_eq!(report.missing_deps.len(), 1, "{report}");
    // The damaged bytes are kept, not lost; the chunk row is gone.
    assert_eq!(store.chunk_store().load(&victim).unwrap(), None);
    drop(store);
    // Restoring the original chunk (e.g. sync brings the change back) heals the document.
    {
        let (store, _, _) = S::open(dir.path(), "hub-a", opts()).unwrap();
        store.chunk_store().put(&victim, &original).unwrap();
    }
    let (_, loaded, report) = S::open(dir.path(), "hub-a", opts()).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(loaded.len(), 12);
}

#[test]
fn a_truncated_snapshot_is_quarantined_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    // Parcels still in their lockers: the damaged snapshot held their facts all the same.
    let (_, doc_id) = three_chunks(dir.path(), false);
    let key = DocKey::monthly(Family::Parcels, NOV_15);
    {
        let (mut store, _, _) = S::open(dir.path(), "hub-a", opts()).unwrap();
        store.compact(&key).unwrap();
        // One more fact after the snapshot, in its own chunk.
        let mut g = Gen::new("hub-a");
        g.counter = 100;
        store
            .append(&[g.fact(
                NOV_15 + 50,
                None,
                None,
                Kind::Alert {
                    what: "late".into(),
                },
            )])
            .unwrap();
        let chunks = store.chunk_store();
        let snaps = chunks.load_range(&format!("{doc_id}/snapshot")).unwrap();
        assert_eq!(snaps.len(), 1);
        let (snap_key, bytes) = &snaps[0];
        chunks.put(snap_key, &bytes[..bytes.len() / 2]).unwrap();
    }
    let (store, loaded, report) = S::open(dir.path(), "hub-a", opts()).unwrap();
    assert_eq!(report.quarantined.len(), 1, "{report}");
    assert!(report.quarantined[0].key.contains("/snapshot/"));
    assert_eq!(report.quarantined[0].document, "parcels-2026-11");
    // The alert document is untouched; the parcels' facts were in the damaged snapshot, which
    // is quarantined and reported (the hub then knows what it lost; a sync peer brings it back).
    assert!(loaded.iter().any(|f| matches!(f.kind, Kind::Alert { .. })));
    assert_eq!(loaded.iter().filter(|f| f.parcel.is_some()).count(), 0);
    // facts_in on the partition works with what is left (nothing, here) instead of failing.
    assert!(store.facts_in(&key).unwrap().is_empty());
}

#[test]
fn an_unreadable_database_file_is_moved_aside_and_the_hub_starts() {
    let dir = tempfile::tempdir().unwrap();
    three_chunks(dir.path(), false);
    let path = dir.path().join("state.redb");
    let len = std::fs::metadata(&path).unwrap().len();
    // Keep the header region, destroy the rest: as after a disk fault.
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().skip(64) {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes[..(len as usize / 3)]).unwrap();

    let (mut store, loaded, report) = S::open(dir.path(), "hub-a", opts()).unwrap();
    let (aside, reason) = report.database_replaced.clone().expect("replaced");
    assert!(aside.exists(), "damaged file kept at {}", aside.display());
    assert!(aside
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("state.redb.damaged-"));
    assert!(!reason.is_empty());
    assert!(
        report.to_string().contains("DATABASE UNREADABLE"),
        "{report}"
    );
    assert!(loaded.is_empty());
    // The fresh store works.
    let mut g = Gen::new("hub-a");
    store
        .append(&g.parcel_life(NOV_15, "after", 1, false))
        .unwrap();
}

//! The store's own behaviour: durable append and reload, idempotence, partitions and the live
//! window, open threads, compaction, retention, local tables, refusing foreign or newer files.

mod common;

use common::*;
use locker_sync::{DocKey, Family, Month, Store, StoreError, StoreOptions};

type S = Store<Fact>;

#[test]
fn appended_facts_come_back_after_reopen_in_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen::new("hub-a");
    let mut facts = g.parcel_life(NOV_15, "p1", 3, false);
    facts.push(g.fact(
        NOV_15,
        None,
        Some(3),
        Kind::CompartmentService { in_service: false },
    ));
    facts.push(g.fact(
        NOV_15,
        None,
        None,
        Kind::Resident {
            unit: "4B".into(),
            name: "Ana".into(),
        },
    ));
    facts.push(g.fact(
        NOV_15 + 5,
        None,
        None,
        Kind::Alert {
            what: "door forced".into(),
        },
    ));
    {
        let (mut store, loaded, report) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
        assert!(loaded.is_empty());
        assert!(report.is_clean(), "{report}");
        // Out of order on purpose: the store returns them sorted.
        let mut shuffled = facts.clone();
        shuffled.reverse();
        store.append(&shuffled).unwrap();
    }
    let (store, loaded, report) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
    assert!(report.is_clean(), "{report}");
    let mut expected = facts.clone();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(loaded, expected);
    let names: Vec<String> = store
        .documents()
        .iter()
        .map(|d| d.key.to_string())
        .collect();
    assert_eq!(
        names,
        ["site", "directory", "parcels-2026-11", "alerts-2026-11"]
    );
    let parcels = store
        .facts_in(&DocKey::monthly(Family::Parcels, NOV_15))
        .unwrap();
    assert_eq!(parcels.len(), 3);
}

#[test]
fn append_is_idempotent_on_fact_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen::new("hub-a");
    let facts = g.parcel_life(NOV_15, "p1", 3, true);
    let (mut store, _, _) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
    store.append(&facts).unwrap();
    store.append(&facts).unwrap();
    store.append(&facts[1..2]).unwrap();
    // Same id, different content: the first write stays (facts are write-once).
    let mut changed = facts[0].clone();
    changed.actor = "someone else".into();
    store.append(&[changed]).unwrap();
    drop(store);
    let (store, loaded, _) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
    assert_eq!(loaded, facts);
    let info = store.documents();
    let parcels = info
        .iter()
        .find(|d| d.key.to_string() == "parcels-2026-11")
        .unwrap();
    assert_eq!(parcels.facts, 4);
}

#[test]
fn only_live_partitions_load_and_older_ones_come_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen::new("hub-a");
    let sep = NOV_15 - 61 * DAY; // 2026-09-15
    let oct = NOV_15 - 30 * DAY;
    let closed = g.parcel_life(sep, "closed-in-sep", 1, true);
    let open_old = g.parcel_life(sep + DAY, "held-since-sep", 2, false);
    let october = g.parcel_life(oct, "oct", 3, true);
    let november = g.parcel_life(NOV_15, "nov", 4, false);
    {
        let (mut store, _, _) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
        for batch in [&closed, &open_old, &october, &november] {
            store.append(batch).unwrap();
        }
        // A late fact of a finished thread does not reopen it.
        let late = g.fact(
            sep + 2 * DAY,
            Some("closed-in-sep"),
            None,
            Kind::Notified { unit: "1".into() },
        );
        store.append(&[late]).unwrap();
    }
    let (store, loaded, report) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
    let parcels: std::collections::BTreeSet<_> =
        loaded.iter().filter_map(|f| f.parcel.clone()).collect();
    assert_eq!(
        parcels.into_iter().collect::<Vec<_>>(),
        ["nov", "oct"],
        "September stays on disk (the hub loads the months it still needs by its own mark)"
    );
    assert!(report.is_clean(), "{report}");
    let loaded_docs: Vec<String> = store
        .documents()
        .into_iter()
        .filter(|d| d.loaded)
        .map(|d| d.key.to_string())
        .collect();
    assert_eq!(
        loaded_docs,
        ["site", "directory", "parcels-2026-10", "parcels-2026-11"]
    );
    // September is there on demand, late fact included.
    let sep_doc = DocKey::Monthly(
        Family::Parcels,
        Month {
            year: 2026,
            month: 9,
        },
    );
    assert_eq!(store.facts_in(&sep_doc).unwrap().len(), 4 + 3 + 1);
}

#[test]
fn compaction_replaces_chunks_with_one_snapshot_and_keeps_every_fact() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen::new("hub-a");
    let opts = StoreOptions {
        now_ms: Some(NOV_15),
        compact_after_chunks: 8,
        compact_hard_limit: 20,
        ..Default::default()
    };
    let (mut store, _, _) = S::open(dir.path(), "hub-a", opts.clone()).unwrap();
    let mut all = Vec::new();
    for i in 0..30 {
        let f = g.parcel_life(NOV_15 + i * 1000, &format!("p{i}"), 1, false);
        store.append(&f).unwrap();
        all.extend(f);
    }
    let key = DocKey::monthly(Family::Parcels, NOV_15);
    let chunks = |s: &S| {
        s.documents()
            .into_iter()
            .find(|d| d.key == key)
            .unwrap()
            .chunks
    };
    // The hard limit compacted inline once (at 21 chunks), then 9 more appends.
    assert_eq!(chunks(&store), 1 + 9);
    let done = store.maintain(NOV_15, None).unwrap();
    assert_eq!(done.compacted, vec![key]);
    assert_eq!(chunks(&store), 1);
    drop(store);
    let (_, loaded, report) = S::open(dir.path(), "hub-a", opts).unwrap();
    assert!(report.is_clean(), "{report}");
    all.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(loaded, all);
}

/// A hub that never runs long enough for `maintain` (a crash loop) still loads one snapshot, not
/// every chunk its short lives wrote: opening compacts what is over the routine limit.
#[test]
fn opening_compacts_what_short_lived_processes_left() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen::new("hub-a");
    let opts = StoreOptions {
        now_ms: Some(NOV_15),
        compact_after_chunks: 8,
        compact_hard_limit: 1_000,
        ..Default::default()
    };
    let key = DocKey::monthly(Family::Parcels, NOV_15);
    let chunks = |s: &S| {
        s.documents()
            .into_iter()
            .find(|d| d.key == key)
            .unwrap()
            .chunks
    };
    let mut all = Vec::new();
    for life in 0..3u64 {
        let (mut store, _, _) = S::open(dir.path(), "hub-a", opts.clone()).unwrap();
        for i in 0..5 {
            let f = g.parcel_life(
                NOV_15 + (life * 10 + i) * 1000,
                &format!("p{life}-{i}"),
                1,
                false,
            );
            store.append(&f).unwrap();
            all.extend(f);
        }
        // Killed before any maintenance.
    }
    let (store, loaded, report) = S::open(dir.path(), "hub-a", opts).unwrap();
    assert!(report.is_clean(), "{report}");
    // The third life's open found 10 chunks (over 8) and left one snapshot; it added 5. Without
    // compaction at open there would be all 15.
    assert_eq!(chunks(&store), 1 + 5);
    all.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(loaded, all);
}

#[test]
fn retention_deletes_old_partitions_except_those_the_caller_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen::new("hub-a");
    let three_years_ago = NOV_15 - 3 * 365 * DAY;
    let (mut store, _, _) = S::open(dir.path(), "hub-a", opts_at(three_years_ago)).unwrap();
    store
        .append(&g.parcel_life(three_years_ago, "old-closed", 1, true))
        .unwrap();
    let alert_old = g.fact(
        three_years_ago,
        None,
        None,
        Kind::Alert { what: "x".into() },
    );
    store.append(&[alert_old]).unwrap();
    let held = three_years_ago + 40 * DAY;
    store
        .append(&g.parcel_life(held, "still-held", 2, false))
        .unwrap();
    store
        .append(&g.parcel_life(NOV_15, "recent", 3, true))
        .unwrap();
    // The caller's oldest open parcel began with "still-held": its month and later are kept.
    let done = store.maintain(NOV_15, Some(held)).unwrap();
    let expired: Vec<String> = done.expired.iter().map(|k| k.to_string()).collect();
    assert_eq!(expired, ["alerts-2023-11", "parcels-2023-11"]);
    let names: Vec<String> = store
        .documents()
        .iter()
        .map(|d| d.key.to_string())
        .collect();
    assert_eq!(
        names,
        ["site", "directory", "parcels-2023-12", "parcels-2026-11"]
    );
    // Shorter retention via options.
    drop(store);
    let opts = StoreOptions {
        now_ms: Some(NOV_15),
        retention_months: 0,
        ..Default::default()
    };
    let (mut store, _, _) = S::open(dir.path(), "hub-a", opts).unwrap();
    assert!(
        store
            .maintain(NOV_15, Some(held))
            .unwrap()
            .expired
            .is_empty(),
        "the kept month 2023-12 survives a retention of 0"
    );
    // Without anything to keep, retention takes it.
    let done = store.maintain(NOV_15, None).unwrap();
    let expired: Vec<String> = done.expired.iter().map(|k| k.to_string()).collect();
    assert_eq!(expired, ["parcels-2023-12"]);
}

#[test]
fn outbox_goes_in_the_same_commit_and_is_erased() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Gen::new("hub-a");
    let facts = g.parcel_life(NOV_15, "p1", 3, false);
    {
        let (mut store, _, _) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
        store
            .append_with_outbox(&facts, &[("notify-p1", b"code 482913 for 4B".as_slice())])
            .unwrap();
        store.outbox_put("notify-p2", b"other").unwrap();
        store.local_put("staff/admin", b"$argon2id$...").unwrap();
    }
    let (mut store, loaded, _) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
    assert_eq!(loaded.len(), 3);
    assert_eq!(
        store.outbox_pending().unwrap(),
        vec![
            ("notify-p1".to_string(), b"code 482913 for 4B".to_vec()),
            ("notify-p2".to_string(), b"other".to_vec())
        ]
    );
    store.outbox_erase("notify-p1").unwrap();
    store.outbox_erase("never-existed").unwrap();
    assert_eq!(
        store.local_get("staff/admin").unwrap().as_deref(),
        Some(b"$argon2id$...".as_slice())
    );
    store.local_delete("staff/admin").unwrap();
    let key = store.site_key();
    drop(store);
    let (store, _, _) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
    assert_eq!(store.outbox_pending().unwrap().len(), 1);
    assert_eq!(store.local_get("staff/admin").unwrap(), None);
    assert_eq!(store.site_key(), key, "the site key survives restarts");
    assert_ne!(key, [0u8; 32]);
}

#[test]
fn a_bad_fact_is_rejected_whole_with_its_id() {
    #[derive(Clone, serde::Serialize, serde::Deserialize)]
    struct NotAnObject(String);
    impl locker_sync::Record for NotAnObject {
        fn id(&self) -> &str {
            &self.0
        }
        fn at_ms(&self) -> u64 {
            0
        }
        fn document(&self) -> DocKey {
            DocKey::Site
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _, _) =
        Store::<NotAnObject>::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
    let err = store.append(&[NotAnObject("x-1".into())]).unwrap_err();
    assert!(
        matches!(err, StoreError::Encode { ref fact_id, .. } if fact_id == "x-1"),
        "{err}"
    );
    assert!(err.to_string().contains("expected a JSON object"), "{err}");
    assert!(store.documents().iter().all(|d| d.facts == 0));
}

#[test]
fn another_hubs_file_and_a_newer_format_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _, _) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
    assert_eq!(store.format_version(), locker_sync::FORMAT_VERSION);
    drop(store);
    let err = S::open(dir.path(), "hub-b", opts_at(NOV_15)).err().unwrap();
    assert!(matches!(err, StoreError::HubIdMismatch { .. }), "{err}");
    assert!(err.to_string().contains("hub-a"), "{err}");

    // Pretend a newer build wrote the file.
    {
        let db = redb::Database::create(dir.path().join("state.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx
                .open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
                .unwrap();
            meta.insert("format_version", 99u32.to_le_bytes().as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let err = S::open(dir.path(), "hub-a", opts_at(NOV_15)).err().unwrap();
    assert!(
        matches!(err, StoreError::FormatTooNew { found: 99, supported, .. } if supported == locker_sync::FORMAT_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("newer locker-hub"), "{err}");
}

#[test]
fn documents_have_stable_automerge_repo_ids_per_site() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let site = || StoreOptions {
        now_ms: Some(NOV_15),
        site_id: Some("maple-court".into()),
        ..Default::default()
    };
    let (sa, _, _) = S::open(a.path(), "hub-a", site()).unwrap();
    let (sb, _, _) = S::open(b.path(), "hub-b", site()).unwrap();
    let key = DocKey::monthly(Family::Parcels, NOV_15);
    assert_eq!(
        sa.doc_id(&key),
        sb.doc_id(&key),
        "two hubs of one site name one document"
    );
    assert_ne!(sa.doc_id(&key), sa.doc_id(&DocKey::Site));
}

/// A document loaded from disk (at a start, or by a merge off the thread) then written to
/// stores only what is new, not the whole document again.
#[test]
fn a_write_after_a_reopen_stores_only_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let key = DocKey::monthly(Family::Parcels, NOV_15);
    let mut g = Gen::new("hub-a");
    let mut s = open_maple(dir.path(), "hub-a");
    // One write: one chunk, so nothing compacts it at the reopen.
    let mut facts = Vec::new();
    for i in 0..200u64 {
        facts.extend(g.parcel_life(NOV_15 + i * 1000, &format!("p{i}"), (i % 50) as u32, true));
    }
    s.append(&facts).unwrap();
    drop(s);
    let mut s = open_maple(dir.path(), "hub-a");
    let stored = |s: &Store<Fact>| {
        s.documents()
            .iter()
            .find(|d| d.key == key)
            .map(|d| d.stored_bytes)
            .unwrap_or_default()
    };
    let before = stored(&s);
    s.append(&g.parcel_life(NOV_15 + 500_000, "one-more", 7, false))
        .unwrap();
    let grew = stored(&s) - before;
    assert!(
        grew < before / 10,
        "one parcel's facts took {grew} bytes on a document of {before}"
    );
}

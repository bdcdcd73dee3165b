//! Secrets stay out of documents: after a scenario that issues pickup codes (each confirmed with
//! its notification in the outbox, then handed off and erased), no byte of any saved document,
//! history included, holds a plaintext code; and the scanner does find one that was let in.

mod common;

use common::*;
use locker_sync::{DocKey, Family, Store};

type S = Store<Fact>;

/// Deterministic 8-digit codes (a fixed LCG), so a result is reproducible.
fn codes(n: usize) -> Vec<String> {
    let mut x: u64 = 0x2545F4914F6CDD1D;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            format!("{:08}", (x >> 33) % 100_000_000)
        })
        .collect()
}

#[test]
fn no_plaintext_code_in_any_saved_document_or_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let codes = codes(120);
    let (mut store, _, _) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
    let mut g = Gen::new("hub-a");
    for (i, code) in codes.iter().enumerate() {
        let at = NOV_15 + i as u64 * 60_000;
        let parcel = format!("p{i}");
        let reserved = g.fact(
            at,
            Some(&parcel),
            Some(i as u32 % 150),
            Kind::Reserved { size: "S".into() },
        );
        let delivered = g.fact(
            at + 1,
            Some(&parcel),
            Some(i as u32 % 150),
            Kind::Delivered {
                carrier: "fedex".into(),
                code_hash: store.code_hash(code),
            },
        );
        let note = format!("{{\"unit\":\"4B\",\"code\":\"{code}\"}}");
        store
            .append_with_outbox(
                &[reserved, delivered],
                &[(parcel.as_str(), note.as_bytes())],
            )
            .unwrap();
        // The notification is handed off, then its plaintext is erased.
        store.outbox_erase(&parcel).unwrap();
        if i % 3 == 0 {
            let picked = g.fact(
                at + 2,
                Some(&parcel),
                None,
                Kind::PickedUp {
                    method: "pin".into(),
                },
            );
            store.append(&[picked]).unwrap();
        }
    }
    store
        .compact(&DocKey::monthly(Family::Parcels, NOV_15))
        .unwrap();
    assert!(store.outbox_pending().unwrap().is_empty());

    let needles: Vec<&str> = codes.iter().map(String::as_str).collect();
    let hits = store.scan_for_secrets(&needles).unwrap();
    assert!(hits.is_empty(), "plaintext codes found: {hits:?}");

    // A second replica that merged everything is clean too.
    let other = tempfile::tempdir().unwrap();
    let (mut replica, _, _) = S::open(other.path(), "hub-b", opts_at(NOV_15)).unwrap();
    let key = DocKey::monthly(Family::Parcels, NOV_15);
    let bytes = store.save(&key).unwrap();
    assert_eq!(
        replica.merge_changes(&key, &bytes).unwrap().len(),
        120 * 2 + 40
    );
    assert!(replica.scan_for_secrets(&needles).unwrap().is_empty());
}

#[test]
fn the_scanner_finds_a_code_that_was_let_into_a_document_even_when_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let codes = codes(3);
    let (mut store, _, _) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
    let mut g = Gen::new("hub-a");
    // Many facts, so Automerge deflates the value column of the snapshot.
    let mut facts: Vec<Fact> = (0..400)
        .map(|i| {
            g.fact(
                NOV_15 + i,
                None,
                None,
                Kind::Alert {
                    what: format!("board {i} offline for a while"),
                },
            )
        })
        .collect();
    facts.push(g.fact(
        NOV_15 + 999,
        None,
        None,
        Kind::Alert {
            what: format!("bug: code {}", codes[1]),
        },
    ));
    store.append(&facts).unwrap();
    let key = DocKey::monthly(Family::Alerts, NOV_15);
    store.compact(&key).unwrap();
    let hits = store
        .scan_for_secrets(&codes.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.needle == codes[1]), "{hits:?}");
    assert!(
        hits.iter()
            .any(|h| h.location.contains("alerts-2026-11") && h.location.contains("full history")),
        "{hits:?}"
    );
}

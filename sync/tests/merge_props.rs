//! Merge properties: replicas that fork, append random facts, and exchange changes in any order
//! and grouping (whole saves, deltas, single changes delivered backwards) end with identical
//! documents, identical facts after a restart, and identical derived state.

mod common;

use std::collections::BTreeMap;

use automerge::AutoCommit;
use common::*;
use locker_sync::{DocKey, Family, Month, Store};
use proptest::prelude::*;

type S = Store<Fact>;

const HUBS: [&str; 3] = ["hub-a", "hub-b", "hub-c"];
const SEP_1: u64 = NOV_15 - 75 * DAY; // 2026-09-01: not live on NOV_15

fn docs() -> Vec<DocKey> {
    vec![
        DocKey::Site,
        DocKey::Monthly(
            Family::Parcels,
            Month {
                year: 2026,
                month: 9,
            },
        ),
        DocKey::Monthly(
            Family::Parcels,
            Month {
                year: 2026,
                month: 11,
            },
        ),
        DocKey::Monthly(
            Family::Alerts,
            Month {
                year: 2026,
                month: 11,
            },
        ),
    ]
}

#[derive(Clone, Debug)]
enum Step {
    /// Replica appends a fact: (replica, which document, parcel 0..5, kind 0..4).
    Append(usize, usize, usize, u8),
    /// Replica `to` takes in replica `from`'s changes to one document, grouped as `how`.
    Merge {
        from: usize,
        to: usize,
        doc: usize,
        how: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3usize, 0..4usize, 0..5usize, 0..4u8).prop_map(|(r, d, p, k)| Step::Append(r, d, p, k)),
        1 => (0..3usize, 0..3usize, 0..4usize, 0..3u8)
            .prop_map(|(from, to, doc, how)| Step::Merge { from, to, doc, how }),
    ]
}

fn make_fact(g: &mut Gen, doc: usize, parcel: usize, kind: u8) -> Fact {
    let t = g.counter * 1000;
    let parcel = format!("p{parcel}");
    match doc {
        0 => g.fact(
            NOV_15 + t,
            None,
            Some(kind as u32),
            Kind::CompartmentService {
                in_service: kind.is_multiple_of(2),
            },
        ),
        3 => g.fact(
            NOV_15 + t,
            None,
            None,
            Kind::Alert {
                what: format!("a{kind}"),
            },
        ),
        _ => {
            let at = if doc == 1 { SEP_1 + t } else { NOV_15 + t };
            let k = match kind {
                0 => Kind::Reserved { size: "M".into() },
                1 => Kind::Delivered {
                    carrier: "ups".into(),
                    code_hash: "h".into(),
                },
                2 => Kind::Notified { unit: "1A".into() },
                _ => Kind::PickedUp {
                    method: "qr".into(),
                },
            };
            g.fact(at, Some(&parcel), Some(kind as u32), k)
        }
    }
}

/// Sends `from`'s changes of one document to `to`, grouped one of three ways.
fn send(stores: &mut [S], from: usize, to: usize, doc: &DocKey, how: u8) {
    if from == to {
        return;
    }
    let their_heads = stores[to].heads(doc).unwrap();
    match how {
        // The whole document.
        0 => {
            let bytes = stores[from].save(doc).unwrap();
            stores[to].merge_changes(doc, &bytes).unwrap();
        }
        // Only what the receiver lacks, in one piece.
        1 => {
            let bytes = stores[from].changes_since(doc, &their_heads).unwrap();
            if !bytes.is_empty() {
                stores[to].merge_changes(doc, &bytes).unwrap();
            }
        }
        // One change at a time, newest first: every change but the last waits for its deps.
        _ => {
            let full = stores[from].save(doc).unwrap();
            let mut am = AutoCommit::load(&full).unwrap();
            let known: Vec<_> = their_heads
                .iter()
                .filter(|h| am.get_change_by_hash(h).is_some())
                .copied()
                .collect();
            let changes = am.get_changes(&known);
            for change in changes.iter().rev() {
                stores[to].merge_changes(doc, change.raw_bytes()).unwrap();
            }
        }
    }
}

/// Derived state the way a core would fold it: compartment occupancy, open parcels, alerts.
fn derive(
    facts: &[Fact],
) -> (
    BTreeMap<u32, String>,
    Vec<String>,
    usize,
    BTreeMap<u32, bool>,
) {
    let mut doors = BTreeMap::new();
    let mut open: BTreeMap<String, bool> = BTreeMap::new();
    let mut alerts = 0;
    let mut service = BTreeMap::new();
    for f in facts {
        match (&f.kind, &f.parcel, f.door) {
            (Kind::Reserved { .. } | Kind::Delivered { .. }, Some(p), Some(d)) => {
                doors.insert(d, p.clone());
                open.entry(p.clone()).or_insert(true);
            }
            (Kind::PickedUp { .. }, Some(p), _) => {
                doors.retain(|_, q| q != p);
                open.insert(p.clone(), false);
            }
            (Kind::Alert { .. }, _, _) => alerts += 1,
            (Kind::CompartmentService { in_service }, _, Some(d)) => {
                service.insert(d, *in_service);
            }
            _ => {}
        }
    }
    let open = open
        .into_iter()
        .filter(|(_, o)| *o)
        .map(|(p, _)| p)
        .collect();
    (doors, open, alerts, service)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        max_shrink_iters: 200,
        .. ProptestConfig::default()
    })]

    #[test]
    fn replicas_converge_whatever_the_order_and_grouping(
        base in proptest::collection::vec((0..4usize, 0..5usize, 0..4u8), 0..6),
        steps in proptest::collection::vec(step(), 1..40),
        final_order in Just([0usize, 1, 2]).prop_shuffle(),
        final_how in proptest::collection::vec(0..3u8, 8),
    ) {
        let dirs: Vec<_> = HUBS.iter().map(|_| tempfile::tempdir().unwrap()).collect();
        let mut stores: Vec<S> = HUBS
            .iter()
            .zip(&dirs)
            .map(|(hub, dir)| S::open(dir.path(), hub, opts_at(NOV_15)).unwrap().0)
            .collect();
        let mut gens: Vec<Gen> = HUBS.iter().map(|h| Gen::new(h)).collect();
        let docs = docs();

        // Fork: hub-a writes a base, the others start from a copy of it.
        for (d, p, k) in &base {
            let f = make_fact(&mut gens[0], *d, *p, *k);
            stores[0].append(&[f]).unwrap();
        }
        for doc in &docs {
            for to in 1..3 {
                send(&mut stores, 0, to, doc, 0);
            }
        }
        // Diverge, with partial exchanges along the way.
        for s in &steps {
            match s {
                Step::Append(r, d, p, k) => {
                    let f = make_fact(&mut gens[*r], *d, *p, *k);
                    stores[*r].append(&[f]).unwrap();
                }
                Step::Merge { from, to, doc, how } => send(&mut stores, *from, *to, &docs[*doc], *how),
            }
        }
        // Converge: everyone into one replica, in a random order, then from it to everyone.
        let hub = final_order[0];
        let mut i = 0;
        for doc in &docs {
            for &from in &final_order[1..] {
                send(&mut stores, from, hub, doc, final_how[i % 8]);
                i += 1;
            }
            for &to in &final_order[1..] {
                send(&mut stores, hub, to, doc, final_how[i % 8]);
                i += 1;
            }
        }

        for doc in &docs {
            let mut heads: Vec<Vec<_>> = Vec::new();
            let mut facts: Vec<Vec<Fact>> = Vec::new();
            for s in stores.iter_mut() {
                let mut h = s.heads(doc).unwrap();
                h.sort();
                heads.push(h);
                facts.push(s.facts_in(doc).unwrap());
            }
            // The fact counts kept in the index agree with the documents.
            for (s, f) in stores.iter().zip(&facts) {
                let counted = s.documents().into_iter().find(|d| d.key == *doc).map_or(0, |d| d.facts);
                prop_assert_eq!(counted, f.len() as u64, "count of {}", doc);
            }
            prop_assert_eq!(&heads[0], &heads[1], "heads of {}", doc);
            prop_assert_eq!(&heads[0], &heads[2], "heads of {}", doc);
            prop_assert_eq!(&facts[0], &facts[1], "facts of {}", doc);
            prop_assert_eq!(&facts[0], &facts[2], "facts of {}", doc);
        }
        // After a restart every replica rebuilds the same state, including open threads that
        // live in the (not loaded) September document.
        drop(stores);
        let mut reloaded = Vec::new();
        for (hub, dir) in HUBS.iter().zip(&dirs) {
            let (_, facts, report) = S::open(dir.path(), hub, opts_at(NOV_15)).unwrap();
            prop_assert!(report.is_clean(), "{}", report);
            reloaded.push(facts);
        }
        prop_assert_eq!(&reloaded[0], &reloaded[1]);
        prop_assert_eq!(&reloaded[0], &reloaded[2]);
        prop_assert_eq!(derive(&reloaded[0]), derive(&reloaded[1]));
        prop_assert_eq!(derive(&reloaded[0]), derive(&reloaded[2]));
    }
}

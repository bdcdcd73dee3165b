//! Benchmark: reconciling after a day and a week offline, through the automerge-repo protocol
//! (`Session`) between two stores of one site: the hub, and a peer (the cloud's copy) that had
//! everything until the hub went offline.
//!
//!     cargo run --release -p locker-sync --example catchup
//!
//! Each run: 20 days of shared history at 150 parcels a day (both stores have it, and their
//! saved sync states say so), then the hub works offline for D days (150 parcels a day, each
//! parcel's facts appended step by step as the engine would), then one connection. Prints, for
//! D = 1 and 7: the time to reconcile (frames carried in memory: no network), the bytes both
//! ways, the bytes plain automerge sync needs for the same changes (the same documents synced
//! with automerge's own messages and no protocol framing), the bytes of a full snapshot of the
//! changed documents, and the slowest single `receive` on the peer's side (the time a merge
//! holds the engine thread). Asserts nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Fact, Gen, DAY};
use locker_sync::{DocKey, Session, SessionConfig, Step, Store, StoreOptions, SyncState};

type S = Store<Fact>;

/// 2026-12-28T12:00Z: the offline week stays inside December.
const NOW: u64 = 1_798_459_200_000;
const PER_DAY: u64 = 150;

fn opts(now: u64) -> StoreOptions {
    StoreOptions {
        site_id: Some("bench-site".into()),
        now_ms: Some(now),
        ..Default::default()
    }
}

fn cfg(name: &str) -> SessionConfig {
    SessionConfig {
        peer_id: format!("peer-{name}"),
        storage_id: name.into(),
        name: name.into(),
        reply_timeout_ms: 10_000,
        want_requests: false,
        months_back: 24,
        offload_bytes: None,
    }
}

struct Run {
    elapsed: Duration,
    bytes: u64,
    frames: usize,
    slowest_receive: Duration,
    learnt: usize,
}

/// One connection, `hub` dialing `peer`, until both are quiet.
fn connect(hub: &mut S, peer: &mut S, now: u64) -> Run {
    let started = Instant::now();
    let (mut a, join) = Session::dial(cfg("hub"), now);
    let mut b = Session::accept(cfg("cloud"), now);
    let (mut to_b, mut to_a) = (vec![join], Vec::new());
    let mut run = Run {
        elapsed: Duration::ZERO,
        bytes: 0,
        frames: 0,
        slowest_receive: Duration::ZERO,
        learnt: 0,
    };
    while !(to_a.is_empty() && to_b.is_empty()) {
        for frame in std::mem::take(&mut to_b) {
            run.bytes += frame.len() as u64;
            run.frames += 1;
            let t = Instant::now();
            let step: Step<Fact> = b.receive(peer, now, &frame).expect("peer receive");
            run.slowest_receive = run.slowest_receive.max(t.elapsed());
            run.learnt += step.merged.iter().map(|(_, f)| f.len()).sum::<usize>();
            to_a.extend(step.send);
        }
        for frame in std::mem::take(&mut to_a) {
            run.bytes += frame.len() as u64;
            run.frames += 1;
            let step: Step<Fact> = a.receive(hub, now, &frame).expect("hub receive");
            to_b.extend(step.send);
        }
    }
    run.elapsed = started.elapsed();
    run
}

/// Plain automerge sync of one document between two stores (no protocol framing), starting from
/// the states both saved: the bytes of every message both ways.
fn plain_automerge_bytes(hub: &mut S, peer: &mut S, key: &DocKey) -> u64 {
    let mut sa: SyncState = hub.sync_state("cloud", key).expect("state");
    let mut sb: SyncState = peer.sync_state("hub", key).expect("state");
    let mut bytes = 0;
    loop {
        let ma = hub.generate_sync_message(key, &mut sa).expect("gen");
        if let Some(m) = &ma {
            bytes += m.len() as u64;
            peer.receive_sync_message(key, &mut sb, m).expect("recv");
        }
        let mb = peer.generate_sync_message(key, &mut sb).expect("gen");
        if let Some(m) = &mb {
            bytes += m.len() as u64;
            hub.receive_sync_message(key, &mut sa, m).expect("recv");
        }
        if ma.is_none() && mb.is_none() {
            return bytes;
        }
    }
}

fn history(g: &mut Gen, from: u64, days: u64, door0: u32) -> Vec<Vec<Fact>> {
    let mut steps = Vec::new();
    for d in 0..days {
        for i in 0..PER_DAY {
            let at = from + d * DAY + i * (DAY / PER_DAY);
            let door = door0 + (i % 150) as u32;
            for f in g.parcel_life(at, &format!("p-{}-{d}-{i}", from / DAY), door, true) {
                steps.push(vec![f]);
            }
        }
    }
    steps
}

fn bench(days_offline: u64) {
    let (dh, dp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let offline_from = NOW - days_offline * DAY;
    let shared_from = offline_from - 20 * DAY;
    let mut hub = S::open(dh.path(), "hub", opts(offline_from)).unwrap().0;
    let mut peer = S::open(dp.path(), "cloud", opts(offline_from)).unwrap().0;
    let mut g = Gen::new("hub");
    let shared: Vec<Fact> = history(&mut g, shared_from, 20, 1)
        .into_iter()
        .flatten()
        .collect();
    for chunk in shared.chunks(500) {
        hub.append(chunk).unwrap();
    }
    let first = connect(&mut hub, &mut peer, offline_from);
    assert_eq!(first.learnt, shared.len());

    // Offline: one append per fact, as the engine commits a step.
    let offline = history(&mut g, offline_from, days_offline, 1);
    let facts: usize = offline.iter().map(Vec::len).sum();
    for step in &offline {
        hub.append(step).unwrap();
    }
    let changed: Vec<DocKey> = offline
        .iter()
        .flatten()
        .map(<Fact as locker_sync::Record>::document)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let snapshot: u64 = changed
        .iter()
        .map(|k| hub.save(k).map(|b| b.len() as u64).unwrap_or(0))
        .sum();

    // Plain automerge on copies of both stores, so the measured run starts from the same state.
    let (dh2, dp2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    drop((hub, peer));
    copy_store(dh.path(), dh2.path());
    copy_store(dp.path(), dp2.path());
    let mut hub = S::open(dh.path(), "hub", opts(NOW)).unwrap().0;
    let mut peer = S::open(dp.path(), "cloud", opts(NOW)).unwrap().0;
    let run = connect(&mut hub, &mut peer, NOW);
    assert_eq!(run.learnt, facts, "the peer learnt every offline fact");

    let mut hub2 = S::open(dh2.path(), "hub", opts(NOW)).unwrap().0;
    let mut peer2 = S::open(dp2.path(), "cloud", opts(NOW)).unwrap().0;
    let plain: u64 = changed
        .iter()
        .map(|k| plain_automerge_bytes(&mut hub2, &mut peer2, k))
        .sum();

    println!(
        "{days_offline} day(s) offline, {facts} facts in {} document(s): reconciled in {:.0} ms, \
         {} frames, {} bytes (plain automerge sync {} bytes, ratio {:.2}; full snapshot {} bytes); \
         slowest receive on the peer {:.1} ms",
        changed.len(),
        run.elapsed.as_secs_f64() * 1000.0,
        run.frames,
        run.bytes,
        plain,
        run.bytes as f64 / plain.max(1) as f64,
        snapshot,
        run.slowest_receive.as_secs_f64() * 1000.0,
    );
}

fn copy_store(from: &std::path::Path, to: &std::path::Path) {
    std::fs::copy(from.join("state.redb"), to.join("state.redb")).expect("copy the store");
}

fn main() {
    for days in [1, 7] {
        bench(days);
    }
}

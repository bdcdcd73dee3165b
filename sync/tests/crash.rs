//! The store's own crash behaviour: a child process (this test binary, re-executed) delivers and
//! picks up parcels, printing each fact id and outbox item only after the call that stored it
//! returned; the parent SIGKILLs it at seeded random moments, reopens the store, and checks that
//! everything confirmed is there, nothing is damaged, and no compartment is double-booked.
//!
//! CRASH_KILLS (default 100) and CRASH_SEED (default 1) tune it; the seed fixes the kill delays
//! and the workload, while the exact instruction a kill lands on is up to the OS scheduler.
//! SIGKILL loses no page cache, so this tests process-crash atomicity, not power loss.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use locker_sync::{Store, StoreOptions};

type S = Store<Fact>;

fn opts() -> StoreOptions {
    StoreOptions {
        now_ms: Some(NOV_15),
        compact_after_chunks: 16,
        compact_hard_limit: 48,
        ..Default::default()
    }
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Open parcels and their doors, folded from facts in id order.
fn occupancy(facts: &[Fact]) -> BTreeMap<String, u32> {
    let mut open = BTreeMap::new();
    for f in facts {
        match (&f.kind, &f.parcel, f.door) {
            (Kind::Reserved { .. }, Some(p), Some(d)) => {
                open.insert(p.clone(), d);
            }
            (Kind::PickedUp { .. }, Some(p), _) => {
                open.remove(p);
            }
            _ => {}
        }
    }
    open
}

const DOORS: u32 = 150;

#[test]
#[ignore = "child process of store_survives_sigkill_at_random_moments"]
fn crash_child() {
    let Ok(dir) = std::env::var("LOCKER_SYNC_CRASH_DIR") else {
        return;
    };
    let generation: u64 = std::env::var("LOCKER_SYNC_CRASH_GEN")
        .unwrap()
        .parse()
        .unwrap();
    let mut rng = Rng(generation.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    let (mut store, facts, _) = S::open(std::path::Path::new(&dir), "hub-a", opts()).unwrap();
    let mut open = occupancy(&facts);
    let mut outbox: Vec<String> = store
        .outbox_pending()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut g = Gen::new("hub-a");
    g.counter = generation * 1_000_000;
    println!("READY");
    for i in 0.. {
        let at = NOV_15 + generation * 10_000_000 + i;
        match rng.below(10) {
            0..=4 => {
                let used: BTreeSet<u32> = open.values().copied().collect();
                let Some(door) = (0..DOORS).find(|d| !used.contains(d) && rng.below(3) == 0) else {
                    continue;
                };
                let parcel = format!("g{generation}-p{i}");
                let reserved = g.fact(
                    at,
                    Some(&parcel),
                    Some(door),
                    Kind::Reserved { size: "M".into() },
                );
                let delivered = g.fact(
                    at,
                    Some(&parcel),
                    Some(door),
                    Kind::Delivered {
                        carrier: "dhl".into(),
                        code_hash: format!("{i:064}"),
                    },
                );
                let code = format!("code-{parcel}");
                store
                    .append_with_outbox(
                        &[reserved.clone(), delivered.clone()],
                        &[(parcel.as_str(), code.as_bytes())],
                    )
                    .unwrap();
                println!("FACT {}", reserved.id);
                println!("FACT {}", delivered.id);
                println!("OUTBOX {parcel}");
                open.insert(parcel.clone(), door);
                outbox.push(parcel);
            }
            5..=7 => {
                let Some(parcel) = open
                    .keys()
                    .nth(rng.below(open.len().max(1) as u64) as usize)
                    .cloned()
                else {
                    continue;
                };
                let picked = g.fact(
                    at,
                    Some(&parcel),
                    open.get(&parcel).copied(),
                    Kind::PickedUp {
                        method: "pin".into(),
                    },
                );
                store.append(std::slice::from_ref(&picked)).unwrap();
                println!("FACT {}", picked.id);
                open.remove(&parcel);
            }
            8 => {
                if let Some(parcel) = outbox.pop() {
                    // Announced first: a kill after the commit but before "ERASED" is legal.
                    println!("ERASING {parcel}");
                    store.outbox_erase(&parcel).unwrap();
                    println!("ERASED {parcel}");
                }
            }
            _ => {
                store.maintain(NOV_15).unwrap();
            }
        }
    }
}

#[test]
fn store_survives_sigkill_at_random_moments() {
    let kills: u64 = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    eprintln!("crash test: {kills} kills, CRASH_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1);
    let mut confirmed_facts: BTreeSet<String> = BTreeSet::new();
    let mut confirmed_outbox: BTreeSet<String> = BTreeSet::new();
    let mut killed_mid_run = 0;

    for generation in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LOCKER_SYNC_CRASH_DIR", dir.path())
            .env(
                "LOCKER_SYNC_CRASH_GEN",
                (seed * 1000 + generation).to_string(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Most kills land in the workload; some during start-up (before READY).
        let mut lines = Vec::new();
        if rng.below(10) > 0 {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(left) {
                    // The harness prints "test crash_child ... " before it on the same line.
                    Ok(line) if line.ends_with("READY") => break,
                    Ok(line) => lines.push(line),
                    Err(e) => {
                        let _ = child.kill();
                        panic!("child never got ready: {e}");
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1 + rng.below(60)));
            killed_mid_run += 1;
        } else {
            std::thread::sleep(Duration::from_millis(rng.below(15)));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "child exited by itself: {status:?}");
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        for line in lines {
            if let Some(id) = line.strip_prefix("FACT ") {
                confirmed_facts.insert(id.to_string());
            } else if let Some(p) = line.strip_prefix("OUTBOX ") {
                confirmed_outbox.insert(p.to_string());
            } else if let Some(p) = line.strip_prefix("ERASING ") {
                confirmed_outbox.remove(p);
            }
        }

        let (store, facts, report) = S::open(dir.path(), "hub-a", opts()).unwrap();
        assert!(report.is_clean(), "after kill {generation}: {report}");
        let present: BTreeSet<&str> = facts.iter().map(|f| f.id.as_str()).collect();
        let missing: Vec<&String> = confirmed_facts
            .iter()
            .filter(|id| !present.contains(id.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "after kill {generation}: confirmed facts lost: {missing:?}"
        );
        let pending: BTreeSet<String> = store
            .outbox_pending()
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let lost: Vec<&String> = confirmed_outbox.difference(&pending).collect();
        assert!(
            lost.is_empty(),
            "after kill {generation}: confirmed outbox items lost: {lost:?}"
        );
        // A delivery's facts and its outbox item went in one commit: all or nothing.
        for parcel in &pending {
            assert!(
                facts
                    .iter()
                    .any(|f| f.parcel.as_deref() == Some(parcel.as_str())),
                "outbox item {parcel} without its facts"
            );
        }
        let open = occupancy(&facts);
        let doors: BTreeSet<u32> = open.values().copied().collect();
        assert_eq!(
            doors.len(),
            open.len(),
            "after kill {generation}: a compartment is double-booked"
        );
    }
    eprintln!(
        "crash test: {} confirmed facts, {} kills mid-run, all present",
        confirmed_facts.len(),
        killed_mid_run
    );
    assert!(
        confirmed_facts.len() as u64 > kills,
        "the workload hardly ran"
    );
}

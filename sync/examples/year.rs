//! Benchmark: one year of history for a 400-unit building, then a cold start and deliveries.
//!
//!     cargo run --release -p locker-sync --example year [-- --dir PATH]
//!
//! Generates ~60,000 parcels (reserved, delivered, notified, picked up), 150 compartments, 800
//! residents, alerts, and temperature summaries every 15 minutes for 2 units, into a fresh
//! store; then starts a fresh process that opens the store (cold start to ready), reads its RSS,
//! and records 2,000 deliveries durably (each: two facts and an outbox item in one commit).
//! Prints numbers; asserts nothing.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Fact, Gen, Kind, DAY};
use locker_sync::{DocKey, Family, Month, Store, StoreOptions};

type S = Store<Fact>;

/// "Now" for the benchmark: 2026-12-15T12:00Z. History runs one year back from here.
const NOW: u64 = 1_797_336_000_000;
const PARCELS: u64 = 60_000;
const DOORS: u32 = 150;
const UNITS: u32 = 400;

fn opts() -> StoreOptions {
    StoreOptions {
        now_ms: Some(NOW),
        ..Default::default()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        measure(Path::new(&args[i + 1]));
        return;
    }
    let dir = match args.iter().position(|a| a == "--dir") {
        Some(i) => PathBuf::from(&args[i + 1]),
        None => std::env::temp_dir().join(format!("locker-sync-year-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    generate(&dir);
    let status = Command::new(std::env::current_exe().expect("own path"))
        .args(["--measure", dir.to_str().expect("utf-8 path")])
        .status()
        .expect("run the measuring process");
    if !args.iter().any(|a| a == "--dir") {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::process::exit(status.code().unwrap_or(1));
}

/// Builds the whole year in time order and appends it in batches, as a hub running for a year
/// would have (with `maintain` at each month's end, as the daemon's timer would).
fn generate(dir: &Path) {
    let started = Instant::now();
    let start = NOW - 365 * DAY;
    let mut g = Gen::new("hub-1");
    let mut facts: Vec<Fact> = Vec::with_capacity(320_000);

    for d in 0..DOORS {
        facts.push(g.fact(
            start,
            None,
            Some(d),
            Kind::CompartmentService { in_service: true },
        ));
    }
    for u in 0..UNITS * 2 {
        facts.push(g.fact(
            start + 1,
            None,
            None,
            Kind::Resident {
                unit: format!("{}{}", u / 2 / 8 + 1, (b'A' + (u / 2 % 8) as u8) as char),
                name: format!("resident {u}"),
            },
        ));
    }
    // Parcels: evenly spread arrivals, pickup 1-48 h later; the last hours' parcels stay in.
    let spacing = 365 * DAY / PARCELS;
    let mut seed: u64 = 0x9E3779B97F4A7C15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for p in 0..PARCELS {
        let at = start + p * spacing + rnd() % spacing;
        let door = (p % DOORS as u64) as u32;
        let wait = DAY / 24 + rnd() % (2 * DAY);
        let parcel = format!("parcel-{p:06}");
        let mut life = g.parcel_life(at, &parcel, door, at + wait < NOW);
        if let Some(last) = life.get_mut(3) {
            last.at_ms = at + wait;
        }
        facts.extend(life);
    }
    // Temperature summaries: every 15 minutes for 2 refrigerated units.
    let mut t = start;
    while t < NOW {
        for unit in 0..2 {
            facts.push(g.fact(
                t,
                None,
                None,
                Kind::Temperature {
                    unit,
                    min: 3.1,
                    avg: 3.9,
                    max: 4.6,
                },
            ));
        }
        t += 15 * 60_000;
    }
    for a in 0..(365 * 5) {
        facts.push(g.fact(
            start + a * DAY / 5,
            None,
            Some((a % 150) as u32),
            Kind::Alert {
                what: "door left open".into(),
            },
        ));
    }
    facts.sort_by_key(|f| f.at_ms);
    let total = facts.len();

    let (mut store, _, _) = S::open(dir, "hub-1", opts()).expect("open");
    let mut month = Month::of_ms(start);
    for batch in facts.chunks(500) {
        let m = Month::of_ms(batch[0].at_ms);
        if m != month {
            store.maintain(NOW, None).expect("maintain");
            month = m;
        }
        store.append(batch).expect("append");
    }
    store.maintain(NOW, None).expect("maintain");
    // The daemon compacts when idle; leave the live documents as it would (one snapshot each).
    for d in store.documents().into_iter().filter(|d| d.loaded) {
        store.compact(&d.key).expect("compact");
    }
    println!(
        "generated {total} facts ({PARCELS} parcels) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn measure(dir: &Path) {
    let t0 = Instant::now();
    let (mut store, facts, report) = S::open(dir, "hub-1", opts()).expect("open");
    let cold = t0.elapsed();
    let rss = rss_kb();
    println!(
        "cold start to ready: {:.0} ms ({} facts returned; {report})",
        ms(cold),
        facts.len()
    );
    println!("RSS after start: {:.1} MB", rss as f64 / 1024.0);
    let file = std::fs::metadata(dir.join("state.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!("redb file size: {:.1} MB", file as f64 / 1e6);
    let docs = store.documents();
    println!(
        "documents: {} ({} loaded)",
        docs.len(),
        docs.iter().filter(|d| d.loaded).count()
    );
    for d in docs.iter().filter(|d| d.loaded) {
        println!(
            "  live {:<22} {:>8.1} KB  {:>6} facts  {} chunk(s)",
            d.key.to_string(),
            d.stored_bytes as f64 / 1e3,
            d.facts,
            d.chunks
        );
    }
    let old: Vec<_> = docs.iter().filter(|d| !d.loaded).collect();
    let biggest = old.iter().max_by_key(|d| d.stored_bytes);
    if let Some(d) = biggest {
        println!(
            "  largest stored partition: {} {:.1} KB, {} facts",
            d.key,
            d.stored_bytes as f64 / 1e3,
            d.facts
        );
        let t = Instant::now();
        let n = store.facts_in(&d.key).expect("facts_in").len();
        println!(
            "  loading it on demand (facts_in): {:.0} ms for {n} facts",
            ms(t.elapsed())
        );
    }

    // The floor under the same conditions: one bare durable redb commit of a 300-byte record.
    let floor = commit_floor(dir);
    println!(
        "bare redb durable commit (300 B), n={}: p50 {:.3} ms, p99 {:.3} ms",
        floor.len(),
        ms(floor[floor.len() / 2]),
        ms(floor[floor.len() * 99 / 100])
    );

    // Deliveries: reserved + delivered facts and the notification in one durable commit.
    // Fresh ids on every run, so measuring the same directory twice never hits the
    // idempotent-skip path.
    let mut g = Gen::new("hub-1");
    g.counter = 10_000_000 + std::process::id() as u64 * 10_000;
    let mut times = Vec::with_capacity(2000);
    let mut maintain_times = Vec::new();
    for i in 0..2000u64 {
        let at = NOW + i * 1000;
        let parcel = format!("bench-{}-{i}", g.counter);
        let door = (i % DOORS as u64) as u32;
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
                carrier: "ups".into(),
                code_hash: store.code_hash("48291337"),
            },
        );
        let note = format!("{{\"unit\":\"4B\",\"code\":\"48291337\",\"parcel\":\"{parcel}\"}}");
        let t = Instant::now();
        store
            .append_with_outbox(
                &[reserved, delivered],
                &[(parcel.as_str(), note.as_bytes())],
            )
            .expect("append");
        times.push(t.elapsed());
        store.outbox_erase(&parcel).expect("erase");
        if i % 256 == 255 {
            let t = Instant::now();
            store.maintain(NOW, None).expect("maintain");
            maintain_times.push(t.elapsed());
        }
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "record one delivery durably (2 facts + outbox, 1 commit), n={}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        times.len(),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*times.last().expect("samples"))
    );
    if let Some(max) = maintain_times.iter().max() {
        println!("maintain() every 256 deliveries (compaction of the live parcels document): max {:.1} ms", ms(*max));
    }
    let live = DocKey::monthly(Family::Parcels, NOW);
    let t = Instant::now();
    store.compact(&live).expect("compact");
    println!("compacting {live} once: {:.1} ms", ms(t.elapsed()));
}

fn commit_floor(dir: &Path) -> Vec<Duration> {
    let path = dir.join("floor.redb");
    let db = redb::Database::create(&path).expect("scratch db");
    let table: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");
    let record = [7u8; 300];
    let mut times: Vec<Duration> = (0..500u64)
        .map(|i| {
            let t = Instant::now();
            let tx = db.begin_write().expect("begin");
            {
                let mut tab = tx.open_table(table).expect("table");
                tab.insert(i, record.as_slice()).expect("insert");
            }
            tx.commit().expect("commit");
            t.elapsed()
        })
        .collect();
    drop(db);
    let _ = std::fs::remove_file(&path);
    times.sort();
    times
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

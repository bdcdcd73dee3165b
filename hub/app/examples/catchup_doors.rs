//! Benchmark: what a week's catch-up costs the doors. Two engines of one site in one process
//! (hub A and hub B, each with its own store), their sync sessions joined by channels. B records
//! a week of parcels (desk check-ins, 150 a day) while the two are apart; then they connect, and
//! while A catches up on B's week, A keeps recording parcels of its own (one every 20 ms). Prints
//! the p50/p99/max of A's step for recording a parcel before the catch-up and during it, how long
//! the catch-up took, and how long the engine's longest sync step was.
//!
//!     cargo run --release -p locker-app --example catchup_doors
//!
//! Messages over `locker_app::sync::OFFLOAD_BYTES` are merged on the merge thread; the engine
//! adopts the result and folds the facts. Asserts nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use locker_app::engine::{self, Engine, Job, ReplyTo};
use locker_app::notify::OutboxOnly;
use locker_app::storage::StorageHealth;
use locker_app::sync::{SyncEvent, SyncOut};
use locker_core::{Caller, Command, Operator, RegisterMode, Request, RequestId, ResidentId, Role};
use locker_sync::PeerRole;

const RESIDENTS: usize = 300;
const WEEK: usize = 7 * 150;

fn config(dir: &Path, hub: &str) -> locker_config::Config {
    let path = dir.join("hub.toml");
    std::fs::write(
        &path,
        format!(
            "[site]\nid = \"bench-site\"\nhub_id = \"{hub}\"\ndata_dir = \"{}/data\"\n\
             storage_reserve_mib = 0\n\n[sync]\nlisten = \"127.0.0.1:0\"\n",
            dir.display()
        ),
    )
    .expect("write hub.toml");
    locker_config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn start(dir: &Path, hub: &str) -> Engine {
    let config = config(dir, hub);
    let storage = Arc::new(StorageHealth::new(&config.site.data_dir, 0));
    let (publish, published) = tokio::sync::mpsc::unbounded_channel();
    std::mem::forget(published);
    engine::start(
        &config,
        publish,
        Arc::new(OutboxOnly),
        storage,
        Arc::default(),
    )
    .expect("engine starts")
}

/// Run one request on `engine`; its latency.
fn run(engine: &Engine, id: String, request: Request) -> Duration {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    engine
        .jobs
        .send(Job::Command {
            command: Command {
                request_id: RequestId(id),
                request,
            },
            caller: Caller::User(Role::Staff),
            reply: ReplyTo::Http(tx),
        })
        .expect("engine running");
    let reply = rx.blocking_recv().expect("a reply");
    let took = started.elapsed();
    assert!(
        !matches!(reply.outcome, locker_core::Outcome::Rejected(_)),
        "{reply:?}"
    );
    took
}

fn check_in(engine: &Engine, hub: &str, i: usize) -> Duration {
    run(
        engine,
        format!("{hub}-in-{i}"),
        Request::DeskCheckIn {
            by: staff(),
            resident: ResidentId(format!("r-{}", i % RESIDENTS)),
            tracking: Some(format!("{hub}-TRK{i:06}")),
            carrier: None,
        },
    )
}

fn staff() -> Operator {
    Operator::Staff {
        id: locker_core::StaffId("bench".into()),
    }
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    (at(0.5), at(0.99), *v.last().unwrap_or(&Duration::ZERO))
}

fn parcels(engine: &Engine) -> usize {
    let (tx, rx) = tokio::sync::oneshot::channel();
    engine.jobs.send(Job::Parcels(tx)).expect("engine running");
    rx.blocking_recv().expect("an answer").len()
}

fn main() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(da.path(), "hub_a");
    let b = start(db.path(), "hub_b");
    // The directory, on both (as if synced before they parted).
    for engine in [&a, &b] {
        for r in 0..RESIDENTS {
            run(
                engine,
                format!("reg-{r}"),
                Request::RegisterResident {
                    by: staff(),
                    resident: ResidentId(format!("r-{r}")),
                    unit: format!("{}", 100 + r),
                    accessible: false,
                    mode: RegisterMode::Upsert,
                    contact: Default::default(),
                },
            );
        }
    }
    // B's week apart.
    let started = Instant::now();
    for i in 0..WEEK {
        check_in(&b, "b", i);
    }
    println!("hub B recorded {WEEK} parcels in {:?}", started.elapsed());

    // A alone: the baseline.
    let mut before = Vec::new();
    for i in 0..300 {
        before.push(check_in(&a, "a", i));
    }

    // Connect: A accepts, B dials; frames carried by two threads.
    let (a_out, mut a_rx) = tokio::sync::mpsc::unbounded_channel::<SyncOut>();
    let (b_out, mut b_rx) = tokio::sync::mpsc::unbounded_channel::<SyncOut>();
    let (aj, bj) = (a.jobs.clone(), b.jobs.clone());
    let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (ab, bb) = (bytes.clone(), bytes.clone());
    let carry_a = std::thread::spawn(move || {
        while let Some(SyncOut::Frame(frame)) = a_rx.blocking_recv() {
            ab.fetch_add(frame.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if bj
                .send(Job::Sync(SyncEvent::Frame { conn: 1, frame }))
                .is_err()
            {
                return;
            }
        }
    });
    let carry_b = std::thread::spawn(move || {
        while let Some(SyncOut::Frame(frame)) = b_rx.blocking_recv() {
            bb.fetch_add(frame.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if aj
                .send(Job::Sync(SyncEvent::Frame { conn: 1, frame }))
                .is_err()
            {
                return;
            }
        }
    });
    let parcels_before = parcels(&a);
    a.jobs
        .send(Job::Sync(SyncEvent::Opened {
            conn: 1,
            name: "hub-b".into(),
            role: PeerRole::Acceptor,
            out: a_out,
        }))
        .expect("a");
    let connected = Instant::now();
    b.jobs
        .send(Job::Sync(SyncEvent::Opened {
            conn: 1,
            name: "hub-a".into(),
            role: PeerRole::Dialer,
            out: b_out,
        }))
        .expect("b");
    // A keeps recording parcels while it catches up.
    let mut during = Vec::new();
    let mut i = 300;
    let mut caught_up = None;
    while connected.elapsed() < Duration::from_secs(60) {
        during.push(check_in(&a, "a", i));
        i += 1;
        if caught_up.is_none() && parcels(&a) >= parcels_before + WEEK {
            caught_up = Some(connected.elapsed());
        }
        if caught_up.is_some_and(|t| connected.elapsed() > t + Duration::from_secs(1)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (p50, p99, max) = percentiles(before.clone());
    println!(
        "recording a parcel at A before the catch-up: p50 {p50:?}, p99 {p99:?}, max {max:?} ({} samples)",
        before.len()
    );
    let (p50, p99, max) = percentiles(during.clone());
    println!(
        "recording a parcel at A during the catch-up: p50 {p50:?}, p99 {p99:?}, max {max:?} ({} samples)",
        during.len()
    );
    match caught_up {
        Some(t) => println!(
            "A had B's {WEEK} parcels {t:?} after connecting; {} bytes carried",
            bytes.load(std::sync::atomic::Ordering::Relaxed)
        ),
        None => println!("A did not catch up within 60 s"),
    }
    a.stop();
    b.stop();
    let _ = (carry_a.join(), carry_b.join());
}

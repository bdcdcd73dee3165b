//! The engine's promises, tested on the engine itself (no broker, no web):
//! - durable before acknowledged: a process that dies the instant a command is acknowledged
//!   has the command's facts on disk (the child process exits at the acknowledgement; the
//!   parent reopens the data);
//! - fail-stop: a write error that is not a full disk (a file-size limit in a child) stops the
//!   process with exit 70, and everything acknowledged before is on disk;
//! - a command from a caller who may not send it records nothing;
//! - the closed set of jobs answers reads from the same state.

use std::path::Path;
use std::process::Command as Process;
use std::sync::Arc;

use locker_app::engine::{self, Job, ReplyTo};
use locker_app::notify::OutboxOnly;
use locker_app::storage::StorageHealth;
use locker_core::{
    Caller, Command, Operator, Outcome, RegisterMode, RejectCode, Request, RequestId, ResidentId,
    Role,
};

const CHILD: &str = "LOCKER_ENGINE_TEST_CHILD";

fn config(dir: &Path, extra: &str) -> locker_config::Config {
    let path = dir.join("hub.toml");
    std::fs::write(
        &path,
        format!(
            "[site]\nid = \"engine-test\"\ndata_dir = \"{}/data\"\nstorage_reserve_mib = 0\n{extra}\n",
            dir.display()
        ),
    )
    .expect("write hub.toml");
    locker_config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn start(dir: &Path) -> engine::Engine {
    start_with(dir, "").expect("engine starts")
}

fn start_with(dir: &Path, extra: &str) -> Result<engine::Engine, locker_sync::StoreError> {
    let config = config(dir, extra);
    let storage = Arc::new(StorageHealth::new(&config.site.data_dir, 0));
    let (publish, _published) = tokio::sync::mpsc::unbounded_channel();
    // The receiver is dropped: nothing published matters here, and sending to it just fails.
    engine::start(
        &config,
        publish,
        Arc::new(OutboxOnly),
        storage,
        Arc::default(),
    )
}

fn register(id: &str, caller: Caller) -> (Job, tokio::sync::oneshot::Receiver<locker_core::Reply>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Job::Command {
        command: Command {
            request_id: RequestId(format!("req-{id}")),
            request: Request::RegisterResident {
                by: Operator::Cloud,
                resident: ResidentId(id.to_owned()),
                unit: "101".into(),
                accessible: false,
                mode: RegisterMode::Add,
                contact: Default::default(),
            },
        },
        caller,
        reply: ReplyTo::Http(tx),
    };
    (job, rx)
}

fn residents(engine: &engine::Engine) -> Vec<String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    engine
        .jobs
        .send(Job::Residents(tx))
        .expect("engine running");
    rx.blocking_recv()
        .expect("an answer")
        .into_iter()
        .map(|r| r.resident.to_string())
        .collect()
}

/// In the child: register one resident and exit the very moment the reply arrives, with no
/// shutdown of anything (as a power cut right after the acknowledgement would).
fn child(dir: &str) -> ! {
    let engine = start(Path::new(dir));
    let (job, rx) = register("r-acked", Caller::User(Role::Staff));
    engine.jobs.send(job).expect("engine running");
    let reply = rx.blocking_recv().expect("a reply");
    if matches!(reply.outcome, Outcome::Accepted) {
        std::process::exit(42);
    }
    eprintln!("unexpected reply: {reply:?}");
    std::process::exit(1);
}

#[test]
fn a_command_is_on_disk_the_moment_it_is_acknowledged() {
    if let Ok(dir) = std::env::var(CHILD) {
        child(&dir);
    }
    for round in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Process::new(std::env::current_exe().expect("this test binary"))
            .args([
                "a_command_is_on_disk_the_moment_it_is_acknowledged",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD, dir.path())
            .output()
            .expect("run the child");
        assert_eq!(
            out.status.code(),
            Some(42),
            "round {round}: the child did not exit at the acknowledgement: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let engine = start(dir.path());
        assert_eq!(
            residents(&engine),
            vec!["r-acked".to_owned()],
            "round {round}: acknowledged, then lost"
        );
        engine.stop();
    }
}

#[test]
fn a_kiosk_asking_for_a_staff_action_is_refused_and_nothing_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = start(dir.path());
    let (job, rx) = register("r-kiosk", Caller::BankKiosk { bank: "A".into() });
    engine.jobs.send(job).expect("engine running");
    let reply = rx.blocking_recv().expect("a reply");
    assert!(
        matches!(&reply.outcome, Outcome::Rejected(r) if r.code == RejectCode::NotPermitted),
        "{reply:?}"
    );
    let (job, rx) = register("r-tablet", Caller::User(Role::Kiosk));
    engine.jobs.send(job).expect("engine running");
    let reply = rx.blocking_recv().expect("a reply");
    assert!(
        matches!(&reply.outcome, Outcome::Rejected(r) if r.code == RejectCode::NotPermitted),
        "{reply:?}"
    );
    assert!(residents(&engine).is_empty());
    engine.stop();
    // And not on disk either.
    let engine = start(dir.path());
    assert!(residents(&engine).is_empty());
    engine.stop();
}

/// The hub id in the fact ids of the directory's residents' registrations.
fn fact_hubs(engine: &engine::Engine) -> Vec<String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    engine
        .jobs
        .send(Job::Facts {
            query: engine::FactQuery::default(),
            limit: 100,
            reply: tx,
        })
        .expect("engine running");
    rx.blocking_recv()
        .expect("an answer")
        .into_iter()
        .map(|f| f.id.hub)
        .collect()
}

#[test]
fn a_store_made_before_hub_ids_keeps_its_id_and_a_new_one_gets_its_own() {
    // A store as earlier versions made it: recorded under the site-derived id.
    let old = tempfile::tempdir().expect("tempdir");
    let engine = start_with(old.path(), "hub_id = \"engine_test\"").expect("engine starts");
    let (job, rx) = register("r-before", Caller::User(Role::Staff));
    engine.jobs.send(job).expect("engine running");
    assert!(matches!(
        rx.blocking_recv().expect("a reply").outcome,
        Outcome::Accepted
    ));
    engine.stop();
    // Upgraded, with no hub id configured: the same id, old facts and new.
    let engine = start(old.path());
    let (job, rx) = register("r-after", Caller::User(Role::Staff));
    engine.jobs.send(job).expect("engine running");
    assert!(matches!(
        rx.blocking_recv().expect("a reply").outcome,
        Outcome::Accepted
    ));
    assert_eq!(residents(&engine), ["r-after", "r-before"]);
    let hubs = fact_hubs(&engine);
    assert!(
        !hubs.is_empty() && hubs.iter().all(|h| h == "engine_test"),
        "{hubs:?}"
    );
    engine.stop();
    // Naming another id for that data is refused, with both ids named.
    let refused = start_with(old.path(), "hub_id = \"someone_else\"")
        .err()
        .expect("refused");
    let text = refused.to_string();
    assert!(
        text.contains("engine_test") && text.contains("someone_else"),
        "{text}"
    );

    // Two new data directories of the same site: two ids, kept across restarts.
    let (a, b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let ids: Vec<String> = [a.path(), b.path()]
        .iter()
        .map(|dir| {
            let engine = start(dir);
            let (job, rx) = register("r-1", Caller::User(Role::Staff));
            engine.jobs.send(job).expect("engine running");
            rx.blocking_recv().expect("a reply");
            let hubs = fact_hubs(&engine);
            engine.stop();
            let again = start(dir);
            assert_eq!(fact_hubs(&again), hubs, "the id is kept across a restart");
            again.stop();
            hubs[0].clone()
        })
        .collect();
    assert!(
        ids.iter().all(|id| id.starts_with("engine_test_")),
        "{ids:?}"
    );
    assert_ne!(ids[0], ids[1], "two hubs of one site share no fact ids");
}

const FAIL_STOP_CHILD: &str = "LOCKER_ENGINE_FAIL_STOP_CHILD";

/// In the child: the data file may not grow past its size at start (RLIMIT_FSIZE, with SIGXFSZ
/// ignored, so a write past it fails with EFBIG: a write error that is not a full disk). Register
/// residents, printing each one acknowledged, until the engine stops the process.
fn fail_stop_child(dir: &str) -> ! {
    let engine = start(Path::new(dir));
    let file = Path::new(dir).join("data/state.redb");
    let size = std::fs::metadata(&file).expect("the store's file").len();
    // SAFETY: setrlimit and signal only change this process's limits and signal disposition.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: size,
            rlim_max: size,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    for n in 0..5000 {
        let id = format!("r-{n}");
        let (job, rx) = register(&id, Caller::User(Role::Staff));
        engine.jobs.send(job).expect("engine running");
        match rx.blocking_recv() {
            Ok(reply) if matches!(reply.outcome, Outcome::Accepted) => println!("acked {id}"),
            other => {
                eprintln!("unexpected answer to {id}: {other:?}");
                std::process::exit(1);
            }
        }
    }
    eprintln!("the file never had to grow");
    std::process::exit(2);
}

/// Fail-stop: a commit that fails for any reason but a full or read-only disk stops the process
/// (exit 70), so memory is never ahead of disk; everything acknowledged before is on disk.
#[test]
fn a_write_error_that_is_not_a_full_disk_stops_the_process_and_loses_nothing_acknowledged() {
    if let Ok(dir) = std::env::var(FAIL_STOP_CHILD) {
        fail_stop_child(&dir);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Process::new(std::env::current_exe().expect("this test binary"))
        .args([
            "a_write_error_that_is_not_a_full_disk_stops_the_process_and_loses_nothing_acknowledged",
            "--exact",
            "--nocapture",
        ])
        .env(FAIL_STOP_CHILD, dir.path())
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(70),
        "the engine did not stop the process on a write error: {stderr}"
    );
    let acked: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("acked ").map(str::to_owned))
        .collect();
    let engine = start(dir.path());
    let on_disk = residents(&engine);
    engine.stop();
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the error: {stderr}"
    );
    for id in &acked {
        assert!(on_disk.contains(id), "{id} was acknowledged, then lost");
    }
    println!(
        "{} acknowledged before the write error, all on disk; the process exited 70",
        acked.len()
    );
}

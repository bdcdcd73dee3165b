//! The link against simulated boards on a real pseudo-terminal: the driver opens the PTY by
//! path like a real port, and the simulator misbehaves on request.

#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::{eventually, fast_link, pty_bus};
use locker_drivers::board::Polarity;
use locker_drivers::boardsim::{
    AnyRequest, Dialect, Fault, KerongUnlockReply, SimBus, SimSettings,
};
use locker_drivers::kerong::{self, Kerong};
use locker_drivers::link::{Link, LinkError, LinkSettings, Priority, Transport};
use locker_drivers::lockboard8a::{self, Lockboard8a};

fn status(board: u8) -> kerong::Request {
    kerong::Request::Status { board }
}

async fn read_status(link: &Link<Kerong>, board: u8) -> Result<kerong::BoardStatus, LinkError> {
    match link.request(status(board), Priority::Routine).await? {
        Some(kerong::Reply::Status(s)) => Ok(s),
        other => panic!("not a status reply: {other:?}"),
    }
}

#[tokio::test]
async fn kerong_unlock_and_status_cycle() {
    let bus = pty_bus(SimSettings::kerong(&[0, 1]));
    let link = Link::spawn(Kerong::default(), fast_link(&bus.path, 19_200));
    let s = read_status(&link, 1).await.expect("status of board 1");
    assert_eq!(s.board, 1);
    assert!(!s.is_open(3, Polarity::OneIsClosed));

    // This firmware does not answer unlocks: the link reports "no reply", not a failure.
    let unlocked = link
        .request(kerong::Request::unlock(1, 3).unwrap(), Priority::Urgent)
        .await;
    assert_eq!(unlocked, Ok(None));
    assert!(bus.sim.is_open(1, 3));
    assert_eq!(bus.sim.pulses(1, 3), 1);
    let s = read_status(&link, 1).await.expect("status after unlock");
    assert!(s.is_open(3, Polarity::OneIsClosed));
    assert!(!s.is_open(4, Polarity::OneIsClosed));

    let stats = link.stats();
    assert_eq!((stats.requests, stats.replies, stats.timeouts), (3, 2, 0));
    assert!(stats.port_open);
}

#[tokio::test]
async fn kerong_firmware_that_answers_unlocks_with_a_status() {
    let mut settings = SimSettings::kerong(&[2]);
    settings.dialect = Dialect::Kerong {
        unlock_reply: KerongUnlockReply::Status,
    };
    settings.polarity = Polarity::ZeroIsClosed;
    let bus = pty_bus(settings);
    let protocol = Kerong {
        polarity: Polarity::ZeroIsClosed,
        ..Kerong::default()
    };
    let link = Link::spawn(protocol, fast_link(&bus.path, 19_200));
    let reply = link
        .request(kerong::Request::unlock(2, 16).unwrap(), Priority::Urgent)
        .await
        .expect("unlock");
    let Some(kerong::Reply::Status(s)) = reply else {
        panic!("expected the status reply, got {reply:?}");
    };
    assert!(s.is_open(16, Polarity::ZeroIsClosed));
    assert!(!s.is_open(15, Polarity::ZeroIsClosed));
}

#[tokio::test]
async fn a_bad_checksum_is_counted_and_retried() {
    let bus = pty_bus(SimSettings::kerong(&[0]));
    let link = Link::spawn(Kerong::default(), fast_link(&bus.path, 19_200));
    bus.sim.inject(Fault::BadChecksum);
    read_status(&link, 0).await.expect("the retry gets through");
    let stats = link.stats();
    assert_eq!(stats.checksum_errors, 1);
    assert_eq!(stats.retries, 1);
    assert_eq!(stats.requests, 2);
    assert!(stats
        .last_error
        .is_some_and(|(_, e)| e.contains("checksum")));
}

#[tokio::test]
async fn silence_times_out_and_retries_are_bounded() {
    let bus = pty_bus(SimSettings::kerong(&[0]));
    let mut settings = fast_link(&bus.path, 19_200);
    settings.retries = 2;
    let link = Link::spawn(Kerong::default(), settings);
    bus.sim.inject(Fault::Silence);
    read_status(&link, 0).await.expect("second try answers");
    assert_eq!(link.stats().timeouts, 1);

    bus.sim.set_silent(0, true);
    let err = read_status(&link, 0).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: board 0 did not answer within 200ms (3 tries)",
            bus.path.display()
        )
    );
    let stats = link.stats();
    assert_eq!(stats.timeouts, 4);
    assert_eq!(stats.requests, 2 + 3);
}

#[tokio::test]
async fn split_delayed_and_garbage_wrapped_replies_still_arrive() {
    let bus = pty_bus(SimSettings::kerong(&[0]));
    let link = Link::spawn(Kerong::default(), fast_link(&bus.path, 19_200));
    for fault in [
        Fault::Split {
            at: 4,
            pause: Duration::from_millis(60),
        },
        Fault::Delay(Duration::from_millis(120)),
        Fault::GarbageBefore(vec![0xFF, 0x00, 0x35, 0x03]),
    ] {
        bus.sim.inject(fault.clone());
        read_status(&link, 0)
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
    }
    // Garbage on an idle line is counted and does not disturb the next request.
    bus.sim.write_raw(&[0x13, 0x37, 0x02, 0x99]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    read_status(&link, 0).await.expect("after idle garbage");
    let stats = link.stats();
    assert_eq!(
        (stats.timeouts, stats.retries, stats.checksum_errors),
        (0, 0, 0)
    );
    assert!(stats.garbage_bytes >= 8, "{stats:?}");
    assert_eq!(stats.replies, 4);
}

#[tokio::test]
async fn a_late_reply_is_drained_not_taken_for_the_next_answer() {
    let bus = pty_bus(SimSettings::kerong(&[0]));
    let mut settings = fast_link(&bus.path, 19_200);
    settings.retries = 0;
    settings.drain_quiet = Duration::from_millis(150);
    let link = Link::spawn(Kerong::default(), settings);
    // The board latches "door 1 closed", then answers 260 ms later: after the 200 ms deadline.
    bus.sim.inject(Fault::Delay(Duration::from_millis(260)));
    assert!(matches!(
        read_status(&link, 0).await,
        Err(LinkError::Timeout { .. })
    ));
    // Meanwhile door 1 opened. The next answer must say so, not repeat the stale reply.
    bus.sim.set_door(0, 1, true);
    let fresh = read_status(&link, 0).await.expect("fresh status");
    assert!(fresh.is_open(1, Polarity::OneIsClosed));
    assert_eq!(link.stats().stray_frames, 1, "the late reply was drained");
}

#[tokio::test]
async fn a_late_reply_after_the_drain_is_not_mistaken_for_another_boards_answer() {
    let bus = pty_bus(SimSettings::kerong(&[0, 1]));
    let mut settings = fast_link(&bus.path, 19_200);
    settings.retries = 0;
    settings.drain_quiet = Duration::from_millis(20);
    let link = Link::spawn(Kerong::default(), settings);
    bus.sim.set_door(0, 5, true);
    // Board 0 answers at 300 ms: after the deadline (200) and the drain (~220), while the
    // request to board 1 is waiting.
    bus.sim.inject(Fault::Delay(Duration::from_millis(300)));
    assert!(read_status(&link, 0).await.is_err());
    let s = read_status(&link, 1).await.expect("board 1 answers");
    assert_eq!(s.board, 1);
    assert!(
        !s.is_open(5, Polarity::OneIsClosed),
        "board 0's bits leaked"
    );
    assert_eq!(link.stats().stray_frames, 1);
}

#[tokio::test]
async fn offline_boards_are_polled_less_often_and_come_back() {
    let bus = pty_bus(SimSettings::kerong(&[0, 5]));
    let mut settings = fast_link(&bus.path, 19_200);
    settings.retries = 0;
    settings.response_timeout = Duration::from_millis(60);
    settings.drain_quiet = Duration::from_millis(10);
    settings.offline_after = 2;
    settings.offline_poll_interval = Duration::from_millis(400);
    let link = Link::spawn(Kerong::default(), settings);
    bus.sim.set_silent(5, true);
    for _ in 0..2 {
        assert!(matches!(
            read_status(&link, 5).await,
            Err(LinkError::Timeout { .. })
        ));
    }
    assert!(!link.stats().devices[&5].online);
    let on_wire = bus.sim.received().len();
    let err = read_status(&link, 5).await.unwrap_err();
    assert!(matches!(err, LinkError::Offline { .. }), "{err}");
    assert_eq!(
        bus.sim.received().len(),
        on_wire,
        "refused without touching the bus"
    );
    // Other boards are unaffected, and an urgent request still goes out.
    read_status(&link, 0).await.expect("board 0");
    assert!(link.request(status(5), Priority::Urgent).await.is_err());
    assert_eq!(link.stats().refused, 1);

    bus.sim.set_silent(5, false);
    let back = eventually(Duration::from_secs(2), || async {
        read_status(&link, 5).await.ok()
    })
    .await;
    assert!(back.is_some(), "the periodic probe finds the board again");
    assert!(link.stats().devices[&5].online);
}

#[tokio::test]
async fn an_unlock_jumps_ahead_of_queued_polling() {
    let bus = pty_bus(SimSettings::kerong(&[0, 1, 2, 3]));
    let link = Link::spawn(Kerong::default(), fast_link(&bus.path, 19_200));
    read_status(&link, 0).await.expect("warm up");
    // A slow transaction occupies the bus while three polls and then an unlock queue up.
    bus.sim.inject(Fault::Delay(Duration::from_millis(100)));
    let mut tasks = Vec::new();
    for board in [0, 1, 2, 3] {
        let link = link.clone();
        tasks.push(tokio::spawn(async move {
            link.request(status(board), Priority::Routine).await
        }));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let unlock = link
        .request(kerong::Request::unlock(3, 1).unwrap(), Priority::Urgent)
        .await;
    assert_eq!(unlock, Ok(None));
    for t in tasks {
        assert!(t.await.unwrap().is_ok());
    }
    let order: Vec<_> = bus
        .sim
        .received()
        .into_iter()
        .skip(1)
        .map(|r| r.request)
        .collect();
    assert_eq!(
        order[..2],
        [
            AnyRequest::Kerong(status(0)),
            AnyRequest::Kerong(kerong::Request::Unlock { board: 3, lock: 1 })
        ],
        "the unlock went right after the transaction on the wire: {order:?}"
    );
}

#[tokio::test]
async fn the_port_vanishes_and_is_reopened() {
    let bus = pty_bus(SimSettings::kerong(&[0]));
    let link = Link::spawn(Kerong::default(), fast_link(&bus.path, 19_200));
    read_status(&link, 0).await.expect("before");
    bus.sim.vanish();
    let down = eventually(Duration::from_secs(2), || async {
        match read_status(&link, 0).await {
            Err(e @ LinkError::PortDown { .. }) => Some(e),
            _ => None,
        }
    })
    .await
    .expect("the lost port is noticed");
    assert!(down.to_string().contains("is not open"), "{down}");
    assert!(!link.stats().port_open);

    bus.sim.reappear();
    let back = eventually(Duration::from_secs(3), || async {
        read_status(&link, 0).await.ok()
    })
    .await;
    assert!(back.is_some(), "requests work again after the port returns");
    let stats = link.stats();
    assert!(stats.port_open);
    assert_eq!(stats.reopens, 1);
}

#[tokio::test]
async fn a_missing_port_fails_fast_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ttyUSB-missing");
    let link = Link::spawn(Kerong::default(), fast_link(&path, 19_200));
    let err = read_status(&link, 0).await.unwrap_err();
    let LinkError::PortDown { reason, .. } = &err else {
        panic!("{err}");
    };
    assert!(reason.contains("No such file"), "{reason}");
}

#[tokio::test]
async fn lockboard_8a_query_unlock_and_unsolicited_changes() {
    let mut settings = SimSettings::lockboard8a(&[1, 32]);
    settings.dialect = Dialect::Lockboard8a { unsolicited: true };
    let bus = pty_bus(settings);
    let link = Link::spawn(Lockboard8a::default(), fast_link(&bus.path, 9_600));
    let mut changes = link.unsolicited();

    let all = link
        .request(
            lockboard8a::Request::query_all(32).unwrap(),
            Priority::Routine,
        )
        .await
        .expect("query all");
    assert_eq!(
        all,
        Some(lockboard8a::Reply::All {
            board: 32,
            bits: 0x00FF_FFFF
        })
    );
    let unlocked = link
        .request(
            lockboard8a::Request::unlock(32, 24).unwrap(),
            Priority::Urgent,
        )
        .await
        .expect("unlock");
    assert_eq!(
        unlocked,
        Some(lockboard8a::Reply::Unlock {
            board: 32,
            lock: 24,
            status: lockboard8a::OPEN
        })
    );
    let one = link
        .request(
            lockboard8a::Request::query(32, 24).unwrap(),
            Priority::Routine,
        )
        .await
        .expect("query one");
    assert_eq!(
        one,
        Some(lockboard8a::Reply::Lock {
            board: 32,
            lock: 24,
            status: lockboard8a::OPEN
        })
    );

    bus.sim.set_door(1, 7, true);
    let change = tokio::time::timeout(Duration::from_secs(2), changes.recv())
        .await
        .expect("change reported")
        .expect("channel");
    assert_eq!(
        change,
        lockboard8a::Reply::Changed {
            board: 1,
            lock: 7,
            status: lockboard8a::OPEN
        }
    );
}

/// The 8A frames that open doors (unlock, unlock-all, multi-unlock) received after the first `skip`.
fn unlock_frames(bus: &SimBus, skip: usize) -> Vec<lockboard8a::Request> {
    bus.received_after(skip)
        .into_iter()
        .filter_map(|r| match r.request {
            AnyRequest::Lockboard8a(
                req @ (lockboard8a::Request::Unlock { .. }
                | lockboard8a::Request::UnlockAll { .. }
                | lockboard8a::Request::MultiUnlock { .. }),
            ) => Some(req),
            _ => None,
        })
        .collect()
}

/// A lost or garbled reply to a frame that opens doors does not mean the frame was lost: the
/// board may have pulsed. Such frames go on the wire once, whatever `retries` says; reads are
/// still repeated.
#[tokio::test]
async fn lockboard_8a_door_opening_frames_are_never_resent() {
    let bus = pty_bus(SimSettings::lockboard8a(&[3]));
    let mut settings = fast_link(&bus.path, 9_600);
    settings.retries = 2;
    let protocol = Lockboard8a {
        unlock_all_timeout: Duration::from_millis(300),
        ..Lockboard8a::default()
    };
    let link = Link::spawn(protocol, settings);

    // A status query whose reply is lost is simply asked again.
    bus.sim.inject(Fault::Silence);
    let all = link
        .request(
            lockboard8a::Request::query_all(3).unwrap(),
            Priority::Routine,
        )
        .await
        .expect("the retry of a read gets through");
    assert!(matches!(
        all,
        Some(lockboard8a::Reply::All { board: 3, .. })
    ));
    assert_eq!(link.stats().retries, 1);

    // The board pulses, its reply is lost.
    let skip = bus.sim.received_count();
    bus.sim.inject(Fault::Silence);
    let err = link
        .request(
            lockboard8a::Request::unlock(3, 2).unwrap(),
            Priority::Urgent,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LinkError::Timeout { tries: 1, .. }),
        "{err:?}"
    );
    assert!(!err.never_sent(), "it did go on the wire");
    assert_eq!(
        unlock_frames(&bus.sim, skip),
        [lockboard8a::Request::Unlock { board: 3, lock: 2 }]
    );
    assert_eq!(bus.sim.pulses(3, 2), 1);

    // The board pulses, its reply arrives garbled.
    let skip = bus.sim.received_count();
    bus.sim.inject(Fault::BadChecksum);
    let err = link
        .request(
            lockboard8a::Request::unlock(3, 5).unwrap(),
            Priority::Urgent,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LinkError::BadReply { tries: 1, .. }),
        "{err:?}"
    );
    assert_eq!(unlock_frames(&bus.sim, skip).len(), 1);
    assert_eq!(bus.sim.pulses(3, 5), 1);

    // Unlock-all: every lock pulsed once.
    let skip = bus.sim.received_count();
    bus.sim.inject(Fault::Silence);
    let err = link
        .request(
            lockboard8a::Request::unlock_all(3).unwrap(),
            Priority::Urgent,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LinkError::Timeout { tries: 1, .. }),
        "{err:?}"
    );
    assert_eq!(unlock_frames(&bus.sim, skip).len(), 1);
    assert_eq!(bus.sim.pulses(3, 9), 1);
    // Not one retry beyond the read's.
    assert_eq!(link.stats().retries, 1);
}

#[tokio::test]
async fn kerong_through_a_tcp_gateway_and_its_outage() {
    let sim = SimBus::on_tcp(SimSettings::kerong(&[4])).expect("tcp sim");
    let addr = sim.addr().expect("address");
    let mut settings = LinkSettings::new(Transport::Tcp {
        host: addr.ip().to_string(),
        port: addr.port(),
    });
    settings.response_timeout = Duration::from_millis(200);
    settings.reopen_backoff_min = Duration::from_millis(50);
    settings.reopen_backoff_max = Duration::from_millis(200);
    let link = Link::spawn(Kerong::default(), settings);
    read_status(&link, 4).await.expect("through the gateway");
    sim.vanish();
    let down = eventually(Duration::from_secs(2), || async {
        read_status(&link, 4)
            .await
            .err()
            .filter(|e| matches!(e, LinkError::PortDown { .. }))
    })
    .await;
    assert!(down.is_some());
    sim.reappear();
    let back = eventually(Duration::from_secs(3), || async {
        read_status(&link, 4).await.ok()
    })
    .await;
    assert!(back.is_some());
    assert_eq!(link.stats().reopens, 1);
}

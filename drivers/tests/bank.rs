//! The bank adapter end to end: an in-process broker, simulated boards on a PTY, the link and
//! the adapter, observed only on the MQTT bus (as the hub sees it) and on the simulated wire.

#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::{fast_link, pty_bus, start_broker};
use locker_drivers::adapter::{self, BankSettings, BrokerTarget};
use locker_drivers::board::{BoardLock, DoorMap};
use locker_drivers::boardsim::{AnyRequest, Dialect, Fault, SimSettings};
use locker_drivers::bus::{BankStatus, CommandAck, DoorObservation, UnlockResult};
use locker_drivers::kerong::{self, Kerong};
use locker_drivers::link::Link;
use locker_drivers::lockboard8a::{self, Lockboard8a};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

/// The hub's side of the bus: sends commands, sees everything under the bank's topics.
struct Hub {
    client: AsyncClient,
    rx: mpsc::UnboundedReceiver<(String, Value, bool)>,
    /// Messages received but not yet matched by an `expect`, oldest first.
    backlog: Vec<(String, Value)>,
    bank: String,
}

impl Hub {
    async fn connect(addr: std::net::SocketAddr, bank: &str) -> Hub {
        let mut opts = MqttOptions::new(format!("hub-{bank}"), addr.ip().to_string(), addr.port());
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut events) = AsyncClient::new(opts, 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, mut subscribed) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let value = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                        let _ = tx.send((p.topic, value, p.retain));
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        client
            .subscribe(format!("lockerhub/v1/bank/{bank}/#"), QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        tokio::time::timeout(WAIT, subscribed.recv())
            .await
            .expect("suback");
        Hub {
            client,
            rx,
            backlog: Vec::new(),
            bank: bank.into(),
        }
    }

    fn topic(&self, rest: &str) -> String {
        format!("lockerhub/v1/bank/{}/{rest}", self.bank)
    }

    async fn send(&self, command: Value) {
        self.client
            .publish(
                self.topic("cmd"),
                QoS::AtLeastOnce,
                false,
                command.to_string(),
            )
            .await
            .expect("publish");
    }

    /// The oldest unmatched message on `rest` whose payload satisfies `pred`, waiting for it
    /// if need be; messages that do not match stay for later `expect`s.
    async fn expect(&mut self, rest: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let topic = self.topic(rest);
        if let Some(i) = self
            .backlog
            .iter()
            .position(|(t, v)| *t == topic && pred(v))
        {
            return self.backlog.remove(i).1;
        }
        let backlog = &mut self.backlog;
        let rx = &mut self.rx;
        let found = tokio::time::timeout(WAIT, async {
            loop {
                let (t, v, _) = rx.recv().await.expect("hub client alive");
                if t == topic && pred(&v) {
                    return v;
                }
                backlog.push((t, v));
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("nothing on {topic} matching within {WAIT:?}"))
    }

    /// Everything unmatched so far and everything that arrives within `window`.
    async fn collect(&mut self, window: Duration) -> Vec<(String, Value)> {
        let mut out = std::mem::take(&mut self.backlog);
        let stop = tokio::time::Instant::now() + window;
        while let Ok(Some((t, v, _))) = tokio::time::timeout_at(stop, self.rx.recv()).await {
            out.push((t, v));
        }
        out
    }
}

fn settings(bank: &str, broker: std::net::SocketAddr, poll: Duration) -> BankSettings {
    BankSettings {
        bank: bank.into(),
        broker: BrokerTarget {
            host: broker.ip().to_string(),
            port: broker.port(),
            credentials: None,
        },
        poll_interval: poll,
        // Every board every cycle, as these tests expect; idle boards have their own test.
        idle_poll_interval: poll,
        unreachable_after: 3,
    }
}

fn door(open: bool) -> Value {
    serde_json::to_value(DoorObservation {
        open,
        occupied: None,
    })
    .unwrap()
}

fn ack(v: &Value) -> CommandAck {
    serde_json::from_value(v.clone()).expect("ack payload")
}

/// 20 doors: 1-16 on board 0, 17-20 on locks 1-4 of board 1.
fn kerong_map() -> DoorMap {
    let doors = (1..=20u16).map(|d| {
        let at = if d <= 16 {
            BoardLock {
                board: 0,
                lock: d as u8,
            }
        } else {
            BoardLock {
                board: 1,
                lock: (d - 16) as u8,
            }
        };
        (d, at)
    });
    DoorMap::new(doors, kerong::LIMITS).unwrap()
}

#[tokio::test]
async fn kerong_bank_drop_off_and_pickup_on_the_bus() {
    let broker = start_broker();
    let bus = pty_bus(SimSettings::kerong(&[0, 1]));
    let mut hub = Hub::connect(broker, "lobby").await;
    let protocol = Kerong {
        pulse: Some(Duration::from_millis(500)),
        ..Kerong::default()
    };
    let link = Link::spawn(protocol.clone(), fast_link(&bus.path, 19_200));
    let poll = Duration::from_millis(100);
    let bank = adapter::spawn(
        protocol,
        link.clone(),
        kerong_map(),
        settings("lobby", broker, poll),
    )
    .expect("adapter");

    let status = hub.expect("status", |v| v["online"] == true).await;
    let status: BankStatus = serde_json::from_value(status).unwrap();
    assert_eq!(status.doors, Some(20));
    // The first reading reports every door once.
    let first = hub.collect(Duration::from_millis(400)).await;
    for d in 1..=20 {
        let topic = hub.topic(&format!("door/{d}"));
        assert_eq!(
            first
                .iter()
                .filter(|(t, v)| *t == topic && *v == door(false))
                .count(),
            1,
            "door {d} initial state, got {first:?}"
        );
    }
    assert_eq!(
        bus.sim.pulse_setting(0),
        Some(50),
        "pulse time written at first contact"
    );

    // Carrier drop-off at door 18 (board 1, lock 2): unlock, door opens, parcel in, door shut.
    hub.send(serde_json::json!({"type": "unlock", "unlock_id": "drop-1", "door": 18}))
        .await;
    let a = ack(&hub.expect("ack", |v| v["unlock_id"] == "drop-1").await);
    assert!(a.ok && a.door == 18 && a.error.is_none(), "{a:?}");
    assert!(
        bus.sim.is_open(1, 2),
        "the lock of board 1 lock 2 was pulsed"
    );
    hub.expect("door/18", |v| *v == door(true)).await;
    bus.sim.set_door(1, 2, false);
    hub.expect("door/18", |v| *v == door(false)).await;

    // A QoS 1 redelivery of the same unlock is acknowledged again, never pulsed again.
    hub.send(serde_json::json!({"type": "unlock", "unlock_id": "drop-1", "door": 18}))
        .await;
    assert!(ack(&hub.expect("ack", |v| v["unlock_id"] == "drop-1").await).ok);
    assert_eq!(bus.sim.pulses(1, 2), 1);

    // Resident pickup at door 18.
    hub.send(
        serde_json::json!({"type": "unlock", "unlock_id": "pick-1", "door": 18, "pulse_ms": 500}),
    )
    .await;
    assert!(ack(&hub.expect("ack", |v| v["unlock_id"] == "pick-1").await).ok);
    hub.expect("door/18", |v| *v == door(true)).await;
    bus.sim.set_door(1, 2, false);
    hub.expect("door/18", |v| *v == door(false)).await;
    assert_eq!(bus.sim.pulses(1, 2), 2);

    // A door the bank does not have.
    hub.send(serde_json::json!({"type": "unlock", "unlock_id": "bad-1", "door": 99}))
        .await;
    let a = ack(&hub.expect("ack", |v| v["unlock_id"] == "bad-1").await);
    assert!(!a.ok);
    assert_eq!(a.outcome(), UnlockResult::Failed);
    assert_eq!(a.error.as_deref(), Some("no door 99"));

    // A query is answered even when nothing changed.
    hub.send(serde_json::json!({"type": "query", "door": 5}))
        .await;
    hub.expect("door/5", |v| *v == door(false)).await;

    // Someone forces door 3 open: reported within one poll cycle (the one running when the
    // door moved may have read board 0 already; the next one cannot miss it).
    let cycles_before = bank.health().cycles;
    bus.sim.set_door(0, 3, true);
    hub.expect("door/3", |v| *v == door(true)).await;
    let cycles_after = bank.health().cycles;
    assert!(
        cycles_after <= cycles_before + 2,
        "seen after {} cycles",
        cycles_after - cycles_before
    );

    let health = bank.health();
    assert_eq!(health.online, Some(true));
    assert!(health.cycles > 3);
    let stats = link.stats();
    assert_eq!(stats.timeouts, 0);
    assert_eq!(stats.checksum_errors, 0);
}

#[tokio::test]
async fn silent_boards_fail_unlocks_and_take_the_bank_offline() {
    let broker = start_broker();
    let bus = pty_bus(SimSettings::kerong(&[0, 1]));
    let mut hub = Hub::connect(broker, "annex").await;
    let mut link_settings = fast_link(&bus.path, 19_200);
    link_settings.response_timeout = Duration::from_millis(80);
    link_settings.drain_quiet = Duration::from_millis(10);
    link_settings.offline_poll_interval = Duration::from_millis(300);
    let link = Link::spawn(Kerong::default(), link_settings);
    let bank = adapter::spawn(
        Kerong::default(),
        link,
        kerong_map(),
        settings("annex", broker, Duration::from_millis(100)),
    )
    .expect("adapter");
    hub.expect("status", |v| v["online"] == true).await;

    bus.sim.set_silent(1, true);
    hub.send(serde_json::json!({"type": "unlock", "unlock_id": "u-17", "door": 17}))
        .await;
    let a = ack(&hub.expect("ack", |v| v["unlock_id"] == "u-17").await);
    assert!(!a.ok);
    // The frame went out and nobody confirmed: the door may have opened.
    assert_eq!(a.outcome(), UnlockResult::Unknown);
    let error = a.error.unwrap_or_default();
    assert!(
        error.contains("board 1") && error.contains("did not answer"),
        "{error}"
    );
    // One board still answers: the bank stays online, naming the doors it cannot open.
    let status = hub
        .expect("status", |v| v["unreachable_doors"].is_array())
        .await;
    assert_eq!(
        status,
        serde_json::json!({"online": true, "doors": 20, "firmware": status["firmware"],
            "unreachable_doors": [17, 18, 19, 20]})
    );
    bus.sim.set_silent(1, false);
    hub.expect("status", |v| {
        v["online"] == true && v.get("unreachable_doors").is_none()
    })
    .await;
    bus.sim.set_silent(1, true);
    hub.expect("status", |v| {
        v["online"] == true && v["unreachable_doors"] == serde_json::json!([17, 18, 19, 20])
    })
    .await;

    // Both silent: offline (which says it all: no door list).
    bus.sim.set_silent(0, true);
    let offline = hub.expect("status", |v| v["online"] == false).await;
    assert!(offline.get("unreachable_doors").is_none(), "{offline}");
    assert_eq!(bank.health().online, Some(false));
    bus.sim.set_silent(0, false);
    bus.sim.set_silent(1, false);
    hub.expect("status", |v| {
        v["online"] == true && v.get("unreachable_doors").is_none()
    })
    .await;
    bank.wait_for(|h| h.boards.values().all(|alive| *alive))
        .await;
}

#[tokio::test]
async fn the_port_vanishing_takes_the_bank_offline_until_it_returns() {
    let broker = start_broker();
    let bus = pty_bus(SimSettings::kerong(&[0, 1]));
    let mut hub = Hub::connect(broker, "vanish").await;
    let link = Link::spawn(Kerong::default(), fast_link(&bus.path, 19_200));
    let _bank = adapter::spawn(
        Kerong::default(),
        link.clone(),
        kerong_map(),
        settings("vanish", broker, Duration::from_millis(100)),
    )
    .expect("adapter");
    hub.expect("status", |v| v["online"] == true).await;
    bus.sim.vanish();
    hub.expect("status", |v| v["online"] == false).await;
    // Straight to offline: a lost port is not one silent board after another.
    let topic = hub.topic("status");
    let between: Vec<_> = hub
        .collect(Duration::ZERO)
        .await
        .into_iter()
        .filter(|(t, _)| *t == topic)
        .collect();
    assert!(between.is_empty(), "{between:?}");
    hub.send(serde_json::json!({"type": "unlock", "unlock_id": "while-gone", "door": 1}))
        .await;
    let a = ack(&hub.expect("ack", |v| v["unlock_id"] == "while-gone").await);
    assert!(!a.ok);
    // No port: it never left.
    assert_eq!(a.outcome(), UnlockResult::NotSent);
    assert!(a.error.unwrap_or_default().contains("is not open"));
    bus.sim.reappear();
    hub.expect("status", |v| v["online"] == true).await;
    hub.send(serde_json::json!({"type": "unlock", "unlock_id": "back", "door": 1}))
        .await;
    assert!(ack(&hub.expect("ack", |v| v["unlock_id"] == "back").await).ok);
    hub.expect("door/1", |v| *v == door(true)).await;
    assert!(link.stats().reopens >= 1);
}

#[tokio::test]
async fn lockboard_8a_bank_with_unsolicited_door_changes() {
    let broker = start_broker();
    let mut sim = SimSettings::lockboard8a(&[1, 2]);
    sim.dialect = Dialect::Lockboard8a { unsolicited: true };
    let bus = pty_bus(sim);
    let mut hub = Hub::connect(broker, "mail-8a").await;
    // Doors 1-24 on board 1, 25-30 on board 2.
    let map = DoorMap::new(
        (1..=30u16).map(|d| {
            let (board, lock) = if d <= 24 {
                (1, d as u8)
            } else {
                (2, (d - 24) as u8)
            };
            (d, BoardLock { board, lock })
        }),
        lockboard8a::LIMITS,
    )
    .unwrap();
    let link = Link::spawn(Lockboard8a::default(), fast_link(&bus.path, 9_600));
    // A long poll interval: changes seen quickly can only have come unsolicited.
    let _bank = adapter::spawn(
        Lockboard8a::default(),
        link,
        map,
        settings("mail-8a", broker, Duration::from_secs(30)),
    )
    .expect("adapter");
    hub.expect("status", |v| v["online"] == true).await;
    hub.expect("door/30", |v| *v == door(false)).await;

    hub.send(serde_json::json!({"type": "unlock", "unlock_id": "p-26", "door": 26}))
        .await;
    assert!(ack(&hub.expect("ack", |v| v["unlock_id"] == "p-26").await).ok);
    // The unlock reply itself says the door opened.
    hub.expect("door/26", |v| *v == door(true)).await;
    assert_eq!(bus.sim.pulses(2, 2), 1);

    bus.sim.set_door(1, 9, true);
    hub.expect("door/9", |v| *v == door(true)).await;
    bus.sim.set_door(2, 2, false);
    hub.expect("door/26", |v| *v == door(false)).await;
}

/// The truth about doors on an 8A/80 bank: the board pulses the lock but its reply is lost.
/// The frame may have reached the board (here it did), so it is never sent again (a second
/// frame is a second pulse, on a door the person may have walked away from) and the
/// acknowledgement says `unknown`: neither pulsed nor failed.
#[tokio::test]
async fn lockboard_8a_unlock_whose_reply_is_lost_is_sent_once_and_unknown() {
    let broker = start_broker();
    let bus = pty_bus(SimSettings::lockboard8a(&[1]));
    let mut hub = Hub::connect(broker, "lost-8a").await;
    let map = DoorMap::new(
        (1..=24u16).map(|d| {
            (
                d,
                BoardLock {
                    board: 1,
                    lock: d as u8,
                },
            )
        }),
        lockboard8a::LIMITS,
    )
    .unwrap();
    // The default of one retry: what a lost reply used to trigger.
    let link_settings = fast_link(&bus.path, 9_600);
    assert_eq!(link_settings.retries, 1);
    let link = Link::spawn(Lockboard8a::default(), link_settings);
    // A long poll interval: after the first cycle the unlock is alone on the wire, so the
    // injected fault is certain to hit its reply.
    let bank = adapter::spawn(
        Lockboard8a::default(),
        link.clone(),
        map,
        settings("lost-8a", broker, Duration::from_secs(30)),
    )
    .expect("adapter");
    hub.expect("status", |v| v["online"] == true).await;
    bank.wait_for(|h| h.cycles >= 1).await;
    hub.collect(Duration::from_millis(100)).await;

    let skip = bus.sim.received_count();
    // The board carries out the next request and its reply never comes.
    bus.sim.inject(Fault::Silence);
    hub.send(serde_json::json!({"type": "unlock", "unlock_id": "lost-7", "door": 7}))
        .await;
    let a = ack(&hub.expect("ack", |v| v["unlock_id"] == "lost-7").await);
    // Anything a retry would have sent has been sent by the time the ack is out; give a late
    // one a moment anyway.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let unlock_frames: Vec<_> = bus
        .sim
        .received_after(skip)
        .into_iter()
        .filter(|r| {
            matches!(
                r.request,
                AnyRequest::Lockboard8a(lockboard8a::Request::Unlock { board: 1, lock: 7 })
            )
        })
        .collect();
    assert_eq!(
        unlock_frames.len(),
        1,
        "an unlock whose reply was lost went on the wire again: {unlock_frames:?}"
    );
    assert_eq!(bus.sim.pulses(1, 7), 1, "the door was pulsed twice");
    assert!(bus.sim.is_open(1, 7), "the first frame did reach the board");
    assert_eq!(a.outcome(), UnlockResult::Unknown, "{a:?}");
    assert!(!a.ok, "{a:?}");
    let error = a.error.unwrap_or_default();
    assert!(
        error.contains("board 1") && error.contains("did not answer"),
        "{error}"
    );
    assert_eq!(link.stats().retries, 0);
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn an_unlock_is_never_put_on_the_wire_after_its_deadline() {
    let broker = start_broker();
    let bus = pty_bus(SimSettings::kerong(&[0, 1]));
    let mut hub = Hub::connect(broker, "late").await;
    let mut link_settings = fast_link(&bus.path, 19_200);
    link_settings.response_timeout = Duration::from_millis(300);
    let link = Link::spawn(Kerong::default(), link_settings);
    let _bank = adapter::spawn(
        Kerong::default(),
        link.clone(),
        kerong_map(),
        settings("late", broker, Duration::from_millis(50)),
    )
    .expect("adapter");
    hub.expect("status", |v| v["online"] == true).await;

    // Already past its deadline when it arrives: acknowledged as not sent, never pulsed.
    hub.send(
        serde_json::json!({"type": "unlock", "unlock_id": "stale", "door": 3,
        "deadline_ms": unix_ms() - 1}),
    )
    .await;
    let a = ack(&hub.expect("ack", |v| v["unlock_id"] == "stale").await);
    assert_eq!(a.outcome(), UnlockResult::NotSent, "{a:?}");
    assert_eq!(bus.sim.pulses(0, 3), 0);

    // Board 1 goes silent: every poll of it holds the line for its reply window and a drain.
    // Unlocks with a short validity queue behind that; whatever goes out goes out in time,
    // and what cannot is reported as not sent.
    bus.sim.set_silent(1, true);
    let mut sent_at = Vec::new();
    for i in 0..6u16 {
        let valid_ms = 40;
        let id = format!("short-{i}");
        let door = 1 + i;
        let skip = bus.sim.received_count();
        let asked = std::time::Instant::now();
        hub.send(
            serde_json::json!({"type": "unlock", "unlock_id": id, "door": door,
            "valid_ms": valid_ms}),
        )
        .await;
        let a = ack(&hub.expect("ack", |v| v["unlock_id"] == id.as_str()).await);
        let frames: Vec<_> = bus
            .sim
            .received_after(skip)
            .into_iter()
            .filter(|r| {
                matches!(r.request, AnyRequest::Kerong(kerong::Request::Unlock { board: 0, lock }) if u16::from(lock) == door)
            })
            .collect();
        match a.outcome() {
            UnlockResult::NotSent => assert!(frames.is_empty(), "not sent, yet on the wire"),
            UnlockResult::Pulsed => {
                let f = frames.first().expect("pulsed, so on the wire");
                // The PTY delivers instantly; the broker hop and scheduling are before `asked`
                // is even compared, so the margin is generous but bounded.
                sent_at.push(f.at.duration_since(asked));
            }
            other => panic!("unexpected {other:?}: {a:?}"),
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for t in &sent_at {
        assert!(
            *t < Duration::from_millis(40 + 30),
            "an unlock reached the wire {t:?} after it was asked for (valid 40 ms)"
        );
    }
    assert!(link.stats().expired >= 1 || sent_at.len() == 6);
}

#[tokio::test]
async fn one_corrupted_reply_is_not_an_outage() {
    let broker = start_broker();
    let bus = pty_bus(SimSettings::kerong(&[0, 1]));
    let mut hub = Hub::connect(broker, "churn").await;
    let mut link_settings = fast_link(&bus.path, 19_200);
    link_settings.offline_poll_interval = Duration::from_millis(300);
    let link = Link::spawn(Kerong::default(), link_settings);
    let _bank = adapter::spawn(
        Kerong::default(),
        link.clone(),
        kerong_map(),
        settings("churn", broker, Duration::from_millis(100)),
    )
    .expect("adapter");
    hub.expect("status", |v| v["online"] == true).await;
    hub.collect(Duration::from_millis(300)).await;
    // Three bad checksums in a row: one request (and its retry) fails, the next poll is fine.
    for _ in 0..3 {
        bus.sim.inject(Fault::BadChecksum);
    }
    let status = hub.topic("status");
    let seen: Vec<_> = hub
        .collect(Duration::from_millis(1500))
        .await
        .into_iter()
        .filter(|(t, _)| *t == status)
        .collect();
    assert!(
        seen.is_empty(),
        "a transient fault changed the status: {seen:?}"
    );
    assert!(link.stats().checksum_errors >= 3);

    // A board that stays silent is reported after `unreachable_after` polls, and comes back
    // on its first answer.
    bus.sim.set_silent(1, true);
    let down = hub
        .expect("status", |v| {
            v["unreachable_doors"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(
        down["unreachable_doors"],
        serde_json::json!([17, 18, 19, 20])
    );
    bus.sim.set_silent(1, false);
    hub.expect("status", |v| {
        v["online"] == true
            && v.get("unreachable_doors")
                .is_none_or(|a| a.as_array().is_some_and(|a| a.is_empty()))
    })
    .await;
}

#[tokio::test]
async fn queries_read_each_board_once() {
    let broker = start_broker();
    let bus = pty_bus(SimSettings::kerong(&[0, 1]));
    let mut hub = Hub::connect(broker, "query").await;
    let link = Link::spawn(Kerong::default(), fast_link(&bus.path, 19_200));
    let _bank = adapter::spawn(
        Kerong::default(),
        link.clone(),
        kerong_map(),
        // Slow polling, so what is on the wire below is the queries'.
        settings("query", broker, Duration::from_secs(30)),
    )
    .expect("adapter");
    hub.expect("status", |v| v["online"] == true).await;
    hub.collect(Duration::from_millis(300)).await;
    let skip = bus.sim.received_count();
    hub.send(serde_json::json!({"type": "query", "doors": (1..=16).collect::<Vec<u16>>()}))
        .await;
    hub.send(serde_json::json!({"type": "query"})).await;
    for d in 1..=20 {
        hub.expect(&format!("door/{d}"), |_| true).await;
    }
    let reads = bus.sim.received_after(skip);
    assert!(
        reads.len() <= 3,
        "20 doors on 2 boards asked about twice: {} requests on the wire: {reads:?}",
        reads.len()
    );
}

/// Status readings of `board` on the wire among the frames after the `from`th.
fn status_reads(bus: &common::PtyBus, from: usize, board: u8) -> usize {
    bus.sim
        .received_after(from)
        .iter()
        .filter(|r| r.request == AnyRequest::Kerong(kerong::Request::Status { board }))
        .count()
}

#[tokio::test]
async fn idle_boards_are_read_less_often_and_a_forced_door_is_still_seen_within_the_bound() {
    let broker = start_broker();
    let bus = pty_bus(SimSettings::kerong(&[0, 1]));
    let mut hub = Hub::connect(broker, "idle").await;
    let link = Link::spawn(Kerong::default(), fast_link(&bus.path, 19_200));
    let poll = Duration::from_millis(100);
    let idle = Duration::from_millis(1_000);
    let mut s = settings("idle", broker, poll);
    s.idle_poll_interval = idle;
    let bank = adapter::spawn(Kerong::default(), link, kerong_map(), s).expect("adapter");
    hub.expect("status", |v| v["online"] == true).await;
    hub.collect(Duration::from_millis(1_200)).await;

    // Every door closed, nothing unlocked: both boards idle, read once a second, not ten times.
    let from = bus.sim.received_count();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    for board in [0, 1] {
        let reads = status_reads(&bus, from, board);
        assert!(
            (2..=4).contains(&reads),
            "idle board {board} read {reads} times in 3 s (every 1 s expected)"
        );
    }

    // A door forced open on an idle board is seen within the idle interval (and a cycle).
    let forced = tokio::time::Instant::now();
    bus.sim.set_door(0, 3, true);
    hub.expect("door/3", |v| *v == door(true)).await;
    assert!(
        forced.elapsed() <= idle + poll * 3,
        "a forced door on an idle board went unseen for {:?}",
        forced.elapsed()
    );
    // Board 0 now has an open door: read every cycle; board 1 stays idle.
    let from = bus.sim.received_count();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let busy = status_reads(&bus, from, 0);
    let quiet = status_reads(&bus, from, 1);
    assert!(
        busy >= 12,
        "board 0 (a door open) read only {busy} times in 2 s"
    );
    assert!(quiet <= 3, "board 1 (idle) read {quiet} times in 2 s");
    bus.sim.set_door(0, 3, false);
    hub.expect("door/3", |v| *v == door(false)).await;

    // An unlock makes its board busy: read every cycle for the seconds after it, so the door
    // it opened and that door closing again are seen at once, even with every door closed.
    hub.collect(Duration::from_millis(200)).await;
    hub.send(serde_json::json!({"type": "unlock", "unlock_id": "u-1", "door": 18}))
        .await;
    assert!(ack(&hub.expect("ack", |v| v["unlock_id"] == "u-1").await).ok);
    hub.expect("door/18", |v| *v == door(true)).await;
    let closed = tokio::time::Instant::now();
    bus.sim.set_door(1, 2, false);
    hub.expect("door/18", |v| *v == door(false)).await;
    assert!(
        closed.elapsed() <= poll * 3,
        "the door an unlock opened was seen closed only after {:?}",
        closed.elapsed()
    );
    let from = bus.sim.received_count();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let after_unlock = status_reads(&bus, from, 1);
    assert!(
        after_unlock >= 6,
        "board 1 read {after_unlock} times in the second after an unlock"
    );
    // And idle again once that is over.
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    let from = bus.sim.received_count();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let later = status_reads(&bus, from, 1);
    assert!(later <= 3, "board 1 read {later} times in 2 s, idle again");
    assert_eq!(bank.health().online, Some(true));
}

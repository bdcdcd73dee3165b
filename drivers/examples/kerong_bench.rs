//! Latency of an unlock from MQTT to the wire, and the poll cycle time, for a bank of 8 Kerong
//! boards (8 × 16 doors) at 19200 baud under routine polling.
//!
//! ```text
//! cargo run --release -p locker-drivers --example kerong_bench
//! ```
//!
//! Everything runs in this process: rumqttd, a hub-side MQTT client, the link and bank adapter,
//! and the simulated boards on a pseudo-terminal. PTYs ignore the baud rate, so the simulator
//! emulates it: a frame counts as on the wire when its last byte would have left at 19200 8N1
//! (10 bits per byte), and replies are handed over when their last byte would have arrived.
//! Boards answer with no think time, so the cycle overhead measured is the driver's own.
//!
//! Measured: (1) from just before the hub-side client publishes an `unlock` to the moment the
//! unlock frame's last byte is on the wire; (2) the time between successive status requests to
//! board 0 while polling back to back, against the wire floor 8 × (5 + 9) bytes × 10 / 19200.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use locker_drivers::adapter::{self, BankSettings, BrokerTarget};
use locker_drivers::board::{BoardLock, DoorMap};
use locker_drivers::boardsim::{AnyRequest, SimBus, SimSettings};
use locker_drivers::kerong::{self, Kerong};
use locker_drivers::link::{Link, LinkSettings, SerialLine, Transport};
use rumqttc::{AsyncClient, MqttOptions, QoS};

const BAUD: u32 = 19_200;
const BOARDS: u8 = 8;
const UNLOCKS: usize = 200;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let broker = common::start_broker();
    println!("Kerong bank: {BOARDS} boards × 16 doors, {BAUD} baud emulated on a PTY");
    let quick = 20..100;
    let spaced = 50..150;
    for (label, poll, gap_ms) in [
        (
            "polling back to back; unlocks 20-100 ms after the previous ack",
            Duration::ZERO,
            quick.clone(),
        ),
        (
            "polling every 1 s (default); unlocks 20-100 ms after the previous ack",
            Duration::from_secs(1),
            quick,
        ),
        (
            "polling every 1 s (default); unlocks 50-150 ms after the previous ack",
            Duration::from_secs(1),
            spaced,
        ),
    ] {
        run(broker, label, poll, gap_ms).await;
    }
}

async fn run(
    broker: std::net::SocketAddr,
    label: &str,
    poll: Duration,
    gap_ms: std::ops::Range<u64>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ttyBench");
    let mut sim_settings = SimSettings::kerong(&(0..BOARDS).collect::<Vec<_>>());
    sim_settings.baud = Some(BAUD);
    sim_settings.turnaround = Duration::ZERO;
    let sim = SimBus::on_pty(sim_settings, &path).expect("simulated bus");

    let link = Link::spawn(
        Kerong::default(),
        LinkSettings::new(Transport::Serial(SerialLine::new(&path, BAUD))),
    );
    let bank = format!("bench{}-{}", poll.as_millis(), gap_ms.start);
    let map = DoorMap::new(
        (1..=u16::from(BOARDS) * 16).map(|d| {
            let board = ((d - 1) / 16) as u8;
            let lock = ((d - 1) % 16) as u8 + 1;
            (d, BoardLock { board, lock })
        }),
        kerong::LIMITS,
    )
    .expect("door map");
    let handle = adapter::spawn(
        Kerong::default(),
        link.clone(),
        map,
        BankSettings {
            bank: bank.clone(),
            broker: BrokerTarget {
                host: broker.ip().to_string(),
                port: broker.port(),
                credentials: None,
            },
            poll_interval: poll,
            // Every board every cycle: this measures the cycle against its wire floor.
            idle_poll_interval: poll,
            unreachable_after: 3,
        },
    )
    .expect("adapter");
    handle
        .wait_for(|h| h.online == Some(true) && h.mqtt_connected && h.cycles >= 3)
        .await;

    // Poll cycle: successive status requests to board 0, in a quiet stretch.
    let cycles = if poll.is_zero() {
        let from = sim.received_count();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let starts: Vec<Instant> = sim
            .received_after(from)
            .into_iter()
            .filter(|r| r.request == AnyRequest::Kerong(kerong::Request::Status { board: 0 }))
            .map(|r| r.at)
            .collect();
        starts.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
    } else {
        Vec::new()
    };

    // Unlocks from a hub-side client, at random moments of the poll cycle.
    let mut opts = MqttOptions::new(
        format!("bench-hub-{bank}"),
        broker.ip().to_string(),
        broker.port(),
    );
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(opts, 64);
    let mut network = events.network_options();
    network.set_tcp_nodelay(true);
    events.set_network_options(network);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let topic = format!("lockerhub/v1/bank/{bank}/cmd");
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut latencies = Vec::with_capacity(UNLOCKS);
    for i in 0..UNLOCKS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let door = (rng % (u64::from(BOARDS) * 16)) as u16 + 1;
        let (board, lock) = (((door - 1) / 16) as u8, ((door - 1) % 16) as u8 + 1);
        let pause =
            Duration::from_micros(gap_ms.start * 1000 + rng % ((gap_ms.end - gap_ms.start) * 1000));
        tokio::time::sleep(pause).await;
        let from = sim.received_count();
        let payload =
            format!(r#"{{"type":"unlock","unlock_id":"bench-{bank}-{i}","door":{door}}}"#);
        let sent = Instant::now();
        client
            .publish(&topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
        let want = AnyRequest::Kerong(kerong::Request::Unlock { board, lock });
        let on_wire = loop {
            if let Some(r) = sim
                .received_after(from)
                .into_iter()
                .find(|r| r.request == want)
            {
                break r.at;
            }
            if sent.elapsed() > Duration::from_secs(2) {
                panic!("unlock {i} never reached the wire");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(on_wire.saturating_duration_since(sent));
        // One pickup at a time, as at a real bank: wait for its acknowledgement.
        let acked = handle.wait_for(|h| h.acks > i as u64);
        if tokio::time::timeout(Duration::from_secs(2), acked)
            .await
            .is_err()
        {
            panic!("unlock {i} was not acknowledged");
        }
        sim.set_door(board, lock, false);
    }

    println!("\n## {label}");
    report(
        "unlock: MQTT publish → frame fully on the wire",
        &mut latencies,
        None,
    );
    if !cycles.is_empty() {
        let floor = Duration::from_secs_f64(f64::from(BOARDS) * 14.0 * 10.0 / f64::from(BAUD));
        let mut cycles = cycles;
        report("poll cycle, 8 boards", &mut cycles, Some(floor));
    }
    let stats = link.stats();
    println!(
        "link: {} requests, {} replies, {} timeouts, {} checksum errors",
        stats.requests, stats.replies, stats.timeouts, stats.checksum_errors
    );
}

fn report(what: &str, samples: &mut [Duration], floor: Option<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    print!(
        "{what}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        ms(pick(0.5)),
        ms(pick(0.99)),
        ms(pick(1.0)),
    );
    if let Some(floor) = floor {
        print!(
            " (wire floor {:.2} ms; p50 = {:.2}× floor)",
            ms(floor),
            pick(0.5).as_secs_f64() / floor.as_secs_f64()
        );
    }
    println!();
}

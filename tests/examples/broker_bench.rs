//! The broker under load (issue #15 item 5): the real hub (core attached, 200 banks logged in
//! with their own passwords) and Mosquitto alone, under the same load generator, in one run.
//!
//! ```text
//! cargo build --release -p locker-hub
//! LOCKER_HUB_BIN=target/release/locker-hub cargo run --release -p locker-tests --example broker_bench
//! ```
//!
//! What is measured, for each broker in turn:
//! - 200 bank clients (MQTT 3.1.1, written with rumqttc's codec over sockets bound to
//!   127.0.0.2–5, since the hub's front door takes at most 64 connections from one address)
//!   publish a retained `status` once, then door reports (`{"open": false, ...}`: a door that
//!   stays shut, which the core takes in and records nothing for) at QoS 1;
//! - one observer (rumqttc, the hub's read-only `observer` login) subscribes to every door report
//!   at QoS 1; latency is its receive time minus the send time carried in the payload (one clock:
//!   all clients are in this process);
//! - **1,000 msg/s**: each bank publishes every 200 ms, at a random phase; 3 s to settle, 10 s
//!   measured: delivered per second, p50 and p99;
//! - **saturated**: each bank keeps 8 QoS 1 publishes in flight as fast as the broker acks
//!   them; 2 s to settle, 8 s measured: what the observer receives per second;
//! - the broker's resident memory with 200 banks connected and idle, and its peak.
//!
//! Status is published once per connection, not repeated: at the hub a repeated status makes the
//! core ask the bank for its doors, work Mosquitto never does. Kiosks are not part of the load.
//! Generator, observer and broker share this machine's cores, the same for both brokers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use locker_tests::{base_config, hash_password, Hub, OBSERVER};
use rumqttc::mqttbytes::v4::{self, Packet};
use rumqttc::mqttbytes::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Semaphore;

const BANKS: usize = 200;
const DOORS: u16 = 16;
const BANK_PASSWORD: &str = "bench bank password";
const MAX_PACKET: usize = 1 << 20;
/// Each bank's publishes in flight during the saturated phase.
const IN_FLIGHT: usize = 8;
/// PUBACKs every bank has received: what the broker took.
static ACKED: AtomicU64 = AtomicU64::new(0);

/// One clock for every client in the process.
fn micros(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn memory_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// A bank's connection: its write half, and permits for publishes not yet acknowledged.
struct Bank {
    id: String,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    permits: Arc<Semaphore>,
    next_pkid: AtomicU64,
}

impl Bank {
    async fn connect(
        source: &str,
        to: SocketAddr,
        id: String,
        login: Option<(&str, &str)>,
    ) -> Result<Bank, String> {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket
            .bind(format!("{source}:0").parse().map_err(|e| format!("{e}"))?)
            .map_err(|e| e.to_string())?;
        let stream = socket.connect(to).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (mut read, write) = stream.into_split();
        let mut connect = v4::Connect::new(&id);
        // Not 0: rumqttd refuses a zero keep-alive (`ZeroKeepAlive`), which MQTT allows; the
        // front door then answers "server unavailable". Every phase publishes well within 60 s.
        connect.keep_alive = 60;
        if let Some((user, pass)) = login {
            connect.set_login(user, pass);
        }
        let mut status = v4::Publish::new(
            format!("lockerhub/v1/bank/{id}/status"),
            QoS::AtMostOnce,
            "{\"online\":false}".to_string(),
        );
        status.retain = true;
        connect.last_will = Some(v4::LastWill::new(
            status.topic.clone(),
            status.payload.clone(),
            QoS::AtLeastOnce,
            true,
        ));
        let mut out = BytesMut::new();
        Packet::Connect(connect)
            .write(&mut out, MAX_PACKET)
            .map_err(|e| e.to_string())?;
        let mut writer = write;
        writer.write_all(&out).await.map_err(|e| e.to_string())?;
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            match Packet::read(&mut buf, MAX_PACKET) {
                Ok(Packet::ConnAck(a)) if a.code == v4::ConnectReturnCode::Success => break,
                Ok(p) => return Err(format!("refused: {p:?}")),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                    let n = tokio::time::timeout(Duration::from_secs(20), read.read_buf(&mut buf))
                        .await
                        .map_err(|_| "no CONNACK".to_owned())?
                        .map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("closed before CONNACK".into());
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        let permits = Arc::new(Semaphore::new(IN_FLIGHT));
        let acked = permits.clone();
        tokio::spawn(async move {
            loop {
                match Packet::read(&mut buf, MAX_PACKET) {
                    Ok(Packet::PubAck(_)) => {
                        ACKED.fetch_add(1, Ordering::Relaxed);
                        acked.add_permits(1)
                    }
                    Ok(_) => {}
                    Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {
                        match read.read_buf(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        let bank = Bank {
            id,
            writer: tokio::sync::Mutex::new(writer),
            permits,
            next_pkid: AtomicU64::new(1),
        };
        let topic = format!("lockerhub/v1/bank/{}/status", bank.id);
        bank.publish(
            &topic,
            format!("{{\"online\":true,\"doors\":{DOORS}}}"),
            true,
        )
        .await?;
        Ok(bank)
    }

    /// A QoS 1 publish, once a permit (an ack of an earlier one) is free.
    async fn publish(&self, topic: &str, payload: String, retain: bool) -> Result<(), String> {
        let permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        permit.forget();
        let n = self.next_pkid.fetch_add(1, Ordering::Relaxed);
        let mut p = v4::Publish::new(topic, QoS::AtLeastOnce, payload);
        p.retain = retain;
        p.pkid = (n % 65_535 + 1) as u16;
        let mut out = BytesMut::new();
        Packet::Publish(p)
            .write(&mut out, MAX_PACKET)
            .map_err(|e| e.to_string())?;
        self.writer
            .lock()
            .await
            .write_all(&out)
            .await
            .map_err(|e| e.to_string())
    }

    async fn door_report(&self, start: Instant, seq: u64) -> Result<(), String> {
        let door = (seq % u64::from(DOORS)) + 1;
        let topic = format!("lockerhub/v1/bank/{}/door/{door}", self.id);
        let payload = format!(
            "{{\"open\":false,\"seq\":{seq},\"sent_us\":{}}}",
            micros(start)
        );
        self.publish(&topic, payload, false).await
    }
}

/// What the observer saw: (receive time, latency) in µs.
#[derive(Default)]
struct Seen {
    samples: Mutex<Vec<(u64, u64)>>,
}

async fn observe(to: SocketAddr, start: Instant, seen: Arc<Seen>, ready: Arc<tokio::sync::Notify>) {
    let mut options = rumqttc::MqttOptions::new("bench-observer", to.ip().to_string(), to.port());
    options.set_credentials(OBSERVER.0, OBSERVER.1);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(MAX_PACKET, MAX_PACKET);
    options.set_request_channel_capacity(1024);
    let (client, mut events) = rumqttc::AsyncClient::new(options, 1024);
    let _ = client
        .subscribe("lockerhub/v1/bank/+/door/+", QoS::AtLeastOnce)
        .await;
    loop {
        match events.poll().await {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => ready.notify_one(),
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                let now = micros(start);
                // The send time, without parsing the JSON (the observer must keep up).
                let sent = p
                    .payload
                    .windows(10)
                    .position(|w| w == b"\"sent_us\":")
                    .and_then(|i| {
                        let digits: String = p.payload[i + 10..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit())
                            .map(|b| char::from(*b))
                            .collect();
                        digits.parse::<u64>().ok()
                    });
                if let Some(sent) = sent {
                    if let Ok(mut s) = seen.samples.lock() {
                        s.push((now, now.saturating_sub(sent)));
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("observer: {e}; reconnecting");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

struct Phase {
    per_s: f64,
    /// Publishes the broker acknowledged per second.
    taken_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_percent: f64,
}

fn phase_result(seen: &Seen, from: u64, to: u64, cpu: f64, acked: u64) -> Phase {
    let mut lat: Vec<u64> = seen
        .samples
        .lock()
        .map(|s| {
            s.iter()
                .filter(|(at, _)| *at >= from && *at < to)
                .map(|(_, l)| *l)
                .collect()
        })
        .unwrap_or_default();
    lat.sort_unstable();
    let q = |f: f64| {
        lat.get(((lat.len() as f64 * f) as usize).min(lat.len().saturating_sub(1)))
            .map(|v| *v as f64 / 1000.0)
            .unwrap_or(f64::NAN)
    };
    Phase {
        per_s: lat.len() as f64 / ((to - from) as f64 / 1e6),
        taken_per_s: acked as f64 / ((to - from) as f64 / 1e6),
        p50_ms: q(0.50),
        p99_ms: q(0.99),
        cpu_percent: cpu,
    }
}

/// Lets a phase settle for `settle_s`, measures it for `window_s` (what the observer saw, the
/// broker's CPU and acknowledgements), then stops its publishers: the phase and what they sent.
async fn measure(
    seen: &Seen,
    start: Instant,
    pid: u32,
    settle_s: u64,
    window_s: u64,
    stop: &std::sync::atomic::AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<u64>>,
) -> (Phase, u64) {
    let sample = || (micros(start), cpu_ticks(pid), ACKED.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(settle_s)).await;
    let (from, cpu0, acked0) = sample();
    tokio::time::sleep(Duration::from_secs(window_s)).await;
    let (to, cpu1, acked1) = sample();
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap_or(0);
    }
    let cpu = (cpu1 - cpu0) as f64 / window_s as f64;
    (phase_result(seen, from, to, cpu, acked1 - acked0), sent)
}

struct Measured {
    idle_rss_mb: f64,
    peak_mb: f64,
    steady: Phase,
    saturated: Phase,
}

/// The load against the broker at `to` (process `pid`); `login(i)` is bank `i`'s username.
async fn load(
    to: SocketAddr,
    pid: u32,
    login: Option<&str>,
) -> std::result::Result<Measured, String> {
    let start = Instant::now();
    let seen = Arc::new(Seen::default());
    let ready = Arc::new(tokio::sync::Notify::new());
    let observer = tokio::spawn(observe(to, start, seen.clone(), ready.clone()));
    tokio::time::timeout(Duration::from_secs(30), ready.notified())
        .await
        .expect("the observer subscribed");

    // 200 banks, at most 8 logins at once (the hub checks 2 passwords at a time).
    let gate = Arc::new(Semaphore::new(8));
    let mut connecting = Vec::new();
    for i in 0..BANKS {
        let gate = gate.clone();
        let user = login.map(|_| format!("bank-b{i:03}"));
        connecting.push(tokio::spawn(async move {
            let _slot = gate.acquire().await;
            let source = format!("127.0.0.{}", 2 + i % 4);
            let mut last = String::new();
            for _ in 0..10 {
                let creds = user.as_deref().map(|u| (u, BANK_PASSWORD));
                match Bank::connect(&source, to, format!("b{i:03}"), creds).await {
                    Ok(b) => return Ok(b),
                    Err(e) => {
                        last = e;
                        tokio::time::sleep(Duration::from_millis(200)).await
                    }
                }
            }
            Err(format!("bank b{i:03} cannot connect: {last}"))
        }));
    }
    let mut banks = Vec::new();
    for c in connecting {
        match c.await {
            Ok(Ok(b)) => banks.push(Arc::new(b)),
            Ok(Err(e)) => {
                observer.abort();
                return Err(e);
            }
            Err(e) => {
                observer.abort();
                return Err(e.to_string());
            }
        }
    }
    println!(
        "  {} banks connected after {:.1} s",
        banks.len(),
        start.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_rss_mb = memory_mb(pid, "VmRSS:");

    // 1,000 msg/s: every bank every 200 ms, each at its own phase.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, bank) in banks.iter().enumerate() {
        let (bank, stop) = (bank.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_micros((i as u64 * 997) % 200_000)).await;
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                seq += 1;
                if bank.door_report(start, seq).await.is_err() {
                    return seq;
                }
            }
            seq
        }));
    }
    let (steady, sent) = measure(&seen, start, pid, 3, 10, &stop, tasks).await;
    println!("  steady: {sent} sent in ~13 s");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Saturated: each bank keeps IN_FLIGHT publishes in flight.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for bank in &banks {
        let (bank, stop) = (bank.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut seq = 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                if bank.door_report(start, seq).await.is_err() {
                    break;
                }
            }
            seq - 1_000_000
        }));
    }
    let (saturated, sent) = measure(&seen, start, pid, 2, 8, &stop, tasks).await;
    println!("  saturated: {sent} sent in ~10 s");
    observer.abort();
    Ok(Measured {
        idle_rss_mb,
        peak_mb: memory_mb(pid, "VmHWM:"),
        steady,
        saturated,
    })
}

fn hub_config(dir: &std::path::Path, hash: &str) -> String {
    let mut banks = String::new();
    for i in 0..BANKS {
        banks += &format!(
            "\n[[bank]]\nid = \"b{i:03}\"\ndriver = {{ kind = \"mqtt\" }}\n\
             mqtt = {{ username = \"bank-b{i:03}\", password_hash = \"{hash}\" }}\n\
             compartments = [{{ doors = \"1-{DOORS}\", size = \"M\" }}]\n"
        );
    }
    base_config(dir).replace("[mqtt]\n", "[mqtt]\nmax_connections = 400\n") + &banks
}

struct Mosquitto {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// `Ok(None)`: not installed.
    fn start() -> std::result::Result<Option<Mosquitto>, String> {
        let bin = std::env::var("MOSQUITTO").unwrap_or_else(|_| "/usr/sbin/mosquitto".into());
        if !std::path::Path::new(&bin).exists() {
            return Ok(None);
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        // Its queues as rumqttd's in the hub: 100 in flight, 200 queued per client.
        std::fs::write(
            &conf,
            format!(
                "listener {port} 0.0.0.0\nallow_anonymous true\npersistence false\nlog_dest stderr\n\
                 log_type error\nmax_inflight_messages 100\nmax_queued_messages 200\nset_tcp_nodelay true\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut child = std::process::Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .spawn()
            .map_err(|e| format!("{bin}: {e}"))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        for _ in 0..200 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return Ok(Some(Mosquitto {
                    child,
                    addr,
                    _dir: dir,
                }));
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{bin} exited: {status}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        Err(format!("{bin} did not listen on {addr} within 10 s"))
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn print(name: &str, r: &Measured) {
    println!(
        "{name}: RSS with {BANKS} banks connected {:.1} MB (peak {:.1} MB)",
        r.idle_rss_mb, r.peak_mb
    );
    println!(
        "{name} at 1000 msg/s: delivered {:.0}/s p50 {:.2} ms p99 {:.2} ms, broker CPU {:.0} %",
        r.steady.per_s, r.steady.p50_ms, r.steady.p99_ms, r.steady.cpu_percent
    );
    println!(
        "{name} saturated: took {:.0} publishes/s; delivered {:.0}/s p50 {:.2} ms p99 {:.2} ms, broker CPU {:.0} %",
        r.saturated.taken_per_s,
        r.saturated.per_s,
        r.saturated.p50_ms,
        r.saturated.p99_ms,
        r.saturated.cpu_percent
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let hash = hash_password(BANK_PASSWORD);
    println!("the hub, {BANKS} banks of {DOORS} doors, core attached:");
    let hub = Hub::start_with_env(
        |dir| hub_config(dir, &hash),
        &[("RUST_LOG", "info,locker_hub::bus=debug".to_owned())],
    );
    let mqtt = hub.mqtt.expect("the hub's MQTT listener");
    let ours = match rt.block_on(load(mqtt, hub.pid(), Some("bank"))) {
        Ok(r) => r,
        Err(e) => {
            let log = hub.output();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("{e}\nthe hub said, last lines first:\n{}", tail.join("\n"));
            std::process::exit(1);
        }
    };
    print("hub", &ours);
    let lost = hub.output().matches("hub client lost the broker").count();
    println!("hub: its own bus client lost the broker {lost} times during the run");
    drop(hub);

    println!("mosquitto alone, the same load:");
    let theirs = match Mosquitto::start() {
        Ok(Some(m)) => match rt.block_on(load(m.addr, m.child.id(), None)) {
            Ok(r) => {
                print("mosquitto", &r);
                Some(r)
            }
            Err(e) => {
                println!("mosquitto: not measured: {e}");
                None
            }
        },
        Ok(None) => {
            println!("mosquitto: not installed (apt-get install mosquitto, or set MOSQUITTO)");
            None
        }
        Err(e) => {
            println!("mosquitto: not measured: {e}");
            None
        }
    };
    if let Some(m) = theirs {
        println!(
            "p99 ratio at 1000 msg/s (hub / mosquitto): {:.2}x",
            ours.steady.p99_ms / m.steady.p99_ms
        );
        println!(
            "saturated delivery ratio (hub / mosquitto): {:.2}x",
            ours.saturated.per_s / m.saturated.per_s
        );
        println!(
            "saturated publishes taken ratio (hub / mosquitto): {:.2}x",
            ours.saturated.taken_per_s / m.saturated.taken_per_s
        );
    }
    rt.shutdown_timeout(Duration::from_secs(1));
}

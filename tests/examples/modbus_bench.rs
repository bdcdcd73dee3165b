//! Modbus link round trips against pymodbus (`tests/peers/modbus_server.py`, in the venv that
//! `tests/run` makes): one input-register read at a time through the bus-owning task, over Modbus
//! TCP and over Modbus RTU on a pseudo-terminal, and how long the link keeps a coil on for a
//! 300 ms pulse (the "off" is written by the link, not by the module).
//!
//! ```text
//! cargo run --release -p locker-tests --example modbus_bench
//! ```
//!
//! The peer is Python: most of a round trip is pymodbus answering, so these are numbers for the
//! test rig, and an upper bound on the link's own overhead.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use locker_drivers::link::{Priority, SerialLine};
use locker_drivers::modbus::link::{ModbusRequest, Op};
use locker_drivers::modbus::{ModbusLink, ModbusSettings, ModbusTransport};

const READS: usize = 500;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn bench(name: &str, transport: ModbusTransport) {
    let link = ModbusLink::spawn(ModbusSettings::new(transport));
    let read = ModbusRequest::new(
        1,
        Op::ReadInputRegisters {
            address: 1,
            count: 1,
        },
    );
    // Warm-up: the port opens on the first request.
    for _ in 0..10 {
        let _ = link.request(read.clone(), Priority::Routine).await;
    }
    let mut times = Vec::with_capacity(READS);
    for _ in 0..READS {
        let start = Instant::now();
        link.request(read.clone(), Priority::Routine)
            .await
            .expect("a reply");
        times.push(start.elapsed());
    }
    times.sort();
    let stats = link.stats();
    println!(
        "{name}: {READS} reads, p50 {:.2?}, p99 {:.2?}, max {:.2?} (timeouts {}, retries {})",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1],
        stats.timeouts,
        stats.retries
    );
    // A coil pulse: on, and the link's own "off" 300 ms later, timed on the wire from here.
    let mut pulses = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        link.request(
            ModbusRequest::new(
                3,
                Op::PulseCoil {
                    address: 0,
                    pulse: Duration::from_millis(300),
                },
            ),
            Priority::Urgent,
        )
        .await
        .expect("pulse");
        let on = start.elapsed();
        // Read the coil until it is off again.
        loop {
            let reply = link
                .request(
                    ModbusRequest::new(
                        3,
                        Op::ReadCoils {
                            address: 0,
                            count: 1,
                        },
                    ),
                    Priority::Routine,
                )
                .await
                .expect("coil read");
            if reply.is_some_and(|r| {
                r.data == locker_drivers::modbus::link::ModbusData::Bits(vec![false])
            }) {
                break;
            }
        }
        pulses.push((on, start.elapsed()));
    }
    let longest = pulses.iter().map(|(_, off)| *off).max().unwrap_or_default();
    println!(
        "{name}: 300 ms coil pulse: on confirmed after {:.2?} (first), seen off again after at most {longest:.2?}",
        pulses[0].0
    );
}

#[tokio::main]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("../target/pyenv/bin/python");
    let script = root.join("peers/modbus_server.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let tty = dir.path().join("ttyBENCH");
    let mut peers = Vec::new();
    let mut ready = Vec::new();
    for args in [
        vec!["tcp".to_owned()],
        vec!["rtu".to_owned(), tty.display().to_string()],
    ] {
        let mut child = Command::new(&python)
            .arg(&script)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the pymodbus peer (tests/run makes its venv)");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("ready line");
        ready.push(line.trim().to_owned());
        // The peer reports every coil write: keep reading, or its writes would fail.
        std::thread::spawn(move || for _ in out.lines() {});
        peers.push(child);
    }
    let port: u16 = ready[0]
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("ready tcp PORT");
    bench(
        "Modbus TCP",
        ModbusTransport::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
    )
    .await;
    bench(
        "Modbus RTU on a PTY",
        ModbusTransport::Rtu(SerialLine::new(&tty, 9600)),
    )
    .await;
    for mut p in peers {
        let _ = p.kill();
        let _ = p.wait();
    }
}

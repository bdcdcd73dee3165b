//! The test vectors of `docs/protocols/modbus.md`, byte for byte on the wire. A real
//! `ModbusLink` in RTU-over-TCP mode (what a transparent RS-485 gateway carries) talks to this
//! test, which plays the device with the documented frames. The link must write exactly the
//! documented request, and what the drivers make of the documented reply is checked against the
//! document. No simulator of ours and no other Modbus stack takes part, so a wrong function
//! code, address, register value or CRC shows here, even where both ends of our own tests would
//! agree.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use locker_drivers::adapter::LockBoards;
use locker_drivers::board::Polarity;
use locker_drivers::link::Priority;
use locker_drivers::modbus::io::{Feedback, IoDoor, ModbusIo, Output};
use locker_drivers::modbus::link::{ModbusData, ModbusReply, ModbusRequest, Op};
use locker_drivers::modbus::points::{PointSpec, Register};
use locker_drivers::modbus::value::{self, Format};
use locker_drivers::modbus::{ModbusLink, ModbusSettings, ModbusTransport};

const DOC: &str = include_str!("../../docs/protocols/modbus.md");
const DOC_PATH: &str = "docs/protocols/modbus.md";

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("test hex"))
        .collect()
}

fn show(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rows `| `id` | kind | `frame` | meaning | source |` of the document's test-vector table.
fn doc_vectors() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    DOC.lines()
        .filter_map(|line| {
            let cells: Vec<&'static str> = line.split('|').map(str::trim).collect();
            let &[_, id, kind, frame, ..] = cells.as_slice() else {
                return None;
            };
            let id = id.strip_prefix('`')?.strip_suffix('`')?;
            let frame = frame.strip_prefix('`')?.strip_suffix('`')?;
            id.starts_with("modbus-").then(|| (id, kind, hex(frame)))
        })
        .collect()
}

/// The frame of the documented test vector `id`, byte for byte.
fn doc(id: &str) -> Vec<u8> {
    let found: Vec<Vec<u8>> = doc_vectors()
        .into_iter()
        .filter(|(i, ..)| *i == id)
        .map(|(.., frame)| frame)
        .collect();
    match found.as_slice() {
        [frame] => frame.clone(),
        _ => panic!(
            "{DOC_PATH} has {} test vectors `{id}`, expected one",
            found.len()
        ),
    }
}

/// CRC-16/MODBUS as `docs/protocols/modbus.md` §1 states it.
fn crc16(bytes: &[u8]) -> [u8; 2] {
    let mut crc: u16 = 0xFFFF;
    for b in bytes {
        crc ^= u16::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc.to_le_bytes()
}

/// The document itself holds together: every vector ends in the CRC of the rest (worked examples
/// were verified when they were copied; derived ones were computed by this rule), and the table
/// is there at all.
#[test]
fn every_documented_frame_carries_its_crc() {
    let vectors = doc_vectors();
    assert!(
        vectors.len() >= 14,
        "{DOC_PATH}: only {} test vectors",
        vectors.len()
    );
    for (id, kind, frame) in vectors {
        assert!(matches!(kind, "request" | "reply"), "{id}: kind {kind:?}");
        let (body, crc) = frame.split_at(frame.len() - 2);
        assert_eq!(crc, crc16(body), "{id}: {}", show(&frame));
    }
}

/// One Modbus slave behind a transparent gateway, played by the test.
struct Device {
    link: ModbusLink,
    listener: TcpListener,
    socket: Option<TcpStream>,
}

impl Device {
    async fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut settings = ModbusSettings::new(ModbusTransport::RtuOverTcp {
            host: "127.0.0.1".into(),
            port,
        });
        settings.response_timeout = Duration::from_secs(2);
        settings.retries = 0;
        Device {
            link: ModbusLink::spawn(settings),
            listener,
            socket: None,
        }
    }

    async fn socket(&mut self) -> &mut TcpStream {
        if self.socket.is_none() {
            let (s, _) = timeout(Duration::from_secs(5), self.listener.accept())
                .await
                .expect("the link never connected")
                .unwrap();
            self.socket = Some(s);
        }
        self.socket.as_mut().unwrap()
    }

    /// The link must write the documented frame `id`, exactly.
    async fn expect(&mut self, id: &str) {
        let want = doc(id);
        let mut got = vec![0u8; want.len()];
        let socket = self.socket().await;
        timeout(Duration::from_secs(5), socket.read_exact(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{id}: the link wrote no whole frame"))
            .unwrap();
        assert_eq!(show(&got), show(&want), "{id}: the link wrote other bytes");
    }

    /// Answer with the documented frame `id`.
    async fn answer(&mut self, id: &str) {
        let frame = doc(id);
        self.socket().await.write_all(&frame).await.unwrap();
    }

    /// Send `request` through the link; the device expects `request_id` and answers `reply_id`.
    async fn exchange(
        &mut self,
        request: ModbusRequest,
        request_id: &str,
        reply_id: &str,
    ) -> ModbusReply {
        let link = self.link.clone();
        let call = tokio::spawn(async move { link.request(request, Priority::Urgent).await });
        self.expect(request_id).await;
        self.answer(reply_id).await;
        timeout(Duration::from_secs(5), call)
            .await
            .expect("no answer from the link")
            .unwrap()
            .unwrap_or_else(|e| panic!("{request_id} -> {reply_id}: {e}"))
            .expect("a reply")
    }

    /// Nothing more was written.
    async fn quiet(&mut self) {
        let mut byte = [0u8; 1];
        let socket = self.socket().await;
        if let Ok(read) = timeout(Duration::from_millis(200), socket.read(&mut byte)).await {
            panic!("the link wrote more: {read:?} {}", show(&byte));
        }
    }
}

fn point(name: &str, register: Register, address: u16, format: Format) -> PointSpec {
    PointSpec {
        name: name.into(),
        register,
        address,
        format,
        scale: if name == "device_address" { 1.0 } else { 0.1 },
        writable: false,
    }
}

#[tokio::test]
async fn xy_md02_readings_match_the_documented_frames() {
    let mut dev = Device::new().await;
    // The built-in XY-MD02 map (config/src/refrigeration.rs): temperature at input 0x0001.
    let temperature = point("temperature", Register::Input, 0x0001, Format::S16);
    let reply = dev
        .exchange(
            ModbusRequest::new(1, temperature.read_op()),
            "modbus-xymd02-read-temperature",
            "modbus-xymd02-temperature",
        )
        .await;
    assert_eq!(temperature.decode(&reply.data), Ok(30.5));
    let reply = dev
        .exchange(
            ModbusRequest::new(1, temperature.read_op()),
            "modbus-xymd02-read-temperature",
            "modbus-xymd02-temperature-negative",
        )
        .await;
    assert_eq!(temperature.decode(&reply.data), Ok(-20.5));

    let reply = dev
        .exchange(
            ModbusRequest::new(
                1,
                Op::ReadInputRegisters {
                    address: 0x0001,
                    count: 2,
                },
            ),
            "modbus-xymd02-read-both",
            "modbus-xymd02-both",
        )
        .await;
    let ModbusData::Words(words) = reply.data else {
        panic!("not registers: {reply:?}");
    };
    assert_eq!(value::decode(Format::S16, &words[..1], 0.1), Ok(30.5));
    assert_eq!(value::decode(Format::U16, &words[1..], 0.1), Ok(54.6));

    let address = point("device_address", Register::Holding, 0x0101, Format::U16);
    let reply = dev
        .exchange(
            ModbusRequest::new(1, address.read_op()),
            "modbus-xymd02-read-address",
            "modbus-xymd02-address",
        )
        .await;
    assert_eq!(address.decode(&reply.data), Ok(1.0));
    dev.quiet().await;
}

fn door(door: u16, output: Output, input: Option<u16>, pulse: Duration) -> IoDoor {
    IoDoor {
        door,
        slave: 1,
        output,
        feedback: input.map(|input| Feedback {
            input,
            polarity: Polarity::OneIsClosed,
        }),
        pulse,
    }
}

#[tokio::test]
async fn a_coil_lock_pulses_and_its_door_switches_read_as_documented() {
    let mut dev = Device::new().await;
    // Eight doors on relays 1-8 (coils 0-7) with their switches on inputs 0-7.
    let doors: Vec<IoDoor> = (0..8)
        .map(|i| door(i + 1, Output::Coil(i), Some(i), Duration::from_millis(100)))
        .collect();
    let (io, map) = ModbusIo::new(&doors, None).unwrap();

    let reply = dev
        .exchange(io.poll(1), "modbus-read-8-inputs", "modbus-8-inputs")
        .await;
    assert_eq!(
        reply.data,
        ModbusData::Bits(vec![true, false, true, false, false, false, false, false])
    );

    // Unlock door 1: coil 0 on, confirmed by its echo; off again after the pulse.
    let reply = dev
        .exchange(
            io.unlock(map.get(1).unwrap()),
            "modbus-coil-1-on",
            "modbus-coil-1-on",
        )
        .await;
    assert_eq!(reply.data, ModbusData::Written);
    dev.expect("modbus-coil-1-off").await;
    dev.answer("modbus-coil-1-off").await;
    dev.quiet().await;
}

#[tokio::test]
async fn a_command_register_lock_times_its_own_pulse_as_documented() {
    let mut dev = Device::new().await;
    let (io, map) = ModbusIo::new(
        &[door(
            1,
            Output::CommandRegister(1),
            None,
            Duration::from_secs(5),
        )],
        None,
    )
    .unwrap();
    // 0x0605: relay 1 on for 5 s, timed by the module.
    let reply = dev
        .exchange(
            io.unlock(map.get(1).unwrap()),
            "modbus-relay-1-for-5s",
            "modbus-relay-1-for-5s",
        )
        .await;
    assert_eq!(reply.data, ModbusData::Written);
    // Plain on and off, the other documented command words, through the same link.
    for (value, id) in [
        (0x0100, "modbus-relay-1-on"),
        (0x0200, "modbus-relay-1-off"),
    ] {
        let reply = dev
            .exchange(
                ModbusRequest::new(1, Op::WriteRegister { address: 1, value }),
                id,
                id,
            )
            .await;
        assert_eq!(reply.data, ModbusData::Written);
    }
    dev.quiet().await;
}

//! Bank drivers for locker-hub.
//!
//! A driver makes one kind of locker bank speak the hub's one MQTT topic schema ([`bus`]), so the
//! workflow core never knows which kind of bank it talks to. A bank with its own controller speaks
//! the schema itself; for banks without one, a driver here translates.
//!
//! - [`bus`]: the versioned topic schema and its JSON payloads (documented in `docs/mqtt-api.md`).
//! - [`sim`]: a simulated bank controller that connects to the broker exactly as a real `mqtt`
//!   bank would; used by demo mode and by tests.
//! - [`kerong`], [`lockboard8a`]: sans-IO codecs of the RS-485 lock boards, over the shared
//!   [`codec`] framing and [`board`] door mapping.
//! - [`link`]: the task that owns one serial port or TCP gateway and serialises its traffic
//!   (priorities, timeouts, drains, retries, offline boards, reopening, counters).
//! - [`adapter`]: a bank of lock boards on a link, presented on the MQTT bus like a bank with
//!   its own controller.
//! - [`modbus`]: Modbus relay / input modules driving discrete locks (`modbus-io`, through the
//!   same adapter) and Modbus temperature points of refrigerated units (`modbus-points`).
//! - [`boardsim`]: simulated lock boards on a pseudo-terminal or TCP port, with injectable
//!   faults, for tests and benchmarks.
//!
//! Wiring a bank: `Link::spawn(Kerong { .. }, LinkSettings::new(transport))` once per port,
//! then `adapter::spawn(protocol, link.clone(), door_map, bank_settings)` per bank on it.

pub mod adapter;
pub mod board;
pub mod boardsim;
/// The MQTT topic schema (its own crate, `locker-bus`, so the front door and the fuzz targets
/// use it without the drivers).
pub use locker_bus as bus;
pub mod codec;
pub mod kerong;
pub mod link;
pub mod lockboard8a;
pub mod modbus;
pub mod sim;

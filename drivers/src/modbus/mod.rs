//! Modbus devices: discrete locks on relay / digital-input modules (`modbus-io`) and
//! temperature points of refrigerated units (`modbus-points`), over Modbus RTU (serial, or
//! through a transparent TCP gateway) or Modbus TCP, with tokio-modbus.
//!
//! - [`link`]: the task that owns one Modbus bus (timeouts around every call, a fresh context
//!   after a timeout or mismatch, exceptions and transport errors counted apart, offline
//!   devices, reopening with backoff, coil pulses).
//! - [`io`]: the lock driver, a [`crate::adapter::LockBoards`] protocol, so the bank is
//!   presented on the bus by the same adapter as the RS-485 lock boards.
//! - [`points`]: the sensor poller that publishes [`crate::bus::UnitReading`]s.
//! - [`value`]: register formats (s16, u16, s32, u32, f32 in either word order) and scale.
//!
//! A lock bank and the sensors on its bus share one [`ModbusLink`]: one master per bus.

pub mod io;
pub mod link;
pub mod points;
pub mod value;

pub use link::{ModbusLink, ModbusSettings, ModbusTransport};

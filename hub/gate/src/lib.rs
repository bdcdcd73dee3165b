//! The sans-IO core of locker-hub's MQTT front door.
//!
//! Every MQTT client outside the hub's own process reaches the embedded broker (rumqttd) through
//! the front door (`hub/src/broker/front.rs`), which owns the sockets, the logins and the limits.
//! What it does with the bytes is decided here, with no I/O and with time as an input:
//! - [`acl`]: the roles (bank, kiosk, observer, probe) and what each may publish and subscribe,
//!   as topic filters with filter-inclusion checks;
//! - [`session`]: one connection's packets in both directions, read with rumqttc's MQTT 3.1.1
//!   and 5 codec, checked against the login's rights, and translated so that rumqttd only ever
//!   sees MQTT 5 from fresh client ids with clean sessions.
//!
//! Being its own small crate lets the fuzz targets (`fuzz/`) run this code on arbitrary bytes.

pub mod acl;
pub mod session;

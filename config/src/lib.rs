//! Typed, validated configuration of a locker-hub site (`/etc/locker-hub/hub.toml`).
//!
//! A real site file can be a few lines; everything else has a documented default:
//!
//! ```toml
//! [site]
//! id = "maple-court"
//! [[bank]]
//! id = "lobby"
//! driver = { kind = "mqtt" }
//! compartments = [{ doors = "1-8", size = "S" }, { doors = "9-12", size = "M", column = 2 }]
//! ```
//!
//! `config/hub.example.toml` documents every section. Sections and their modules:
//! `[site]` ([`Site`]), `[mqtt]` and `[web]` ([`Mqtt`], [`Web`]), `[[bank]]` with its
//! compartments, `driver`, `mqtt` login and `[[bank.unit]]` cooling units ([`Bank`],
//! [`Driver`], [`RefrigeratedUnit`]), `[policies]` ([`Policies`]) and `[sync]` ([`Sync`]).
//!
//! Reading never stops at the first mistake: [`parse`] and [`load`] return every problem
//! found, each with file, line, dotted key and what is wrong, e.g.
//! `hub.toml:14: bank[0].compartments[2].size: unknown size class `XXL`; did you mean `XL`?`.
//! TOML syntax errors are the exception: after one, the rest of the file cannot be trusted,
//! so only syntax problems are reported.

#![deny(missing_docs)]

mod bank;
mod cloud;
mod config;
mod credentials;
mod diagnostics;
mod doors;
mod driver;
mod duration;
mod import;
mod network;
mod notify;
mod policies;
mod raw;
mod refrigeration;
mod site;
mod transport;
mod validate;

use std::path::Path;

use toml::de::DeTable;

pub use bank::{Bank, Compartment, SizeClass, TemperatureClass};
pub use cloud::Sync;
pub use config::Config;
pub use credentials::{BankMqtt, KioskLogin, RESERVED_USERNAME};
pub use diagnostics::{Diagnostics, Problem};
pub use doors::MAX_DOOR;
pub use driver::{
    BitPolarity, BoardLock, DoorFeedback, Driver, KerongDriver, LockOutput, Lockboard8aDriver,
    ModbusDoor, ModbusDriver, SimDriver,
};
pub use import::{Import, RollPreset, ROLL_FIELDS};
pub use network::{
    AddrRange, Listener, Mqtt, TlsFiles, TlsListener, Web, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MQTT_BIND, DEFAULT_MQTT_TLS_BIND, DEFAULT_WEB_BIND,
};
pub use notify::{Email, Notify, SmtpTls, Webhook};
pub use policies::{HoldTimes, Lockout, Policies};
pub use refrigeration::{
    ModbusPoint, ModbusPointsSensor, PointsModel, RefrigeratedUnit, RegisterFormat, RegisterType,
    SensorSource, TemperatureSensor, WordOrder,
};
pub use site::{Site, DEFAULT_DATA_DIR, DEFAULT_RETENTION_MONTHS};
pub use transport::{ModbusTransport, Parity, SerialLine, TcpTarget, Transport};

/// Where the daemon looks for its configuration by default.
pub const DEFAULT_PATH: &str = "/etc/locker-hub/hub.toml";

/// The demo site, embedded so demo mode goes through the same parser and checks.
const DEMO_TOML: &str = include_str!("demo.toml");

/// Reads, parses and validates a configuration file.
///
/// Relative paths inside the file (TLS files, data directory) are taken relative to the
/// file's directory. A file that cannot be read is reported as one problem on line 0.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let file_name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &file_name),
        Err(e) => Err(Diagnostics(vec![Problem {
            file: file_name,
            line: 0,
            key: "file".into(),
            message: format!("cannot read the configuration: {e}"),
        }])),
    }
}

/// Parses and validates configuration text. `file_name` is used in problems and as the
/// base for relative paths in the file (its directory; the current directory if it has none).
pub fn parse(text: &str, file_name: &str) -> Result<Config, Diagnostics> {
    let mut cx = raw::Ctx::new(text, file_name);
    let (doc, errors) = DeTable::parse_recoverable(text);
    let mut syntax_broken = false;
    for error in &errors {
        let span = error.span().unwrap_or(0..0);
        // A duplicate key leaves the rest of the document intact, so reading goes on and
        // its other problems are reported too; any other syntax error stops here.
        if error.message() == "duplicate key" {
            // The span may be empty (an empty key): name it anyway, every problem has a key.
            let key = text
                .get(span.clone())
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .unwrap_or("key");
            cx.error(
                &span,
                key,
                format!("duplicate key `{key}`: each key may appear once per table"),
            );
        } else {
            syntax_broken = true;
            cx.error(
                &span,
                "syntax",
                format!("TOML syntax error: {}", error.message()),
            );
        }
    }
    if syntax_broken {
        return Err(cx.into_diagnostics());
    }
    match config::read(&doc, &mut cx) {
        Some(config) if cx.problem_count() == 0 => Ok(config),
        _ => {
            if cx.problem_count() == 0 {
                // Every reader that gives up records why; this guards that promise.
                cx.error(
                    &(0..0),
                    "config",
                    "internal error: configuration rejected without a reason (please report)",
                );
            }
            Err(cx.into_diagnostics())
        }
    }
}

/// The demo-mode configuration: site `demo`, anonymous MQTT allowed, two simulated banks:
/// `A` (24 mixed-size compartments in four columns) and `B` (12 compartments, 4 of them in a
/// refrigerated unit with a simulated sensor). Its `data_dir` is a placeholder the daemon
/// replaces with a scratch directory.
pub fn demo() -> Config {
    match parse(DEMO_TOML, "demo.toml") {
        Ok(config) => config,
        // The embedded file is checked by the crate's tests; failing here is a build defect.
        Err(problems) => panic!("the built-in demo configuration is invalid:\n{problems}"),
    }
}

/// The demo configuration's TOML text, for showing users what demo mode runs.
pub fn demo_toml() -> &'static str {
    DEMO_TOML
}

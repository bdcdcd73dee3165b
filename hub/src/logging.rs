//! Logging with tracing: human-friendly on a terminal, plain lines under systemd (journald adds
//! its own timestamps and has no use for colours). The level comes from `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// rumqttd logs every accepted connection at info; the front door already does, with the real
/// peer address, so the broker's own chatter starts at warn unless `RUST_LOG` says otherwise.
/// Its router reports a client that disconnects right after publishing ("no-connection id N is
/// already gone") at error level; that is routine, so the router's own log is off by default.
const DEFAULT_FILTER: &str = "info,rumqttd=warn,rumqttd::router::routing=off";

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.with_ansi(false).without_time().init();
    } else {
        builder.with_ansi(false).init();
    }
}

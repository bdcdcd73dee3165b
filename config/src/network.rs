//! The hub's listeners: the embedded MQTT broker (`[mqtt]`) and the LAN web page (`[web]`).
//!
//! ```toml
//! [mqtt]
//! listener = { bind = "0.0.0.0:1883", allow = ["192.168.10.0/24"] }   # plain TCP; `enabled = false` turns it off
//! tls = { bind = "0.0.0.0:8883", cert = "/etc/locker-hub/tls/hub.crt", key = "/etc/locker-hub/tls/hub.key",
//!         bank_certificates = true }          # banks may log in with a certificate (`locker-hub bank enroll`)
//! allow_anonymous = false
//! max_connections = 256
//! max_payload_bytes = 262144
//! observers = [{ username = "bms", password_hash = "$argon2id$..." }]   # read-only staff tools
//!
//! [web]
//! bind = "0.0.0.0:8080"
//! tls = { cert = "...", key = "..." }          # optional: serve HTTPS instead of HTTP
//! ```
//!
//! Bind addresses are an IP address and a port. Port 0 means "any free port" (used by tests).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::credentials::{self, BankMqtt};
use crate::raw::{Ctx, Item, Loc, Table};

/// Default plain MQTT listener: every interface, the IANA MQTT port.
pub const DEFAULT_MQTT_BIND: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 1883);
/// Default MQTT-over-TLS listener address when `[mqtt.tls]` is present.
pub const DEFAULT_MQTT_TLS_BIND: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8883);
/// Default web listener.
pub const DEFAULT_WEB_BIND: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
/// Default broker connection limit: a building has a handful of bank controllers, kiosks and
/// sensors; 256 leaves room for tools and reconnect storms on a small mini-PC.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default largest MQTT payload: 256 KiB is far above any locker message and small enough
/// that a misbehaving client cannot make the broker hold much memory per connection.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// The embedded MQTT broker's settings (`[mqtt]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mqtt {
    /// Plain-TCP listener for the LAN; `None` when disabled with `listener = { enabled = false }`.
    pub listener: Option<Listener>,
    /// MQTT-over-TLS listener; `None` unless `[mqtt.tls]` is given.
    pub tls: Option<TlsListener>,
    /// Whether clients without a username may connect. Off by default; the demo turns it on.
    pub allow_anonymous: bool,
    /// Most simultaneous client connections the broker accepts.
    pub max_connections: usize,
    /// Largest accepted MQTT payload in bytes.
    pub max_payload_bytes: usize,
    /// Read-only logins for staff tools (dashboards, building management): they may read bank
    /// state, door observations, sensor readings and alerts, and publish nothing.
    pub observers: Vec<BankMqtt>,
}

/// A plain TCP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Address and port to listen on (port 0: any free port).
    pub bind: SocketAddr,
    /// Source addresses allowed to connect (`allow = ["10.0.5.0/24", "127.0.0.1"]`); empty: any.
    /// With per-bank certificates on the TLS listener, the plain one can be kept for loopback or
    /// a few known hosts.
    pub allow: Vec<AddrRange>,
}

/// An address range in CIDR notation (`192.168.10.0/24`, `fd00::/8`; a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    /// The network address.
    pub addr: IpAddr,
    /// How many leading bits must match (32 or 128 for one host).
    pub prefix: u8,
}

impl AddrRange {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(text: &str) -> Result<AddrRange, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| {
            format!("`{text}` is not an IP address or range (e.g. `192.168.10.0/24`)")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("`{text}`: the prefix length must be 0 to {max}")),
            },
        };
        Ok(AddrRange { addr, prefix })
    }

    /// Is `ip` in this range? (IPv4-mapped IPv6 addresses count as IPv4.)
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = |a: IpAddr| -> (u128, u32) {
            match a {
                IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ((net, width), (host, host_width)) = (bits(self.addr), bits(ip));
        if width != host_width {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        shift >= width || (net >> shift) == (host >> shift)
    }
}

/// A TLS listener (rustls) with its certificate chain and private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListener {
    /// Address and port to listen on (default `0.0.0.0:8883`).
    pub bind: SocketAddr,
    /// PEM certificate chain; checked to exist and be readable.
    pub cert: PathBuf,
    /// PEM private key; checked to exist and be readable.
    pub key: PathBuf,
    /// Banks may log in with a client certificate issued by `locker-hub bank enroll` (signed by
    /// the site CA in `DATA_DIR/tls/site-ca.crt`, enrolled in `DATA_DIR/tls/enrolled.json`);
    /// clients without one still log in with a password. Default false.
    pub bank_certificates: bool,
}

/// The LAN web page (`[web]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Web {
    /// Address and port to listen on (default `0.0.0.0:8080`).
    pub bind: SocketAddr,
    /// Serve HTTPS with these files instead of plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain; checked to exist and be readable.
    pub cert: PathBuf,
    /// PEM private key; checked to exist and be readable.
    pub key: PathBuf,
}

/// A listener address as read, kept so clashes between sections can be reported where written.
pub(crate) struct BoundAt {
    pub(crate) addr: SocketAddr,
    pub(crate) loc: Loc,
    /// Not written in the file: a clash is reported at the other, written, address.
    pub(crate) defaulted: bool,
}

impl BoundAt {
    /// `at` is where the address was written; `None` means the default for `key`, located
    /// at `section` (the table that would hold it).
    fn new(addr: SocketAddr, at: Option<Loc>, section: Loc, key: &str) -> Self {
        match at {
            Some(loc) => BoundAt {
                addr,
                loc,
                defaulted: false,
            },
            None => BoundAt {
                addr,
                loc: Loc {
                    span: section.span,
                    key: key.to_owned(),
                },
                defaulted: true,
            },
        }
    }
}

/// Reads `[mqtt]`; every listener address read is appended to `binds`, every observer username
/// to `usernames` (they are checked site-wide).
pub(crate) fn read_mqtt(
    root: &mut Table,
    cx: &mut Ctx,
    binds: &mut Vec<BoundAt>,
    usernames: &mut Vec<(String, Loc)>,
) -> Option<Mqtt> {
    let Some(item) = root.get("mqtt") else {
        binds.push(BoundAt::new(
            DEFAULT_MQTT_BIND,
            None,
            root.loc(),
            "mqtt.listener.bind",
        ));
        return Some(Mqtt {
            listener: Some(Listener {
                bind: DEFAULT_MQTT_BIND,
                allow: Vec::new(),
            }),
            tls: None,
            allow_anonymous: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            observers: Vec::new(),
        });
    };
    let mut t = item.table(cx)?;

    let listener = match t.get("listener") {
        None => {
            binds.push(BoundAt::new(
                DEFAULT_MQTT_BIND,
                None,
                t.loc(),
                "mqtt.listener.bind",
            ));
            Some(Some(Listener {
                bind: DEFAULT_MQTT_BIND,
                allow: Vec::new(),
            }))
        }
        Some(item) => read_plain_listener(&item, cx, binds),
    };
    let tls = match t.get("tls") {
        None => Some(None),
        Some(item) => read_tls_listener(&item, cx, binds).map(Some),
    };
    let allow_anonymous = t.bool_or(cx, "allow_anonymous", false);
    let max_connections = t.int_or(
        cx,
        "max_connections",
        1..=100_000,
        DEFAULT_MAX_CONNECTIONS as i64,
    ) as usize;
    let max_payload_bytes = t.int_or(
        cx,
        "max_payload_bytes",
        1024..=16 * 1024 * 1024,
        DEFAULT_MAX_PAYLOAD_BYTES as i64,
    ) as usize;
    let mut observers = Vec::new();
    let mut observers_ok = true;
    if let Some(list) = t.get("observers").and_then(|o| o.array(cx)) {
        for entry in &list {
            let read = credentials::read(entry, cx);
            usernames.extend(read.username);
            match read.credentials {
                Some(c) => observers.push(c),
                None => observers_ok = false,
            }
        }
    }
    let loc = t.loc();
    t.finish(cx);
    if !observers_ok {
        return None;
    }

    let (listener, tls) = (listener?, tls?);
    if listener.is_none() && tls.is_none() {
        cx.error_at(
            &loc,
            "both MQTT listeners are off: lock controllers and sensors could not connect \
             (keep `listener` or add `tls`)",
        );
        return None;
    }
    Some(Mqtt {
        listener,
        tls,
        allow_anonymous,
        max_connections,
        max_payload_bytes,
        observers,
    })
}

/// `listener = { bind = "...", enabled = true }`; `Some(None)` when disabled.
fn read_plain_listener(
    item: &Item,
    cx: &mut Ctx,
    binds: &mut Vec<BoundAt>,
) -> Option<Option<Listener>> {
    let mut t = item.table(cx)?;
    let enabled = t.bool_or(cx, "enabled", true);
    let bind = read_bind(&mut t, cx, DEFAULT_MQTT_BIND);
    let mut allow = Vec::new();
    let mut allow_ok = true;
    if let Some(list) = t.get("allow").and_then(|a| a.array(cx)) {
        for entry in &list {
            let Some(text) = entry.str(cx) else {
                allow_ok = false;
                continue;
            };
            match AddrRange::parse(text) {
                Ok(r) => allow.push(r),
                Err(message) => {
                    cx.error(&entry.span(), entry.key(), message);
                    allow_ok = false;
                }
            }
        }
    }
    let loc = t.loc();
    t.finish(cx);
    let (addr, at) = bind?;
    if !enabled {
        return Some(None);
    }
    binds.push(BoundAt::new(addr, at, loc, "mqtt.listener.bind"));
    allow_ok.then_some(Some(Listener { bind: addr, allow }))
}

fn read_tls_listener(item: &Item, cx: &mut Ctx, binds: &mut Vec<BoundAt>) -> Option<TlsListener> {
    let mut t = item.table(cx)?;
    let bind = read_bind(&mut t, cx, DEFAULT_MQTT_TLS_BIND);
    let files = read_tls_files(&mut t, cx);
    let bank_certificates = t.bool_or(cx, "bank_certificates", false);
    let loc = t.loc();
    t.finish(cx);
    let ((addr, at), files) = (bind?, files?);
    binds.push(BoundAt::new(addr, at, loc, "mqtt.tls.bind"));
    Some(TlsListener {
        bind: addr,
        cert: files.cert,
        key: files.key,
        bank_certificates,
    })
}

/// `cert` and `key`, both required and checked readable (each reported on its own).
fn read_tls_files(t: &mut Table, cx: &mut Ctx) -> Option<TlsFiles> {
    let cert = t.require(cx, "cert").and_then(|c| c.readable_file(cx));
    let key = t.require(cx, "key").and_then(|k| k.readable_file(cx));
    Some(TlsFiles {
        cert: cert?,
        key: key?,
    })
}

/// The `bind` key, or the default; the location is `None` when defaulted.
fn read_bind(
    t: &mut Table,
    cx: &mut Ctx,
    default: SocketAddr,
) -> Option<(SocketAddr, Option<Loc>)> {
    match t.get("bind") {
        None => Some((default, None)),
        Some(item) => {
            let text = item.str(cx)?;
            match parse_bind(text) {
                Ok(addr) => Some((addr, Some(item.loc()))),
                Err(message) => {
                    cx.error(&item.span(), item.key(), message);
                    None
                }
            }
        }
    }
}

/// Reads `[web]`; its address is appended to `binds`.
pub(crate) fn read_web(root: &mut Table, cx: &mut Ctx, binds: &mut Vec<BoundAt>) -> Option<Web> {
    let Some(item) = root.get("web") else {
        binds.push(BoundAt::new(DEFAULT_WEB_BIND, None, root.loc(), "web.bind"));
        return Some(Web {
            bind: DEFAULT_WEB_BIND,
            tls: None,
        });
    };
    let mut t = item.table(cx)?;
    let bind = read_bind(&mut t, cx, DEFAULT_WEB_BIND);
    let tls = match t.get("tls") {
        None => Some(None),
        Some(item) => item.table(cx).and_then(|mut tls_table| {
            let files = read_tls_files(&mut tls_table, cx);
            tls_table.finish(cx);
            files.map(Some)
        }),
    };
    let loc = t.loc();
    t.finish(cx);
    let ((addr, at), tls) = (bind?, tls?);
    binds.push(BoundAt::new(addr, at, loc, "web.bind"));
    Some(Web { bind: addr, tls })
}

/// Parses `IP:PORT` (`[IPv6]:PORT`), explaining the usual mistakes.
pub(crate) fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "`{text}` is not an address and port: write e.g. `0.0.0.0:{}`",
            text.trim()
        ));
    };
    let port: u16 = match port.parse::<u64>() {
        Ok(p) if p <= 65535 => p as u16,
        Ok(p) => return Err(format!("port {p} is out of range: expected 1 to 65535")),
        Err(_) => return Err(format!("`{port}` is not a port number in `{text}`")),
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_err() {
        return Err(format!(
            "`{host}` is not an IP address: listen addresses must be IP literals \
             (`0.0.0.0:{port}` for every interface), host names are not resolved"
        ));
    }
    Err(format!(
        "`{text}` is not an address and port (IPv6 needs brackets: `[::]:{port}`)"
    ))
}

/// Two listeners clash when they use the same port on the same address, or one of them
/// listens on every address (0.0.0.0 / ::). Port 0 picks a free port, so never clashes.
pub(crate) fn check_clashes(binds: &[BoundAt], cx: &mut Ctx) {
    for (i, later) in binds.iter().enumerate() {
        let Some(earlier) = binds[..i].iter().find(|e| clash(e.addr, later.addr)) else {
            continue;
        };
        // Point at an address the user wrote, naming the other one.
        let (here, other) = if later.defaulted {
            (earlier, later)
        } else {
            (later, earlier)
        };
        let default = if other.defaulted { " (by default)" } else { "" };
        cx.error_at(
            &here.loc,
            format!(
                "{} clashes with `{}` = {}{default}: each listener needs its own port",
                here.addr, other.loc.key, other.addr
            ),
        );
    }
}

fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses() {
        assert_eq!(parse_bind("0.0.0.0:1883"), Ok(DEFAULT_MQTT_BIND));
        assert!(parse_bind("[::]:8883").is_ok());
        assert!(parse_bind("127.0.0.1:0").is_ok());
        assert!(parse_bind("0.0.0.0:70000")
            .unwrap_err()
            .contains("70000 is out of range"));
        assert!(parse_bind("localhost:1883")
            .unwrap_err()
            .contains("not an IP address"));
        assert!(parse_bind("1883").unwrap_err().contains("0.0.0.0:1883"));
        assert!(parse_bind("0.0.0.0:http")
            .unwrap_err()
            .contains("not a port number"));
        assert!(parse_bind("::1:80").unwrap_err().contains("brackets"));
    }

    #[test]
    fn clashes() {
        let any = |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p);
        let lan = |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 5)), p);
        let lo = |p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p);
        assert!(clash(any(1883), lan(1883)));
        assert!(clash(lo(80), lo(80)));
        assert!(!clash(lo(80), lan(80)));
        assert!(!clash(any(1883), any(8883)));
        assert!(!clash(any(0), any(0)));
    }
}

#[cfg(test)]
mod range_tests {
    use super::AddrRange;

    #[test]
    fn ranges_contain_what_they_say() {
        let lan = AddrRange::parse("192.168.10.0/24").unwrap();
        assert!(lan.contains("192.168.10.77".parse().unwrap()));
        assert!(!lan.contains("192.168.11.1".parse().unwrap()));
        assert!(lan.contains("::ffff:192.168.10.5".parse().unwrap()));
        let one = AddrRange::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(AddrRange::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(AddrRange::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(!AddrRange::parse("fd00::/8")
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "lan", "10.0.0/8", "::/129"] {
            assert!(AddrRange::parse(bad).is_err(), "{bad}");
        }
    }
}

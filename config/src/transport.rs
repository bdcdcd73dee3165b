//! How drivers and sensors reach their devices: a serial port with its line settings, or
//! a TCP endpoint, and the bus bookkeeping that keeps banks and sensors from claiming the
//! same board lock, Modbus output or slave id.
//!
//! ```toml
//! port = "/dev/ttyUSB0"     # serial; with baud, parity ("none", "even", "odd"), data_bits, stop_bits
//! host = "10.0.0.20:5000"   # or a TCP gateway / Modbus TCP device (port defaults per protocol)
//! framing = "rtu"           # Modbus only: RTU frames through a transparent gateway (default "tcp")
//! ```

use std::path::PathBuf;

use crate::raw::{Ctx, Item, Loc, Table};

/// How a driver reaches its RS-485 bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A local serial port.
    Serial(SerialLine),
    /// A transparent TCP-to-RS-485 gateway.
    Tcp(TcpTarget),
}

/// A serial port and its line settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialLine {
    /// Device path, e.g. `/dev/ttyUSB0` or `/dev/serial/by-id/...`.
    pub path: PathBuf,
    /// Bits per second.
    pub baud: u32,
    /// Parity bit.
    pub parity: Parity,
    /// Data bits: 7 or 8.
    pub data_bits: u8,
    /// Stop bits: 1 or 2.
    pub stop_bits: u8,
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// No parity bit.
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// A TCP endpoint (gateway or Modbus TCP device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpTarget {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// How a Modbus driver or sensor reaches its devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModbusTransport {
    /// Modbus RTU on a local serial port.
    Rtu(SerialLine),
    /// Modbus TCP (`host`, default port 502).
    Tcp(TcpTarget),
    /// RTU frames through a transparent TCP gateway (`host` with `framing = "rtu"`).
    RtuOverTcp(TcpTarget),
}

/// One addressable thing on a bus, recorded so two banks (or two doors) cannot claim it.
pub(crate) struct Endpoint {
    pub(crate) device: u16,
    /// `None`: the whole device (a sensor owns its slave id).
    pub(crate) point: Option<(&'static str, u16)>,
    pub(crate) loc: Loc,
}

/// A driver's or sensor's use of a bus, checked across the whole file.
pub(crate) struct BusUse {
    /// Serial device path or `host:port`.
    pub(crate) bus: String,
    /// Protocol family; families must not share a bus.
    pub(crate) family: &'static str,
    /// Line settings for serial buses; everyone on one port must agree.
    pub(crate) line: Option<(u32, Parity, u8, u8)>,
    pub(crate) endpoints: Vec<Endpoint>,
    /// Where the bus (`port` / `host`) was written.
    pub(crate) loc: Loc,
}

pub(crate) const STANDARD_BAUDS: [u32; 9] =
    [1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200];
/// Kerong boards can only be switched to these (command 0x40).
pub(crate) const KERONG_BAUDS: [u32; 4] = [9600, 19200, 57600, 115200];

/// Line defaults and limits of one protocol family.
pub(crate) struct LineRules {
    pub(crate) baud: u32,
    pub(crate) bauds: &'static [u32],
    pub(crate) tcp_port: u16,
}

/// Reads `port` or `host` and the serial line settings.
///
/// `Some(Some(_))`: a transport; `Some(None)`: neither key given and `required` is false
/// (a sensor sharing its bank's bus); `None`: a problem was reported.
pub(crate) fn read_transport(
    t: &mut Table,
    cx: &mut Ctx,
    rules: &LineRules,
    family: &'static str,
    required: bool,
) -> Option<Option<(Transport, BusUse)>> {
    let port = t.get("port");
    let host = t.get("host");
    let line_keys: Vec<Item> = ["baud", "parity", "data_bits", "stop_bits"]
        .into_iter()
        .filter_map(|k| t.get(k))
        .collect();
    match (port, host) {
        (Some(_), Some(host)) => {
            cx.error(
                &host.span(),
                host.key(),
                "give either `port` (serial device) or `host` (TCP gateway), not both",
            );
            None
        }
        (None, None) if !required => {
            if let Some(k) = line_keys.first() {
                cx.error(
                    &k.span(),
                    k.key(),
                    "line settings need a `port` (serial device) to apply to",
                );
                return None;
            }
            Some(None)
        }
        (None, None) => {
            cx.error_at(
                &t.loc(),
                format!(
                    "{family} needs `port = \"/dev/ttyUSB0\"` (serial device) or \
                     `host = \"IP:PORT\"` (TCP gateway)"
                ),
            );
            None
        }
        (None, Some(host)) => {
            if let Some(k) = line_keys.first() {
                cx.error(
                    &k.span(),
                    k.key(),
                    "line settings apply to a serial `port`; a TCP gateway's serial side is set \
                     on the gateway itself",
                );
                return None;
            }
            let text = host.str(cx)?;
            match parse_host(text, rules.tcp_port) {
                Ok(target) => {
                    let bus = BusUse {
                        bus: format!("{}:{}", target.host, target.port),
                        family,
                        line: None,
                        endpoints: Vec::new(),
                        loc: host.loc(),
                    };
                    Some(Some((Transport::Tcp(target), bus)))
                }
                Err(message) => {
                    cx.error(&host.span(), host.key(), message);
                    None
                }
            }
        }
        (Some(port), None) => {
            let path = port.str(cx);
            let path = path.filter(|p| {
                let ok = p.starts_with('/');
                if !ok {
                    cx.error(
                        &port.span(),
                        port.key(),
                        format!("`{p}` is not a device path: write e.g. `/dev/ttyUSB0`"),
                    );
                }
                ok
            });
            let baud = match t.get("baud") {
                None => Some(rules.baud),
                Some(b) => b.int(cx, 1..=4_000_000).and_then(|n| {
                    let n = n as u32;
                    if rules.bauds.contains(&n) {
                        Some(n)
                    } else {
                        let list: Vec<String> = rules.bauds.iter().map(u32::to_string).collect();
                        cx.error(
                            &b.span(),
                            b.key(),
                            format!(
                                "{n} baud is not supported by {family}: use one of {}",
                                list.join(", ")
                            ),
                        );
                        None
                    }
                }),
            };
            const PARITIES: [(&str, Parity); 3] = [
                ("none", Parity::None),
                ("even", Parity::Even),
                ("odd", Parity::Odd),
            ];
            let parity = match t.get("parity") {
                None => Some(Parity::None),
                Some(p) => p.choice(cx, "parity", &PARITIES),
            };
            let data_bits = t.get("data_bits").map_or(Some(8), |d| d.int(cx, 7..=8));
            let stop_bits = t.get("stop_bits").map_or(Some(1), |s| s.int(cx, 1..=2));
            let line = SerialLine {
                path: PathBuf::from(path?),
                baud: baud?,
                parity: parity?,
                data_bits: data_bits? as u8,
                stop_bits: stop_bits? as u8,
            };
            let bus = BusUse {
                bus: line.path.display().to_string(),
                family,
                line: Some((line.baud, line.parity, line.data_bits, line.stop_bits)),
                endpoints: Vec::new(),
                loc: port.loc(),
            };
            Some(Some((Transport::Serial(line), bus)))
        }
    }
}

/// `host`, `host:port`, `[v6]:port`; the port defaults per protocol.
pub(crate) fn parse_host(text: &str, default_port: u16) -> Result<TcpTarget, String> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{text}`: missing `]` after the IPv6 address"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("`{text}` is not `host:port`")),
        }
    } else if text.matches(':').count() > 1 {
        return Err(format!(
            "`{text}`: write IPv6 addresses in brackets, e.g. `[fd00::5]:502`"
        ));
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !host_ok {
        return Err(format!("`{host}` is not a host name or IP address"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u64>() {
            Ok(n) if (1..=65535).contains(&n) => n as u16,
            Ok(n) => return Err(format!("port {n} is out of range: expected 1 to 65535")),
            Err(_) => return Err(format!("`{p}` is not a port number")),
        },
    };
    Ok(TcpTarget {
        host: host.to_owned(),
        port,
    })
}

/// Reads a Modbus transport: `port` (RTU), or `host` with `framing = "tcp"` (default) or
/// `"rtu"` (transparent gateway). `Some(None)` when neither is given and not `required`.
pub(crate) fn read_modbus_transport(
    t: &mut Table,
    cx: &mut Ctx,
    required: bool,
) -> Option<Option<(ModbusTransport, BusUse)>> {
    let rules = LineRules {
        baud: 9600,
        bauds: &STANDARD_BAUDS,
        tcp_port: 502,
    };
    const FRAMINGS: [(&str, bool); 2] = [("tcp", false), ("rtu", true)];
    let framing = t.get("framing");
    let rtu_over_tcp = match &framing {
        None => Some(false),
        Some(f) => f.choice(cx, "framing", &FRAMINGS),
    };
    let read = read_transport(t, cx, &rules, "modbus", required)?;
    let Some((transport, bus)) = read else {
        if let Some(f) = framing {
            cx.error(&f.span(), f.key(), "`framing` applies to a `host`");
            return None;
        }
        return Some(None);
    };
    let transport = match transport {
        Transport::Serial(line) => {
            if let Some(f) = framing {
                cx.error(
                    &f.span(),
                    f.key(),
                    "`framing` applies to a `host`; a serial port always speaks RTU",
                );
                return None;
            }
            ModbusTransport::Rtu(line)
        }
        Transport::Tcp(target) if rtu_over_tcp? => ModbusTransport::RtuOverTcp(target),
        Transport::Tcp(target) => ModbusTransport::Tcp(target),
    };
    Some(Some((transport, bus)))
}

impl ModbusTransport {
    /// The bus this transport is on, for checks across banks and sensors.
    pub(crate) fn bus_use(&self, loc: Loc) -> BusUse {
        let (bus, line) = match self {
            ModbusTransport::Rtu(l) => (
                l.path.display().to_string(),
                Some((l.baud, l.parity, l.data_bits, l.stop_bits)),
            ),
            ModbusTransport::Tcp(t) | ModbusTransport::RtuOverTcp(t) => {
                (format!("{}:{}", t.host, t.port), None)
            }
        };
        BusUse {
            bus,
            family: "modbus",
            line,
            endpoints: Vec::new(),
            loc,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let t = |h: &str, p| TcpTarget {
            host: h.into(),
            port: p,
        };
        assert_eq!(parse_host("10.0.0.20", 502), Ok(t("10.0.0.20", 502)));
        assert_eq!(parse_host("gw.local:5000", 502), Ok(t("gw.local", 5000)));
        assert_eq!(parse_host("[fd00::5]:1502", 502), Ok(t("fd00::5", 1502)));
        assert_eq!(parse_host("[fd00::5]", 502), Ok(t("fd00::5", 502)));
        assert!(parse_host("gw:0", 502)
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_host("gw:99999", 502)
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_host("fd00::5", 502).unwrap_err().contains("brackets"));
        assert!(parse_host("gw host", 502).is_err());
        assert!(parse_host("", 502).is_err());
    }
}

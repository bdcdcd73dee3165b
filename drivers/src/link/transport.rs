//! How a link reaches its RS-485 bus: a local serial port or a transparent TCP gateway.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_serial::{SerialPort, SerialPortBuilderExt};

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

/// A serial port and its line settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialLine {
    /// Device path; prefer `/dev/serial/by-id/…`, which survives re-plugging in another socket.
    pub path: PathBuf,
    pub baud: u32,
    pub parity: Parity,
    /// 7 or 8.
    pub data_bits: u8,
    /// 1 or 2.
    pub stop_bits: u8,
}

impl SerialLine {
    /// 8N1 at `baud`, the setting of every lock board here.
    pub fn new(path: impl Into<PathBuf>, baud: u32) -> Self {
        SerialLine {
            path: path.into(),
            baud,
            parity: Parity::None,
            data_bits: 8,
            stop_bits: 1,
        }
    }

    /// Seconds per byte on the wire (start bit, data, parity, stop bits).
    pub fn byte_time(&self) -> Duration {
        let bits = 1
            + u32::from(self.data_bits)
            + u32::from(self.parity != Parity::None)
            + u32::from(self.stop_bits);
        Duration::from_secs_f64(f64::from(bits) / f64::from(self.baud.max(1)))
    }
}

/// Where a bus is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Serial(SerialLine),
    /// A transparent TCP ↔ RS-485 gateway (ZNE-100TL and the like, port 5000 by default).
    Tcp {
        host: String,
        port: u16,
    },
}

impl Transport {
    /// The name of the bus in logs and counters.
    pub fn describe(&self) -> String {
        match self {
            Transport::Serial(line) => line.path.display().to_string(),
            Transport::Tcp { host, port } => format!("{host}:{port}"),
        }
    }

    /// Time one byte takes on the wire; for a gateway the RS-485 side is unknown here, so the
    /// slowest common lock-board speed (9600 8N1) is assumed.
    pub fn byte_time(&self) -> Duration {
        match self {
            Transport::Serial(line) => line.byte_time(),
            Transport::Tcp { .. } => SerialLine::new("", 9600).byte_time(),
        }
    }
}

/// An open bus: bytes in both directions.
pub trait Port: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Port for T {}

pub type BoxPort = Pin<Box<dyn Port>>;

/// Open `transport`. A serial port is opened in the serialport crate's exclusive mode (TIOCEXCL
/// and an exclusive flock), so another program cannot interleave bytes on our bus; the link
/// always drops its old handle before reopening, which is what lets an unprivileged service
/// user open the port again (TIOCEXCL refuses a second open to anyone but root).
pub async fn open(transport: &Transport, connect_timeout: Duration) -> io::Result<BoxPort> {
    match transport {
        Transport::Serial(line) => {
            let path = line.path.to_str().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "serial port path is not UTF-8")
            })?;
            let data_bits = match line.data_bits {
                5 => tokio_serial::DataBits::Five,
                6 => tokio_serial::DataBits::Six,
                7 => tokio_serial::DataBits::Seven,
                _ => tokio_serial::DataBits::Eight,
            };
            let stop_bits = match line.stop_bits {
                2 => tokio_serial::StopBits::Two,
                _ => tokio_serial::StopBits::One,
            };
            let parity = match line.parity {
                Parity::None => tokio_serial::Parity::None,
                Parity::Even => tokio_serial::Parity::Even,
                Parity::Odd => tokio_serial::Parity::Odd,
            };
            let port = tokio_serial::new(path, line.baud)
                .data_bits(data_bits)
                .stop_bits(stop_bits)
                .parity(parity)
                .flow_control(tokio_serial::FlowControl::None)
                .open_native_async()
                .map_err(io::Error::from)?;
            // Bytes that reached the port before we owned it belong to nobody.
            let _ = port.clear(tokio_serial::ClearBuffer::All);
            Ok(Box::pin(port))
        }
        Transport::Tcp { host, port } => {
            let stream =
                tokio::time::timeout(connect_timeout, TcpStream::connect((host.as_str(), *port)))
                    .await
                    .map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no TCP connection within {connect_timeout:?}"),
                        )
                    })??;
            // Frames are tiny and latency matters more than packet count.
            stream.set_nodelay(true)?;
            Ok(Box::pin(stream))
        }
    }
}

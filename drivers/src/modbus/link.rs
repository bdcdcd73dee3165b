//! The Modbus link: one task owns each Modbus RTU serial port or Modbus TCP connection and is
//! the only one that talks on it, through tokio-modbus.
//!
//! It keeps the promises of the byte-level [`crate::link`] (priorities, deadlines, bounded
//! retries, offline devices, reopening with backoff, [`LinkStats`], rate-limited logs) over a
//! client that has sharp edges of its own:
//! - **No timeouts in tokio-modbus.** Every call is wrapped in `tokio::time::timeout`.
//! - **Late replies.** After a timeout or a mismatched reply (`HeaderMismatch`,
//!   `FunctionCodeMismatch`: an earlier answer arriving now) the context is dropped and the port
//!   reopened; reopening a serial port discards what the OS buffered, and what still comes is
//!   read and thrown away until the line has been quiet for `drain_quiet`. A new Modbus TCP
//!   connection never sees the old one's bytes. So a late reply is never read as the answer to
//!   the next request.
//! - **Two error layers.** The outer error (I/O, protocol) is the bus's problem; the inner
//!   [`ExceptionCode`] is the device's answer ("no such register") and means the device is
//!   alive. Both are counted, and an exception becomes [`LinkError::Exception`].
//! - **No broadcast.** Slave 0 gets no reply under the serial spec, and tokio-modbus waits for
//!   one anyway (#331); the link refuses it.
//! - **Retries** only for reads: a repeated write can repeat a pulse.
//! - **Coil pulses** are timed here: the "on" write is answered as soon as the module confirms
//!   it, and the "off" write is due `pulse` later, ahead of every other request. The bus stays
//!   free meanwhile. A failed "off" is tried again a few times; on start-up the lock driver
//!   writes every lock coil off anyway (see [`super::io`]).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_modbus::client::Context;
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::{ExceptionCode, Slave};
use tracing::{error, info, warn};

use crate::adapter::BoardLink;
use crate::link::transport::{self, SerialLine, Transport};
use crate::link::{DeviceName, Devices, Gate, LinkError, LinkStats, LogLimiter, Priority};

/// Where a Modbus bus is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModbusTransport {
    /// Modbus RTU on a local serial port.
    Rtu(SerialLine),
    /// Modbus TCP (MBAP framing; the slave id is the unit id).
    Tcp { host: String, port: u16 },
    /// RTU frames through a transparent TCP-to-RS-485 gateway.
    RtuOverTcp { host: String, port: u16 },
}

impl ModbusTransport {
    /// The name of the bus in logs, counters and link sharing: path or `host:port`.
    pub fn describe(&self) -> String {
        match self {
            ModbusTransport::Rtu(line) => line.path.display().to_string(),
            ModbusTransport::Tcp { host, port } | ModbusTransport::RtuOverTcp { host, port } => {
                format!("{host}:{port}")
            }
        }
    }
}

/// How a Modbus link behaves. [`ModbusSettings::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModbusSettings {
    pub transport: ModbusTransport,
    /// Deadline of one call when the request names none (default 500 ms).
    pub response_timeout: Duration,
    /// Attempts after the first, for reads only (default 1).
    pub retries: u8,
    /// Silence on the line before each request: Modbus RTU devices find the end of a frame by
    /// 3.5 character times of quiet, and a request sent right after the previous reply would
    /// run into it (default: 3.5 characters at the line's speed, 1.75 ms above 19200 baud;
    /// none for TCP, where a gateway times its own RS-485 side).
    pub frame_gap: Duration,
    /// After a timeout or mismatch on an RTU bus, the reopened port is read and thrown away
    /// until the line has been quiet this long (default half the response timeout), so a late
    /// reply is never decoded as the next answer.
    pub drain_quiet: Duration,
    /// A drain ends after this long even if a device keeps babbling (default 2 s).
    pub drain_max: Duration,
    /// Failures in a row before a device is reported offline (default 3).
    pub offline_after: u32,
    /// How often an offline device is probed by routine traffic (default 10 s).
    pub offline_poll_interval: Duration,
    /// Backoff between attempts to (re)open the port, doubling from min to max.
    pub reopen_backoff_min: Duration,
    pub reopen_backoff_max: Duration,
    /// TCP connect deadline (default 3 s).
    pub connect_timeout: Duration,
    /// At most one log line per problem kind per this interval (default 60 s).
    pub log_interval: Duration,
}

impl ModbusSettings {
    pub fn new(transport: ModbusTransport) -> Self {
        let response_timeout = Duration::from_millis(500);
        let frame_gap = match &transport {
            ModbusTransport::Rtu(line) if line.baud > 19_200 => Duration::from_micros(1750),
            ModbusTransport::Rtu(line) => line.byte_time().mul_f64(3.5),
            ModbusTransport::Tcp { .. } | ModbusTransport::RtuOverTcp { .. } => Duration::ZERO,
        };
        ModbusSettings {
            transport,
            response_timeout,
            retries: 1,
            frame_gap,
            drain_quiet: response_timeout / 2,
            drain_max: Duration::from_secs(2),
            offline_after: 3,
            offline_poll_interval: Duration::from_secs(10),
            reopen_backoff_min: Duration::from_millis(200),
            reopen_backoff_max: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            log_interval: Duration::from_secs(60),
        }
    }
}

/// One Modbus operation. Addresses are 0-based PDU addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// FC 01.
    ReadCoils { address: u16, count: u16 },
    /// FC 02.
    ReadDiscreteInputs { address: u16, count: u16 },
    /// FC 03.
    ReadHoldingRegisters { address: u16, count: u16 },
    /// FC 04.
    ReadInputRegisters { address: u16, count: u16 },
    /// FC 05.
    WriteCoil { address: u16, on: bool },
    /// FC 06.
    WriteRegister { address: u16, value: u16 },
    /// FC 05 on, answered once confirmed; FC 05 off is written `pulse` later by the link.
    PulseCoil { address: u16, pulse: Duration },
    /// FC 05 off to each coil in turn (the lock driver's safe state).
    CoilsOff { addresses: Vec<u16> },
}

impl Op {
    /// Reads can be repeated without effect on the device.
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Op::ReadCoils { .. }
                | Op::ReadDiscreteInputs { .. }
                | Op::ReadHoldingRegisters { .. }
                | Op::ReadInputRegisters { .. }
        )
    }
}

/// A request for one slave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModbusRequest {
    /// Slave (unit) id, 1-247.
    pub slave: u8,
    pub op: Op,
    /// Deadline of each call; the link's `response_timeout` when `None`.
    pub timeout: Option<Duration>,
}

impl ModbusRequest {
    pub fn new(slave: u8, op: Op) -> Self {
        ModbusRequest {
            slave,
            op,
            timeout: None,
        }
    }
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModbusData {
    /// Coils or discrete inputs, from the first address read.
    Bits(Vec<bool>),
    /// Registers, from the first address read.
    Words(Vec<u16>),
    /// A write was confirmed.
    Written,
}

/// A reply, with the request it answers (so a reading can be told apart from another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModbusReply {
    pub slave: u8,
    pub op: Op,
    pub data: ModbusData,
}

struct Job {
    request: ModbusRequest,
    priority: Priority,
    /// Not sent after this (an unlock nobody could use any more).
    deadline: Option<Instant>,
    answer: oneshot::Sender<Result<Option<ModbusReply>, LinkError>>,
}

/// A handle on a Modbus bus task. Clones share the task; it stops when the last handle goes.
#[derive(Clone)]
pub struct ModbusLink {
    urgent: mpsc::Sender<Job>,
    routine: mpsc::Sender<Job>,
    stats: Arc<Mutex<LinkStats>>,
    // Modbus devices never speak unasked; the adapter's listener simply never hears anything.
    unsolicited: broadcast::Sender<ModbusReply>,
    bus: String,
}

impl ModbusLink {
    /// Start the task that owns `settings.transport`, on the current tokio runtime.
    pub fn spawn(settings: ModbusSettings) -> Self {
        let bus = settings.transport.describe();
        let (urgent_tx, urgent_rx) = mpsc::channel(64);
        let (routine_tx, routine_rx) = mpsc::channel(64);
        let (unsolicited, _) = broadcast::channel(1);
        let stats = Arc::new(Mutex::new(LinkStats {
            bus: bus.clone(),
            ..LinkStats::default()
        }));
        let devices = Devices::new(
            bus.clone(),
            "Modbus slave",
            settings.offline_after,
            settings.offline_poll_interval,
        );
        let task = Task {
            log: Logs::new(settings.log_interval),
            backoff: settings.reopen_backoff_min,
            settings,
            bus: bus.clone(),
            ctx: None,
            stats: stats.clone(),
            devices,
            next_open: Instant::now(),
            port_error: "not opened yet".into(),
            opened_once: false,
            offs: Vec::new(),
            line_quiet_since: Instant::now(),
        };
        tokio::spawn(task.run(urgent_rx, routine_rx));
        ModbusLink {
            urgent: urgent_tx,
            routine: routine_tx,
            stats,
            unsolicited,
            bus,
        }
    }

    /// Send `request` and wait for its answer (always `Some` on success).
    pub async fn request(
        &self,
        request: ModbusRequest,
        priority: Priority,
    ) -> Result<Option<ModbusReply>, LinkError> {
        self.request_until(request, priority, None).await
    }

    /// [`ModbusLink::request`], but never put on the wire at or after `deadline`.
    pub async fn request_until(
        &self,
        request: ModbusRequest,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<Option<ModbusReply>, LinkError> {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            request,
            priority,
            deadline,
            answer: tx,
        };
        let queue = match priority {
            Priority::Urgent => &self.urgent,
            Priority::Routine => &self.routine,
        };
        let stopped = || LinkError::Stopped {
            bus: self.bus.clone(),
        };
        queue.send(job).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| LinkError::Interrupted {
            bus: self.bus.clone(),
            reason: "the link task stopped".into(),
        })?
    }

    /// The counters as they are now.
    pub fn stats(&self) -> LinkStats {
        match self.stats.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serial path or `host:port`.
    pub fn bus(&self) -> &str {
        &self.bus
    }
}

impl BoardLink for ModbusLink {
    type Request = ModbusRequest;
    type Reply = ModbusReply;

    fn request(
        &self,
        request: ModbusRequest,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> impl std::future::Future<Output = Result<Option<ModbusReply>, LinkError>> + Send {
        ModbusLink::request_until(self, request, priority, deadline)
    }

    fn unsolicited(&self) -> broadcast::Receiver<ModbusReply> {
        self.unsolicited.subscribe()
    }
}

struct Logs {
    timeout: LogLimiter,
    mismatch: LogLimiter,
    exception: LogLimiter,
    port: LogLimiter,
}

impl Logs {
    fn new(interval: Duration) -> Self {
        Logs {
            timeout: LogLimiter::new(interval),
            mismatch: LogLimiter::new(interval),
            exception: LogLimiter::new(interval),
            port: LogLimiter::new(interval),
        }
    }
}

/// A coil that must be switched off.
struct Off {
    due: Instant,
    slave: u8,
    coil: u16,
    attempts: u32,
}

/// A failed "off" is tried this often before it is given up (and logged as an error).
const OFF_ATTEMPTS: u32 = 5;
const OFF_RETRY: Duration = Duration::from_millis(200);

/// How one call ended.
enum Call {
    Done(ModbusData),
    Exception(ExceptionCode),
    TimedOut,
    /// A reply that does not match the request: a late answer to an earlier one.
    Mismatch(String),
    /// The port itself failed.
    Lost(io::Error),
}

enum Wake {
    Job(Option<Job>),
    OffDue,
    OpenDue,
}

struct Task {
    settings: ModbusSettings,
    bus: String,
    ctx: Option<Context>,
    stats: Arc<Mutex<LinkStats>>,
    devices: Devices,
    backoff: Duration,
    next_open: Instant,
    port_error: String,
    opened_once: bool,
    offs: Vec<Off>,
    /// When the last transaction ended, for the inter-frame gap.
    line_quiet_since: Instant,
    log: Logs,
}

impl Task {
    async fn run(mut self, mut urgent: mpsc::Receiver<Job>, mut routine: mpsc::Receiver<Job>) {
        loop {
            if self.ctx.is_none() && Instant::now() >= self.next_open {
                self.open().await;
            }
            let next_off = self.offs.iter().map(|o| o.due).min();
            let off_due = async move {
                match next_off {
                    Some(due) => tokio::time::sleep_until(due).await,
                    None => std::future::pending().await,
                }
            };
            // Plain values, not borrows of `self`: the context is not `Sync`.
            let (closed, next_open) = (self.ctx.is_none(), self.next_open);
            let open_due = async move {
                if closed {
                    tokio::time::sleep_until(next_open).await
                } else {
                    std::future::pending().await
                }
            };
            let wake = tokio::select! {
                biased;
                _ = off_due => Wake::OffDue,
                job = urgent.recv() => Wake::Job(job),
                job = routine.recv() => Wake::Job(job),
                _ = open_due => Wake::OpenDue,
            };
            match wake {
                Wake::Job(None) => {
                    // Every handle is gone; still switch off what is on.
                    while !self.offs.is_empty() {
                        self.switch_offs_due(true).await;
                    }
                    return;
                }
                Wake::Job(Some(job)) => {
                    if job.answer.is_closed() {
                        continue;
                    }
                    let answer = self.attempts(&job).await;
                    let _ = job.answer.send(answer);
                }
                Wake::OffDue => self.switch_offs_due(false).await,
                Wake::OpenDue => self.open().await,
            }
        }
    }

    async fn open(&mut self) {
        self.open_drained(false).await;
    }

    /// Open the bus; with `drain`, first read and discard whatever arrives until the line has
    /// been quiet for `drain_quiet` (late replies to a request that timed out).
    async fn open_drained(&mut self, drain: bool) {
        let connect = self.settings.connect_timeout;
        let raw = match self.settings.transport.clone() {
            ModbusTransport::Tcp { host, port } => {
                // A new TCP connection never carries the old one's bytes: nothing to drain.
                let result = connect_tcp(&host, port, connect).await;
                self.opened(result);
                return;
            }
            ModbusTransport::Rtu(line) => Transport::Serial(line),
            ModbusTransport::RtuOverTcp { host, port } => Transport::Tcp { host, port },
        };
        let result = match transport::open(&raw, connect).await {
            Ok(mut port) => {
                if drain {
                    let (quiet, max) = (self.settings.drain_quiet, self.settings.drain_max);
                    let thrown = drain_port(&mut port, quiet, max).await;
                    self.update(|s| s.garbage_bytes += thrown);
                }
                Ok(tokio_modbus::client::rtu::attach_slave(port, Slave(1)))
            }
            Err(e) => Err(e),
        };
        self.opened(result);
    }

    fn opened(&mut self, result: io::Result<Context>) {
        match result {
            Ok(ctx) => {
                self.ctx = Some(ctx);
                self.backoff = self.settings.reopen_backoff_min;
                self.log.port.reset();
                let reopened = std::mem::replace(&mut self.opened_once, true);
                self.update(|s| {
                    s.port_open = true;
                    s.reopens += u64::from(reopened);
                });
                if !reopened {
                    info!(bus = %self.bus, protocol = "modbus", "bus open");
                }
            }
            Err(e) => {
                self.port_error = e.to_string();
                self.note_error(format!("cannot open: {e}"));
                if let Some(held_back) = self.log.port.allow(std::time::Instant::now()) {
                    warn!(bus = %self.bus, error = %e, retry_in = ?self.backoff, held_back, "cannot open the Modbus bus");
                }
                self.update(|s| s.port_open = false);
                self.next_open = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(self.settings.reopen_backoff_max);
            }
        }
    }

    fn port_lost(&mut self, e: &io::Error) {
        // The old handle goes first: a serial port opened exclusively cannot be reopened
        // while it is held.
        self.ctx = None;
        self.port_error = format!("lost: {e}");
        self.next_open = Instant::now() + self.backoff;
        self.note_error(format!("port lost: {e}"));
        self.update(|s| s.port_open = false);
        if let Some(held_back) = self.log.port.allow(std::time::Instant::now()) {
            warn!(bus = %self.bus, error = %e, held_back, "Modbus bus lost; reopening with backoff");
        }
    }

    /// Drop the context after a timeout or a mismatch and open a fresh one once the line has
    /// been quiet, so whatever the device still sends lands in the old one.
    async fn recreate(&mut self) {
        self.ctx = None;
        self.open_drained(true).await;
    }

    async fn attempts(&mut self, job: &Job) -> Result<Option<ModbusReply>, LinkError> {
        let request = &job.request;
        let device = DeviceName(Some(request.slave));
        if request.slave == 0 {
            // Broadcast gets no reply, and tokio-modbus would wait for one until our timeout.
            return Err(LinkError::Exception {
                bus: self.bus.clone(),
                device,
                exception: "broadcast (slave 0) is not supported".into(),
            });
        }
        if self.ctx.is_none() {
            self.update(|s| s.refused += 1);
            return Err(self.port_down());
        }
        if job.deadline.is_some_and(|d| Instant::now() >= d) {
            self.update(|s| s.expired += 1);
            return Err(LinkError::Expired {
                bus: self.bus.clone(),
            });
        }
        let mut max_tries = if request.op.is_read() {
            1 + u32::from(self.settings.retries)
        } else {
            1
        };
        if job.priority == Priority::Routine {
            let now = Instant::now();
            match self.devices.gate(request.slave, now) {
                Gate::Send => {}
                Gate::Refuse => {
                    self.update(|s| s.refused += 1);
                    return Err(LinkError::Offline {
                        bus: self.bus.clone(),
                        device,
                        probe: self.settings.offline_poll_interval,
                    });
                }
                Gate::Probe => max_tries = 1,
            }
        }
        let timeout = request.timeout.unwrap_or(self.settings.response_timeout);
        let mut tries = 0;
        loop {
            tries += 1;
            if tries > 1 {
                self.update(|s| s.retries += 1);
            }
            let failure = match self.call(request.slave, &request.op, timeout).await {
                Call::Done(data) => {
                    self.device_answered(request.slave);
                    if let Op::PulseCoil { address, pulse } = request.op {
                        self.schedule_off(request.slave, address, pulse);
                    }
                    return Ok(Some(ModbusReply {
                        slave: request.slave,
                        op: request.op.clone(),
                        data,
                    }));
                }
                Call::Exception(code) => {
                    // The device is there and said no: not a bus failure, never retried. A
                    // TCP gateway's 0x0A/0x0B, though, says the device behind it is silent.
                    if matches!(
                        code,
                        ExceptionCode::GatewayPathUnavailable | ExceptionCode::GatewayTargetDevice
                    ) {
                        self.device_failed(request.slave);
                    } else {
                        self.device_answered(request.slave);
                    }
                    let exception = describe_exception(code);
                    self.update(|s| s.exceptions += 1);
                    let error = LinkError::Exception {
                        bus: self.bus.clone(),
                        device,
                        exception,
                    };
                    self.note_error(error.to_string());
                    if let Some(held_back) = self.log.exception.allow(std::time::Instant::now()) {
                        warn!(bus = %self.bus, op = ?request.op, error = %error, held_back, "Modbus exception reply");
                    }
                    return Err(error);
                }
                Call::Lost(e) => {
                    self.port_lost(&e);
                    return Err(LinkError::Interrupted {
                        bus: self.bus.clone(),
                        reason: self.port_error.clone(),
                    });
                }
                Call::TimedOut => {
                    self.update(|s| s.timeouts += 1);
                    if let Some(held_back) = self.log.timeout.allow(std::time::Instant::now()) {
                        warn!(bus = %self.bus, slave = request.slave, op = ?request.op, ?timeout, held_back, "no Modbus reply");
                    }
                    self.recreate().await;
                    LinkError::Timeout {
                        bus: self.bus.clone(),
                        device,
                        timeout,
                        tries,
                    }
                }
                Call::Mismatch(what) => {
                    self.update(|s| s.stray_frames += 1);
                    self.note_error(format!("mismatched reply: {what}"));
                    if let Some(held_back) = self.log.mismatch.allow(std::time::Instant::now()) {
                        warn!(bus = %self.bus, slave = request.slave, what, held_back, "mismatched Modbus reply (late answer?)");
                    }
                    self.recreate().await;
                    LinkError::BadReply {
                        bus: self.bus.clone(),
                        device,
                        tries,
                    }
                }
            };
            let late = job.deadline.is_some_and(|d| Instant::now() >= d);
            if tries >= max_tries || self.ctx.is_none() || late {
                self.note_error(failure.to_string());
                self.device_failed(request.slave);
                return Err(failure);
            }
        }
    }

    fn port_down(&self) -> LinkError {
        LinkError::PortDown {
            bus: self.bus.clone(),
            reason: self.port_error.clone(),
        }
    }

    /// One operation: one call with its deadline, or for [`Op::CoilsOff`] one per coil (each
    /// with its inter-frame gap).
    async fn call(&mut self, slave: u8, op: &Op, timeout: Duration) -> Call {
        let Op::CoilsOff { addresses } = op else {
            return self.call_one(slave, op, timeout).await;
        };
        for &address in addresses {
            let off = Op::WriteCoil { address, on: false };
            match self.call_one(slave, &off, timeout).await {
                Call::Done(_) => {}
                failed => return failed,
            }
        }
        Call::Done(ModbusData::Written)
    }

    /// One call with its deadline.
    async fn call_one(&mut self, slave: u8, op: &Op, timeout: Duration) -> Call {
        if self.ctx.is_none() {
            return Call::Lost(io::Error::new(io::ErrorKind::NotConnected, "port closed"));
        }
        if !self.settings.frame_gap.is_zero() {
            tokio::time::sleep_until(self.line_quiet_since + self.settings.frame_gap).await;
        }
        self.update(|s| s.requests += 1);
        let Some(ctx) = self.ctx.as_mut() else {
            return Call::Lost(io::Error::new(io::ErrorKind::NotConnected, "port closed"));
        };
        ctx.set_slave(Slave(slave));
        let result = tokio::time::timeout(timeout, run_op(ctx, op)).await;
        self.line_quiet_since = Instant::now();
        let call = match result {
            Err(_elapsed) => Call::TimedOut,
            Ok(Ok(Ok(data))) => Call::Done(data),
            Ok(Ok(Err(code))) => Call::Exception(code),
            Ok(Err(OpError::Client(tokio_modbus::Error::Transport(e)))) => Call::Lost(e),
            Ok(Err(OpError::Client(tokio_modbus::Error::Protocol(p)))) => {
                Call::Mismatch(p.to_string())
            }
            Ok(Err(OpError::Unexpected(what))) => Call::Mismatch(what),
        };
        if matches!(call, Call::Done(_) | Call::Exception(_)) {
            self.update(|s| s.replies += 1);
        }
        call
    }

    fn schedule_off(&mut self, slave: u8, coil: u16, pulse: Duration) {
        let due = Instant::now() + pulse;
        // A second unlock of the same door while it is pulsing extends the pulse.
        if let Some(o) = self
            .offs
            .iter_mut()
            .find(|o| o.slave == slave && o.coil == coil)
        {
            o.due = o.due.max(due);
            o.attempts = 0;
            return;
        }
        self.offs.push(Off {
            due,
            slave,
            coil,
            attempts: 0,
        });
    }

    /// Write "off" to every coil whose pulse is over (all of them with `all`).
    async fn switch_offs_due(&mut self, all: bool) {
        let now = Instant::now();
        let (due, later): (Vec<Off>, Vec<Off>) = std::mem::take(&mut self.offs)
            .into_iter()
            .partition(|o| all || o.due <= now);
        self.offs = later;
        for mut off in due {
            if self.ctx.is_none() && Instant::now() >= self.next_open {
                self.open().await;
            }
            let op = Op::WriteCoil {
                address: off.coil,
                on: false,
            };
            let outcome = if self.ctx.is_none() {
                Err(self.port_error.clone())
            } else {
                let timeout = self.settings.response_timeout;
                match self.call(off.slave, &op, timeout).await {
                    Call::Done(_) => Ok(()),
                    Call::Exception(code) => {
                        self.update(|s| s.exceptions += 1);
                        Err(describe_exception(code))
                    }
                    Call::TimedOut => {
                        self.update(|s| s.timeouts += 1);
                        self.recreate().await;
                        Err("no reply".into())
                    }
                    Call::Mismatch(what) => {
                        self.update(|s| s.stray_frames += 1);
                        self.recreate().await;
                        Err(what)
                    }
                    Call::Lost(e) => {
                        let reason = e.to_string();
                        self.port_lost(&e);
                        Err(reason)
                    }
                }
            };
            match outcome {
                Ok(()) => self.device_answered(off.slave),
                Err(reason) => {
                    off.attempts += 1;
                    if off.attempts >= OFF_ATTEMPTS {
                        error!(bus = %self.bus, slave = off.slave, coil = off.coil, reason,
                            "could not switch a lock coil off; it stays energised until the module answers (the driver writes it off when it does)");
                        self.note_error(format!(
                            "slave {} coil {} could not be switched off: {reason}",
                            off.slave, off.coil
                        ));
                        self.device_failed(off.slave);
                    } else if !all {
                        off.due = Instant::now() + OFF_RETRY;
                        self.offs.push(off);
                    }
                }
            }
        }
    }

    fn device_answered(&mut self, d: u8) {
        let health = self.devices.answered(d);
        self.update(|s| {
            s.devices.insert(d, health);
        });
    }

    fn device_failed(&mut self, d: u8) {
        let health = self.devices.failed(d);
        self.update(|s| {
            s.devices.insert(d, health);
        });
    }

    fn note_error(&self, message: String) {
        self.update(|s| s.last_error = Some((SystemTime::now(), message)));
    }

    fn update(&self, f: impl FnOnce(&mut LinkStats)) {
        match self.stats.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// Read until the line is quiet for `quiet` (at most `max`); bytes read.
async fn drain_port(port: &mut transport::BoxPort, quiet: Duration, max: Duration) -> u64 {
    use tokio::io::AsyncReadExt;
    let stop = Instant::now() + max;
    let mut buf = [0u8; 256];
    let mut thrown = 0u64;
    loop {
        let quiet_until = (Instant::now() + quiet).min(stop);
        match tokio::time::timeout_at(quiet_until, port.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => thrown += n as u64,
            // Quiet, closed or failed: the next request finds out which.
            _ => return thrown,
        }
        if Instant::now() >= stop {
            return thrown;
        }
    }
}

/// Modbus TCP with a connect deadline (tokio-modbus has none).
async fn connect_tcp(host: &str, port: u16, deadline: Duration) -> io::Result<Context> {
    let connect = async {
        let addr = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
            })?;
        tokio_modbus::client::tcp::connect_slave(addr, Slave(1)).await
    };
    tokio::time::timeout(deadline, connect).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no TCP connection within {deadline:?}"),
        )
    })?
}

/// How an operation ended, short of a device answer: the client's own errors, or a reply
/// that does not fit the request (checked here: tokio-modbus only `debug_assert`s it, which
/// would panic the link task in a debug build and pass a short read on in a release one).
enum OpError {
    Client(tokio_modbus::Error),
    Unexpected(String),
}

type OpResult = Result<Result<ModbusData, ExceptionCode>, OpError>;

async fn run_op(ctx: &mut Context, op: &Op) -> OpResult {
    use tokio_modbus::client::Client;
    use tokio_modbus::{Request, Response};
    let request = match op {
        Op::ReadCoils { address, count } => Request::ReadCoils(*address, *count),
        Op::ReadDiscreteInputs { address, count } => Request::ReadDiscreteInputs(*address, *count),
        Op::ReadHoldingRegisters { address, count } => {
            Request::ReadHoldingRegisters(*address, *count)
        }
        Op::ReadInputRegisters { address, count } => Request::ReadInputRegisters(*address, *count),
        Op::WriteCoil { address, on } => Request::WriteSingleCoil(*address, *on),
        Op::PulseCoil { address, .. } => Request::WriteSingleCoil(*address, true),
        Op::WriteRegister { address, value } => Request::WriteSingleRegister(*address, *value),
        Op::CoilsOff { .. } => {
            return Err(OpError::Unexpected(
                "a coil sweep is written one coil at a time".into(),
            ))
        }
    };
    let expected = request.clone();
    let response = match ctx.call(request).await {
        Err(e) => return Err(OpError::Client(e)),
        Ok(Err(code)) => return Ok(Err(code)),
        Ok(Ok(response)) => response,
    };
    let data = match (&expected, response) {
        (Request::ReadCoils(_, n), Response::ReadCoils(mut bits))
        | (Request::ReadDiscreteInputs(_, n), Response::ReadDiscreteInputs(mut bits))
            if bits.len() >= usize::from(*n) =>
        {
            // Bits come in whole bytes: the padding is no data.
            bits.truncate(usize::from(*n));
            ModbusData::Bits(bits)
        }
        (Request::ReadHoldingRegisters(_, n), Response::ReadHoldingRegisters(words))
        | (Request::ReadInputRegisters(_, n), Response::ReadInputRegisters(words))
            if words.len() == usize::from(*n) =>
        {
            ModbusData::Words(words)
        }
        (Request::WriteSingleCoil(a, v), Response::WriteSingleCoil(ra, rv))
            if (*a, *v) == (ra, rv) =>
        {
            ModbusData::Written
        }
        (Request::WriteSingleRegister(a, v), Response::WriteSingleRegister(ra, rv))
            if (*a, *v) == (ra, rv) =>
        {
            ModbusData::Written
        }
        (_, other) => {
            return Err(OpError::Unexpected(format!(
                "reply {other:?} does not answer {expected:?}"
            )))
        }
    };
    Ok(Ok(data))
}

/// "illegal data address (0x02)".
pub fn describe_exception(code: ExceptionCode) -> String {
    let what = match code {
        ExceptionCode::IllegalFunction => "illegal function",
        ExceptionCode::IllegalDataAddress => "illegal data address",
        ExceptionCode::IllegalDataValue => "illegal data value",
        ExceptionCode::ServerDeviceFailure => "device failure",
        ExceptionCode::Acknowledge => "acknowledge (busy with a long command)",
        ExceptionCode::ServerDeviceBusy => "device busy",
        ExceptionCode::MemoryParityError => "memory parity error",
        ExceptionCode::GatewayPathUnavailable => "gateway path unavailable",
        ExceptionCode::GatewayTargetDevice => "gateway target device failed to respond",
        ExceptionCode::Custom(_) => "exception",
    };
    format!("{what} (0x{:02X})", u8::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtu_frame_gap_is_three_and_a_half_characters_and_fixed_above_19200() {
        let gap = |baud| {
            ModbusSettings::new(ModbusTransport::Rtu(SerialLine::new("/dev/x", baud))).frame_gap
        };
        // 9600 8N1: 10 bits a character, 3.5 characters = 3.65 ms.
        assert_eq!(gap(9600).as_micros(), 3645);
        assert_eq!(gap(115_200), Duration::from_micros(1750));
        let tcp = ModbusSettings::new(ModbusTransport::Tcp {
            host: "h".into(),
            port: 502,
        });
        assert_eq!(tcp.frame_gap, Duration::ZERO);
    }

    #[test]
    fn exceptions_are_named_with_their_code() {
        assert_eq!(
            describe_exception(ExceptionCode::IllegalDataAddress),
            "illegal data address (0x02)"
        );
        assert_eq!(
            describe_exception(ExceptionCode::Custom(0x42)),
            "exception (0x42)"
        );
    }
}

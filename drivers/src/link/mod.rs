//! Bus ownership: one task owns each serial port or TCP gateway and is the only one that ever
//! writes to it or reads from it.
//!
//! RS-485 is half-duplex with one master: two requests on the wire at once garble both, and a
//! reply only means something next to the request it answers. So every request goes through
//! the owning task's queue, one at a time:
//!
//! - **Priorities.** Unlocks are [`Priority::Urgent`] and jump ahead of routine polling. A
//!   request already on the wire is never cut short (its reply would collide with the next
//!   frame), so an unlock waits at most for one transaction.
//! - **Timeouts and drains.** Every request has a deadline. After a timeout or a corrupted reply
//!   the link *drains*: it keeps reading until the line has been quiet for `drain_quiet`, and
//!   throws away what came (counted, and decoded only to count late frames), so a late reply is
//!   never read as the answer to the next request. Replies must also match their request (board,
//!   lock, kind); anything else is a stray.
//! - **Retries** are bounded, and only for requests that are safe to repeat.
//! - **Offline devices.** After `offline_after` failures in a row a device is reported offline,
//!   and routine requests for it go on the wire only once per `offline_poll_interval` (refused at
//!   once otherwise), so one dead board does not eat the polling of the others.
//! - **Lost ports.** A read or write error or end-of-file (USB adapter unplugged, gateway gone)
//!   closes the port, and it is reopened with exponential backoff; requests meanwhile fail at
//!   once with the reason. After `reopen_after_failures` failed requests in a row the port is
//!   re-created too (some USB adapters wedge).
//! - **Counters** ([`LinkStats`]) and rate-limited logs, so a dead bus does not flood the
//!   journal.
//!
//! The protocol itself is a [`Protocol`]: sans-IO encode, decode and matching.

mod devices;
mod lograte;
pub mod stats;
pub mod transport;

use std::fmt::Debug;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::codec::{Decoded, Event, FrameBuffer};
pub(crate) use devices::{Devices, Gate};
pub use lograte::LogLimiter;
pub use stats::{DeviceHealth, LinkStats};
use transport::BoxPort;
pub use transport::{Parity, SerialLine, Transport};

/// A wire protocol, as the link needs to know it.
pub trait Protocol: Send + Sync + 'static {
    type Request: Clone + Debug + Send + Sync + 'static;
    type Reply: Clone + Debug + Send + Sync + 'static;

    /// For logs: "kerong", "lockboard-8a".
    fn name(&self) -> &'static str;
    fn encode(&self, request: &Self::Request) -> Vec<u8>;
    /// Decode the front of `buf`; `pending` is the request awaiting a reply, if any.
    fn decode(&self, buf: &[u8], pending: Option<&Self::Request>) -> Decoded<Self::Reply>;
    /// Whether `reply` answers `request`.
    fn answers(&self, reply: &Self::Reply, request: &Self::Request) -> bool;
    /// What to wait for after sending `request`, given the configured response timeout.
    fn expect(&self, request: &Self::Request, timeout: Duration) -> Expect;
    /// The device (board, slave) a request is for, for health tracking.
    fn device(&self, request: &Self::Request) -> Option<u8>;
    /// Whether `reply` is a frame devices send on their own (door-change reports).
    fn unsolicited(&self, _reply: &Self::Reply) -> bool {
        false
    }
    /// Whether sending `request` twice is harmless. Queries are; a frame that opens a door
    /// never is (the first may have reached the board and only its reply been lost). A protocol
    /// lists what may be repeated: by default nothing is.
    fn retry_safe(&self, _request: &Self::Request) -> bool {
        false
    }
}

/// What follows a request on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A reply within this time; none is a failure.
    Reply(Duration),
    /// Maybe a reply within this time (firmware differs); none is not a failure.
    Optional(Duration),
    /// Nothing (broadcasts, commands without a documented reply).
    Nothing,
}

/// Who is waiting: unlocks jump the queue, polling does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Urgent,
    Routine,
}

/// How a link behaves. [`LinkSettings::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    pub transport: Transport,
    /// Deadline for a reply, from the end of the request (default 500 ms; Kerong says < 1 s).
    pub response_timeout: Duration,
    /// Attempts after the first for requests that are safe to repeat (default 1).
    pub retries: u8,
    /// Idle time left on the line before each request (default none; some boards want a
    /// few character times).
    pub frame_gap: Duration,
    /// After a timeout or bad reply, the line must be quiet this long before the next request
    /// (default: half the response timeout, so a reply up to 1.5 timeouts late is caught).
    pub drain_quiet: Duration,
    /// A drain ends after this long even if a device keeps babbling (default 2 s).
    pub drain_max: Duration,
    /// Failures in a row before a device is reported offline (default 3).
    pub offline_after: u32,
    /// How often an offline device is probed by routine traffic (default 10 s).
    pub offline_poll_interval: Duration,
    /// Failed requests in a row, bus-wide, after which the port is closed and reopened
    /// (default 12).
    pub reopen_after_failures: u32,
    /// Backoff between attempts to (re)open the port, doubling from min to max
    /// (default 200 ms to 10 s).
    pub reopen_backoff_min: Duration,
    pub reopen_backoff_max: Duration,
    /// TCP connect deadline for gateways (default 3 s).
    pub connect_timeout: Duration,
    /// At most one log line per problem kind per this interval (default 60 s).
    pub log_interval: Duration,
}

impl LinkSettings {
    pub fn new(transport: Transport) -> Self {
        let response_timeout = Duration::from_millis(500);
        LinkSettings {
            transport,
            response_timeout,
            retries: 1,
            frame_gap: Duration::ZERO,
            drain_quiet: response_timeout / 2,
            drain_max: Duration::from_secs(2),
            offline_after: 3,
            offline_poll_interval: Duration::from_secs(10),
            reopen_after_failures: 12,
            reopen_backoff_min: Duration::from_millis(200),
            reopen_backoff_max: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            log_interval: Duration::from_secs(60),
        }
    }
}

/// Why a request did not get its answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("{bus}: {device} did not answer within {timeout:?} ({tries} tries)")]
    Timeout {
        bus: String,
        device: DeviceName,
        timeout: Duration,
        tries: u32,
    },
    #[error("{bus}: {device} answered only with corrupted frames ({tries} tries)")]
    BadReply {
        bus: String,
        device: DeviceName,
        tries: u32,
    },
    #[error("{bus}: {device} is offline (stopped answering; probed every {probe:?})")]
    Offline {
        bus: String,
        device: DeviceName,
        probe: Duration,
    },
    #[error("{bus}: {device} refused the request: {exception}")]
    Exception {
        bus: String,
        device: DeviceName,
        /// The device's exception, e.g. "illegal data address (0x02)".
        exception: String,
    },
    #[error("{bus} is not open: {reason}")]
    PortDown { bus: String, reason: String },
    #[error("the link task of {bus} has stopped")]
    Stopped { bus: String },
    /// The request's deadline passed before it could go on the wire; it was not sent.
    #[error("{bus}: not sent, its deadline passed while the bus was busy")]
    Expired { bus: String },
    /// The port failed (or the link task stopped) while the request was under way: it may
    /// have reached the device.
    #[error("{bus} failed during the request: {reason}")]
    Interrupted { bus: String, reason: String },
}

impl LinkError {
    /// Whether the request certainly never went on the wire (so the device cannot have acted on
    /// it). Every other error means it may have.
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            LinkError::PortDown { .. }
                | LinkError::Offline { .. }
                | LinkError::Stopped { .. }
                | LinkError::Expired { .. }
        )
    }

    /// Whether the bus itself is gone (no port), rather than one device failing.
    pub fn bus_down(&self) -> bool {
        matches!(
            self,
            LinkError::PortDown { .. } | LinkError::Interrupted { .. }
        )
    }
}

/// A device in messages: "board 3", or "the bus" for bus-wide requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceName(pub Option<u8>);

impl std::fmt::Display for DeviceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(d) => write!(f, "board {d}"),
            None => f.write_str("the bus"),
        }
    }
}

type Answer<R> = Result<Option<R>, LinkError>;

struct Job<P: Protocol> {
    request: P::Request,
    priority: Priority,
    /// Not sent after this (an unlock nobody could use any more).
    deadline: Option<Instant>,
    answer: oneshot::Sender<Answer<P::Reply>>,
}

/// A handle on a bus-owning task. Clones share the task; it stops when the last handle goes.
pub struct Link<P: Protocol> {
    urgent: mpsc::Sender<Job<P>>,
    routine: mpsc::Sender<Job<P>>,
    stats: Arc<Mutex<LinkStats>>,
    unsolicited: broadcast::Sender<P::Reply>,
    bus: String,
}

impl<P: Protocol> Clone for Link<P> {
    fn clone(&self) -> Self {
        Link {
            urgent: self.urgent.clone(),
            routine: self.routine.clone(),
            stats: self.stats.clone(),
            unsolicited: self.unsolicited.clone(),
            bus: self.bus.clone(),
        }
    }
}

impl<P: Protocol> Link<P> {
    /// Start the task that owns `settings.transport`, on the current tokio runtime.
    pub fn spawn(protocol: P, settings: LinkSettings) -> Self {
        let bus = settings.transport.describe();
        let (urgent_tx, urgent_rx) = mpsc::channel(64);
        let (routine_tx, routine_rx) = mpsc::channel(64);
        let (unsolicited, _) = broadcast::channel(64);
        let stats = Arc::new(Mutex::new(LinkStats {
            bus: bus.clone(),
            ..LinkStats::default()
        }));
        let devices = Devices::new(
            bus.clone(),
            "board",
            settings.offline_after,
            settings.offline_poll_interval,
        );
        let task = Task {
            log: Logs::new(settings.log_interval),
            backoff: settings.reopen_backoff_min,
            protocol,
            settings,
            bus: bus.clone(),
            port: None,
            rx: FrameBuffer::new(),
            stats: stats.clone(),
            unsolicited: unsolicited.clone(),
            devices,
            failures_in_a_row: 0,
            next_open: Instant::now(),
            port_error: "not opened yet".into(),
            opened_once: false,
        };
        tokio::spawn(task.run(urgent_rx, routine_rx));
        Link {
            urgent: urgent_tx,
            routine: routine_tx,
            stats,
            unsolicited,
            bus,
        }
    }

    /// Send `request` and wait for its answer: `Some(reply)`, or `None` where no reply was
    /// expected (or an optional one did not come).
    pub async fn request(&self, request: P::Request, priority: Priority) -> Answer<P::Reply> {
        self.request_until(request, priority, None).await
    }

    /// [`Link::request`], but never put on the wire at or after `deadline`: a request still
    /// queued then is answered [`LinkError::Expired`].
    pub async fn request_until(
        &self,
        request: P::Request,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Answer<P::Reply> {
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

    /// Frames devices send on their own (door changes), as they arrive.
    pub fn unsolicited(&self) -> broadcast::Receiver<P::Reply> {
        self.unsolicited.subscribe()
    }

    /// Serial path or `host:port`.
    pub fn bus(&self) -> &str {
        &self.bus
    }
}

/// Rate limiters, one per kind of repeating problem.
struct Logs {
    timeout: LogLimiter,
    corrupt: LogLimiter,
    port: LogLimiter,
}

impl Logs {
    fn new(interval: Duration) -> Self {
        Logs {
            timeout: LogLimiter::new(interval),
            corrupt: LogLimiter::new(interval),
            port: LogLimiter::new(interval),
        }
    }
}

/// How one attempt at a request ended (I/O errors aside).
enum Attempt<R> {
    Answered(R),
    /// Nothing was expected, or an optional reply did not come.
    Unanswered,
    TimedOut,
    Corrupt,
}

enum Wake<J> {
    Job(Option<J>),
    Read(io::Result<usize>),
    OpenDue,
}

struct Task<P: Protocol> {
    protocol: P,
    settings: LinkSettings,
    bus: String,
    port: Option<BoxPort>,
    rx: FrameBuffer,
    stats: Arc<Mutex<LinkStats>>,
    unsolicited: broadcast::Sender<P::Reply>,
    devices: Devices,
    failures_in_a_row: u32,
    backoff: Duration,
    next_open: Instant,
    port_error: String,
    opened_once: bool,
    log: Logs,
}

impl<P: Protocol> Task<P> {
    async fn run(
        mut self,
        mut urgent: mpsc::Receiver<Job<P>>,
        mut routine: mpsc::Receiver<Job<P>>,
    ) {
        let mut buf = [0u8; 256];
        loop {
            // Opening comes before serving: a request must not be refused for a port that
            // was simply not tried yet.
            if self.port.is_none() && Instant::now() >= self.next_open {
                self.open().await;
            }
            let wake = match self.port.as_mut() {
                Some(port) => tokio::select! {
                    biased;
                    job = urgent.recv() => Wake::Job(job),
                    job = routine.recv() => Wake::Job(job),
                    read = port.read(&mut buf) => Wake::Read(read),
                },
                None => tokio::select! {
                    biased;
                    job = urgent.recv() => Wake::Job(job),
                    job = routine.recv() => Wake::Job(job),
                    _ = tokio::time::sleep_until(self.next_open) => Wake::OpenDue,
                },
            };
            match wake {
                // Every handle is gone: nobody can ask anything any more.
                Wake::Job(None) => return,
                Wake::Job(Some(job)) => self.execute(job).await,
                Wake::Read(Ok(0)) => self.port_lost(&io::ErrorKind::UnexpectedEof.into()),
                Wake::Read(Ok(n)) => {
                    self.rx.push(&buf[..n]);
                    self.sort_out(None);
                }
                Wake::Read(Err(e)) => self.port_lost(&e),
                Wake::OpenDue => self.open().await,
            }
        }
    }

    async fn open(&mut self) {
        match transport::open(&self.settings.transport, self.settings.connect_timeout).await {
            Ok(port) => {
                self.port = Some(port);
                self.rx.clear();
                self.backoff = self.settings.reopen_backoff_min;
                self.failures_in_a_row = 0;
                self.log.port.reset();
                let reopened = std::mem::replace(&mut self.opened_once, true);
                self.update(|s| {
                    s.port_open = true;
                    s.reopens += u64::from(reopened);
                });
                info!(bus = %self.bus, protocol = self.protocol.name(), reopened, "bus open");
            }
            Err(e) => {
                self.port_error = e.to_string();
                self.note_error(format!("cannot open: {e}"));
                if let Some(held_back) = self.log.port.allow(std::time::Instant::now()) {
                    warn!(bus = %self.bus, error = %e, retry_in = ?self.backoff, held_back, "cannot open the bus");
                }
                self.next_open = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(self.settings.reopen_backoff_max);
            }
        }
    }

    fn port_lost(&mut self, e: &io::Error) {
        // Drop the old handle before any reopen: with TIOCEXCL still held by it, an
        // unprivileged reopen of the same tty would be refused.
        self.port = None;
        self.rx.clear();
        self.port_error = format!("lost: {e}");
        self.next_open = Instant::now() + self.backoff;
        self.note_error(format!("port lost: {e}"));
        self.update(|s| s.port_open = false);
        warn!(bus = %self.bus, error = %e, "bus lost; reopening with backoff");
    }

    async fn execute(&mut self, job: Job<P>) {
        // A requester that gave up (timed out, shut down) must not have its frame sent late.
        if job.answer.is_closed() {
            return;
        }
        let answer = self.attempts(&job).await;
        let _ = job.answer.send(answer);
    }

    async fn attempts(&mut self, job: &Job<P>) -> Answer<P::Reply> {
        let device = self.protocol.device(&job.request);
        if self.port.is_none() {
            self.update(|s| s.refused += 1);
            return Err(LinkError::PortDown {
                bus: self.bus.clone(),
                reason: self.port_error.clone(),
            });
        }
        if job.deadline.is_some_and(|d| Instant::now() >= d) {
            self.update(|s| s.expired += 1);
            return Err(LinkError::Expired {
                bus: self.bus.clone(),
            });
        }
        let mut max_tries = 1 + u32::from(self.settings.retries);
        if !self.protocol.retry_safe(&job.request) {
            max_tries = 1;
        }
        if let (Some(d), Priority::Routine) = (device, job.priority) {
            let now = Instant::now();
            match self.devices.gate(d, now) {
                Gate::Send => {}
                Gate::Refuse => {
                    self.update(|s| s.refused += 1);
                    return Err(LinkError::Offline {
                        bus: self.bus.clone(),
                        device: DeviceName(device),
                        probe: self.settings.offline_poll_interval,
                    });
                }
                // One probe, not a burst of retries, for a device that is known to be gone.
                Gate::Probe => max_tries = 1,
            }
        }
        let expect = self
            .protocol
            .expect(&job.request, self.settings.response_timeout);
        let frame = self.protocol.encode(&job.request);
        let mut tries = 0;
        let outcome = loop {
            tries += 1;
            if tries > 1 {
                self.update(|s| s.retries += 1);
            }
            match self.transact(&job.request, &frame, expect).await {
                Err(e) => {
                    self.port_lost(&e);
                    return Err(LinkError::Interrupted {
                        bus: self.bus.clone(),
                        reason: self.port_error.clone(),
                    });
                }
                Ok(Attempt::Answered(reply)) => break Ok(Some(reply)),
                Ok(Attempt::Unanswered) => break Ok(None),
                Ok(failed) if tries >= max_tries => break Err(failed),
                // No retry after the deadline: the answer is the failure so far.
                Ok(failed) if job.deadline.is_some_and(|d| Instant::now() >= d) => {
                    break Err(failed)
                }
                Ok(_) => {}
            }
        };
        match outcome {
            Ok(reply) => {
                if reply.is_some() {
                    self.failures_in_a_row = 0;
                    if let Some(d) = device {
                        self.device_answered(d);
                    }
                }
                Ok(reply)
            }
            Err(failed) => {
                let timeout = match expect {
                    Expect::Reply(t) | Expect::Optional(t) => t,
                    Expect::Nothing => Duration::ZERO,
                };
                let error = match failed {
                    Attempt::Corrupt => LinkError::BadReply {
                        bus: self.bus.clone(),
                        device: DeviceName(device),
                        tries,
                    },
                    _ => LinkError::Timeout {
                        bus: self.bus.clone(),
                        device: DeviceName(device),
                        timeout,
                        tries,
                    },
                };
                self.note_error(error.to_string());
                if let Some(d) = device {
                    self.device_failed(d);
                }
                self.failures_in_a_row += 1;
                if self.failures_in_a_row >= self.settings.reopen_after_failures {
                    self.failures_in_a_row = 0;
                    warn!(bus = %self.bus, failures = self.settings.reopen_after_failures,
                        "every recent request failed; re-creating the port");
                    self.port = None;
                    self.port_error = "being re-created after repeated failures".into();
                    self.next_open = Instant::now();
                    self.update(|s| s.port_open = false);
                }
                Err(error)
            }
        }
    }

    /// One request on the wire and the wait for its reply.
    async fn transact(
        &mut self,
        request: &P::Request,
        frame: &[u8],
        expect: Expect,
    ) -> io::Result<Attempt<P::Reply>> {
        // Whatever arrived since the last transaction cannot be the answer to this one.
        self.absorb_pending().await?;
        if !self.settings.frame_gap.is_zero() {
            tokio::time::sleep(self.settings.frame_gap).await;
        }
        let port = self.port_mut()?;
        port.write_all(frame).await?;
        port.flush().await?;
        self.update(|s| s.requests += 1);
        let (wait, optional) = match expect {
            Expect::Nothing => return Ok(Attempt::Unanswered),
            Expect::Reply(t) => (t, false),
            Expect::Optional(t) => (t, true),
        };
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 256];
        loop {
            match self.sort_out(Some(request)) {
                Some(Ok(reply)) => return Ok(Attempt::Answered(reply)),
                Some(Err(())) => {
                    self.drain().await?;
                    return Ok(Attempt::Corrupt);
                }
                None => {}
            }
            let port = self.port_mut()?;
            match tokio::time::timeout_at(deadline, port.read(&mut buf)).await {
                Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => self.rx.push(&buf[..n]),
                Ok(Err(e)) => return Err(e),
                Err(_elapsed) => {
                    if !optional {
                        self.update(|s| s.timeouts += 1);
                        if let Some(held_back) = self.log.timeout.allow(std::time::Instant::now()) {
                            warn!(bus = %self.bus, ?request, timeout = ?wait, held_back, "no reply");
                        }
                    }
                    if optional && self.rx.is_empty() {
                        // Firmware that does not reply: the usual case, and no reason to hold
                        // the bus. A reply later than the window is still never taken for
                        // another request's answer: it must match that request.
                        return Ok(Attempt::Unanswered);
                    }
                    // Half a frame may be in the buffer, or a late reply on its way.
                    self.drain().await?;
                    return Ok(if optional {
                        Attempt::Unanswered
                    } else {
                        Attempt::TimedOut
                    });
                }
            }
        }
    }

    /// Take complete frames off the receive buffer: the answer to `pending` (`Some(Ok)`), a
    /// corrupted frame while waiting (`Some(Err)`), or `None` when more bytes are needed.
    /// Unsolicited frames are passed on, anything else is counted as stray.
    fn sort_out(&mut self, pending: Option<&P::Request>) -> Option<Result<P::Reply, ()>> {
        while let Some(event) = self.rx.next(|b| self.protocol.decode(b, pending)) {
            match event {
                Event::Frame(reply) => {
                    if pending.is_some_and(|req| self.protocol.answers(&reply, req)) {
                        self.update(|s| s.replies += 1);
                        return Some(Ok(reply));
                    }
                    if self.protocol.unsolicited(&reply) {
                        let _ = self.unsolicited.send(reply);
                    } else {
                        self.update(|s| s.stray_frames += 1);
                    }
                }
                Event::Garbage(n) => self.update(|s| s.garbage_bytes += n as u64),
                Event::BadChecksum => {
                    self.update(|s| s.checksum_errors += 1);
                    self.note_error("frame with a wrong checksum".into());
                    if let Some(held_back) = self.log.corrupt.allow(std::time::Instant::now()) {
                        warn!(bus = %self.bus, held_back, "frame with a wrong checksum dropped");
                    }
                    if pending.is_some() {
                        return Some(Err(()));
                    }
                }
            }
        }
        None
    }

    /// Read whatever is already waiting, without waiting for more.
    async fn absorb_pending(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 256];
        loop {
            let port = self.port_mut()?;
            // A zero timeout polls the read once: ready bytes come back, nothing waits.
            match tokio::time::timeout(Duration::ZERO, port.read(&mut buf)).await {
                Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => {
                    self.rx.push(&buf[..n]);
                    self.sort_out(None);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => break,
            }
        }
        // A partial frame left over belongs to no request we will send.
        let leftover = self.rx.len() as u64;
        self.rx.clear();
        self.update(|s| s.garbage_bytes += leftover);
        Ok(())
    }

    /// Read until the line is quiet for `drain_quiet` (at most `drain_max`); what arrives is
    /// decoded only to count it and to pass on unsolicited frames.
    async fn drain(&mut self) -> io::Result<()> {
        let stop = Instant::now() + self.settings.drain_max;
        let mut buf = [0u8; 256];
        loop {
            let quiet_until = (Instant::now() + self.settings.drain_quiet).min(stop);
            let port = self.port_mut()?;
            match tokio::time::timeout_at(quiet_until, port.read(&mut buf)).await {
                Err(_) => break,
                Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => {
                    self.rx.push(&buf[..n]);
                    self.sort_out(None);
                }
                Ok(Err(e)) => return Err(e),
            }
            if Instant::now() >= stop {
                break;
            }
        }
        let leftover = self.rx.len() as u64;
        self.rx.clear();
        self.update(|s| s.garbage_bytes += leftover);
        Ok(())
    }

    fn port_mut(&mut self) -> io::Result<&mut BoxPort> {
        self.port
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "port closed"))
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

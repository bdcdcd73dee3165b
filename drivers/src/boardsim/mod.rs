//! Simulated lock boards on the far end of a pseudo-terminal (or a TCP "gateway"), for tests,
//! demos and benchmarks.
//!
//! The simulator holds the master side of a PTY pair and publishes the slave under a stable
//! path of the caller's choosing (a symlink, like `/dev/serial/by-id/…`), so the driver under
//! test opens it by path exactly as it opens a real port. Behind it sit boards that keep door
//! state, answer in the chosen [`Dialect`], and misbehave on request ([`Fault`]): corrupted
//! checksums, silence, split or delayed replies, garbage, and the whole port vanishing and
//! coming back (the symlink then points at a new PTY, as a re-plugged USB adapter gets a new
//! tty).
//!
//! PTYs deliver bytes instantly whatever the baud rate, so the simulator can emulate wire time:
//! a request counts as received when its last byte would have arrived, and a reply is handed
//! over when its last byte would have. It runs on its own thread with precise sleeps, like a
//! board's MCU, so timing measured against it means something.

mod boards;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_serial::{SerialPort, SerialStream};

pub use boards::{AnyRequest, Boards, Dialect, KerongUnlockReply};

use crate::board::Polarity;
use crate::codec::{Event, FrameBuffer};

/// How the simulated bus behaves.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub dialect: Dialect,
    /// Board addresses present on the bus.
    pub boards: Vec<u8>,
    pub locks_per_board: u8,
    /// How the boards encode "closed".
    pub polarity: Polarity,
    /// Emulate the wire time of this line speed (10 bits per byte); `None` for instant.
    pub baud: Option<u32>,
    /// Board think time between a request and its reply.
    pub turnaround: Duration,
}

impl SimSettings {
    /// Kerong boards with the given addresses, 16 locks each, no reply to unlocks.
    pub fn kerong(boards: &[u8]) -> Self {
        SimSettings {
            dialect: Dialect::Kerong {
                unlock_reply: KerongUnlockReply::Nothing,
            },
            boards: boards.to_vec(),
            locks_per_board: 16,
            polarity: Polarity::OneIsClosed,
            baud: None,
            turnaround: Duration::from_micros(500),
        }
    }

    /// 8A/80 boards with the given addresses, 24 locks each.
    pub fn lockboard8a(boards: &[u8]) -> Self {
        SimSettings {
            dialect: Dialect::Lockboard8a { unsolicited: false },
            boards: boards.to_vec(),
            locks_per_board: 24,
            polarity: Polarity::OneIsClosed,
            baud: None,
            turnaround: Duration::from_micros(500),
        }
    }
}

/// Misbehaviour of the next reply, in injection order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The reply's checksum is wrong.
    BadChecksum,
    /// No reply at all (the request is still carried out).
    Silence,
    /// The first `at` bytes, a pause, then the rest.
    Split { at: usize, pause: Duration },
    /// The whole reply comes this much later.
    Delay(Duration),
    /// These bytes go on the wire just before the reply.
    GarbageBefore(Vec<u8>),
}

/// A request as it arrived, with the moment its last byte was on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireRecord {
    pub at: Instant,
    pub request: AnyRequest,
}

struct Shared {
    boards: Boards,
    faults: Vec<Fault>,
    received: Vec<WireRecord>,
}

enum Control {
    Vanish,
    Reappear,
    Write(Vec<u8>),
    Stop,
}

/// A running simulated bus. Dropping it stops the simulator and removes its path.
pub struct SimBus {
    shared: Arc<Mutex<Shared>>,
    control: mpsc::UnboundedSender<Control>,
    path: Option<PathBuf>,
    addr: Option<SocketAddr>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SimBus {
    /// Simulated boards behind a PTY whose slave is reachable as `link` (a symlink the
    /// simulator creates and keeps pointing at its current PTY).
    pub fn on_pty(settings: SimSettings, link: &Path) -> io::Result<SimBus> {
        Self::start(settings, Where::Pty(link.to_path_buf()))
    }

    /// Simulated boards behind a transparent TCP gateway on a loopback port.
    pub fn on_tcp(settings: SimSettings) -> io::Result<SimBus> {
        Self::start(settings, Where::Tcp)
    }

    fn start(settings: SimSettings, place: Where) -> io::Result<SimBus> {
        let shared = Arc::new(Mutex::new(Shared {
            boards: Boards::new(
                settings.dialect,
                &settings.boards,
                settings.locks_per_board,
                settings.polarity,
            ),
            faults: Vec::new(),
            received: Vec::new(),
        }));
        let (control, control_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = match &place {
            Where::Pty(p) => Some(p.clone()),
            Where::Tcp => None,
        };
        let sim = Sim {
            shared: shared.clone(),
            byte_time: settings
                .baud
                .map(|b| Duration::from_secs_f64(10.0 / f64::from(b.max(1)))),
            turnaround: settings.turnaround,
            place,
        };
        let thread = thread::Builder::new()
            .name("boardsim".into())
            .spawn(move || sim.run(control_rx, ready_tx))?;
        let addr = ready_rx
            .recv()
            .map_err(|_| io::Error::other("simulator thread died at start"))??;
        Ok(SimBus {
            shared,
            control,
            path,
            addr,
            thread: Some(thread),
        })
    }

    /// The path to open (PTY simulators).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The gateway address (TCP simulators).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }

    /// Misbehave on the next reply (faults queue up, one per reply).
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Power a board off (`true`) or on.
    pub fn set_silent(&self, board: u8, silent: bool) {
        let mut s = self.lock();
        if silent {
            s.boards.silent.insert(board);
        } else {
            s.boards.silent.remove(&board);
        }
    }

    /// The board carries out the next unlock it receives, then goes silent (until
    /// `set_silent(board, false)`): it loses power just as a pickup arrives.
    pub fn silence_after_next_unlock(&self, board: u8) {
        self.lock().boards.silent_after_unlock.insert(board);
    }

    /// Make a lock pulse without its door opening.
    pub fn set_stuck(&self, board: u8, lock: u8) {
        self.lock().boards.stuck.insert((board, lock));
    }

    /// Whether the door at (board, lock) is open.
    pub fn is_open(&self, board: u8, lock: u8) -> bool {
        self.lock()
            .boards
            .open
            .get(&(board, lock))
            .copied()
            .unwrap_or(false)
    }

    /// A person opens or closes a door (8A boards that report changes say so on the wire).
    pub fn set_door(&self, board: u8, lock: u8, open: bool) {
        let frame = {
            let mut s = self.lock();
            if let Some(state) = s.boards.open.get_mut(&(board, lock)) {
                *state = open;
            }
            s.boards.change_frame(board, lock, open)
        };
        if let Some(frame) = frame {
            let _ = self.control.send(Control::Write(frame));
        }
    }

    /// Unlock pulses received by (board, lock).
    pub fn pulses(&self, board: u8, lock: u8) -> u32 {
        self.lock()
            .boards
            .pulses
            .get(&(board, lock))
            .copied()
            .unwrap_or(0)
    }

    /// The pulse time a Kerong board was given, in 10 ms steps.
    pub fn pulse_setting(&self, board: u8) -> Option<u16> {
        self.lock().boards.pulse_setting.get(&board).copied()
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<WireRecord> {
        self.lock().received.clone()
    }

    /// Requests received after the first `skip`.
    pub fn received_after(&self, skip: usize) -> Vec<WireRecord> {
        self.lock().received.iter().skip(skip).cloned().collect()
    }

    /// How many requests have been received.
    pub fn received_count(&self) -> usize {
        self.lock().received.len()
    }

    /// Put raw bytes on the wire (garbage, or a frame of our own making).
    pub fn write_raw(&self, bytes: &[u8]) {
        let _ = self.control.send(Control::Write(bytes.to_vec()));
    }

    /// The port goes away: the PTY is closed and its path removed (USB adapter unplugged), or
    /// the gateway drops its connection and refuses new ones.
    pub fn vanish(&self) {
        let _ = self.control.send(Control::Vanish);
    }

    /// The port comes back, as a new PTY at the same path (or the gateway accepts again).
    pub fn reappear(&self) {
        let _ = self.control.send(Control::Reappear);
    }
}

impl Drop for SimBus {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    match shared.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    }
}

enum Where {
    Pty(PathBuf),
    Tcp,
}

/// The open end of the simulated wire.
enum Wire {
    /// The master side; the simulator's own slave handle stays open so the master never sees
    /// a hang-up while the driver reopens its side.
    Pty {
        master: SerialStream,
        _slave: SerialStream,
    },
    Tcp(TcpStream),
}

impl Wire {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Pty { master, .. } => master.read(buf).await,
            Wire::Tcp(s) => s.read(buf).await,
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Wire::Pty { master, .. } => master.write_all(bytes).await,
            Wire::Tcp(s) => s.write_all(bytes).await,
        }
    }
}

struct Sim {
    shared: Arc<Mutex<Shared>>,
    byte_time: Option<Duration>,
    turnaround: Duration,
    place: Where,
}

impl Sim {
    fn run(
        self,
        control: mpsc::UnboundedReceiver<Control>,
        ready: std::sync::mpsc::Sender<io::Result<Option<SocketAddr>>>,
    ) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        rt.block_on(self.serve(control, ready));
    }

    fn open_pty(link: &Path) -> io::Result<Wire> {
        let (master, slave) = SerialStream::pair().map_err(io::Error::from)?;
        let name = slave
            .name()
            .ok_or_else(|| io::Error::other("PTY slave has no name"))?;
        // Replace the link atomically, so the driver never sees a half-made path.
        let tmp = link.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&name, &tmp)?;
        std::fs::rename(&tmp, link)?;
        Ok(Wire::Pty {
            master,
            _slave: slave,
        })
    }

    async fn serve(
        self,
        mut control: mpsc::UnboundedReceiver<Control>,
        ready: std::sync::mpsc::Sender<io::Result<Option<SocketAddr>>>,
    ) {
        let mut wire = None;
        let mut listener = None;
        let start = match &self.place {
            Where::Pty(link) => Self::open_pty(link).map(|w| {
                wire = Some(w);
                None
            }),
            Where::Tcp => match TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => {
                    let addr = l.local_addr().ok();
                    listener = Some(l);
                    Ok(addr)
                }
                Err(e) => Err(e),
            },
        };
        let started = start.is_ok();
        let _ = ready.send(start);
        if !started {
            return;
        }
        let tcp_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let mut rx = FrameBuffer::new();
        let mut buf = [0u8; 256];
        loop {
            enum Wake {
                Read(io::Result<usize>),
                Accepted(TcpStream),
                Control(Option<Control>),
            }
            let wake = match (wire.as_mut(), listener.as_ref()) {
                (Some(w), _) => tokio::select! {
                    c = control.recv() => Wake::Control(c),
                    r = w.read(&mut buf) => Wake::Read(r),
                },
                (None, Some(l)) => tokio::select! {
                    c = control.recv() => Wake::Control(c),
                    a = l.accept() => match a {
                        Ok((s, _)) => Wake::Accepted(s),
                        Err(_) => continue,
                    },
                },
                _ => Wake::Control(control.recv().await),
            };
            match wake {
                Wake::Control(None | Some(Control::Stop)) => return,
                Wake::Control(Some(Control::Vanish)) => {
                    wire = None;
                    rx.clear();
                    // A gateway that is gone refuses connections, it does not queue them.
                    listener = None;
                    if let Where::Pty(link) = &self.place {
                        let _ = std::fs::remove_file(link);
                    }
                }
                Wake::Control(Some(Control::Reappear)) => match &self.place {
                    Where::Pty(link) => match Self::open_pty(link) {
                        Ok(w) => wire = Some(w),
                        Err(e) => tracing::error!(error = %e, "simulator cannot make a PTY"),
                    },
                    Where::Tcp => {
                        if let Some(addr) = tcp_addr {
                            match TcpListener::bind(addr).await {
                                Ok(l) => listener = Some(l),
                                Err(e) => {
                                    tracing::error!(error = %e, "simulator cannot listen again")
                                }
                            }
                        }
                    }
                },
                Wake::Control(Some(Control::Write(bytes))) => {
                    if let Some(w) = wire.as_mut() {
                        let _ = w.write(&bytes).await;
                    }
                }
                Wake::Accepted(s) => {
                    let _ = s.set_nodelay(true);
                    rx.clear();
                    wire = Some(Wire::Tcp(s));
                }
                // The driver closed its side (TCP) or the PTY failed: wait for the next one.
                Wake::Read(Ok(0)) | Wake::Read(Err(_)) => {
                    if matches!(self.place, Where::Tcp) {
                        wire = None;
                    } else {
                        // A PTY master reports EIO while no slave is open; ours stays open,
                        // so this is rare. Do not spin.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Wake::Read(Ok(n)) => {
                    let arrived = Instant::now();
                    rx.push(&buf[..n]);
                    let Some(w) = wire.as_mut() else { continue };
                    if let Err(e) = self.handle(&mut rx, w, arrived).await {
                        tracing::debug!(error = %e, "simulator write failed");
                    }
                }
            }
        }
    }

    /// Answer every complete request in `rx`.
    async fn handle(
        &self,
        rx: &mut FrameBuffer,
        wire: &mut Wire,
        arrived: Instant,
    ) -> io::Result<()> {
        loop {
            let event = {
                let s = lock(&self.shared);
                rx.next(|b| s.boards.decode(b))
            };
            let Some(event) = event else {
                return Ok(());
            };
            let Event::Frame(request) = event else {
                continue;
            };
            // The request is complete once its last byte would have crossed the wire.
            let len = match request {
                AnyRequest::Kerong(r) => r.encode().len(),
                AnyRequest::Lockboard8a(r) => r.encode().len(),
            };
            let complete = arrived + self.wire_time(len);
            sleep_until(complete);
            let (reply, fault) = {
                let mut s = lock(&self.shared);
                s.received.push(WireRecord {
                    at: complete,
                    request,
                });
                let reply = s.boards.answer(request);
                let fault = if s.faults.is_empty() {
                    None
                } else {
                    Some(s.faults.remove(0))
                };
                (reply, fault)
            };
            let Some(mut reply) = reply else {
                continue;
            };
            thread::sleep(self.turnaround);
            match fault {
                None => self.send(wire, &reply).await?,
                Some(Fault::Silence) => {}
                Some(Fault::BadChecksum) => {
                    if let Some(last) = reply.last_mut() {
                        *last ^= 0x5A;
                    }
                    self.send(wire, &reply).await?;
                }
                Some(Fault::Delay(d)) => {
                    thread::sleep(d);
                    self.send(wire, &reply).await?;
                }
                Some(Fault::Split { at, pause }) => {
                    let (a, b) = reply.split_at(at.min(reply.len()));
                    self.send(wire, a).await?;
                    thread::sleep(pause);
                    self.send(wire, b).await?;
                }
                Some(Fault::GarbageBefore(mut junk)) => {
                    junk.extend_from_slice(&reply);
                    self.send(wire, &junk).await?;
                }
            }
        }
    }

    /// Hand `bytes` over when their last byte would have arrived.
    async fn send(&self, wire: &mut Wire, bytes: &[u8]) -> io::Result<()> {
        sleep_until(Instant::now() + self.wire_time(bytes.len()));
        wire.write(bytes).await
    }

    fn wire_time(&self, bytes: usize) -> Duration {
        self.byte_time.map_or(Duration::ZERO, |t| {
            t * u32::try_from(bytes).unwrap_or(u32::MAX)
        })
    }
}

/// Sleep precisely (this thread is the board's MCU: nothing else runs on it).
fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}

//! The bank adapter: makes a bank of lock boards on a [`Link`] look, on the MQTT bus, exactly
//! like a bank with its own controller (see `docs/mqtt-api.md`).
//!
//! It connects to the hub's broker as an ordinary client, with a retained status and a last
//! will that says offline, and:
//! - carries out `unlock` commands (urgent on the link) and acknowledges each one, once per
//!   `unlock_id`, with how it ended: `pulsed`, `failed` (the board refused), `not_sent` (its
//!   deadline passed first, or the bus was down) or `unknown` (the frame left and nobody
//!   confirmed). A QoS 1 redelivery is acknowledged again, never pulsed again, and nothing is
//!   put on the wire after the unlock's deadline;
//! - polls every board once per poll interval and publishes a door observation for every door
//!   whose state changed (the first reading of each door included), so a change reaches MQTT
//!   within one poll cycle; unsolicited door-change frames are published at once;
//! - answers `query` commands from a fresh reading, one request per board however many of its
//!   doors are asked about;
//! - reports a board's doors unreachable after `unreachable_after` failed requests in a row
//!   (one corrupted reply is not an outage), the bank offline when every board is, and both
//!   back on the first good answer.
//!
//! Nothing here awaits the broker while holding state: messages go through an outbox to one
//! publishing task, so a broker outage can stall neither polling nor the MQTT event loop.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::board::{BoardLock, DoorMap, Limits};
use crate::bus::{BankStatus, BankTopics, Command, CommandAck, DoorObservation, UnlockResult};
use crate::link::{Link, LinkError, Priority, Protocol};

/// The task that owns a bus, as the adapter uses it: the byte-level [`Link`] of the RS-485
/// lock boards, or the Modbus link (`crate::modbus::ModbusLink`), which speaks through
/// tokio-modbus. The adapter only asks and waits.
pub trait BoardLink: Clone + Send + Sync + 'static {
    type Request: Clone + std::fmt::Debug + Send + Sync + 'static;
    type Reply: Clone + std::fmt::Debug + Send + Sync + 'static;
    /// Send `request` and wait for its answer (`None`: no reply was expected); never put it on
    /// the wire at or after `deadline` ([`LinkError::Expired`]).
    fn request(
        &self,
        request: Self::Request,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> impl std::future::Future<Output = Result<Option<Self::Reply>, LinkError>> + Send;
    /// Replies devices send on their own (door-change reports), as they arrive.
    fn unsolicited(&self) -> tokio::sync::broadcast::Receiver<Self::Reply>;
}

impl<P: Protocol> BoardLink for Link<P> {
    type Request = P::Request;
    type Reply = P::Reply;

    fn request(
        &self,
        request: P::Request,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> impl std::future::Future<Output = Result<Option<P::Reply>, LinkError>> + Send {
        Link::request_until(self, request, priority, deadline)
    }

    fn unsolicited(&self) -> tokio::sync::broadcast::Receiver<P::Reply> {
        Link::unsolicited(self)
    }
}

/// A request of the bus a bank of `P` is on.
pub type RequestOf<P> = <<P as LockBoards>::Link as BoardLink>::Request;
/// A reply on the bus a bank of `P` is on.
pub type ReplyOf<P> = <<P as LockBoards>::Link as BoardLink>::Reply;

/// What the adapter needs to know about a lock-board protocol beyond the wire.
pub trait LockBoards: Clone + Send + Sync + 'static {
    /// The bus-owning task that carries this protocol's requests.
    type Link: BoardLink;
    /// Address ranges of the protocol, to check door maps against.
    fn limits(&self) -> Limits;
    /// The routine status query of one board.
    fn poll(&self, board: u8) -> RequestOf<Self>;
    fn unlock(&self, at: BoardLock) -> RequestOf<Self>;
    /// A request to send once to a board whenever it (re)appears, such as its pulse time.
    fn setup(&self, board: u8) -> Option<RequestOf<Self>>;
    /// The lock states a reply tells, if any.
    fn reading(&self, reply: &ReplyOf<Self>) -> Option<Reading>;
    /// Description for the bank's status topic.
    fn firmware(&self) -> String;
}

/// Lock states read from one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub board: u8,
    /// (lock, state); a full poll lists every channel, a single-lock reply one.
    pub locks: Vec<(u8, LockState)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockState {
    pub open: bool,
    pub occupied: Option<bool>,
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerTarget {
    pub host: String,
    pub port: u16,
    /// Username and password, when the broker does not allow anonymous clients.
    pub credentials: Option<(String, String)>,
}

/// One bank's adapter settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankSettings {
    /// Bank id (`[A-Za-z0-9_-]+`), the topic level of this bank.
    pub bank: String,
    pub broker: BrokerTarget,
    /// How often every board is read (default 1 s). Zero polls back to back.
    pub poll_interval: Duration,
    /// How often an idle board is read (the hub's default: `poll_interval`, no difference):
    /// every door of it closed at its last reading, no unlock sent to it for
    /// `BUSY_AFTER_UNLOCK` (5 s), nothing asked about it, and
    /// answering. Every opening a person makes follows an unlock, which makes its board busy
    /// (read every `poll_interval`); so this bounds only how late a door forced open on an idle
    /// board is seen. Fewer readings keep a half-duplex line free for the next unlock. At most
    /// `poll_interval`: every board every cycle.
    pub idle_poll_interval: Duration,
    /// Failed requests in a row before a board counts as silent (default 3).
    pub unreachable_after: u32,
}

/// What the adapter knows about its bank, for health pages and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BankHealth {
    /// Connected to the broker.
    pub mqtt_connected: bool,
    /// `Some(true)` while at least one board answers, `Some(false)` when all are silent,
    /// `None` before the first poll.
    pub online: Option<bool>,
    /// Per board: answered its last request.
    pub boards: BTreeMap<u8, bool>,
    /// Poll cycles completed, and how long the last one took.
    pub cycles: u64,
    pub last_cycle: Option<Duration>,
    /// Unlock acknowledgements published (first ones, not repeats for redeliveries).
    pub acks: u64,
}

/// Why an adapter did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    #[error("bank id {0:?} is not usable as a topic level (letters, digits, '-' and '_' only)")]
    BankId(String),
}

/// A running adapter; dropping it stops the adapter (the link stays with its other users).
pub struct BankHandle {
    health: watch::Receiver<BankHealth>,
    tasks: Vec<JoinHandle<()>>,
}

impl BankHandle {
    pub fn health(&self) -> BankHealth {
        self.health.borrow().clone()
    }

    /// Wait until `pred` holds for the bank's health.
    pub async fn wait_for(&self, pred: impl FnMut(&BankHealth) -> bool) -> BankHealth {
        let mut rx = self.health.clone();
        let seen = rx.wait_for(pred).await.map(|h| h.clone());
        seen.unwrap_or_else(|_| self.health())
    }
}

impl Drop for BankHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Start the adapter of one bank whose doors are `map`, driving boards through `link`.
pub fn spawn<P: LockBoards>(
    protocol: P,
    link: P::Link,
    map: DoorMap,
    settings: BankSettings,
) -> Result<BankHandle, AdapterError> {
    if !crate::bus::valid_bank_id(&settings.bank) {
        return Err(AdapterError::BankId(settings.bank));
    }
    let topics = BankTopics::new(&settings.bank);
    let mut mqtt = mqtt_options(format!("driver-{}", settings.bank), &settings.broker);
    let offline = serde_json::to_vec(&BankStatus {
        online: false,
        doors: Some(map.len() as u16),
        firmware: None,
        unreachable_doors: Vec::new(),
    })
    .unwrap_or_default();
    mqtt.set_last_will(LastWill::new(
        topics.status(),
        offline,
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut events) = AsyncClient::new(mqtt, 64);
    // Small packets both ways (commands in, acks out): Nagle's algorithm meeting delayed ACKs
    // would add up to 40 ms to an unlock.
    let mut network = events.network_options();
    network.set_tcp_nodelay(true);
    events.set_network_options(network);
    let (outbox, outbox_rx) = mpsc::unbounded_channel();
    let (health_tx, health_rx) = watch::channel(BankHealth::default());
    let boards = map.boards();
    let shared = Arc::new(Shared {
        bank: settings.bank.clone(),
        firmware: protocol.firmware(),
        protocol,
        link,
        topics,
        outbox,
        health: health_tx,
        state: Mutex::new(State {
            doors: BTreeMap::new(),
            boards: boards.iter().map(|b| (*b, BoardState::default())).collect(),
            queries: BTreeMap::new(),
            published_online: None,
            published_unreachable: Vec::new(),
            connected: false,
            unlocks: RecentUnlocks::default(),
        }),
        map,
        unreachable_after: settings.unreachable_after.max(1),
    });
    let tasks = vec![
        tokio::spawn(publisher(client.clone(), outbox_rx)),
        tokio::spawn(shared.clone().mqtt_loop(events)),
        tokio::spawn(
            shared
                .clone()
                .poller(settings.poll_interval, settings.idle_poll_interval),
        ),
        tokio::spawn(shared.clone().listen_unsolicited()),
    ];
    Ok(BankHandle {
        health: health_rx,
        tasks,
    })
}

/// Broker options every driver client uses: short keep-alive (a dead driver's last will
/// fires within seconds), clean session, the hub's login.
pub fn mqtt_options(client_id: String, broker: &BrokerTarget) -> MqttOptions {
    let mut mqtt = MqttOptions::new(client_id, &broker.host, broker.port);
    mqtt.set_keep_alive(Duration::from_secs(5));
    mqtt.set_clean_session(true);
    if let Some((user, pass)) = &broker.credentials {
        mqtt.set_credentials(user, pass);
    }
    mqtt
}

/// Something for the broker.
enum Outgoing {
    Publish {
        topic: String,
        retain: bool,
        payload: Vec<u8>,
    },
    Subscribe(String),
}

/// The one task that talks to the client's request channel.
async fn publisher(client: AsyncClient, mut outbox: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(out) = outbox.recv().await {
        let result = match out {
            Outgoing::Publish {
                topic,
                retain,
                payload,
            } => {
                client
                    .publish(topic, QoS::AtLeastOnce, retain, payload)
                    .await
            }
            Outgoing::Subscribe(topic) => client.subscribe(topic, QoS::AtLeastOnce).await,
        };
        if let Err(e) = result {
            // Only when the event loop is gone, i.e. the adapter is stopping.
            debug!(error = %e, "adapter publisher stopping");
            return;
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct BoardState {
    /// Answering (`None`: not heard from yet). Goes `false` only after `unreachable_after`
    /// failures in a row.
    alive: Option<bool>,
    /// Requests in a row that got no good answer.
    failures: u32,
    /// Its setup request (pulse time) has been sent since it last came back.
    set_up: bool,
    /// When the poller last read it.
    last_poll: Option<Instant>,
    /// An unlock went to it recently: read it every cycle until then (the door it opens is what
    /// the hub waits for).
    busy_until: Option<Instant>,
}

/// How long after an unlock its board counts as busy (read every cycle) even with its doors
/// closed: a door that does not spring open at the pulse is pulled within seconds. Once seen
/// open, the door keeps its board busy until it is seen closed.
const BUSY_AFTER_UNLOCK: Duration = Duration::from_secs(5);

/// Doors a query asked about, per board, until the board's reading is published.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    All,
    Doors(std::collections::BTreeSet<u16>),
}

struct State {
    /// Last observation published per door.
    doors: BTreeMap<u16, DoorObservation>,
    boards: BTreeMap<u8, BoardState>,
    published_online: Option<bool>,
    /// `unreachable_doors` of the last status published.
    published_unreachable: Vec<u16>,
    connected: bool,
    unlocks: RecentUnlocks,
    /// Queries waiting for a board's reading (one read per board serves them all).
    queries: BTreeMap<u8, Wanted>,
}

struct Shared<P: LockBoards> {
    bank: String,
    firmware: String,
    protocol: P,
    link: P::Link,
    map: DoorMap,
    topics: BankTopics,
    outbox: mpsc::UnboundedSender<Outgoing>,
    health: watch::Sender<BankHealth>,
    state: Mutex<State>,
    unreachable_after: u32,
}

impl<P: LockBoards> Shared<P> {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn publish<T: serde::Serialize>(&self, topic: String, retain: bool, value: &T) {
        match serde_json::to_vec(value) {
            Ok(payload) => {
                let _ = self.outbox.send(Outgoing::Publish {
                    topic,
                    retain,
                    payload,
                });
            }
            Err(e) => warn!(error = %e, "cannot serialise a bus message"),
        }
    }

    async fn mqtt_loop(self: Arc<Self>, mut events: EventLoop) {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    info!(bank = %self.bank, "bank adapter connected to the broker");
                    let _ = self.outbox.send(Outgoing::Subscribe(self.topics.command()));
                    let mut state = self.state();
                    state.connected = true;
                    // The broker keeps nothing: say again who we are on every connect.
                    state.published_online = None;
                    self.refresh_status(&mut state);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => self.on_command(&p.topic, &p.payload),
                Ok(_) => {}
                Err(e) => {
                    {
                        let mut state = self.state();
                        state.connected = false;
                        self.refresh_health(&state);
                    }
                    debug!(bank = %self.bank, error = %e, "adapter lost the broker; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    fn on_command(self: &Arc<Self>, topic: &str, payload: &[u8]) {
        let command: Command = match serde_json::from_slice(payload) {
            Ok(c) => c,
            Err(e) => {
                warn!(bank = %self.bank, topic, error = %e, "malformed command ignored");
                return;
            }
        };
        match command {
            Command::Unlock {
                unlock_id,
                door,
                deadline_ms,
                valid_ms,
                ..
            } => {
                // pulse_ms is not applied per unlock: these boards time the pulse themselves,
                // from the setting written at start-up.
                let first = {
                    let mut state = self.state();
                    match state.unlocks.get(&unlock_id) {
                        None => {
                            state.unlocks.insert(unlock_id.clone());
                            true
                        }
                        Some(Some(ack)) => {
                            let ack = ack.clone();
                            drop(state);
                            self.publish(self.topics.ack(), false, &ack);
                            false
                        }
                        // Still being carried out; its acknowledgement is on the way.
                        Some(None) => false,
                    }
                };
                if first {
                    let deadline = unlock_deadline(deadline_ms, valid_ms);
                    tokio::spawn(self.clone().unlock(unlock_id, door, deadline));
                }
            }
            Command::Query { door, doors } => {
                let doors: Vec<u16> = door.into_iter().chain(doors).collect();
                self.query(doors);
            }
        }
    }

    async fn unlock(self: Arc<Self>, unlock_id: String, door: u16, deadline: Option<Instant>) {
        let (result, error) = match self.map.get(door) {
            None => (UnlockResult::Failed, Some(format!("no door {door}"))),
            Some(at) => self.pulse(at, deadline).await,
        };
        let ack = CommandAck::new(unlock_id.clone(), door, result, error);
        if let Some(error) = &ack.error {
            warn!(bank = %self.bank, door, unlock_id, ?result, error, "unlock not confirmed");
        }
        self.state().unlocks.complete(&unlock_id, ack.clone());
        self.publish(self.topics.ack(), false, &ack);
        self.health.send_modify(|h| h.acks += 1);
    }

    /// Pulse one lock before `deadline`: `Pulsed` once the board has confirmed, by its reply to
    /// the unlock or, for firmware that does not reply, by answering a status query right
    /// after. A frame that left without a confirmation is `Unknown`, never `Failed`: the door
    /// may have opened.
    async fn pulse(
        &self,
        at: BoardLock,
        deadline: Option<Instant>,
    ) -> (UnlockResult, Option<String>) {
        let unlock = self.protocol.unlock(at);
        if let Some(b) = self.state().boards.get_mut(&at.board) {
            b.busy_until = Some(Instant::now() + BUSY_AFTER_UNLOCK);
        }
        match self.link.request(unlock, Priority::Urgent, deadline).await {
            Ok(Some(reply)) => {
                self.board_answered(at.board, &reply);
                (UnlockResult::Pulsed, None)
            }
            Ok(None) => match self
                .link
                .request(self.protocol.poll(at.board), Priority::Urgent, None)
                .await
            {
                Ok(Some(reply)) => {
                    self.board_answered(at.board, &reply);
                    (UnlockResult::Pulsed, None)
                }
                Ok(None) => (
                    UnlockResult::Unknown,
                    Some(format!(
                        "unlock sent to board {} but not confirmed",
                        at.board
                    )),
                ),
                Err(e) => {
                    self.board_failed(at.board, &e);
                    (
                        UnlockResult::Unknown,
                        Some(format!("unlock sent but not confirmed: {e}")),
                    )
                }
            },
            Err(e) => {
                let result = if e.never_sent() {
                    UnlockResult::NotSent
                } else if matches!(e, LinkError::Exception { .. }) {
                    // The device answered and refused: it did not pulse.
                    UnlockResult::Failed
                } else {
                    UnlockResult::Unknown
                };
                if !e.never_sent() {
                    self.board_failed(at.board, &e);
                }
                (result, Some(e.to_string()))
            }
        }
    }

    /// Ask about `doors` (every door when empty): one fresh reading per board, however many of
    /// its doors are asked about and however many queries arrive while one is waiting.
    fn query(self: &Arc<Self>, doors: Vec<u16>) {
        let mut wanted: BTreeMap<u8, Wanted> = BTreeMap::new();
        if doors.is_empty() {
            for board in self.map.boards() {
                wanted.insert(board, Wanted::All);
            }
        }
        for d in doors {
            match self.map.get(d) {
                Some(at) => match wanted
                    .entry(at.board)
                    .or_insert_with(|| Wanted::Doors(Default::default()))
                {
                    Wanted::All => {}
                    Wanted::Doors(set) => {
                        set.insert(d);
                    }
                },
                None => {
                    warn!(bank = %self.bank, door = d, "query for a door this bank does not have")
                }
            }
        }
        let mut start = Vec::new();
        {
            let mut state = self.state();
            for (board, w) in wanted {
                match state.queries.get_mut(&board) {
                    // A reading of this board is already on its way: it answers this too.
                    Some(queued) => match (queued, w) {
                        (Wanted::All, _) => {}
                        (q, Wanted::All) => *q = Wanted::All,
                        (Wanted::Doors(a), Wanted::Doors(b)) => a.extend(b),
                    },
                    None => {
                        state.queries.insert(board, w);
                        start.push(board);
                    }
                }
            }
        }
        for board in start {
            tokio::spawn(self.clone().query_board(board));
        }
    }

    async fn query_board(self: Arc<Self>, board: u8) {
        // A board known silent is not asked: each try waits out the response timeout and would
        // hold up unlocks on its neighbours (the status already names its doors unreachable).
        // The poller's probes notice when it answers again. Routine, not urgent: a query never
        // goes ahead of an unlock.
        let silent = self.state().boards.get(&board).and_then(|b| b.alive) == Some(false);
        let reply = if silent {
            None
        } else {
            match self
                .link
                .request(self.protocol.poll(board), Priority::Routine, None)
                .await
            {
                Ok(Some(reply)) => Some(reply),
                Ok(None) => None,
                Err(e) => {
                    self.board_failed(board, &e);
                    None
                }
            }
        };
        if let Some(reply) = &reply {
            self.board_answered(board, reply);
        }
        let mut state = self.state();
        let wanted = state.queries.remove(&board);
        if reply.is_none() {
            return;
        }
        // A query is answered even when nothing changed.
        for (_lock, d) in self.map.locks_of(board) {
            let asked = match &wanted {
                Some(Wanted::All) => true,
                Some(Wanted::Doors(set)) => set.contains(&d),
                None => false,
            };
            if asked {
                if let Some(obs) = state.doors.get(&d) {
                    self.publish(self.topics.door(d), false, obs);
                }
            }
        }
    }

    async fn poller(self: Arc<Self>, interval: Duration, idle_interval: Duration) {
        let boards = self.map.boards();
        let mut cycles = 0u64;
        loop {
            let start = Instant::now();
            for &board in &boards {
                if !self.due(board, idle_interval, Instant::now()) {
                    continue;
                }
                if let Some(b) = self.state().boards.get_mut(&board) {
                    b.last_poll = Some(Instant::now());
                }
                match self
                    .link
                    .request(self.protocol.poll(board), Priority::Routine, None)
                    .await
                {
                    Ok(Some(reply)) => {
                        self.board_answered(board, &reply);
                        self.set_up(board).await;
                    }
                    // No port, no board: count it for all of them at once, or the bank would
                    // briefly report "online, these doors unreachable" on its way to offline.
                    Err(e) if e.bus_down() => self.boards_failed(&boards),
                    Ok(None) => self.boards_failed(&[board]),
                    Err(e) => self.board_failed(board, &e),
                }
            }
            cycles += 1;
            let took = start.elapsed();
            self.health.send_modify(|h| {
                h.cycles = cycles;
                h.last_cycle = Some(took);
            });
            tokio::time::sleep_until(start + interval).await;
        }
    }

    /// Whether the poller reads `board` this cycle: always, unless it is idle (see
    /// `BankSettings::idle_poll_interval`) and was read less than `idle_interval` ago.
    fn due(&self, board: u8, idle_interval: Duration, now: Instant) -> bool {
        let state = self.state();
        let Some(b) = state.boards.get(&board) else {
            return true;
        };
        let recent = b
            .last_poll
            .is_some_and(|at| now.saturating_duration_since(at) < idle_interval);
        if !recent {
            return true;
        }
        let busy = b.busy_until.is_some_and(|until| now < until);
        let answering = b.alive == Some(true) && b.set_up && b.failures == 0;
        let asked = state.queries.contains_key(&board);
        // A door not read yet counts as open: read it.
        let open = self
            .map
            .locks_of(board)
            .any(|(_, door)| state.doors.get(&door).is_none_or(|d| d.open));
        busy || !answering || asked || open
    }

    /// Send a board its setup request if it has not had it since it (re)appeared.
    async fn set_up(&self, board: u8) {
        let done = self.state().boards.get(&board).is_none_or(|b| b.set_up);
        if done {
            return;
        }
        let Some(request) = self.protocol.setup(board) else {
            self.mark_set_up(board);
            return;
        };
        match self.link.request(request, Priority::Routine, None).await {
            Ok(_) => {
                info!(bank = %self.bank, board, "board set up");
                self.mark_set_up(board);
            }
            Err(e) => {
                debug!(bank = %self.bank, board, error = %e, "board setup failed; will retry")
            }
        }
    }

    fn mark_set_up(&self, board: u8) {
        if let Some(b) = self.state().boards.get_mut(&board) {
            b.set_up = true;
        }
    }

    async fn listen_unsolicited(self: Arc<Self>) {
        let mut rx = self.link.unsolicited();
        loop {
            match rx.recv().await {
                Ok(reply) => {
                    if let Some(reading) = self.protocol.reading(&reply) {
                        if self.map.boards().contains(&reading.board) {
                            self.board_answered(reading.board, &reply);
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    warn!(bank = %self.bank, missed = n, "unsolicited frames missed; polling catches up");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// A board answered: record it alive and publish the doors its reply changed (after the
    /// bank's status, so the hub hears "online" before it hears about doors).
    fn board_answered(&self, board: u8, reply: &ReplyOf<P>) {
        let mut state = self.state();
        if let Some(b) = state.boards.get_mut(&board) {
            b.alive = Some(true);
            b.failures = 0;
        }
        self.refresh_status(&mut state);
        if let Some(reading) = self.protocol.reading(reply) {
            for (lock, lock_state) in reading.locks {
                let Some(door) = self.map.door_at(BoardLock {
                    board: reading.board,
                    lock,
                }) else {
                    continue;
                };
                let obs = DoorObservation {
                    open: lock_state.open,
                    occupied: lock_state.occupied,
                };
                if state.doors.get(&door) != Some(&obs) {
                    self.publish(self.topics.door(door), false, &obs);
                    state.doors.insert(door, obs);
                }
            }
        }
    }

    /// A request to `board` failed with `e`: a failure of the board, unless the request
    /// never reached the wire for reasons of its own (an expired unlock, an offline gate).
    fn board_failed(&self, board: u8, e: &LinkError) {
        match e {
            LinkError::Expired { .. } | LinkError::Stopped { .. } => {}
            e if e.bus_down() => self.boards_failed(&self.map.boards()),
            _ => self.boards_failed(&[board]),
        }
    }

    /// Count a failed request for each of `boards`; a board is silent after
    /// `unreachable_after` in a row (or at once when it was silent already and a probe fails).
    fn boards_failed(&self, boards: &[u8]) {
        let mut state = self.state();
        for board in boards {
            if let Some(b) = state.boards.get_mut(board) {
                b.failures = b.failures.saturating_add(1);
                if b.failures >= self.unreachable_after || b.alive == Some(false) {
                    if b.alive != Some(false) {
                        // The board may have been power-cycled by the time it answers again.
                        b.set_up = false;
                    }
                    b.alive = Some(false);
                }
            }
        }
        self.refresh_status(&mut state);
    }

    /// Publish the bank's status if it changed (or was never said on this connection).
    fn refresh_status(&self, state: &mut State) {
        let alive: Vec<Option<bool>> = state.boards.values().map(|b| b.alive).collect();
        let online = if alive.contains(&Some(true)) {
            Some(true)
        } else if alive.iter().all(|a| *a == Some(false)) {
            Some(false)
        } else {
            None
        };
        if let Some(online) = online {
            // Doors of silent boards while others answer: the hub stops using them. When the
            // whole bank is offline, "offline" already says it all.
            let unreachable: Vec<u16> = if online {
                self.map
                    .doors()
                    .filter(|(_, at)| {
                        state.boards.get(&at.board).and_then(|b| b.alive) == Some(false)
                    })
                    .map(|(door, _)| door)
                    .collect()
            } else {
                Vec::new()
            };
            if state.connected
                && (state.published_online != Some(online)
                    || state.published_unreachable != unreachable)
            {
                if state.published_online.is_some() || !online {
                    info!(bank = %self.bank, online, ?unreachable, "bank status");
                }
                let status = BankStatus {
                    online,
                    doors: Some(self.map.len() as u16),
                    firmware: Some(self.firmware.clone()),
                    unreachable_doors: unreachable.clone(),
                };
                self.publish(self.topics.status(), true, &status);
                state.published_online = Some(online);
                state.published_unreachable = unreachable;
            }
        }
        self.refresh_health(state);
    }

    fn refresh_health(&self, state: &State) {
        let alive: Vec<Option<bool>> = state.boards.values().map(|b| b.alive).collect();
        let online = if alive.contains(&Some(true)) {
            Some(true)
        } else if alive.iter().all(|a| *a == Some(false)) {
            Some(false)
        } else {
            None
        };
        let boards = state
            .boards
            .iter()
            .filter_map(|(b, s)| s.alive.map(|a| (*b, a)))
            .collect();
        let connected = state.connected;
        self.health.send_if_modified(|h| {
            let changed = (h.mqtt_connected, h.online, &h.boards) != (connected, online, &boards);
            h.mqtt_connected = connected;
            h.online = online;
            h.boards = boards;
            changed
        });
    }
}

/// Unlock ids seen recently, with their acknowledgement once known. Bounded: a redelivery
/// comes within seconds, not after thousands of other unlocks.
#[derive(Default)]
struct RecentUnlocks {
    acks: HashMap<String, Option<CommandAck>>,
    order: VecDeque<String>,
}

const REMEMBERED_UNLOCKS: usize = 4096;

impl RecentUnlocks {
    fn get(&self, id: &str) -> Option<&Option<CommandAck>> {
        self.acks.get(id)
    }

    fn insert(&mut self, id: String) {
        if self.order.len() >= REMEMBERED_UNLOCKS {
            if let Some(old) = self.order.pop_front() {
                self.acks.remove(&old);
            }
        }
        self.order.push_back(id.clone());
        self.acks.insert(id, None);
    }

    fn complete(&mut self, id: &str, ack: CommandAck) {
        if let Some(slot) = self.acks.get_mut(id) {
            *slot = Some(ack);
        }
    }
}

/// When an unlock must no longer go on the wire: the earlier of its deadline (Unix ms, our
/// clock) and its validity counted from now. `None` for unlocks that carry neither.
fn unlock_deadline(deadline_ms: Option<u64>, valid_ms: Option<u32>) -> Option<Instant> {
    let now = Instant::now();
    let by_clock = deadline_ms.map(|d| {
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_millis() as u64);
        now + Duration::from_millis(d.saturating_sub(unix_now))
    });
    let by_validity = valid_ms.map(|v| now + Duration::from_millis(u64::from(v)));
    match (by_clock, by_validity) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

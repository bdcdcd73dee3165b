//! A simulated bank controller.
//!
//! It connects to the hub's broker over TCP as an ordinary MQTT client, exactly as a real `mqtt`
//! bank would, and speaks only the [`bus`](crate::bus) schema: it announces itself on the status
//! topic (with a last will that says offline), pulses "locks" on unlock commands, reports doors
//! opening and closing, and answers queries. Demo mode runs one per simulated bank; tests drive it
//! through [`SimHandle`].

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::bus::{
    BankStatus, BankTopics, Command, CommandAck, DoorObservation, UnitReading, UnlockResult,
};

/// How to reach the broker and how the simulated bank behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub bank: String,
    pub doors: u16,
    pub host: String,
    pub port: u16,
    /// Username and password, when the broker does not allow anonymous clients.
    pub credentials: Option<(String, String)>,
    /// Delay between an unlock command and the door opening.
    pub latency: Duration,
    /// Doors whose lock pulses but that never open (a jammed door).
    pub stuck_doors: Vec<u16>,
    /// A simulated person closes an unlocked door after this long (`None`: doors stay open until
    /// [`SimHandle::close`]).
    pub auto_close_after: Option<Duration>,
    /// Temperature sensors of the bank's refrigerated units, reported every `interval`.
    pub sensors: Vec<SimSensor>,
}

/// A simulated temperature sensor: readings drift gently (±0.2 °C) around a target.
#[derive(Debug, Clone)]
pub struct SimSensor {
    pub unit: String,
    pub sensor: String,
    /// The temperature it reads, give or take the noise, °C.
    pub start_c: f64,
    pub interval: Duration,
}

/// Commands a test (or the demo) gives the simulated bank's "people".
#[derive(Debug)]
enum Action {
    Open(u16),
    Close(u16),
    /// Report sensor `n` now.
    Read(usize),
    /// Make sensor (unit, sensor) read around this temperature from now on.
    SetTemperature(String, String, f64),
}

/// Remote control for a running simulated bank.
#[derive(Debug, Clone)]
pub struct SimHandle {
    actions: mpsc::UnboundedSender<Action>,
    connected: watch::Receiver<bool>,
}

impl SimHandle {
    /// Open a door by hand, with no unlock (what a thief with a crowbar does).
    pub fn force_open(&self, door: u16) {
        let _ = self.actions.send(Action::Open(door));
    }

    /// Close a door.
    pub fn close(&self, door: u16) {
        let _ = self.actions.send(Action::Close(door));
    }

    /// Make a simulated sensor read around `celsius` from its next reading on (a compressor
    /// failure, say).
    pub fn set_temperature(&self, unit: &str, sensor: &str, celsius: f64) {
        let _ = self.actions.send(Action::SetTemperature(
            unit.to_owned(),
            sensor.to_owned(),
            celsius,
        ));
    }

    /// Wait until the controller has a session with the broker.
    pub async fn wait_connected(&self) {
        let mut rx = self.connected.clone();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// Start a simulated bank on the current tokio runtime. It reconnects by itself when the broker
/// goes away, like a real controller.
pub fn spawn(opts: SimOptions) -> SimHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (connected_tx, connected_rx) = watch::channel(false);
    tokio::spawn(run(opts, rx, connected_tx));
    SimHandle {
        actions: tx,
        connected: connected_rx,
    }
}

struct Bank {
    topics: BankTopics,
    client: AsyncClient,
    doors: u16,
    open: BTreeMap<u16, bool>,
    /// Unlock ids already carried out, so a QoS 1 redelivery never pulses a lock twice.
    done: HashSet<String>,
    latency: Duration,
    stuck_doors: HashSet<u16>,
    auto_close_after: Option<Duration>,
    actions: mpsc::UnboundedSender<Action>,
    /// Each sensor with the temperature it reads around.
    sensors: Vec<(SimSensor, f64)>,
    /// xorshift state for the noise (no need for a real RNG here).
    noise: u64,
}

async fn run(
    opts: SimOptions,
    mut actions: mpsc::UnboundedReceiver<Action>,
    connected: watch::Sender<bool>,
) {
    let topics = BankTopics::new(&opts.bank);
    let mut mqtt = MqttOptions::new(format!("sim-{}", opts.bank), &opts.host, opts.port);
    mqtt.set_keep_alive(Duration::from_secs(5));
    let offline = serde_json::to_vec(&BankStatus {
        online: false,
        doors: Some(opts.doors),
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
    if let Some((user, pass)) = &opts.credentials {
        mqtt.set_credentials(user, pass);
    }
    let (client, mut events): (AsyncClient, EventLoop) = AsyncClient::new(mqtt, 64);
    let (self_tx, mut self_rx) = mpsc::unbounded_channel();
    let mut bank = Bank {
        topics,
        client,
        doors: opts.doors,
        open: (1..=opts.doors).map(|d| (d, false)).collect(),
        done: HashSet::new(),
        latency: opts.latency,
        stuck_doors: opts.stuck_doors.iter().copied().collect(),
        auto_close_after: opts.auto_close_after,
        actions: self_tx.clone(),
        sensors: opts
            .sensors
            .iter()
            .map(|s| (s.clone(), s.start_c))
            .collect(),
        noise: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9)
            | 1,
    };
    // Each sensor reports on its own timer, through the action queue.
    for (n, s) in opts.sensors.iter().enumerate() {
        let tx = self_tx.clone();
        let every = s.interval.max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if tx.send(Action::Read(n)).is_err() {
                    return;
                }
            }
        });
    }
    // The event loop runs on its own: `EventLoop::poll` is not cancel-safe while it connects,
    // so it must never be one branch of a `select!` that other work can win (that left the
    // demo's second bank "offline" at every start until its next reconnect).
    let (mqtt_tx, mut mqtt_rx) = mpsc::unbounded_channel();
    let name = opts.bank.clone();
    let event_loop = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if mqtt_tx.send(Mqtt::Connected).is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if mqtt_tx.send(Mqtt::Command(p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if mqtt_tx.send(Mqtt::Lost).is_err() {
                        return;
                    }
                    debug!(bank = %name, error = %e, "simulated controller lost the broker; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    loop {
        tokio::select! {
            event = mqtt_rx.recv() => match event {
                Some(Mqtt::Connected) => {
                    info!(bank = %opts.bank, "simulated controller connected");
                    bank.on_connect().await;
                    let _ = connected.send(true);
                }
                Some(Mqtt::Command(payload)) => bank.on_command(&payload).await,
                Some(Mqtt::Lost) => {
                    let _ = connected.send(false);
                }
                None => break,
            },
            Some(action) = actions.recv() => bank.act(action).await,
            Some(action) = self_rx.recv() => bank.act(action).await,
        }
    }
    event_loop.abort();
}

/// What the MQTT event loop hears.
enum Mqtt {
    Connected,
    Command(Vec<u8>),
    Lost,
}

impl Bank {
    async fn on_connect(&mut self) {
        let status = BankStatus {
            online: true,
            doors: Some(self.doors),
            firmware: Some("locker-hub simulator".into()),
            unreachable_doors: Vec::new(),
        };
        self.publish_json(self.topics.status(), true, &status).await;
        if let Err(e) = self
            .client
            .subscribe(self.topics.command(), QoS::AtLeastOnce)
            .await
        {
            warn!(error = %e, "simulated controller could not subscribe");
        }
    }

    async fn on_command(&mut self, payload: &[u8]) {
        let command: Command = match serde_json::from_slice(payload) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "simulated controller got a malformed command");
                return;
            }
        };
        match command {
            Command::Unlock {
                unlock_id,
                door,
                deadline_ms,
                ..
            } => {
                let known = self.open.contains_key(&door);
                let first_time = self.done.insert(unlock_id.clone());
                let unix_now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |t| t.as_millis() as u64);
                let late = deadline_ms.is_some_and(|d| unix_now >= d);
                let ack = if !known {
                    CommandAck::new(
                        unlock_id,
                        door,
                        UnlockResult::Failed,
                        Some(format!("no door {door}")),
                    )
                } else if late {
                    CommandAck::new(
                        unlock_id,
                        door,
                        UnlockResult::NotSent,
                        Some("deadline passed before the lock could be pulsed".into()),
                    )
                } else {
                    CommandAck::new(unlock_id, door, UnlockResult::Pulsed, None)
                };
                let pulse = ack.ok;
                self.publish_json(self.topics.ack(), false, &ack).await;
                if pulse && first_time && !self.stuck_doors.contains(&door) {
                    // The door swings open a moment after the pulse, and the simulated person
                    // closes it again later; both go through the action queue so the event loop
                    // keeps running meanwhile.
                    let tx = self.actions.clone();
                    let (latency, close_after) = (self.latency, self.auto_close_after);
                    tokio::spawn(async move {
                        tokio::time::sleep(latency).await;
                        let _ = tx.send(Action::Open(door));
                        if let Some(after) = close_after {
                            tokio::time::sleep(after).await;
                            let _ = tx.send(Action::Close(door));
                        }
                    });
                }
            }
            Command::Query { door, doors } => {
                let asked: Vec<u16> = door.into_iter().chain(doors).collect();
                let doors: Vec<(u16, bool)> = if asked.is_empty() {
                    self.open.iter().map(|(d, o)| (*d, *o)).collect()
                } else {
                    asked
                        .iter()
                        .filter_map(|d| self.open.get(d).map(|o| (*d, *o)))
                        .collect()
                };
                for (d, open) in doors {
                    self.report(d, open).await;
                }
            }
        }
    }

    async fn act(&mut self, action: Action) {
        match action {
            Action::Open(d) => self.set_door(d, true).await,
            Action::Close(d) => self.set_door(d, false).await,
            Action::Read(n) => self.read_sensor(n).await,
            Action::SetTemperature(unit, sensor, c) => {
                for (s, target) in &mut self.sensors {
                    if s.unit == unit && s.sensor == sensor {
                        *target = c;
                    }
                }
            }
        }
    }

    async fn set_door(&mut self, door: u16, open: bool) {
        match self.open.get_mut(&door) {
            Some(state) if *state != open => {
                *state = open;
                self.report(door, open).await;
            }
            _ => {}
        }
    }

    async fn read_sensor(&mut self, n: usize) {
        self.noise ^= self.noise << 13;
        self.noise ^= self.noise >> 7;
        self.noise ^= self.noise << 17;
        // -0.2..=0.2 °C in steps of 0.1, like a real probe's resolution.
        let jitter = f64::from((self.noise % 5) as u8) / 10.0 - 0.2;
        let Some((s, target)) = self.sensors.get(n) else {
            return;
        };
        let reading = UnitReading {
            temperature_c: ((target + jitter) * 10.0).round() / 10.0,
            humidity_pct: None,
            door_open: None,
            setpoint_c: None,
            device_alarms: Vec::new(),
        };
        let topic = self.topics.unit_reading(&s.unit, &s.sensor);
        self.publish_json(topic, false, &reading).await;
    }

    async fn report(&self, door: u16, open: bool) {
        let obs = DoorObservation {
            open,
            occupied: None,
        };
        self.publish_json(self.topics.door(door), false, &obs).await;
    }

    async fn publish_json<T: serde::Serialize>(&self, topic: String, retain: bool, value: &T) {
        let Ok(payload) = serde_json::to_vec(value) else {
            return;
        };
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
        {
            warn!(error = %e, "simulated controller could not publish");
        }
    }
}

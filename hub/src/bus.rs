//! The hub's own MQTT client.
//!
//! It connects to the broker's internal listener over loopback with rumqttc rather than through an
//! in-process rumqttd link, because in-process links are QoS 0 only and commands to controllers
//! must be QoS 1. It speaks MQTT 5, so that a kiosk's response-topic and correlation-data
//! properties reach it (rumqttd keeps publish properties; MQTT 3.1.1 clients simply send none).
//! Incoming messages are decoded ([`inbound`](crate::inbound)) and queued for the engine; the
//! engine's outgoing messages are published here.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use locker_core::{Caller, Observation};
use locker_drivers::bus;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, warn};

use crate::inbound::{self, Inbound};
use crate::shutdown::Shutdown;
use crate::status::HubStatus;
use locker_app::engine::{Job, Outgoing, ReplyTo};

/// Everything the hub listens to.
const SUBSCRIPTIONS: [&str; 6] = [
    PROBES,
    bus::filters::STATUS,
    bus::filters::DOORS,
    bus::filters::ACKS,
    bus::filters::KIOSK,
    bus::filters::UNIT_READINGS,
];

/// The front door's end-to-end probes (`broker::probe`): the hub's client proves it hears them.
const PROBES: &str = "lockerhub/v1/hub/probe/#";

/// The refrigerated units' sensors the configuration names, as (bank, unit, sensor).
pub type KnownSensors = BTreeSet<(String, String, String)>;

pub fn known_sensors(config: &locker_config::Config) -> KnownSensors {
    config
        .banks
        .iter()
        .flat_map(|b| {
            b.units.iter().flat_map(move |u| {
                u.sensors
                    .iter()
                    .map(move |s| (b.id.clone(), u.id.clone(), s.id.clone()))
            })
        })
        .collect()
}

/// Sensors report every few seconds and a broken client can repeat a bad message in a loop:
/// neither may flood the journal. One warning per topic per interval, with the count of those
/// held back; past `MAX_KEYS` topics (someone publishing to random ones) they share one
/// allowance.
struct WarnLimit {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl WarnLimit {
    const EVERY: Duration = Duration::from_secs(60);
    const MAX_KEYS: usize = 256;

    /// `Some(held back since the last warning)` when a warning for `key` may be logged now.
    fn allow(&self, key: &str) -> Option<u64> {
        let mut seen = self.seen.lock().ok()?;
        let key = if seen.len() >= Self::MAX_KEYS && !seen.contains_key(key) {
            "*"
        } else {
            key
        };
        let now = Instant::now();
        match seen.get_mut(key) {
            Some((last, held)) if now.duration_since(*last) < Self::EVERY => {
                *held += 1;
                None
            }
            Some((last, held)) => {
                *last = now;
                Some(std::mem::take(held))
            }
            None => {
                seen.insert(key.to_owned(), (now, 0));
                Some(0)
            }
        }
    }
}

/// Connect the hub's client and run it until shutdown.
pub fn spawn(
    broker: SocketAddr,
    credentials: (&str, &str),
    status: Arc<HubStatus>,
    jobs: Sender<Job>,
    mut outgoing: UnboundedReceiver<Outgoing>,
    mut shutdown: Shutdown,
    sensors: KnownSensors,
) {
    let limit = WarnLimit {
        seen: Mutex::new(HashMap::new()),
    };
    let mut opts = MqttOptions::new("locker-hub", broker.ip().to_string(), broker.port());
    opts.set_credentials(credentials.0, credentials.1);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(Some(1024 * 1024));
    // Commands are small writes that must leave at once, not wait for the broker's delayed ACK.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    opts.set_network_options(network);
    // Outgoing messages queue in rumqttc while the broker is briefly away; a queue this size
    // holds minutes of a busy site's traffic.
    let (client, mut events) = AsyncClient::new(opts, 1024);
    let publisher = client.clone();
    tokio::spawn(async move {
        while let Some(msg) = outgoing.recv().await {
            let props = PublishProperties {
                correlation_data: msg.correlation.map(Into::into),
                ..Default::default()
            };
            if let Err(e) = publisher
                .publish_with_properties(
                    msg.topic,
                    QoS::AtLeastOnce,
                    msg.retain,
                    msg.payload,
                    props,
                )
                .await
            {
                warn!(error = %e, "cannot queue an outgoing message");
            }
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        // Clean session: subscriptions are made again on every connect.
                        for filter in SUBSCRIPTIONS {
                            if let Err(e) = client.subscribe(filter, QoS::AtLeastOnce).await {
                                warn!(error = %e, filter, "hub client could not subscribe");
                            }
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => on_publish(&status, &jobs, &client, &p, &sensors, &limit).await,
                    Ok(_) => {}
                    Err(e) => {
                        debug!(error = %e, "hub client lost the broker; reconnecting");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
                _ = shutdown.wait() => return,
            }
        }
    });
}

async fn on_publish(
    status: &HubStatus,
    jobs: &Sender<Job>,
    client: &AsyncClient,
    p: &Publish,
    sensors: &KnownSensors,
    limit: &WarnLimit,
) {
    let topic = String::from_utf8_lossy(&p.topic);
    if topic.starts_with(locker_gate::acl::PROBE_PREFIX) {
        status.probes.seen(&p.payload);
        return;
    }
    let props = p.properties.as_ref();
    let response_topic = props.and_then(|p| p.response_topic.clone());
    let correlation = props.and_then(|p| p.correlation_data.clone());
    let mut decoded = inbound::decode(&topic, &p.payload, response_topic, |b| {
        status.is_configured(b)
    });
    if let Inbound::Observe(Observation::UnitReading {
        bank, unit, sensor, ..
    }) = &decoded
    {
        if !sensors.contains(&(bank.clone(), unit.clone(), sensor.clone())) {
            decoded = Inbound::Refuse {
                reason: format!(
                    "reading for unit {unit:?} sensor {sensor:?} of bank {bank}, which the \
                     configuration does not name; add it under [[bank.unit]] to watch it"
                ),
                reply_to: None,
            };
        }
    }
    // Readings repeat every poll interval: their warnings are rate-limited.
    if let (Inbound::Refuse { reason, .. }, Some(bus::Parsed::UnitReading { .. })) =
        (&decoded, bus::parse(&topic))
    {
        if let Some(held) = limit.allow(&topic) {
            warn!(%topic, held_back = held, "{reason}");
        }
        return;
    }
    let job = match decoded {
        Inbound::Ignore => return,
        Inbound::Presence {
            bank,
            online,
            unreachable,
        } => {
            status.set_bank_online(&bank, online);
            let observation = if online {
                // Says "online" too; the core records only what changed.
                Observation::DoorsUnreachable {
                    bank,
                    doors: unreachable,
                }
            } else {
                Observation::ControllerOffline { bank }
            };
            Job::Observe(observation)
        }
        Inbound::Observe(observation) => Job::Observe(observation),
        Inbound::Request {
            command,
            bank,
            reply_to,
        } => Job::Command {
            command,
            caller: Caller::BankKiosk { bank },
            reply: reply_to.map_or(ReplyTo::Nobody, |topic| ReplyTo::Mqtt {
                topic,
                correlation: correlation.map(|c| c.to_vec()),
            }),
        },
        Inbound::Refuse { reason, reply_to } => {
            // A misbehaving client may repeat itself many times a second; the kiosk still gets
            // every refusal, the journal one line per topic per minute.
            if let Some(held) = limit.allow(&topic) {
                warn!(%topic, held_back = held, "{reason}");
            }
            if let Some((reply_topic, reply)) = reply_to {
                if let Ok(payload) = serde_json::to_vec(&locker_app::wire::kiosk_reply(&reply)) {
                    let props = PublishProperties {
                        correlation_data: correlation,
                        ..Default::default()
                    };
                    let _ = client
                        .publish_with_properties(
                            reply_topic,
                            QoS::AtLeastOnce,
                            false,
                            payload,
                            props,
                        )
                        .await;
                }
            }
            return;
        }
    };
    if jobs.send(job).is_err() {
        warn!("the engine has stopped; message dropped");
    }
}

//! The hub's own MQTT client.
//!
//! It connects to the broker's internal listener over loopback with rumqttc rather than through an
//! in-process rumqttd link, because in-process links are QoS 0 only and commands to controllers
//! must be QoS 1. It speaks MQTT 5, so that a kiosk's response-topic and correlation-data
//! properties reach it (rumqttd keeps publish properties; MQTT 3.1.1 clients simply send none).
//! Incoming messages are decoded ([`inbound`](crate::inbound)) and queued for the engine; the
//! engine's outgoing messages are published here.

use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use locker_core::{Input, Observation};
use locker_drivers::bus;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, warn};

use crate::engine::{Job, Outgoing, ReplyTo};
use crate::inbound::{self, Inbound};
use crate::shutdown::Shutdown;
use crate::status::HubStatus;

/// Everything the hub listens to.
const SUBSCRIPTIONS: [&str; 4] = [
    bus::filters::STATUS,
    bus::filters::DOORS,
    bus::filters::ACKS,
    bus::filters::KIOSK,
];

/// Connect the hub's client and run it until shutdown.
pub fn spawn(
    broker: SocketAddr,
    credentials: (&str, &str),
    status: Arc<HubStatus>,
    jobs: Sender<Job>,
    mut outgoing: UnboundedReceiver<Outgoing>,
    mut shutdown: Shutdown,
) {
    let mut opts = MqttOptions::new("locker-hub", broker.ip().to_string(), broker.port());
    opts.set_credentials(credentials.0, credentials.1);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(Some(1024 * 1024));
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
                    Ok(Event::Incoming(Packet::Publish(p))) => on_publish(&status, &jobs, &client, &p).await,
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

async fn on_publish(status: &HubStatus, jobs: &Sender<Job>, client: &AsyncClient, p: &Publish) {
    let topic = String::from_utf8_lossy(&p.topic);
    let props = p.properties.as_ref();
    let response_topic = props.and_then(|p| p.response_topic.clone());
    let correlation = props.and_then(|p| p.correlation_data.clone());
    let decoded = inbound::decode(&topic, &p.payload, response_topic, |b| {
        status.is_configured(b)
    });
    let job = match decoded {
        Inbound::Ignore => return,
        Inbound::Presence { bank, online } => {
            status.set_bank_online(&bank, online);
            let observation = if online {
                Observation::ControllerOnline { bank }
            } else {
                Observation::ControllerOffline { bank }
            };
            Job::Input {
                input: Input::Observation(observation),
                reply: ReplyTo::Nobody,
            }
        }
        Inbound::Input { input, reply_to } => Job::Input {
            input,
            reply: reply_to.map_or(ReplyTo::Nobody, |topic| ReplyTo::Mqtt {
                topic,
                correlation: correlation.map(|c| c.to_vec()),
            }),
        },
        Inbound::Refuse { reason, reply_to } => {
            warn!(%topic, "{reason}");
            if let Some((reply_topic, reply)) = reply_to {
                if let Ok(payload) = serde_json::to_vec(&reply) {
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

//! The hub's own MQTT client.
//!
//! It connects to the broker's internal listener over loopback with rumqttc rather than through an
//! in-process rumqttd link, because in-process links are QoS 0 only and commands to controllers
//! must be QoS 1. It listens to every bank's status and keeps [`HubStatus`] current.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::Shutdown;
use locker_drivers::bus::{self, BankStatus, Parsed};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use tracing::{debug, warn};

use crate::status::HubStatus;

/// Connect the hub's client and run it until shutdown.
pub fn spawn(
    broker: SocketAddr,
    credentials: (&str, &str),
    status: Arc<HubStatus>,
    mut shutdown: Shutdown,
) -> AsyncClient {
    let mut opts = MqttOptions::new("locker-hub", broker.ip().to_string(), broker.port());
    opts.set_credentials(credentials.0, credentials.1);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (client, mut events) = AsyncClient::new(opts, 256);
    let subscriber = client.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        // Clean session: subscriptions are made again on every connect.
                        if let Err(e) = subscriber.subscribe(bus::filters::STATUS, QoS::AtLeastOnce).await {
                            warn!(error = %e, "hub client could not subscribe");
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => on_publish(&status, &p),
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
    client
}

fn on_publish(status: &HubStatus, p: &Publish) {
    match bus::parse(&p.topic) {
        Some(Parsed::Status { bank }) => match serde_json::from_slice::<BankStatus>(&p.payload) {
            Ok(s) => {
                if !status.set_bank_online(bank, s.online) {
                    warn!(bank, "status from a bank that is not configured; ignored");
                }
            }
            Err(e) => warn!(topic = %p.topic, error = %e, "malformed bank status; ignored"),
        },
        _ => debug!(topic = %p.topic, "unhandled topic"),
    }
}

//! A kiosk written with rumqttc that speaks the documented MQTT API: send a request to a bank's
//! kiosk topic and wait for the reply on its own reply topic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use serde_json::Value;
use tokio::sync::{oneshot, watch};

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// A connected kiosk. It reconnects by itself when the hub restarts.
pub struct Kiosk {
    bank: String,
    reply_to: String,
    client: AsyncClient,
    waiting: Waiting,
    subscribed: watch::Receiver<u64>,
    /// Kiosk updates heard on `…/kiosk/update` (`{"reservation", "update"}`), oldest first.
    updates: Arc<Mutex<Vec<Value>>>,
}

impl Kiosk {
    /// Connect as kiosk `id` of `bank` with the login [`crate::kiosks`] declares for it.
    pub async fn connect_configured(addr: SocketAddr, bank: &str, id: &str) -> Kiosk {
        let (user, password) = crate::kiosk_login(id);
        Kiosk::connect(addr, bank, id, Some((&user, password))).await
    }

    /// Connect as `id`, with a login or anonymously; replies come back on
    /// `…/kiosk/reply/{id}`.
    pub async fn connect(
        addr: SocketAddr,
        bank: &str,
        id: &str,
        login: Option<(&str, &str)>,
    ) -> Kiosk {
        let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        if let Some((user, password)) = login {
            opts.set_credentials(user, password);
        }
        opts.set_keep_alive(Duration::from_secs(5));
        let (client, mut events) = AsyncClient::new(opts, 64);
        // A kiosk's requests are small writes a person is waiting for: no Nagle delay.
        let mut network = events.network_options();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        let reply_to = format!("lockerhub/v1/bank/{bank}/kiosk/reply/{id}");
        let waiting: Waiting = Arc::default();
        let (sub_tx, sub_rx) = watch::channel(0u64);
        let updates: Arc<Mutex<Vec<Value>>> = Arc::default();
        let update_topic = format!("lockerhub/v1/bank/{bank}/kiosk/update");
        let (c, w, topic) = (client.clone(), waiting.clone(), reply_to.clone());
        let (u, ut) = (updates.clone(), update_topic.clone());
        tokio::spawn(async move {
            let mut generation = 0;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        // One SUBSCRIBE, so one SUBACK says both are in place.
                        let _ = c
                            .subscribe_many([
                                SubscribeFilter::new(ut.clone(), QoS::AtLeastOnce),
                                SubscribeFilter::new(topic.clone(), QoS::AtLeastOnce),
                            ])
                            .await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        generation += 1;
                        let _ = sub_tx.send(generation);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == ut => {
                        if let Ok(v) = serde_json::from_slice::<Value>(&p.payload) {
                            u.lock().unwrap().push(v);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Ok(v) = serde_json::from_slice::<Value>(&p.payload) {
                            let id = v["request_id"].as_str().unwrap_or_default().to_owned();
                            if let Some(tx) = w.lock().unwrap().remove(&id) {
                                let _ = tx.send(v);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        let kiosk = Kiosk {
            bank: bank.to_owned(),
            reply_to,
            client,
            waiting,
            subscribed: sub_rx,
            updates,
        };
        kiosk.ready().await;
        kiosk
    }

    /// Wait until the reply subscription is in place.
    pub async fn ready(&self) {
        self.resubscribed_since(0).await;
    }

    /// How many times the reply subscription has been made (once per connection).
    pub fn subscriptions(&self) -> u64 {
        *self.subscribed.borrow()
    }

    /// After the hub restarted: wait until the kiosk has reconnected and subscribed again, i.e.
    /// made more than `before` subscriptions. (Without this, a request sent in the gap gets its
    /// reply before the subscription exists, and the reply is lost.)
    pub async fn resubscribed_since(&self, before: u64) {
        let mut rx = self.subscribed.clone();
        let _ = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|g| *g > before)).await;
    }

    /// Wait up to `timeout` for a kiosk update whose `update` satisfies `pred`.
    pub async fn update(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        let stop = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(v) = self
                .updates
                .lock()
                .unwrap()
                .iter()
                .find(|v| pred(&v["update"]))
            {
                return Some(v.clone());
            }
            if tokio::time::Instant::now() >= stop {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every kiosk update heard so far.
    pub fn updates(&self) -> Vec<Value> {
        self.updates.lock().unwrap().clone()
    }

    /// Send `request` (its `request_id` must be set) and wait up to `timeout` for the reply.
    pub async fn request(&self, mut request: Value, timeout: Duration) -> Option<Value> {
        request["reply_to"] = Value::String(self.reply_to.clone());
        let id = request["request_id"].as_str()?.to_owned();
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().insert(id.clone(), tx);
        self.client
            .publish(
                format!("lockerhub/v1/bank/{}/kiosk/request", self.bank),
                QoS::AtLeastOnce,
                false,
                request.to_string(),
            )
            .await
            .ok()?;
        let reply = tokio::time::timeout(timeout, rx).await.ok()?.ok();
        self.waiting.lock().unwrap().remove(&id);
        reply
    }
}

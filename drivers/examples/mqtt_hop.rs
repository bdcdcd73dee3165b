#[path = "../tests/common/mod.rs"]
mod common;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::{Duration, Instant};
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let broker = common::start_broker();
    let mut o = MqttOptions::new("sub", "127.0.0.1", broker.port());
    o.set_keep_alive(Duration::from_secs(5));
    let (sub, mut se) = AsyncClient::new(o, 64);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(_))) = se.poll().await {
                let _ = tx.send(Instant::now());
            }
        }
    });
    sub.subscribe("t", QoS::AtLeastOnce).await.unwrap();
    let mut o = MqttOptions::new("pub", "127.0.0.1", broker.port());
    o.set_keep_alive(Duration::from_secs(5));
    let (p, mut pe) = AsyncClient::new(o, 64);
    tokio::spawn(async move { while pe.poll().await.is_ok() {} });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut v = vec![];
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let t = Instant::now();
        p.publish("t", QoS::AtLeastOnce, false, "x").await.unwrap();
        let r = rx.recv().await.unwrap();
        v.push(r - t);
    }
    v.sort();
    println!("p50 {:?} p99 {:?} max {:?}", v[100], v[198], v[199]);
}

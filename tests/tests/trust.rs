//! Trust at the bus, tried as an attacker would against the real binary (issue #11): each client
//! may touch only its own topics, no client can break the broker, health tells the truth, and
//! work before a login is bounded. Peers: rumqttc (3.1.1 and 5), Debian's mosquitto clients.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use locker_tests::{
    base_config, hash_password, have, kiosk_login, kiosks, Hub, KIOSK_PASSWORD, OBSERVER,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

const PASS: &str = "bank password";

/// Two MQTT banks (A and B), each with its own controller login and one kiosk.
fn site(dir: &std::path::Path, extra_mqtt: &str) -> String {
    let hash = hash_password(PASS);
    base_config(dir).replace("[mqtt]\n", &format!("[mqtt]\n{extra_mqtt}"))
        + &format!(
            r#"
[[bank]]
id = "A"
driver = {{ kind = "mqtt" }}
mqtt = {{ username = "bank-a", password_hash = "{hash}" }}
{}compartments = [{{ doors = "1-4", size = "S" }}]

[[bank]]
id = "B"
driver = {{ kind = "mqtt" }}
mqtt = {{ username = "bank-b", password_hash = "{hash}" }}
{}compartments = [{{ doors = "1-4", size = "S" }}]
"#,
            kiosks(&["ka"]),
            kiosks(&["kb"]),
        )
}

fn options(id: &str, addr: SocketAddr, login: Option<(&str, &str)>) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    o.set_keep_alive(Duration::from_secs(5));
    o
}

/// A connected client whose events are collected: (client, received publishes, subscribe acks).
struct Client {
    client: AsyncClient,
    publishes: tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    subacks: tokio::sync::mpsc::UnboundedReceiver<Vec<rumqttc::SubscribeReasonCode>>,
    connected: tokio::sync::watch::Receiver<bool>,
}

async fn client(id: &str, addr: SocketAddr, login: Option<(&str, &str)>) -> Client {
    let (client, mut events) = AsyncClient::new(options(id, addr, login), 64);
    let (ptx, publishes) = tokio::sync::mpsc::unbounded_channel();
    let (stx, subacks) = tokio::sync::mpsc::unbounded_channel();
    let (ctx, connected) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = ctx.send(true);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = ptx.send((p.topic, p.payload.to_vec()));
                }
                Ok(Event::Incoming(Packet::SubAck(a))) => {
                    let _ = stx.send(a.return_codes);
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = ctx.send(false);
                    return;
                }
            }
        }
    });
    let mut c = Client {
        client,
        publishes,
        subacks,
        connected,
    };
    tokio::time::timeout(Duration::from_secs(10), c.connected.wait_for(|c| *c))
        .await
        .expect("connects within 10 s")
        .expect("connects");
    c
}

impl Client {
    async fn subscribe(&mut self, filter: &str) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.subacks.recv())
            .await
            .expect("SUBACK within 5 s")
            .expect("SUBACK")
    }

    /// Everything received within `d`.
    async fn received_within(&mut self, d: Duration) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(p)) = tokio::time::timeout_at(deadline, self.publishes.recv()).await {
            out.push(p);
        }
        out
    }

    fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }
}

/// Kiosk `ka` of bank A, connected with its own login.
async fn kiosk_a(addr: SocketAddr) -> Client {
    let (user, _) = kiosk_login("ka");
    client("kiosk-a", addr, Some((&user, KIOSK_PASSWORD))).await
}

/// Kiosk `ka`'s own reply topic.
const KA_REPLIES: &str = "lockerhub/v1/bank/A/kiosk/reply/ka";

impl Client {
    /// A harmless kiosk request (`suggest_size`) asking for its reply on `reply_to`.
    async fn suggest_size(&self, request_id: &str, reply_to: &str) {
        let request = json!({"request_id": request_id, "reply_to": reply_to, "type": "suggest_size",
            "dimensions": {"length_mm": 100, "width_mm": 100, "height_mm": 10}});
        self.client
            .publish(
                "lockerhub/v1/bank/A/kiosk/request",
                QoS::AtLeastOnce,
                false,
                request.to_string(),
            )
            .await
            .unwrap();
    }
}

/// A controller reports bank `bank` online (retained status), and the hub sees it.
async fn report_online(hub: &Hub, client: &AsyncClient, bank: &str) {
    client
        .publish(
            format!("lockerhub/v1/bank/{bank}/status"),
            QoS::AtLeastOnce,
            true,
            r#"{"online":true}"#,
        )
        .await
        .unwrap();
    hub.wait_health(Duration::from_secs(10), |h| {
        h["banks"]["online_ids"]
            .as_array()
            .is_some_and(|a| a.contains(&json!(bank)))
    });
}

fn start(extra_mqtt: &'static str) -> Hub {
    Hub::start(|dir| site(dir, extra_mqtt))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_login_cannot_touch_another_bank() {
    let hub = tokio::task::spawn_blocking(|| start("")).await.unwrap();
    let addr = hub.mqtt();
    let mut b = client("ctl-B", addr, Some(("bank-b", PASS))).await;
    assert_eq!(
        b.subscribe("lockerhub/v1/bank/B/cmd").await,
        vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    report_online(&hub, &b.client, "B").await;

    // Bank A's login, as a compromised controller of bank A would use it.
    let mut a = client("ctl-A", addr, Some(("bank-a", PASS))).await;
    let unlock = json!({"type": "unlock", "unlock_id": "evil-1", "door": 1}).to_string();
    a.client
        .publish("lockerhub/v1/bank/B/cmd", QoS::AtLeastOnce, false, unlock)
        .await
        .unwrap();
    a.client
        .publish(
            "lockerhub/v1/bank/B/status",
            QoS::AtLeastOnce,
            true,
            r#"{"online":false}"#,
        )
        .await
        .unwrap();
    a.client
        .publish(
            "lockerhub/v1/bank/B/door/1",
            QoS::AtLeastOnce,
            false,
            r#"{"open":false}"#,
        )
        .await
        .unwrap();
    // (The hub itself queries bank B's doors when it comes online: only bank A's unlock matters.)
    let got = b.received_within(Duration::from_secs(2)).await;
    assert!(
        !got.iter()
            .any(|(_, p)| String::from_utf8_lossy(p).contains("evil-1")),
        "bank B's controller got a command from bank A's login: {got:?}"
    );
    assert!(
        hub.health()["banks"]["online_ids"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("B"))),
        "bank A's login marked bank B offline"
    );
    // Refusals are counted per login.
    let h = hub.wait_health(Duration::from_secs(5), |h| {
        h["broker"]["refusals"]["bank-a"]["publish"].as_u64() >= Some(3)
    });
    assert!(h["broker"]["refusals"].get("bank-b").is_none(), "{h}");

    // Nor can it read anything beyond its own commands and state.
    for filter in [
        "#",
        "lockerhub/#",
        "lockerhub/v1/bank/+/kiosk/request",
        "lockerhub/v1/bank/B/cmd",
    ] {
        assert_eq!(
            a.subscribe(filter).await,
            vec![rumqttc::SubscribeReasonCode::Failure],
            "{filter}"
        );
    }
    assert!(a.is_connected() && b.is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pin_or_carrier_code_reaches_anyone_but_the_hub() {
    let hub = tokio::task::spawn_blocking(|| start("allow_anonymous = true\n"))
        .await
        .unwrap();
    let addr = hub.mqtt();
    // Everyone who is not the hub tries to read everything it can name.
    let mut spies = Vec::new();
    for (id, login) in [
        ("spy-bank", Some(("bank-a", PASS))),
        ("spy-observer", Some(OBSERVER)),
        ("spy-anon", None),
    ] {
        let mut c = client(id, addr, login).await;
        for filter in [
            "#",
            "lockerhub/v1/bank/A/kiosk/#",
            "lockerhub/v1/bank/+/kiosk/request",
        ] {
            assert_eq!(
                c.subscribe(filter).await,
                vec![rumqttc::SubscribeReasonCode::Failure],
                "{id} {filter}"
            );
        }
        spies.push(c);
    }
    // Another bank's kiosk cannot read kiosk A's replies either.
    let (kb_user, _) = kiosk_login("kb");
    let mut kb = client("kiosk-b", addr, Some((&kb_user, KIOSK_PASSWORD))).await;
    assert_eq!(
        kb.subscribe("lockerhub/v1/bank/A/kiosk/reply/ka").await,
        vec![rumqttc::SubscribeReasonCode::Failure]
    );
    // Kiosk A sends a carrier code and a PIN.
    let (ka_user, _) = kiosk_login("ka");
    let mut ka = client("kiosk-a", addr, Some((&ka_user, KIOSK_PASSWORD))).await;
    ka.subscribe("lockerhub/v1/bank/A/kiosk/reply/ka").await;
    for (n, body) in [
        json!({"type": "start_drop_off", "bank": "A", "carrier_code": "CARRIER-SECRET-77",
               "recipient": {"type": "unit", "unit": "101"}, "size": "s"}),
        json!({"type": "pickup_by_pin", "bank": "A", "pin": "PIN-SECRET-4242"}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = body;
        body["request_id"] = json!(format!("secret-{n}"));
        body["reply_to"] = json!("lockerhub/v1/bank/A/kiosk/reply/ka");
        ka.client
            .publish(
                "lockerhub/v1/bank/A/kiosk/request",
                QoS::AtLeastOnce,
                false,
                body.to_string(),
            )
            .await
            .unwrap();
    }
    let replies = ka.received_within(Duration::from_secs(3)).await;
    assert_eq!(replies.len(), 2, "the kiosk is answered: {replies:?}");
    for spy in spies.iter_mut().chain([&mut kb]) {
        for (topic, payload) in spy.received_within(Duration::from_millis(300)).await {
            let text = String::from_utf8_lossy(&payload);
            assert!(
                !text.contains("SECRET"),
                "a secret reached a client other than the hub on {topic}: {text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_cannot_have_replies_sent_to_foreign_topics() {
    let hub = tokio::task::spawn_blocking(|| start("")).await.unwrap();
    let addr = hub.mqtt();
    let mut ctl = client("ctl-A", addr, Some(("bank-a", PASS))).await;
    ctl.subscribe("lockerhub/v1/bank/A/cmd").await;
    let (ka_user, _) = kiosk_login("ka");
    let ka = kiosk_a(addr).await;
    ka.suggest_size("r1", "lockerhub/v1/bank/A/cmd").await;
    let got = ctl.received_within(Duration::from_secs(2)).await;
    assert!(
        !got.iter()
            .any(|(_, p)| String::from_utf8_lossy(p).contains("request_id")),
        "a reply was aimed at bank A's command topic: {got:?}"
    );
    hub.wait_health(Duration::from_secs(5), |h| {
        h["broker"]["refusals"][&ka_user]["publish"].as_u64() >= Some(1)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_are_bound_to_logins_and_bad_ids_cannot_break_the_broker() {
    let hub = tokio::task::spawn_blocking(|| start("allow_anonymous = true\n"))
        .await
        .unwrap();
    let addr = hub.mqtt();
    let mut b = client("ctl-B", addr, Some(("bank-b", PASS))).await;
    b.subscribe("lockerhub/v1/bank/B/cmd").await;
    // Bank A's login connecting as bank B's client id is not a takeover.
    let _a = client("ctl-B", addr, Some(("bank-a", PASS))).await;
    // Nor is the hub's own client id anyone's to take.
    for _ in 0..10 {
        let _ = client("locker-hub", addr, Some(("bank-a", PASS))).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.is_connected(), "bank B's controller was kicked off");

    // Client ids rumqttd panics on, twice each, in both protocol versions, with a login and
    // anonymously: refused with a CONNACK, and the listener keeps working.
    for id in ["a/b", "+", "#", "$x", "bad id"] {
        for v5 in [false, true] {
            for login in [Some(("bank-a", PASS)), None] {
                for _ in 0..2 {
                    let refused = try_connect(addr, id, login, v5).await;
                    assert!(refused.is_err(), "client id {id:?} was accepted (v5: {v5})");
                }
            }
        }
    }
    // A kiosk request still round-trips through the hub: the hub's own client is on the bus.
    let mut ka = kiosk_a(addr).await;
    ka.subscribe(KA_REPLIES).await;
    ka.suggest_size("after", KA_REPLIES).await;
    let replies = ka.received_within(Duration::from_secs(3)).await;
    assert_eq!(replies.len(), 1, "{}", hub.output());
    assert!(b.is_connected());
    assert_eq!(hub.health()["status"], "ok");
}

/// Connect once with raw rumqttc (3.1.1 or 5); `Err` when refused.
async fn try_connect(
    addr: SocketAddr,
    id: &str,
    login: Option<(&str, &str)>,
    v5: bool,
) -> Result<(), String> {
    if v5 {
        let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        if let Some((u, p)) = login {
            o.set_credentials(u, p);
        }
        let (_c, mut events) = rumqttc::v5::AsyncClient::new(o, 4);
        match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
            Ok(Ok(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::ConnAck(
                a,
            )))) if a.code == rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success => Ok(()),
            other => Err(format!("{other:?}")),
        }
    } else {
        let (_c, mut events) = AsyncClient::new(options(id, addr, login), 4);
        match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(a))))
                if a.code == rumqttc::ConnectReturnCode::Success =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_properties_to_a_311_subscriber_break_nothing() {
    assert!(
        have("mosquitto_rr"),
        "tests/run installs Debian's mosquitto-clients"
    );
    let hub = tokio::task::spawn_blocking(|| start("allow_anonymous = true\n"))
        .await
        .unwrap();
    let addr = hub.mqtt();
    // The README's watcher: MQTT 3.1.1, anonymous.
    let mut watcher = client("watcher", addr, None).await;
    watcher.subscribe("lockerhub/v1/bank/+/state").await;
    watcher.subscribe("lockerhub/v1/site/alerts").await;
    // An MQTT 5 kiosk with a response topic and correlation data.
    let (ka_user, _) = kiosk_login("ka");
    let out = Command::new("mosquitto_rr")
        .args(["-V", "5", "-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(["-u", &ka_user, "-P", KIOSK_PASSWORD])
        .args(["-t", "lockerhub/v1/bank/A/kiosk/request"])
        .args(["-e", "lockerhub/v1/bank/A/kiosk/reply/ka", "-W", "10"])
        .args([
            "-m",
            &json!({"request_id": "v5", "type": "suggest_size",
                "dimensions": {"length_mm": 100, "width_mm": 100, "height_mm": 10}})
            .to_string(),
        ])
        .output()
        .expect("mosquitto_rr");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A bank (MQTT 5, with user properties on its status) changes state, which the 3.1.1
    // watcher must get, properties dropped.
    let mut o = rumqttc::v5::MqttOptions::new("ctl-A5", addr.ip().to_string(), addr.port());
    o.set_credentials("bank-a", PASS);
    let (c5, mut e5) = rumqttc::v5::AsyncClient::new(o, 8);
    tokio::spawn(async move { while e5.poll().await.is_ok() {} });
    let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
        user_properties: vec![("fw".into(), "1.0".into())],
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    c5.publish_with_properties(
        "lockerhub/v1/bank/A/door/2",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        false,
        r#"{"open":true}"#,
        props,
    )
    .await
    .unwrap();
    let got = watcher.received_within(Duration::from_secs(3)).await;
    assert!(watcher.is_connected(), "the 3.1.1 watcher was dropped");
    assert!(!got.is_empty(), "the watcher saw no state or alert");
    // New 3.1.1 clients still get in.
    try_connect(addr, "late", None, false)
        .await
        .expect("the listener still works");
    assert_eq!(hub.health()["status"], "ok");
}

/// A TCP connection from `source` (another loopback address, as a second host on the LAN).
async fn connect_from(source: &str, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    socket.connect(to).await
}

fn rss_peak_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn v4_connect(id: &str, user: &str, pass: &str) -> Vec<u8> {
    let mut c = rumqttc::mqttbytes::v4::Connect::new(id);
    c.set_login(user, pass);
    let mut out = bytes::BytesMut::new();
    rumqttc::mqttbytes::v4::Packet::Connect(c)
        .write(&mut out, 1 << 20)
        .unwrap();
    out.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_storm_and_idle_sockets_cost_bounded_memory_and_a_real_bank_still_connects() {
    let hub = tokio::task::spawn_blocking(|| start("")).await.unwrap();
    let addr = hub.mqtt();
    let web = hub.web;
    // The bank has connected before (a restart's reconnect), so its login is known good.
    drop(client("ctl-A", addr, Some(("bank-a", PASS))).await);

    // 300 wrong-password CONNECTs in about a second, from another address.
    let storm = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for i in 0..300 {
            tasks.push(tokio::spawn(async move {
                if let Ok(mut s) = connect_from("127.0.0.2", addr).await {
                    let _ = s
                        .write_all(&v4_connect(&format!("guess{i}"), "bank-a", "guess"))
                        .await;
                    let mut buf = [0u8; 4];
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
                    )
                    .await;
                }
            }));
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    // 1,000 idle sockets on the MQTT port and 1,000 on the web port, from a third address.
    let mut idle = Vec::new();
    for _ in 0..1000 {
        if let Ok(s) = connect_from("127.0.0.3", addr).await {
            idle.push(s);
        }
        if let Ok(s) = connect_from("127.0.0.3", web).await {
            idle.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let bank = client("ctl-A", addr, Some(("bank-a", PASS))).await;
    let took = started.elapsed();
    assert!(bank.is_connected());
    assert!(
        took < Duration::from_secs(1),
        "the real bank took {took:?} to connect"
    );
    // A staff browser from the usual address still gets the web page.
    let (code, _) = tokio::task::spawn_blocking(move || locker_tests::http_get(web, "/healthz"))
        .await
        .unwrap();
    assert_eq!(code, 200);
    storm.await.unwrap();
    let peak = rss_peak_mb(hub.pid());
    eprintln!("peak RSS under the storm: {peak:.1} MB; bank connected in {took:?}");
    assert!(peak < 150.0, "peak RSS {peak:.1} MB");
    let h = hub.health();
    assert!(
        h["broker"]["refusals"]["bank-a"]["connect"].as_u64() >= Some(250),
        "{h}"
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_degraded_when_a_listener_admits_nobody_and_recovers() {
    let hub = tokio::task::spawn_blocking(|| start("max_connections = 2\n"))
        .await
        .unwrap();
    let addr = hub.mqtt();
    hub.wait_health(Duration::from_secs(15), |h| {
        h["broker"]["probes"]
            .as_array()
            .is_some_and(|p| p.len() == 2 && p.iter().all(|p| p["ok"] == true))
    });
    // Two clients fill the listener: a bank connecting now would be refused, and /healthz says so.
    let c1 = client("o1", addr, Some(OBSERVER)).await;
    let c2 = client("o2", addr, Some(OBSERVER)).await;
    let h = hub.wait_health(Duration::from_secs(20), |h| h["status"] == "degraded");
    let problems = h["problems"].to_string();
    assert!(problems.contains("`mqtt`"), "{h}");
    // A client refused at the limit retries with the same id, again and again (what left rumqttd
    // with a poisoned lock): each is refused with a CONNACK and nothing breaks.
    for _ in 0..20 {
        let refused = try_connect(addr, "ctl-A", Some(("bank-a", PASS)), false).await;
        assert!(
            refused.is_err_and(|e| e.contains("ServiceUnavailable")),
            "at the limit"
        );
    }
    c1.client.disconnect().await.unwrap();
    c2.client.disconnect().await.unwrap();
    hub.wait_health(Duration::from_secs(20), |h| h["status"] == "ok");
    // The same id gets in once there is room.
    try_connect(addr, "ctl-A", Some(("bank-a", PASS)), false)
        .await
        .expect("the bank connects after the storm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connect_disconnect_cycles_leave_every_listener_working() {
    let hub = tokio::task::spawn_blocking(|| start("")).await.unwrap();
    let addr = hub.mqtt();
    // The bank's login verifies once; the cycles then cost no argon2.
    try_connect(addr, "warm", Some(("bank-a", PASS)), false)
        .await
        .unwrap();
    let started = Instant::now();
    for n in 0..1000u32 {
        // Same id every other time (a reconnect storm), fresh ones in between; half drop the
        // connection right after CONNECT without waiting for the CONNACK.
        let id = if n % 2 == 0 {
            "ctl-A".to_owned()
        } else {
            format!("c{n}")
        };
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&v4_connect(&id, "bank-a", PASS)).await.unwrap();
        if n % 4 < 2 {
            let mut ack = [0u8; 4];
            tokio::time::timeout(
                Duration::from_secs(5),
                tokio::io::AsyncReadExt::read_exact(&mut s, &mut ack),
            )
            .await
            .expect("a CONNACK within 5 s")
            .expect("CONNACK");
            assert_eq!(ack, [0x20, 0x02, 0x00, 0x00], "cycle {n}");
            s.write_all(&[0xE0, 0x00]).await.unwrap();
        }
    }
    eprintln!("1,000 connect/disconnect cycles in {:?}", started.elapsed());
    // Every listener still admits, routes and answers.
    let mut b = client("ctl-B", addr, Some(("bank-b", PASS))).await;
    b.subscribe("lockerhub/v1/bank/B/cmd").await;
    hub.wait_health(Duration::from_secs(15), |h| {
        h["status"] == "ok"
            && h["broker"]["probes"]
                .as_array()
                .is_some_and(|p| p.iter().all(|p| p["last_ok_s_ago"].as_u64() < Some(6)))
    });
}

#[test]
fn a_guesser_cannot_lock_staff_out_of_the_web_page() {
    let hub = start("");
    let web = hub.web;
    let (code, _) = hub.api(
        "POST",
        "/api/v1/users",
        Some(
            &json!({"name": "sam", "role": "staff", "password": "sams long password"}).to_string(),
        ),
    );
    assert!(code == 200 || code == 201, "add user: {code}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // 100 failed sign-ins under random names, and 10 as sam, from another address.
    let failures = rt.block_on(async {
        let mut refused = 0;
        for i in 0..110 {
            let user = if i < 100 {
                format!("random{i}")
            } else {
                "sam".into()
            };
            if login_from("127.0.0.2", web, &user, "wrong").await != 303 {
                refused += 1;
            }
        }
        refused
    });
    assert_eq!(failures, 110);
    // Sam, from the office's address, signs in at once.
    let code = rt.block_on(login_from("127.0.0.1", web, "sam", "sams long password"));
    assert_eq!(code, 303, "sam was locked out by someone else's guessing");
}

/// `POST /login` from `source`: the status code.
async fn login_from(source: &str, web: SocketAddr, user: &str, password: &str) -> u16 {
    use tokio::io::AsyncReadExt;
    let csrf = "csrf-token-for-the-test";
    let body = format!(
        "csrf={csrf}&user={user}&password={}",
        password.replace(' ', "+")
    );
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: hub\r\nCookie: lh_login_csrf={csrf}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let Ok(mut s) = connect_from(source, web).await else {
        return 0;
    };
    let _ = s.write_all(request.as_bytes()).await;
    let mut response = String::new();
    let _ = s.read_to_string(&mut response).await;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A site with one simulated bank S (doors 1-4), resident r-101, carrier code 135790, the given
/// `[policies]` lines; and kiosk `ks` of bank S, connected and listening for its replies.
async fn sim_site(policies: &'static str) -> (Hub, Client) {
    let hub = tokio::task::spawn_blocking(move || {
        Hub::start(|dir| {
            base_config(dir)
                + &format!(
                    r#"
[policies]
{policies}

[[bank]]
id = "S"
driver = {{ kind = "sim" }}
{}compartments = [{{ doors = "1-4", size = "S" }}]
"#,
                    kiosks(&["ks"])
                )
        })
    })
    .await
    .unwrap();
    for body in [
        json!({"request_id": "d1", "type": "register_resident", "resident": "r-101", "unit": "101"}),
        json!({"request_id": "d2", "type": "register_carrier", "carrier": "acme", "name": "Acme"}),
        json!({"request_id": "d3", "type": "issue_carrier_code", "carrier": "acme", "code": "135790"}),
    ] {
        let (_, reply) = hub.api("POST", "/api/v1/commands", Some(&body.to_string()));
        assert_eq!(reply["type"], "accepted", "{reply}");
    }
    let (user, _) = kiosk_login("ks");
    let mut ks = client("kiosk-s", hub.mqtt(), Some((&user, KIOSK_PASSWORD))).await;
    ks.subscribe("lockerhub/v1/bank/S/kiosk/reply/ks").await;
    (hub, ks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_off_flood_is_refused_before_the_engine_and_makes_no_parcels() {
    let (hub, mut ks) = sim_site("").await;
    // 3,000 drop-off requests with one carrier code, as fast as the client can send them.
    let started = Instant::now();
    for n in 0..3000 {
        let body = json!({"request_id": format!("flood-{n}"), "type": "start_drop_off",
            "bank": "S", "carrier_code": "135790", "recipient": {"type": "unit", "unit": "101"},
            "size": "s", "reply_to": "lockerhub/v1/bank/S/kiosk/reply/ks"});
        ks.client
            .publish(
                "lockerhub/v1/bank/S/kiosk/request",
                QoS::AtLeastOnce,
                false,
                body.to_string(),
            )
            .await
            .unwrap();
    }
    let sent = started.elapsed();
    let replies = ks.received_within(Duration::from_secs(3)).await;
    eprintln!(
        "3,000 requests sent in {sent:?}; {} answered",
        replies.len()
    );
    let kinds: Vec<String> = replies
        .iter()
        .filter_map(|(_, p)| serde_json::from_slice::<serde_json::Value>(p).ok())
        .map(|r| {
            format!(
                "{}/{}",
                r["type"].as_str().unwrap_or(""),
                r["code"].as_str().unwrap_or("")
            )
        })
        .collect();
    let reserved = kinds.iter().filter(|k| k.starts_with("reserved")).count();
    // A burst of 20, then 2 a second while the flood lasted (and while replies were awaited).
    let allowed = 20 + 2 * (sent.as_secs() as usize + 3) + 2;
    assert!(
        replies.len() <= allowed,
        "the front door let {} requests through (at most {allowed})",
        replies.len()
    );
    assert!(
        reserved <= 3,
        "one carrier reserved {reserved} doors: {kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k == "rejected/rate_limited"),
        "{kinds:?}"
    );
    // No phantom parcels, no notifications.
    let (_, parcels) = hub.api("GET", "/api/v1/parcels", None);
    assert_eq!(parcels.as_array().map(Vec::len), Some(0), "{parcels}");
    let (_, outbox) = hub.api("GET", "/api/v1/outbox", None);
    assert_eq!(outbox.as_array().map(Vec::len), Some(0), "{outbox}");
    let h = hub.health();
    assert!(
        h["broker"]["refusals"][kiosk_login("ks").0]["rate_limited"].as_u64() > Some(2900),
        "{h}"
    );
}

/// Kiosk `ks`'s request on bank S, answered on its own reply topic: the reply as JSON.
async fn ask(ks: &mut Client, id: &str, mut body: serde_json::Value) -> serde_json::Value {
    body["request_id"] = json!(id);
    body["reply_to"] = json!("lockerhub/v1/bank/S/kiosk/reply/ks");
    ks.client
        .publish(
            "lockerhub/v1/bank/S/kiosk/request",
            QoS::AtLeastOnce,
            false,
            body.to_string(),
        )
        .await
        .unwrap();
    loop {
        let (_, payload) = tokio::time::timeout(Duration::from_secs(10), ks.publishes.recv())
            .await
            .expect("a reply within 10 s")
            .expect("reply");
        let reply: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        if reply["request_id"] == id {
            return reply;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keypad_lockout_stops_guessing_but_not_the_resident_with_the_right_pin() {
    let (hub, mut ks) = sim_site(
        r#"lockout = { max_failures = 3, window = "10m", base_lockout = "10m", check_every = "2s" }"#,
    )
    .await;
    // A delivery; the simulated bank closes the door by itself a few seconds later.
    let reserved = ask(
        &mut ks,
        "drop",
        json!({"type": "start_drop_off", "bank": "S", "carrier_code": "135790",
               "recipient": {"type": "unit", "unit": "101"}, "size": "s"}),
    )
    .await;
    assert_eq!(reserved["type"], "reserved", "{reserved}");
    // Confirmed once the simulated door has opened.
    let mut confirmed = json!(null);
    for n in 0..50 {
        confirmed = ask(
            &mut ks,
            &format!("confirm-{n}"),
            json!({"type": "confirm_parcel", "reservation": reserved["reservation"]}),
        )
        .await;
        if confirmed["code"] != "not_allowed_now" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(confirmed["type"], "parcel_confirmed", "{confirmed}");
    let started = Instant::now();
    let pin = loop {
        let (_, items) = hub.api("GET", "/api/v1/outbox", None);
        if let Some(pin) = items[0]["notification"]["pin"].as_str() {
            break pin.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no notification"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Someone guesses: three wrong PINs lock the keypad, and the next guess is not even checked.
    let wrong = if pin == "000000" { "111111" } else { "000000" };
    for n in 0..3 {
        let r = ask(
            &mut ks,
            &format!("guess-{n}"),
            json!({"type": "pickup_by_pin", "bank": "S", "pin": wrong}),
        )
        .await;
        assert_eq!(r["code"], "bad_credential", "{r}");
    }
    let r = ask(
        &mut ks,
        "guess-3",
        json!({"type": "pickup_by_pin", "bank": "S", "pin": wrong}),
    )
    .await;
    assert_eq!(r["code"], "keypad_locked", "{r}");
    // The resident arrives a few seconds later, during the 10-minute lockout: the door opens.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = ask(
        &mut ks,
        "resident",
        json!({"type": "pickup_by_pin", "bank": "S", "pin": pin}),
    )
    .await;
    assert_eq!(r["type"], "opening", "{r}");
}

/// Two MQTT banks on a site whose TLS listener takes bank certificates, and whose plain listener
/// is open to 127.0.0.2 only.
fn certificate_site(dir: &std::path::Path) -> (String, locker_tests::certs::TestPki) {
    let pki = locker_tests::certs::write_test_pki(dir);
    let text = site(dir, "")
        .replace(
            "listener = { bind = \"127.0.0.1:0\" }\n",
            &format!(
                "listener = {{ bind = \"127.0.0.1:0\", allow = [\"127.0.0.2\"] }}\n\
                 tls = {{ bind = \"127.0.0.1:0\", cert = \"{}\", key = \"{}\", bank_certificates = true }}\n",
                pki.cert_file.display(),
                pki.key_file.display()
            ),
        );
    (text, pki)
}

fn tls_options(
    id: &str,
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<(Vec<u8>, Vec<u8>)>,
) -> MqttOptions {
    let mut o = options(id, addr, None);
    o.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Simple {
            ca: ca_pem.as_bytes().to_vec(),
            alpn: None,
            client_auth: client,
        },
    ));
    o
}

/// Connect once; `Err` when refused or the handshake fails.
async fn connect_once(opts: MqttOptions) -> Result<(), String> {
    let (_c, mut events) = AsyncClient::new(opts, 4);
    match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
        Ok(Ok(Event::Incoming(Packet::ConnAck(a))))
            if a.code == rumqttc::ConnectReturnCode::Success =>
        {
            Ok(())
        }
        other => Err(format!("{other:?}")),
    }
}

fn locker_hub(args: &[&str]) -> std::process::Output {
    Command::new(locker_tests::hub_binary())
        .args(args)
        .output()
        .expect("run locker-hub")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_bank_certificate_is_that_bank_and_nothing_else_until_revoked() {
    let (hub, pki) = tokio::task::spawn_blocking(|| {
        let mut pki = None;
        let hub = Hub::start(|dir| {
            let (text, p) = certificate_site(dir);
            pki = Some(p);
            text
        });
        (hub, pki.expect("the test PKI"))
    })
    .await
    .unwrap();
    let tls = hub.mqtts.expect("TLS listener");
    let config = hub.dir.path().join("hub.toml");
    let certs = hub.dir.path().join("bank-a-certs");
    let out = locker_hub(&[
        "bank",
        "enroll",
        "A",
        "--config",
        config.to_str().unwrap(),
        "--out",
        certs.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client_auth = (
        std::fs::read(certs.join("A.crt")).unwrap(),
        std::fs::read(certs.join("A.key")).unwrap(),
    );
    // An unknown bank cannot be enrolled.
    let out = locker_hub(&[
        "bank",
        "enroll",
        "Z",
        "--config",
        config.to_str().unwrap(),
        "--out",
        certs.to_str().unwrap(),
    ]);
    assert!(!out.status.success());

    // Bank A's controller, with its certificate and no password.
    let (client, mut events) = AsyncClient::new(
        tls_options("ctl-A", tls, &pki.ca_pem, Some(client_auth.clone())),
        16,
    );
    let (acks_tx, mut acks) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(e) = events.poll().await {
            if let Event::Incoming(Packet::SubAck(a)) = e {
                let _ = acks_tx.send(a.return_codes);
            }
        }
    });
    report_online(&hub, &client, "A").await;
    // It is bank A and nothing else.
    client
        .publish(
            "lockerhub/v1/bank/B/status",
            QoS::AtLeastOnce,
            true,
            r#"{"online":true}"#,
        )
        .await
        .unwrap();
    client
        .subscribe("lockerhub/v1/bank/B/cmd", QoS::AtLeastOnce)
        .await
        .unwrap();
    let codes = tokio::time::timeout(Duration::from_secs(5), acks.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(codes, vec![rumqttc::SubscribeReasonCode::Failure]);
    let h = hub.wait_health(Duration::from_secs(5), |h| {
        h["broker"]["refusals"]["certificate:A"]["publish"].as_u64() >= Some(1)
    });
    assert!(
        !h["banks"]["online_ids"]
            .as_array()
            .unwrap()
            .contains(&json!("B")),
        "{h}"
    );

    // A certificate from another CA does not get through the handshake.
    let stranger = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["A".to_owned()]).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "A");
        let cert = p.self_signed(&key).unwrap();
        (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
    };
    assert!(
        connect_once(tls_options("fake-A", tls, &pki.ca_pem, Some(stranger)))
            .await
            .is_err()
    );

    // Revoked: the next connection with bank A's certificate is refused.
    let out = locker_hub(&["bank", "revoke", "A", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = connect_once(tls_options("ctl-A2", tls, &pki.ca_pem, Some(client_auth))).await;
    assert!(refused.is_err(), "a revoked certificate logged in");
    hub.wait_health(Duration::from_secs(5), |h| {
        h["broker"]["refusals"]["certificate:A"]["connect"].as_u64() >= Some(1)
    });
    // Clients without a certificate still log in with a password on the same listener.
    let mut o = tls_options("ctl-B", tls, &pki.ca_pem, None);
    o.set_credentials("bank-b", PASS);
    connect_once(o).await.expect("a password login over TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_listener_admits_only_the_allowed_addresses() {
    let hub = tokio::task::spawn_blocking(|| Hub::start(|dir| certificate_site(dir).0))
        .await
        .unwrap();
    let addr = hub.mqtt();
    let hello = v4_connect("ctl-A", "bank-a", PASS);
    for (source, allowed) in [
        ("127.0.0.2", true),
        ("127.0.0.1", false),
        ("127.0.0.3", false),
    ] {
        let mut s = connect_from(source, addr).await.unwrap();
        let _ = s.write_all(&hello).await;
        let mut ack = [0u8; 4];
        let got = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_exact(&mut s, &mut ack),
        )
        .await;
        let accepted = matches!(got, Ok(Ok(_))) && ack == [0x20, 0x02, 0x00, 0x00];
        assert_eq!(accepted, allowed, "from {source}: {ack:?}");
    }
    // The refusals are counted per address, and the hub's own probe (from 127.0.0.1, which this
    // site does not allow) still gets through: health stays true.
    let h = hub.wait_health(Duration::from_secs(20), |h| {
        h["broker"]["probes"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["listener"] == "mqtt" && p["ok"] == true))
    });
    assert_eq!(h["status"], "ok", "{h}");
    assert!(
        h["broker"]["refusals"]["address 127.0.0.1"]["connect"].as_u64() >= Some(1),
        "{h}"
    );
}

/// A bank controller with its last will on its status topic, as `docs/mqtt-api.md` asks.
async fn controller_with_will(addr: SocketAddr) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let mut o = options("ctl-B", addr, Some(("bank-b", PASS)));
    o.set_last_will(rumqttc::LastWill::new(
        "lockerhub/v1/bank/B/status",
        r#"{"online":false}"#,
        QoS::AtLeastOnce,
        true,
    ));
    let (c, mut events) = AsyncClient::new(o, 16);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    let task = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("controller: {e}");
                    return;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("connects")
        .unwrap();
    c.publish(
        "lockerhub/v1/bank/B/status",
        QoS::AtLeastOnce,
        true,
        r#"{"online":true}"#,
    )
    .await
    .unwrap();
    (c, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_bank_stays_online_and_a_dropped_one_fires_its_will() {
    let hub = tokio::task::spawn_blocking(|| start("")).await.unwrap();
    let addr = hub.mqtt();
    let mut watcher = client("watcher", addr, Some(OBSERVER)).await;
    watcher.subscribe("lockerhub/v1/bank/B/status").await;
    let (_first, first_task) = controller_with_will(addr).await;
    hub.wait_health(Duration::from_secs(10), |h| {
        h["banks"]["online_ids"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("B")))
    });
    // The controller reconnects with the same id while its old connection still looks alive
    // (a takeover): its old will must not report the bank offline.
    let (_second, second_task) = controller_with_will(addr).await;
    let seen = watcher.received_within(Duration::from_secs(2)).await;
    assert!(
        !seen
            .iter()
            .any(|(_, p)| String::from_utf8_lossy(p).contains("false")),
        "a takeover reported the bank offline: {seen:?}\n{}",
        hub.output()
    );
    assert!(hub.health()["banks"]["online_ids"]
        .as_array()
        .is_some_and(|a| a.contains(&json!("B"))));
    // The controller's connection drops without a DISCONNECT: the will fires, the bank is offline.
    first_task.abort();
    second_task.abort();
    hub.wait_health(Duration::from_secs(20), |h| {
        h["banks"]["offline_ids"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("B")))
    });
}

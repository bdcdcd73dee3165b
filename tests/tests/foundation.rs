//! The hub foundation, end to end: the real binary, its embedded broker, real MQTT clients
//! (rumqttc, and Debian's mosquitto clients as a peer we did not write), TLS, authentication,
//! configuration checks, demo mode and shutdown.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use locker_tests::certs::{write_test_pki, TestPki};
use locker_tests::{base_config, hash_password, have, hub_binary, Hub, OBSERVER};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS, SubscribeReasonCode,
    TlsConfiguration, Transport,
};

const BANK_USER: &str = "bank-lobby";
const BANK_PASS: &str = "correct horse battery staple";

/// A site with one MQTT bank that has credentials, optionally a TLS listener, and the given
/// anonymous policy.
fn site(dir: &std::path::Path, tls: Option<&TestPki>, anonymous: bool) -> String {
    let mut text = base_config(dir);
    text = text.replace(
        "[mqtt]\n",
        &format!("[mqtt]\nallow_anonymous = {anonymous}\n"),
    );
    if let Some(pki) = tls {
        text = text.replace(
            "[web]\n",
            &format!(
                "tls = {{ bind = \"127.0.0.1:0\", cert = \"{}\", key = \"{}\" }}\n\n[web]\n",
                pki.cert_file.display(),
                pki.key_file.display()
            ),
        );
    }
    text += &format!(
        r#"
[[bank]]
id = "lobby"
name = "Lobby bank"
driver = {{ kind = "mqtt" }}
mqtt = {{ username = "{BANK_USER}", password_hash = "{}" }}
compartments = [{{ doors = "1-4", size = "M" }}]
"#,
        hash_password(BANK_PASS)
    );
    text
}

/// rumqttc over TLS, trusting the test CA.
fn tls_transport(pki: &TestPki) -> Transport {
    Transport::tls_with_config(TlsConfiguration::Simple {
        ca: pki.ca_pem.clone().into_bytes(),
        alpn: None,
        client_auth: None,
    })
}

fn options(id: &str, addr: SocketAddr, login: Option<(&str, &str)>) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(5));
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    o
}

/// Connect and report whether the broker accepted: `Ok(client, eventloop)` after a successful
/// CONNACK, `Err(reason)` if the connection was refused or closed.
async fn connect(opts: MqttOptions) -> Result<(AsyncClient, rumqttc::EventLoop), String> {
    let (client, mut events) = AsyncClient::new(opts, 16);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.poll()).await {
            Err(_) => return Err("timed out".into()),
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                return if ack.code == ConnectReturnCode::Success {
                    Ok((client, events))
                } else {
                    Err(format!("{:?}", ack.code))
                };
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
        }
    }
}

/// Wait for the next PUBLISH on `events`, and return (topic, payload).
async fn next_publish(events: &mut rumqttc::EventLoop) -> (String, Vec<u8>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.poll()).await {
            Err(_) => panic!("no message within 10 s"),
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => return (p.topic, p.payload.to_vec()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("connection failed: {e}"),
        }
    }
}

/// Wait for the SUBACK of a subscription to `topic` (the only one in flight), within 10 s like
/// [`next_publish`], and require the broker to have granted it: a subscription that is never
/// acknowledged, or that is refused, fails here rather than hanging or failing later on a
/// message that cannot arrive.
async fn wait_suback(events: &mut rumqttc::EventLoop, topic: &str, tag: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.poll()).await {
            Err(_) => panic!("no SUBACK for {topic} over {tag} within 10 s"),
            Ok(Ok(Event::Incoming(Packet::SubAck(ack)))) => {
                assert!(
                    ack.return_codes
                        .iter()
                        .all(|c| matches!(c, SubscribeReasonCode::Success(_))),
                    "the broker refused the subscription to {topic} over {tag}: {ack:?}"
                );
                return;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                panic!("connection failed while waiting for the SUBACK for {topic} over {tag}: {e}")
            }
        }
    }
}

/// Keep polling an event loop in the background (rumqttc only makes progress while polled).
fn drive(mut events: rumqttc::EventLoop) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while events.poll().await.is_ok() {} })
}

/// `mosquitto_sub` for one message on `topic`; returns the child so the caller can publish.
fn mosquitto_sub(addr: SocketAddr, topic: &str, extra: &[&str]) -> std::process::Child {
    assert!(
        have("mosquitto_sub"),
        "mosquitto_sub is missing: tests/run installs Debian's mosquitto-clients"
    );
    Command::new("mosquitto_sub")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args([
            "-u", OBSERVER.0, "-P", OBSERVER.1, "-t", topic, "-C", "1", "-W", "15",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mosquitto_sub")
}

fn mosquitto_pub(addr: SocketAddr, topic: &str, message: &str, extra: &[&str]) {
    let status = Command::new("mosquitto_pub")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args([
            "-u", BANK_USER, "-P", BANK_PASS, "-t", topic, "-m", message, "-q", "1",
        ])
        .args(extra)
        .status()
        .expect("run mosquitto_pub");
    assert!(status.success(), "mosquitto_pub failed");
}

/// rumqttc → hub → mosquitto_sub, and mosquitto_pub → hub → rumqttc, on one listener.
async fn exchange(hub: &Hub, addr: SocketAddr, tls: Option<&TestPki>, tag: &str) {
    let mut opts = options(
        &format!("rumqttc-{tag}"),
        addr,
        Some((BANK_USER, BANK_PASS)),
    );
    let mut mosq_tls: Vec<String> = Vec::new();
    if let Some(pki) = tls {
        opts.set_transport(tls_transport(pki));
        mosq_tls = vec!["--cafile".into(), pki.ca_file.display().to_string()];
    }
    let mosq_tls: Vec<&str> = mosq_tls.iter().map(String::as_str).collect();
    let (client, mut events) = connect(opts).await.unwrap_or_else(|e| {
        panic!(
            "rumqttc could not connect over {tag}: {e}\n{}",
            hub.output()
        )
    });

    // rumqttc publishes (the bank's own door topic), mosquitto_sub (a read-only staff tool)
    // receives.
    let door = if tag == "tls" { 2 } else { 1 };
    let topic = format!("lockerhub/v1/bank/lobby/door/{door}");
    let sub = mosquitto_sub(addr, &topic, &mosq_tls);
    std::thread::sleep(Duration::from_millis(500));
    let pump = tokio::spawn(async move {
        for _ in 0..40 {
            if client
                .publish(
                    &topic,
                    QoS::AtLeastOnce,
                    false,
                    b"hello from rumqttc".to_vec(),
                )
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        client
    });
    let poller = tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(12), async {
            while events.poll().await.is_ok() {}
        })
        .await;
        events
    });
    let out = tokio::task::spawn_blocking(move || sub.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello from rumqttc",
        "mosquitto_sub over {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pump.abort();
    poller.abort();

    // mosquitto_pub publishes, rumqttc receives.
    let mut opts = options(&format!("rumqttc-sub-{tag}"), addr, Some(OBSERVER));
    if let Some(pki) = tls {
        opts.set_transport(tls_transport(pki));
    }
    let (client, mut events) = connect(opts).await.expect("subscriber connects");
    let topic = format!("lockerhub/v1/bank/lobby/door/{}", door + 2);
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    wait_suback(&mut events, &topic, tag).await;
    mosquitto_pub(addr, &topic, "hello from mosquitto", &mosq_tls);
    let (t, payload) = next_publish(&mut events).await;
    assert_eq!(t, topic);
    assert_eq!(payload, b"hello from mosquitto");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_clients_exchange_messages_over_plain_tcp_and_tls() {
    let mut pki = None;
    let hub = Hub::start(|dir| {
        let p = write_test_pki(dir);
        let text = site(dir, Some(&p), false);
        pki = Some(p);
        text
    });
    let pki = pki.unwrap();
    exchange(&hub, hub.mqtt(), None, "tcp").await;
    exchange(&hub, hub.mqtts.expect("TLS listener"), Some(&pki), "tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tls_connection_does_not_stall_other_clients() {
    let mut pki = None;
    let hub = Hub::start(|dir| {
        let p = write_test_pki(dir);
        let text = site(dir, Some(&p), false);
        pki = Some(p);
        text
    });
    let pki = pki.unwrap();
    let tls_addr = hub.mqtts.unwrap();
    // A client that opens TCP and never starts the handshake (rumqttd's own TLS listener
    // would wait on it forever before accepting anyone else).
    let _idle = std::net::TcpStream::connect(tls_addr).unwrap();
    let mut opts = options("after-idle", tls_addr, Some((BANK_USER, BANK_PASS)));
    opts.set_transport(tls_transport(&pki));
    let started = Instant::now();
    connect(opts)
        .await
        .expect("TLS client connects past the idle one");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banks_need_the_right_password_and_anonymous_needs_permission() {
    let hub = Hub::start(|dir| site(dir, None, false));
    let addr = hub.mqtt();
    connect(options("good", addr, Some((BANK_USER, BANK_PASS))))
        .await
        .expect("right password connects");
    assert!(
        connect(options("bad", addr, Some((BANK_USER, "wrong password"))))
            .await
            .is_err(),
        "wrong password must be refused"
    );
    assert!(
        connect(options("stranger", addr, Some(("nobody", BANK_PASS))))
            .await
            .is_err(),
        "unknown user must be refused"
    );
    let anon = connect(options("anon", addr, None)).await;
    let refusal = anon.err().unwrap_or_default();
    assert!(
        refusal.contains("NotAuthorized"),
        "anonymous refused with a proper CONNACK, got: {refusal}"
    );
    // mosquitto's own client sees the refusal too.
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(["-t", "x", "-m", "y"])
        .output()
        .expect("mosquitto_pub");
    assert!(!out.status.success(), "anonymous mosquitto_pub must fail");

    // The same site with anonymous LAN clients allowed lets them in, and still checks passwords.
    let open = Hub::start(|dir| site(dir, None, true));
    let addr = open.mqtt();
    connect(options("anon", addr, None))
        .await
        .expect("anonymous allowed when configured");
    assert!(
        connect(options("bad", addr, Some((BANK_USER, "wrong password"))))
            .await
            .is_err(),
        "a wrong password is refused even where anonymous clients are allowed"
    );
    // MQTT 5 clients are served on the same port (an anonymous client reads bank state).
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args([
            "-V",
            "mqttv5",
            "-t",
            "lockerhub/v1/bank/+/state",
            "-C",
            "1",
            "-W",
            "10",
        ])
        .output()
        .expect("mosquitto_pub");
    assert!(
        out.status.success(),
        "MQTT 5 publish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_traffic_exits_cleanly_within_two_seconds() {
    let mut hub = Hub::start(|dir| site(dir, None, false));
    let addr = hub.mqtt();
    let (publisher, events) = connect(options("pub", addr, Some((BANK_USER, BANK_PASS))))
        .await
        .unwrap();
    let _poll = drive(events);
    let (subscriber, sub_events) = connect(options("sub", addr, Some(OBSERVER))).await.unwrap();
    subscriber
        .subscribe("lockerhub/v1/bank/lobby/door/+", QoS::AtLeastOnce)
        .await
        .unwrap();
    let _sub_poll = drive(sub_events);
    let load = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            if publisher
                .publish(
                    format!("lockerhub/v1/bank/lobby/door/{}", n % 4 + 1),
                    QoS::AtLeastOnce,
                    false,
                    br#"{"open": false}"#.to_vec(),
                )
                .await
                .is_err()
            {
                return;
            }
            n += 1;
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (status, took) = tokio::task::spawn_blocking(move || {
        let r = hub.terminate();
        (r, hub)
    })
    .await
    .map(|(r, _hub)| r)
    .unwrap();
    load.abort();
    assert_eq!(status.code(), Some(0), "exit code after SIGTERM");
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");
}

#[test]
fn demo_mode_starts_and_both_simulated_banks_connect() {
    // Ports 0: the defaults (1883, 8080) may be taken on a developer's machine.
    let hub = Hub::demo(&["--mqtt-port", "0", "--web-port", "0"]);
    let health = hub.wait_health(Duration::from_secs(15), |h| h["banks"]["online"] == 2);
    assert_eq!(health["banks"]["configured"], 2);
    assert_eq!(health["status"], "ok");
    assert!(health["version"].as_str().is_some());
    assert!(health["broker"]["clients_connected"].as_u64().unwrap() >= 2);
    let out = hub.wait_output("web page:", Duration::from_secs(5));
    assert!(out.contains("MQTT broker:"), "demo prints its URLs:\n{out}");
}

#[test]
fn demo_mode_falls_back_to_a_free_port_when_the_default_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let hub = Hub::demo(&["--mqtt-port", &port, "--web-port", "0"]);
    assert_ne!(hub.mqtt().port().to_string(), port);
    hub.wait_output(
        &format!("MQTT port {port} is taken"),
        Duration::from_secs(5),
    );
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/hub.example.toml");
    let out = Command::new(hub_binary())
        .args(["check-config", example])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("banks") && stdout.contains("compartments"),
        "{stdout}"
    );
}

#[test]
fn check_config_reports_every_mistake_with_line_and_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        r#"[site]
id = "s1"
nmae = "Typo site"

[mqtt]
listener = { bind = "0.0.0.0:70000" }

[[bank]]
id = "a"
driver = { kind = "mqtt" }
compartments = [{ doors = "1-2", size = "XXL" }]
"#,
    )
    .unwrap();
    let out = Command::new(hub_binary())
        .args(["check-config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for (line, key) in [(3, "nmae"), (6, "bind"), (11, "size")] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("broken.toml:{line}:")) && l.contains(key)),
            "no problem reported at line {line} for {key}:\n{err}"
        );
    }
}

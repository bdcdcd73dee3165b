//! Helpers shared by the integration tests: a link on a simulated PTY bus, and an in-process
//! MQTT broker.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use locker_drivers::boardsim::{SimBus, SimSettings};
use locker_drivers::link::{LinkSettings, SerialLine, Transport};

/// A simulated bus on a PTY in its own temporary directory.
pub struct PtyBus {
    pub sim: SimBus,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn pty_bus(settings: SimSettings) -> PtyBus {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ttyRS485");
    let sim = SimBus::on_pty(settings, &path).expect("simulated bus");
    PtyBus {
        sim,
        path,
        _dir: dir,
    }
}

/// Link settings for tests: short timeouts so failures are quick.
pub fn fast_link(path: &std::path::Path, baud: u32) -> LinkSettings {
    let mut s = LinkSettings::new(Transport::Serial(SerialLine::new(path, baud)));
    s.response_timeout = Duration::from_millis(200);
    s.drain_quiet = Duration::from_millis(50);
    s.reopen_backoff_min = Duration::from_millis(50);
    s.reopen_backoff_max = Duration::from_millis(200);
    s
}

/// Poll `f` until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let stop = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= stop {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Start rumqttd in-process (anonymous v4 listener on a free loopback port), the way the hub
/// configures it, and wait until it accepts connections.
pub fn start_broker() -> SocketAddr {
    let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port");
    let server = rumqttd::ServerSettings {
        name: "v4-test".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: 5_000,
            max_payload_size: 64 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 50,
            max_outgoing_packet_count: 200,
            max_segment_size: 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("v4-test".to_string(), server)])),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("test-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            let _ = broker.start();
        })
        .expect("broker thread");
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "broker did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    addr
}

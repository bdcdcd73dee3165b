//! Two hubs of one site and no cloud: hub A accepts (`[sync] listen`), hub B dials it through a
//! TCP proxy in the test that can cut the link. Both work while cut, both deliver into the same
//! compartment; restored, they converge and the conflict rule (`docs/state.md`) raises the same
//! alert on both. A hub without the token is refused.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use locker_tests::{base_config, Hub};
use serde_json::{json, Value};

const TOKEN: &str = "site-token-for-tests";

/// A TCP proxy to `to` that can drop every connection and refuse new ones (`cut`), and let
/// them through again (`restore`).
struct Proxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the dialer sees the connection close
                }
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                let mut list = o.lock().unwrap();
                for s in [&client, &server] {
                    if let Ok(clone) = s.try_clone() {
                        list.push(clone);
                    }
                }
                drop(list);
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy { addr, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

fn bank() -> &'static str {
    r#"
[[bank]]
id = "A"
name = "Lobby"
driver = { kind = "sim" }
compartments = [ { doors = "1-4", size = "M" } ]
"#
}

fn hub_a(dir: &std::path::Path) -> String {
    hub(dir, TOKEN, r#"listen = "127.0.0.1:0""#)
}

fn hub_b(dir: &std::path::Path, to: SocketAddr, token: &str) -> String {
    hub(dir, token, &format!(r#"hubs = ["ws://{to}/"]"#))
}

fn hub(dir: &std::path::Path, token: &str, link: &str) -> String {
    std::fs::write(dir.join("sync.token"), token).expect("token");
    base_config(dir)
        + &format!(
            r#"
[sync]
{link}
token_file = "{}/sync.token"
allow_plaintext = true
reply_timeout = "3s"
max_backoff = "1s"
"#,
            dir.display()
        )
        + bank()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn peers(hub: &Hub) -> Vec<Value> {
    hub.health()["sync"]["peers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn connected(hub: &Hub) -> bool {
    peers(hub)
        .iter()
        .any(|p| p["state"] == "connected" && p["caught_up"] == true)
}

fn residents(hub: &Hub) -> String {
    hub.api("GET", "/api/v1/residents", None).1.to_string()
}

fn conflicts(hub: &Hub) -> Vec<String> {
    let mut ids: Vec<String> = hub
        .alerts_of("conflict")
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

#[test]
fn two_hubs_converge_after_a_cut_link_and_both_raise_the_same_conflict() {
    let a = Hub::start(hub_a);
    let listen = a.sync.expect("hub A prints sync=<addr> in its ready line");
    let proxy = Proxy::start(listen);
    let b = Hub::start(|dir| hub_b(dir, proxy.addr, TOKEN));
    wait_until("the two hubs to connect", Duration::from_secs(20), || {
        connected(&a) && connected(&b)
    });

    // Live: a resident registered at A appears at B.
    let reply = a.command(
        "live-1",
        json!({"type": "register_resident", "resident": "r-live", "unit": "9"}),
    );
    assert_eq!(reply["type"], "accepted", "{reply}");
    wait_until("A's resident at B", Duration::from_secs(10), || {
        residents(&b).contains("r-live")
    });

    // Cut. Both deliver into door 1 of bank A for different residents.
    proxy.cut();
    wait_until("both to notice the cut", Duration::from_secs(10), || {
        !connected(&b)
    });
    let (pa, door_a) = a.deliver_via_sim("a", "101");
    let (pb, door_b) = b.deliver_via_sim("b", "102");
    assert_eq!(door_a, door_b, "both hubs chose the same compartment");
    assert!(!residents(&a).contains("r-102"));

    // Restore: both converge.
    proxy.restore();
    wait_until("the hubs to converge", Duration::from_secs(30), || {
        residents(&a).contains("r-102") && residents(&b).contains("r-101")
    });
    wait_until(
        "the conflict alert on both",
        Duration::from_secs(15),
        || {
            let (ca, cb) = (conflicts(&a), conflicts(&b));
            !ca.is_empty() && ca == cb
        },
    );
    // The same view of both parcels on both hubs.
    let parcel = |hub: &Hub, id: &str| -> Value {
        let (_, list) = hub.api("GET", "/api/v1/parcels", None);
        list.as_array()
            .and_then(|l| l.iter().find(|p| p["id"] == id).cloned())
            .unwrap_or(Value::Null)
    };
    for id in [&pa, &pb] {
        wait_until(
            "the same parcel state on both",
            Duration::from_secs(10),
            || {
                let (x, y) = (parcel(&a, id), parcel(&b, id));
                !x.is_null() && x["status"] == y["status"]
            },
        );
    }
}

#[test]
fn a_hub_without_the_token_is_refused() {
    let a = Hub::start(hub_a);
    let listen = a.sync.expect("sync address");
    let b = Hub::start(|dir| hub_b(dir, listen, "not the site's token"));
    wait_until("B to show refused", Duration::from_secs(15), || {
        peers(&b).iter().any(|p| p["state"] == "refused")
    });
    let reply = a.command(
        "r1",
        json!({"type": "register_resident", "resident": "r-secret", "unit": "1"}),
    );
    assert_eq!(reply["type"], "accepted");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!residents(&b).contains("r-secret"), "nothing crossed");
}

/// What reaches `listen` that is not a hub speaking the protocol: bytes that are not HTTP, an
/// upgrade without the token, and a hub with the token that sends garbage in a WebSocket frame.
/// Each is refused or closed, and the hub goes on (a second hub still syncs with it).
#[test]
fn garbage_at_the_sync_listener_is_refused_and_nothing_is_lost() {
    let a = Hub::start(hub_a);
    let listen = a.sync.expect("sync address");
    let read_all = |s: &mut TcpStream| -> Vec<u8> {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        got
    };

    // Not HTTP at all: the connection is dropped.
    let mut s = TcpStream::connect(listen).unwrap();
    s.write_all(b"\x16\x03\x01\x00\xffgarbage that is not an upgrade\r\n\r\n")
        .unwrap();
    let got = read_all(&mut s);
    assert!(!String::from_utf8_lossy(&got).contains("101"), "{got:?}");

    // An upgrade without the token: 401.
    let upgrade = |token: Option<&str>| {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        format!(
            "GET / HTTP/1.1\r\nHost: {listen}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n"
        )
    };
    let mut s = TcpStream::connect(listen).unwrap();
    s.write_all(upgrade(None).as_bytes()).unwrap();
    let got = String::from_utf8_lossy(&read_all(&mut s)).into_owned();
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");

    // With the token, then a binary frame of garbage: the hub answers with an error and closes.
    let mut s = TcpStream::connect(listen).unwrap();
    s.write_all(upgrade(Some(TOKEN)).as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let payload = b"\xff\x00 not CBOR";
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x82, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).unwrap();
    let got = read_all(&mut s);
    assert!(
        got.windows(5).any(|w| w == b"error"),
        "an error message before the close: {got:?}"
    );

    // The hub is fine: a real second hub syncs with it.
    let reply = a.command(
        "after",
        json!({"type": "register_resident", "resident": "r-after", "unit": "3"}),
    );
    assert_eq!(reply["type"], "accepted", "{reply}");
    let b = Hub::start(|dir| hub_b(dir, listen, TOKEN));
    wait_until("A's resident at B", Duration::from_secs(20), || {
        residents(&b).contains("r-after")
    });
}

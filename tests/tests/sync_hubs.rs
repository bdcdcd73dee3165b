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
    // B's building moves in 400 residents while the link is down: a catch-up message larger
    // than the engine merges in place, so A merges it on its merge thread.
    for i in 0..400 {
        let reply = b.command(
            &format!("move-in-{i}"),
            json!({"type": "register_resident", "resident": format!("r-new-{i:03}"), "unit": format!("{}", 500 + i)}),
        );
        assert_eq!(reply["type"], "accepted", "{reply}");
    }

    // Restore: both converge.
    proxy.restore();
    wait_until("the hubs to converge", Duration::from_secs(30), || {
        let at_a = residents(&a);
        at_a.contains("r-102") && at_a.contains("r-new-399") && residents(&b).contains("r-101")
    });
    wait_until(
        "the conflict alert on both",
        Duration::from_secs(15),
        || {
            let (ca, cb) = (conflicts(&a), conflicts(&b));
            !ca.is_empty() && ca == cb
        },
    );
    assert!(
        a.output()
            .contains("a large sync message prepared off the engine thread"),
        "the move-ins reached A through its merge thread"
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

/// `locker-hub <args>`: its exit status and everything it printed.
fn locker_hub(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(locker_tests::hub_binary())
        .args(args)
        .output()
        .expect("run locker-hub");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A hub with TLS `listen` and no token: only paired hubs reach it.
fn paired_a(dir: &std::path::Path) -> String {
    base_config(dir)
        + r#"
[sync]
listen = "127.0.0.1:0"
reply_timeout = "3s"
max_backoff = "1s"
"# + bank()
}

/// A hub that dials `url` as a paired hub.
fn paired_b(dir: &std::path::Path, url: &str) -> String {
    base_config(dir)
        + &format!(
            r#"
[sync]
hubs = ["{url}"]
reply_timeout = "3s"
max_backoff = "1s"
"#
        )
        + bank()
}

/// Pairing (#13 item 8): `locker-hub pair` on A prints a one-time code and A's fingerprint;
/// `init --join` on B with a wrong code, or pinned to a wrong fingerprint, gets nothing and
/// writes no store; with both right, B gets the site's key (a carrier code issued at A works at
/// B) and its own hub id, and the two sync over mutual TLS. The code works once. A hub that
/// trusts A but that A never paired is refused, and a client without a certificate too.
#[test]
fn paired_hubs_sync_over_mutual_tls_and_nobody_else_gets_in() {
    let a = Hub::start(paired_a);
    let listen = a.sync.expect("sync address");
    let url = format!("wss://{listen}");
    let a_config = a.dir.path().join("hub.toml");
    let (ok, printed) = locker_hub(&["pair", "--config", a_config.to_str().unwrap()]);
    assert!(ok, "{printed}");
    let field = |name: &str| -> String {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().next().unwrap_or_default().to_owned())
            .unwrap_or_else(|| panic!("no {name:?} in {printed}"))
    };
    let code = field("pairing code: ");
    let fingerprint = field("this hub's certificate: SHA-256 ");
    assert_eq!(fingerprint.len(), 64, "{printed}");

    let b_dir = tempfile::tempdir().unwrap();
    let b_config = b_dir.path().join("hub.toml");
    std::fs::write(&b_config, paired_b(b_dir.path(), &url)).unwrap();
    let join = |code: &str, fp: &str, config: &std::path::Path| {
        locker_hub(&[
            "init",
            "--join",
            &url,
            "--code",
            code,
            "--fingerprint",
            fp,
            "--config",
            config.to_str().unwrap(),
        ])
    };
    let store = b_dir.path().join("data/state.redb");

    // A wrong code: refused by A, one try used, nothing written at B.
    let (ok, said) = join("0000-0000-0000", &fingerprint, &b_config);
    assert!(
        !ok && said.contains("wrong pairing code (4 tries left)"),
        "{said}"
    );
    assert!(!store.exists());
    // The right code to a server that is not A (pinned to another fingerprint): TLS fails
    // before the code is sent, so the code is not spent.
    let (ok, said) = join(&code, &"ab".repeat(32), &b_config);
    assert!(
        !ok && said.contains("other than the one it was paired"),
        "{said}"
    );
    assert!(!store.exists());

    // Both right.
    let (ok, joined) = join(&code, &fingerprint, &b_config);
    assert!(ok, "{joined}");
    assert!(joined.contains("joined site \"test-site\""), "{joined}");
    let b_id = joined
        .split("as hub ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .expect("B's hub id")
        .to_owned();
    assert!(store.exists());
    // Once only: a third hub with the same code gets nothing.
    let c_dir = tempfile::tempdir().unwrap();
    let c_config = c_dir.path().join("hub.toml");
    std::fs::write(&c_config, paired_b(c_dir.path(), &url)).unwrap();
    let (ok, said) = join(&code, &fingerprint, &c_config);
    assert!(!ok && said.contains("no pairing is open"), "{said}");
    assert!(!c_dir.path().join("data/state.redb").exists());
    // And B cannot join twice into the store it now has.
    let (ok, said) = join(&code, &fingerprint, &b_config);
    assert!(!ok && said.contains("already has a store"), "{said}");

    // B starts and syncs with A over mutual TLS.
    let mut b = Hub::start_in(b_dir, |dir| paired_b(dir, &url), &[]);
    wait_until(
        "the paired hubs to connect",
        Duration::from_secs(20),
        || connected(&a) && connected(&b),
    );
    let (_, door) = a.deliver_via_sim("a", "101");
    assert!(door > 0);
    wait_until("A's resident at B", Duration::from_secs(15), || {
        residents(&b).contains("r-101")
    });
    // The carrier code was issued at A; only its hash under the site key crossed. It works at
    // B, so B has the site's key.
    wait_until("the carrier at B", Duration::from_secs(15), || {
        let (_, carriers) = b.api("GET", "/api/v1/carriers", None);
        carriers.to_string().contains("acme")
    });
    let reserved = b.command(
        "b-drop",
        json!({"type": "start_drop_off", "bank": "A", "carrier_code": "135790",
               "recipient": {"type": "unit", "unit": "101"}, "size": "m"}),
    );
    assert_eq!(reserved["type"], "reserved", "{reserved}");
    // Two hub ids, one site.
    let ids = |hub: &Hub| hub.wait_output("this hub's id", Duration::from_secs(1));
    assert_ne!(ids(&a), ids(&b));

    // A hub that pins A's certificate but that A never paired: refused (403), nothing crosses.
    let c = Hub::start_in(
        c_dir,
        |dir| {
            std::fs::create_dir_all(dir.join("data/tls")).unwrap();
            std::fs::write(
                dir.join("data/tls/paired-hubs.json"),
                json!([{"hub_id": "a", "sha256": fingerprint, "paired_ms": 0}]).to_string(),
            )
            .unwrap();
            paired_b(dir, &url)
        },
        &[],
    );
    wait_until("C to show refused", Duration::from_secs(20), || {
        peers(&c)
            .iter()
            .any(|p| p["state"] == "refused" && p["last_error"].to_string().contains("403"))
    });
    assert!(!residents(&c).contains("r-101"), "nothing crossed to C");
    // A client with no certificate at all (curl, an upgrade to / and to /pair with the right
    // fingerprint's hub): 401 before any document.
    let pairing = format!("Authorization: Pairing {code}");
    for path in ["/", "/pair"] {
        assert_eq!(upgrade(listen, path, None, &[&pairing]), "401", "{path}");
    }
    // With a certificate (C's) but a /pair request that is not one: no site or code is 400;
    // a made-up code, with no pairing open any more, is 401. Nothing is paired by it.
    let (cert, key) = (
        c.dir.path().join("data/tls/hub.crt"),
        c.dir.path().join("data/tls/hub.key"),
    );
    let pair = |headers: &[&str]| upgrade(listen, "/pair", Some((&cert, &key)), headers);
    assert_eq!(pair(&[]), "400");
    assert_eq!(
        pair(&[
            "X-Locker-Hub-Site: test-site",
            "X-Locker-Hub-Id: intruder",
            "Authorization: Pairing 0000-0000-0000"
        ]),
        "401"
    );
    let paired = std::fs::read_to_string(a.dir.path().join("data/tls/paired-hubs.json"))
        .expect("A's paired hubs");
    assert!(!paired.contains("intruder"), "{paired}");

    // Unpaired at A, B's next connection is refused.
    let a_config = a_config.to_str().unwrap();
    let (ok, said) = locker_hub(&["unpair", "nobody", "--config", a_config]);
    assert!(!ok && said.contains(&format!("paired: {b_id}")), "{said}");
    let (ok, said) = locker_hub(&["unpair", &b_id, "--config", a_config]);
    assert!(ok, "{said}");
    b.crash_and_restart();
    wait_until(
        "B to be refused once unpaired",
        Duration::from_secs(20),
        || {
            peers(&b)
                .iter()
                .any(|p| p["state"] == "refused" && p["last_error"].to_string().contains("403"))
        },
    );
}

/// A WebSocket upgrade to `listen` over TLS by curl (a client we did not write), with a client
/// certificate or none: the HTTP status it got.
fn upgrade(
    listen: SocketAddr,
    path: &str,
    identity: Option<(&std::path::Path, &std::path::Path)>,
    headers: &[&str],
) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-sk",
        "--http1.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-m",
        "10",
    ])
    .args(["-H", "Connection: Upgrade", "-H", "Upgrade: websocket"])
    .args(["-H", "Sec-WebSocket-Version: 13"])
    .args(["-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]);
    if let Some((cert, key)) = identity {
        cmd.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .arg(format!("https://{listen}{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

//! Sync with the JavaScript automerge-repo sync server, the peer a cloud runs
//! (`@automerge/automerge-repo` 2.5.6 with its websocket server adapter and nodefs storage,
//! pinned in tests/sync-js), against the real hub binary:
//! - deliveries made while the server is down reach its copy within 5 s of it starting, with the
//!   right content, and no secret (PIN, carrier code) is in anything it holds;
//! - a directory change written on the Node side reaches the hub; a parcel fact written there is
//!   kept, never folded, and raises `cloud_write_ignored`;
//! - the server restarts on its storage and the hub carries on;
//! - a wrong token shows `refused` in `/healthz`, and the hub keeps serving;
//! - remote requests run once, across a kill after the answer and one between the merge and
//!   the answer; "open all" is refused;
//! - failover to a second server on the same storage; `wss://` only to a trusted certificate;
//! - a week offline under a faked clock (libfaketime): both sides converge to identical heads,
//!   each cloud request is answered once, the conflict rules hold.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use locker_tests::{base_config, Hub};
use serde_json::{json, Value};

const TOKEN: &str = "cloud-token-for-tests";

fn peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sync-js")
}

/// The Node sync server, with its control channel.
struct JsServer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl JsServer {
    fn start(port: u16, storage: &Path, token: &str) -> JsServer {
        Self::start_with(port, storage, token, &[])
    }

    /// Serving `wss://` with this certificate and key.
    fn start_tls(port: u16, storage: &Path, token: &str, cert: &Path, key: &Path) -> JsServer {
        Self::start_with(
            port,
            storage,
            token,
            &["--tls".as_ref(), cert.as_os_str(), key.as_os_str()],
        )
    }

    fn start_with(port: u16, storage: &Path, token: &str, extra: &[&std::ffi::OsStr]) -> JsServer {
        assert!(
            peer_dir()
                .join("node_modules/@automerge/automerge-repo")
                .exists(),
            "run `npm ci` in tests/sync-js (tests/run does)"
        );
        let mut child = Command::new("node")
            .arg(peer_dir().join("server.mjs"))
            .arg(port.to_string())
            .arg(storage)
            .arg(token)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("the server's first line");
        assert!(line.starts_with("listening"), "{line}");
        JsServer {
            child,
            stdin,
            stdout,
        }
    }

    fn ask(&mut self, request: Value) -> Value {
        writeln!(self.stdin, "{request}").expect("write to the server");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the server's answer");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    fn keys(&mut self, doc: &str) -> Vec<String> {
        let answer = self.ask(json!({"cmd": "keys", "doc": doc}));
        answer["keys"]
            .as_array()
            .map(|k| {
                k.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for JsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn site(dir: &Path, port: u16, token: &str) -> String {
    site_with(dir, port, token, "")
}

fn site_with(dir: &Path, port: u16, token: &str, extra_sync: &str) -> String {
    site_on(dir, &[port], token, extra_sync)
}

fn site_on(dir: &Path, ports: &[u16], token: &str, extra_sync: &str) -> String {
    std::fs::write(dir.join("sync.token"), format!("{token}\n")).expect("token file");
    let endpoints: Vec<String> = ports
        .iter()
        .map(|p| format!("\"ws://127.0.0.1:{p}/\""))
        .collect();
    base_config(dir)
        + &format!(
            r#"
[sync]
endpoints = [{}]
token_file = "{}/sync.token"
allow_plaintext = true
max_backoff = "2s"
reply_timeout = "2s"
{extra_sync}

[[bank]]
id = "A"
name = "Lobby"
driver = {{ kind = "sim" }}
compartments = [ {{ doors = "1-4", size = "M" }} ]
"#,
            endpoints.join(", "),
            dir.display()
        )
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if ok() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn deliver(hub: &Hub, n: u32) -> String {
    hub.deliver_via_sim(&format!("d{n}"), &n.to_string()).0
}

fn sync_peer(hub: &Hub) -> Value {
    hub.health()["sync"]["peers"][0].clone()
}

/// The automerge document id of the hub's document `name` (from `/healthz`, which lists it a
/// moment after the step that made it has answered).
fn doc_id(hub: &Hub, name: &str) -> String {
    let started = Instant::now();
    loop {
        let health = hub.health();
        let found = health["sync"]["documents"]
            .as_array()
            .and_then(|docs| docs.iter().find(|d| d["name"] == name).cloned())
            .and_then(|d| d["url"].as_str().map(str::to_owned));
        if let Some(id) = found.as_deref().and_then(|u| u.strip_prefix("automerge:")) {
            return id.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no document {name} in {health}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The cloud application makes this month's requests document (as `docs/sync.md` says it
/// does): its month and document id.
fn create_requests_document(server: &mut JsServer) -> (locker_sync::Month, String) {
    let month = locker_sync::Month::of_ms(now_ms());
    let requests = locker_sync::document_id_string(
        &locker_sync::DocKey::Monthly(locker_sync::Family::Requests, month)
            .document_id("test-site"),
    );
    assert_eq!(
        server.ask(json!({"cmd": "create", "doc": requests}))["ok"],
        true
    );
    (month, requests)
}

fn month_doc(prefix: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    format!("{prefix}-{}", locker_sync::Month::of_ms(ms))
}

#[test]
fn the_js_sync_server_gets_what_was_delivered_while_it_was_down_and_its_directory_writes_reach_the_hub(
) {
    if !locker_tests::have("node") {
        panic!("node is required (tests/run installs it)");
    }
    let port = free_port();
    let storage = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(|dir| site(dir, port, TOKEN));

    // The cloud is down: the hub works and says so.
    let parcel = deliver(&hub, 101);
    wait_until("the link to back off", Duration::from_secs(10), || {
        sync_peer(&hub)["state"] == "backing_off"
    });
    let pin = {
        let (_, outbox) = hub.api("GET", "/api/v1/outbox", None);
        outbox.to_string()
    };

    // The server comes up: the delivery is in its copy within 5 s.
    let mut server = JsServer::start(port, storage.path(), TOKEN);
    let parcels = doc_id(&hub, &month_doc("parcels"));
    let directory = doc_id(&hub, "directory");
    let took = wait_until(
        "the delivery in the cloud's copy",
        Duration::from_secs(10),
        || !server.keys(&parcels).is_empty() && sync_peer(&hub)["caught_up"] == true,
    );
    assert!(
        took <= Duration::from_secs(5),
        "took {took:?}; the hub said:\n{}",
        hub.output()
    );
    let dump = server.ask(json!({"cmd": "dump"}));
    let facts = dump["docs"][&parcels]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(
        facts
            .values()
            .any(|f| f["kind"]["type"] == "delivery_completed"
                && f.to_string().contains(parcel.as_str())),
        "the cloud's copy has the delivery of {parcel}: {facts:?}\nthe hub said:\n{}",
        hub.output()
    );
    // Secrets never leave the hub: the carrier code, and nothing of the outbox's PINs.
    let text = dump.to_string();
    assert!(!text.contains("135790"), "a carrier code reached the cloud");
    for pin in pin
        .split(|c: char| !c.is_ascii_digit())
        .filter(|d| d.len() == 6)
    {
        assert!(
            !text.contains(&format!("\"{pin}\"")),
            "a PIN reached the cloud"
        );
    }
    assert_eq!(sync_peer(&hub)["state"], "connected");

    // The cloud registers a resident (a directory fact that needs no site key): it reaches the
    // hub while connected.
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let id = format!("{at:013}-cloud-{:012}", 1);
    let answer = server.ask(json!({"cmd": "put", "doc": directory, "key": id, "value": {
        "id": id, "at": at, "actor": {"type": "cloud"}, "bank": null, "door": null,
        "parcel": null,
        "kind": {"type": "resident_registered", "resident": "r-cloud", "unit": "12",
                 "accessible": false}}}));
    assert_eq!(answer["ok"], true, "{answer}");
    wait_until(
        "the cloud's resident at the hub",
        Duration::from_secs(10),
        || {
            let (_, residents) = hub.api("GET", "/api/v1/residents", None);
            residents.to_string().contains("r-cloud")
        },
    );

    // A parcel fact written by the cloud (it may not: it drives no door) is kept in the
    // document, not folded, and raises an alert.
    let forged = format!("{at:013}-cloud-{:012}", 2);
    let answer = server.ask(
        json!({"cmd": "put", "doc": parcels, "key": forged, "value": {
        "id": forged, "at": at, "actor": {"type": "cloud"}, "bank": "A", "door": 2,
        "parcel": "p-forged",
        "kind": {"type": "parcel_placed", "reservation": "r-forged", "tracking": null}}}),
    );
    assert_eq!(answer["ok"], true, "{answer}");
    wait_until(
        "the cloud_write_ignored alert",
        Duration::from_secs(10),
        || !hub.alerts_of("cloud_write_ignored").is_empty(),
    );
    let (_, parcels_now) = hub.api("GET", "/api/v1/parcels", None);
    assert!(!parcels_now.to_string().contains("p-forged"));

    // The server restarts on its storage: the hub reconnects, and a new delivery arrives.
    server.kill();
    wait_until("the link to notice", Duration::from_secs(10), || {
        sync_peer(&hub)["state"] != "connected"
    });
    let mut server = JsServer::start(port, storage.path(), TOKEN);
    let second = deliver(&hub, 102);
    wait_until(
        "the second delivery in the cloud's copy",
        Duration::from_secs(15),
        || {
            let all = server.ask(json!({"cmd": "dump"}));
            all["docs"][&parcels].as_object().is_some_and(|f| {
                f.values().any(|v| {
                    v["kind"]["type"] == "delivery_completed" && v.to_string().contains(&second)
                })
            })
        },
    );
    assert!(server.keys(&directory).iter().any(|k| k == &id));
}

#[test]
fn a_wrong_token_shows_refused_in_healthz_and_the_hub_keeps_serving() {
    let port = free_port();
    let storage = tempfile::tempdir().expect("tempdir");
    let _server = JsServer::start(port, storage.path(), "the right token");
    let hub = Hub::start(|dir| site(dir, port, "a wrong token"));
    wait_until("refused in /healthz", Duration::from_secs(10), || {
        sync_peer(&hub)["state"] == "refused"
    });
    let health = hub.health();
    let peer = &health["sync"]["peers"][0];
    assert!(
        peer["last_error"].as_str().unwrap_or("").contains("401"),
        "{peer}"
    );
    assert!(
        health["problems"].to_string().contains("refused"),
        "{health}"
    );
    // Nothing about the token in what the hub shows.
    assert!(!health.to_string().contains("a wrong token"));
    // Work goes on.
    let reply = hub.command(
        "r1",
        json!({"type": "register_resident", "resident": "r-1", "unit": "1"}),
    );
    assert_eq!(reply["type"], "accepted", "{reply}");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// The cloud asks the executing hub to open one door; the hub opens it once, also after being
/// killed with SIGKILL and restarted; "open all" is refused with an alert.
#[test]
fn a_remote_open_from_the_cloud_runs_once_even_across_a_kill() {
    let port = free_port();
    let storage = tempfile::tempdir().expect("tempdir");
    let mut server = JsServer::start(port, storage.path(), TOKEN);
    let mut hub = Hub::start(|dir| site_with(dir, port, TOKEN, "execute_requests = true"));
    wait_until("the link", Duration::from_secs(15), || {
        sync_peer(&hub)["caught_up"] == true
    });

    // The cloud application makes the month's requests document and files a request in it.
    let (month, requests) = create_requests_document(&mut server);
    let ask = |server: &mut JsServer, seq: u64, request: Value| {
        let at = now_ms();
        let id = format!("{at:013}-cloud-{seq:012}");
        let answer = server.ask(json!({"cmd": "put", "doc": requests, "key": id, "value": {
            "id": id, "at": at, "actor": {"type": "cloud"}, "bank": null, "door": null,
            "parcel": null, "kind": {"type": "remote_requested", "request": request}}}));
        assert_eq!(answer["ok"], true, "{answer}");
        id
    };
    ask(
        &mut server,
        1,
        json!({"type": "staff_open_door", "by": {"kind": "cloud"}, "bank": "A", "door": 2,
               "reason": "resident locked out, verified by phone"}),
    );
    wait_until("the remote open", Duration::from_secs(20), || {
        hub.compartment(2)["door_open"] == true
    });
    let opens_of_door_2 = |server: &mut JsServer| -> usize {
        let parcels = locker_sync::document_id_string(
            &locker_sync::DocKey::Monthly(locker_sync::Family::Parcels, month)
                .document_id("test-site"),
        );
        let dump = server.ask(json!({"cmd": "dump"}));
        dump["docs"][&parcels]
            .as_object()
            .map(|facts| {
                facts
                    .values()
                    .filter(|f| f["kind"]["type"] == "unlock_sent" && f["door"] == 2)
                    .count()
            })
            .unwrap_or(0)
    };
    wait_until("the cloud to see the open", Duration::from_secs(10), || {
        opens_of_door_2(&mut server) == 1
    });

    // Killed and restarted: it syncs the requests document again and opens nothing more.
    hub.crash_and_restart();
    wait_until(
        "the link after the restart",
        Duration::from_secs(15),
        || sync_peer(&hub)["caught_up"] == true,
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(opens_of_door_2(&mut server), 1, "opened once");

    // The cloud asks for a new code for a carrier: the hub draws it and queues it for the
    // address an admin registered; the cloud gets only the answer, never the code.
    let (status, _) = hub.api(
        "POST",
        "/api/v1/carriers",
        Some(r#"{"carrier": "fedex", "name": "FedEx", "email": "codes@fedex.example"}"#),
    );
    assert_eq!(status, 201);
    let id = ask(
        &mut server,
        3,
        json!({"type": "send_carrier_code", "by": {"kind": "cloud"}, "carrier": "fedex"}),
    );
    let carrier_code = |hub: &Hub| -> Option<String> {
        let (_, outbox) = hub.api("GET", "/api/v1/outbox", None);
        outbox.as_array().into_iter().flatten().find_map(|item| {
            let n = &item["notification"];
            (n["type"] == "carrier_code" && n["carrier"] == "fedex")
                .then(|| n["code"].as_str().map(str::to_owned))
                .flatten()
        })
    };
    wait_until("the code in the outbox", Duration::from_secs(20), || {
        carrier_code(&hub).is_some()
    });
    let code = carrier_code(&hub).unwrap_or_default();
    assert_eq!(code.len(), 8, "{code}");
    wait_until(
        "the answer in the cloud's copy",
        Duration::from_secs(20),
        || {
            answers(&mut server, &id)
                .iter()
                .any(|a| a["kind"]["reply"]["type"] == "carrier_code_sent")
        },
    );
    assert_eq!(answers(&mut server, &id).len(), 1);
    let dump = server.ask(json!({"cmd": "dump"})).to_string();
    assert!(!dump.contains(&code), "the carrier code reached the cloud");

    // "Open all" is never accepted from the cloud.
    ask(
        &mut server,
        2,
        json!({"type": "staff_open_bank", "by": {"kind": "cloud"}, "bank": "A", "reason": "x"}),
    );
    wait_until("the refusal alert", Duration::from_secs(20), || {
        !hub.alerts_of("remote_request_refused").is_empty()
    });
    assert_eq!(hub.compartment(1)["door_open"], false);
}

/// A SIGKILL exactly between the merge of a request and its answer: the JS server stops
/// answering for the directory, so the hub, which merged the requests document first, holds the
/// request while its catch-up waits (`docs/sync.md`); it is killed then. Its store has the
/// request and no answer; restarted, it answers it once and opens the door once.
#[test]
fn a_hub_killed_between_merging_a_request_and_answering_it_answers_it_once_after_the_restart() {
    let port = free_port();
    let storage = tempfile::tempdir().expect("tempdir");
    let mut server = JsServer::start(port, storage.path(), TOKEN);
    let mut hub = Hub::start(|dir| {
        site_with(dir, port, TOKEN, "execute_requests = true")
            .replace("reply_timeout = \"2s\"", "reply_timeout = \"30s\"")
    });
    let reply = hub.command(
        "reg",
        json!({"type": "register_resident", "resident": "r-1", "unit": "1"}),
    );
    assert_eq!(reply["type"], "accepted", "{reply}");
    let directory = doc_id(&hub, "directory");
    wait_until(
        "the directory in the cloud",
        Duration::from_secs(15),
        || sync_peer(&hub)["documents_pending"] == 0 && !server.keys(&directory).is_empty(),
    );
    std::thread::sleep(Duration::from_secs(1)); // the server's storage writes are debounced
    drop(server);
    wait_until("the link to drop", Duration::from_secs(10), || {
        sync_peer(&hub)["state"] != "connected"
    });

    // While they are apart, the hub registers someone (so its directory has news to send and
    // waits for the answer), and the cloud asks for door 3.
    let reply = hub.command(
        "reg-2",
        json!({"type": "register_resident", "resident": "r-2", "unit": "2"}),
    );
    assert_eq!(reply["type"], "accepted", "{reply}");
    let mut cloud = JsServer::start(free_port(), storage.path(), TOKEN);
    let (_, requests) = create_requests_document(&mut cloud);
    let (id, value) = cloud_fact(
        1,
        json!({"type": "remote_requested", "request": {"type": "staff_open_door",
               "by": {"kind": "cloud"}, "bank": "A", "door": 3, "reason": "courier locked out"}}),
    );
    let answer = cloud.ask(json!({"cmd": "put", "doc": requests, "key": id, "value": value}));
    assert_eq!(answer["ok"], true, "{answer}");
    std::thread::sleep(Duration::from_secs(1));
    drop(cloud);

    // The server is back but never answers for the directory: the request is merged and held.
    let seen = hub.output().len();
    let mut server = JsServer::start_with(
        port,
        storage.path(),
        TOKEN,
        &["--stall".as_ref(), directory.as_ref()],
    );
    wait_until("the request merged", Duration::from_secs(20), || {
        hub.output()[seen..].contains("merged from a sync peer")
    });
    assert_eq!(sync_peer(&hub)["caught_up"], false, "still catching up");
    assert_eq!(hub.compartment(3)["door_open"], false);

    let data = hub.dir.path().join("data");
    hub.crash_and_restart_with(|| {
        let (_, facts) = locker_tests::store::open_at(&data);
        let kinds: Vec<&Value> = facts.iter().map(|f| &f.0["kind"]).collect();
        assert!(
            kinds
                .iter()
                .any(|k| k["type"] == "remote_requested" && k["request"]["door"] == 3),
            "the request was merged before the kill"
        );
        assert!(
            !kinds.iter().any(|k| k["type"] == "answered"
                && k["request"] == format!("remote-{id}").as_str()),
            "and not answered"
        );
        assert_eq!(
            server.ask(json!({"cmd": "unstall", "doc": directory}))["ok"],
            true
        );
    });

    // Restarted: the request runs once.
    wait_until("the door to open", Duration::from_secs(30), || {
        answers(&mut server, &id).len() == 1
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(answers(&mut server, &id).len(), 1);
    let reply = &answers(&mut server, &id)[0]["kind"]["reply"];
    assert_eq!(reply["type"], "opening", "{reply}");
    let dump = server.ask(json!({"cmd": "dump"}));
    let opens = dump["docs"]
        .as_object()
        .into_iter()
        .flat_map(|docs| docs.values())
        .filter_map(|d| d.as_object())
        .flat_map(|facts| facts.values())
        .filter(|f| f["kind"]["type"] == "unlock_sent" && f["door"] == 3)
        .count();
    assert_eq!(opens, 1, "door 3 opened once");
}

/// Cloud failover: two JS servers on one storage directory, the hub configured with both. The
/// first is killed; the hub moves to the second, and the second has everything.
#[test]
fn the_hub_fails_over_to_the_second_server_and_nothing_is_lost() {
    let (p1, p2) = (free_port(), free_port());
    let storage = tempfile::tempdir().expect("tempdir");
    let mut first = JsServer::start(p1, storage.path(), TOKEN);
    let mut second = JsServer::start(p2, storage.path(), TOKEN);
    let hub = Hub::start(|dir| site_on(dir, &[p1, p2], TOKEN, ""));
    let state_of = |hub: &Hub, port: u16| -> Value {
        let health = hub.health();
        health["sync"]["peers"]
            .as_array()
            .and_then(|peers| {
                peers
                    .iter()
                    .find(|p| p["url"] == format!("ws://127.0.0.1:{port}/"))
                    .cloned()
            })
            .unwrap_or(Value::Null)
    };
    wait_until(
        "the link to the first server",
        Duration::from_secs(15),
        || state_of(&hub, p1)["state"] == "connected" && state_of(&hub, p1)["caught_up"] == true,
    );
    let before = deliver(&hub, 201);
    let parcels = doc_id(&hub, &month_doc("parcels"));
    let has = |server: &mut JsServer, parcel: &str| -> bool {
        let dump = server.ask(json!({"cmd": "dump"}));
        dump["docs"][&parcels]
            .as_object()
            .is_some_and(|f| f.values().any(|v| v.to_string().contains(parcel)))
    };
    wait_until(
        "the first delivery at the first server",
        Duration::from_secs(10),
        || has(&mut first, &before),
    );

    first.kill();
    wait_until(
        "the move to the second server",
        Duration::from_secs(20),
        || state_of(&hub, p2)["state"] == "connected",
    );
    let after = deliver(&hub, 202);
    wait_until(
        "both deliveries at the second server",
        Duration::from_secs(15),
        || has(&mut second, &before) && has(&mut second, &after),
    );
}

/// `wss://`: the server's certificate is checked. A hub given the CA that signed it (`ca_file`)
/// syncs; a hub without it never connects and says why in `/healthz`.
#[test]
fn wss_connects_only_to_a_server_whose_certificate_the_hub_trusts() {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = locker_tests::certs::write_test_pki(pki_dir.path());
    let port = free_port();
    let storage = tempfile::tempdir().expect("tempdir");
    let _server = JsServer::start_tls(port, storage.path(), TOKEN, &pki.cert_file, &pki.key_file);
    let config = |dir: &Path, ca: Option<&Path>| -> String {
        std::fs::write(dir.join("sync.token"), TOKEN).expect("token");
        let ca = ca
            .map(|c| format!("ca_file = \"{}\"\n", c.display()))
            .unwrap_or_default();
        base_config(dir)
            + &format!(
                "\n[sync]\nendpoints = [\"wss://localhost:{port}/\"]\ntoken_file = \"{}/sync.token\"\n\
                 max_backoff = \"2s\"\n{ca}",
                dir.display()
            )
    };
    let trusting = Hub::start(|dir| config(dir, Some(&pki.ca_file)));
    let doubting = Hub::start(|dir| config(dir, None));
    wait_until("the trusting hub to sync", Duration::from_secs(20), || {
        sync_peer(&trusting)["state"] == "connected" && sync_peer(&trusting)["caught_up"] == true
    });
    wait_until(
        "the doubting hub to say why",
        Duration::from_secs(20),
        || {
            sync_peer(&doubting)["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("certificate"))
        },
    );
    assert_ne!(sync_peer(&doubting)["state"], "connected");
}

/// A fact the cloud application writes, with an id under the author `cloud`.
fn cloud_fact(seq: u64, kind: Value) -> (String, Value) {
    let at = now_ms();
    let id = format!("{at:013}-cloud-{seq:012}");
    let value = json!({"id": id, "at": at, "actor": {"type": "cloud"}, "bank": null,
                       "door": null, "parcel": null, "kind": kind});
    (id, value)
}

/// The answers recorded for the remote request `id`, across every document the cloud holds.
fn answers(server: &mut JsServer, id: &str) -> Vec<Value> {
    let request = format!("remote-{id}");
    let dump = server.ask(json!({"cmd": "dump"}));
    dump["docs"]
        .as_object()
        .map(|docs| {
            docs.values()
                .filter_map(|d| d.as_object())
                .flat_map(|facts| facts.values())
                .filter(|f| f["kind"]["type"] == "answered" && f["kind"]["request"] == request)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn outbox_pin(hub: &Hub, parcel: &str) -> String {
    let (_, outbox) = hub.api("GET", "/api/v1/outbox", None);
    outbox
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| &item["notification"])
        .find(|n| {
            n["kind"] == "delivered"
                && n["parcels"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p == parcel))
        })
        .and_then(|n| n["pin"].as_str())
        .unwrap_or_else(|| panic!("no PIN for {parcel} in {outbox}"))
        .to_owned()
}

fn parcel(hub: &Hub, id: &str) -> Value {
    let (code, list) = hub.api("GET", "/api/v1/parcels", None);
    assert_eq!(code, 200, "{list}");
    list.as_array()
        .and_then(|l| l.iter().find(|p| p["id"] == id).cloned())
        .unwrap_or_else(|| panic!("no parcel {id} in {list}"))
}

/// A week offline under a controlled clock: the hub (its clock moved a day and an hour at a
/// time by libfaketime) works a week of drop-offs, pickups and desk parcels while the cloud,
/// unreachable, registers and deactivates residents and files a remote open and two
/// reassignments. On reconnect: the documents converge to identical heads on both sides; each
/// request is answered exactly once, also after a restart; the stale open is refused; the
/// pickup made with the old code beats the reassignment of that parcel (`docs/state.md`, rule
/// 1); the parcel of the resident the cloud moved out stays collectable.
#[test]
fn a_week_offline_converges_and_runs_each_cloud_request_once() {
    let port = free_port();
    let storage = tempfile::tempdir().expect("tempdir");
    let clock = locker_tests::faketime::FakeClock::new();
    let env = clock.env();
    let mut server = JsServer::start(port, storage.path(), TOKEN);
    let mut hub = Hub::start_with_env(
        |dir| {
            site_with(dir, port, TOKEN, "execute_requests = true")
                + "\n[policies]\nhold = { ambient = \"14d\" }\n"
        },
        &env,
    );

    // Day 0, connected: two parcels in the lockers, and residents for the week.
    let (kept, _) = hub.deliver_via_sim("p1", "1");
    let (taken, taken_door) = hub.deliver_via_sim("p2", "2");
    for r in ["3", "4"] {
        let reply = hub.command(
            &format!("reg-{r}"),
            json!({"type": "register_resident", "resident": format!("r-{r}"), "unit": r}),
        );
        assert_eq!(reply["type"], "accepted", "{reply}");
    }
    let directory = doc_id(&hub, "directory");
    wait_until("the cloud to have day 0", Duration::from_secs(15), || {
        sync_peer(&hub)["caught_up"] == true
            && server.keys(&directory).len() >= 4
            && sync_peer(&hub)["documents_pending"] == 0
    });
    std::thread::sleep(Duration::from_secs(1)); // the server's storage writes are debounced
    server.kill();

    // The cloud, which the hub cannot reach, writes on its side (a server on another port, on
    // the same storage): a resident moves in, one moves out, a door is to be opened, and both
    // lockered parcels are to be reassigned to the newcomer.
    let mut cloud = JsServer::start(free_port(), storage.path(), TOKEN);
    let (_, requests) = create_requests_document(&mut cloud);
    let mut put = |doc: &str, seq: u64, kind: Value| -> String {
        let (id, value) = cloud_fact(seq, kind);
        let answer = cloud.ask(json!({"cmd": "put", "doc": doc, "key": id, "value": value}));
        assert_eq!(answer["ok"], true, "{answer}");
        id
    };
    put(
        &directory,
        1,
        json!({"type": "resident_registered", "resident": "r-cloud", "unit": "12",
               "accessible": false}),
    );
    put(
        &directory,
        2,
        json!({"type": "resident_deactivated", "resident": "r-3"}),
    );
    let request = |r: Value| json!({"type": "remote_requested", "request": r});
    let open = put(
        &requests,
        3,
        request(
            json!({"type": "staff_open_door", "by": {"kind": "cloud"}, "bank": "A",
                       "door": 4, "reason": "resident locked out"}),
        ),
    );
    let reassign_kept = put(
        &requests,
        4,
        request(json!({"type": "reassign_parcels", "by": {"kind": "cloud"},
                       "parcels": [kept], "to": "r-cloud"})),
    );
    let reassign_taken = put(
        &requests,
        5,
        request(json!({"type": "reassign_parcels", "by": {"kind": "cloud"},
                       "parcels": [taken], "to": "r-cloud"})),
    );
    std::thread::sleep(Duration::from_secs(1));
    cloud.kill();

    // A week at the hub, a day and an hour at a time (a step the hub's clock takes at once).
    let taken_pin = outbox_pin(&hub, &taken);
    let mut at_desk_for_r3 = String::new();
    let mut yesterday: Vec<String> = Vec::new();
    for day in 1..=7u64 {
        clock.set(&format!("+{}h", 25 * day));
        let mut today = Vec::new();
        for (i, r) in ["r-3", "r-4"].into_iter().enumerate() {
            let reply = hub.command(
                &format!("desk-{day}-{i}"),
                json!({"type": "desk_check_in", "resident": r}),
            );
            assert_eq!(reply["type"], "checked_in", "day {day}: {reply}");
            let parcel = reply["parcel"].as_str().expect("parcel").to_owned();
            if r == "r-3" {
                at_desk_for_r3 = parcel.clone();
            }
            today.push(parcel);
        }
        // Yesterday's r-4 parcel is handed over; r-3's wait.
        if let Some(p) = yesterday.get(1) {
            let reply = hub.command(
                &format!("hand-{day}"),
                json!({"type": "desk_pickup", "parcels": [p]}),
            );
            assert_eq!(reply["type"], "accepted", "day {day}: {reply}");
        }
        if day == 2 {
            // The resident of the second parcel collects it with the code they were sent.
            let reply = hub.command(
                "pin-2",
                json!({"type": "pickup_by_pin", "bank": "A", "pin": taken_pin}),
            );
            assert_eq!(reply["type"], "opening", "{reply}");
            wait_until("the pickup", Duration::from_secs(15), || {
                let c = hub.compartment(taken_door);
                c["status"] == "free" && c["door_open"] == false
            });
        }
        if day == 4 {
            hub.deliver_via_sim("p3", "4");
        }
        yesterday = today;
    }
    assert_ne!(sync_peer(&hub)["state"], "connected");
    assert_eq!(parcel(&hub, &taken)["location"]["type"], "picked_up");

    // The cloud is back: both sides converge.
    let mut server = JsServer::start(port, storage.path(), TOKEN);
    wait_until("the hub to catch up", Duration::from_secs(30), || {
        sync_peer(&hub)["caught_up"] == true
            && sync_peer(&hub)["documents_pending"] == 0
            && [&open, &reassign_kept, &reassign_taken]
                .iter()
                .all(|id| answers(&mut server, id).len() == 1)
    });
    let outcome = |server: &mut JsServer, id: &str| answers(server, id)[0]["kind"]["reply"].clone();
    // The kept parcel is the newcomer's now.
    let moved = outcome(&mut server, &reassign_kept);
    assert_eq!(moved["type"], "accepted", "{moved}");
    assert_eq!(parcel(&hub, &kept)["resident"], "r-cloud");
    // The pickup with the old code stands; the reassignment of that parcel is refused.
    let refused = outcome(&mut server, &reassign_taken);
    assert_eq!(refused["code"], "not_allowed_now", "{refused}");
    assert_eq!(parcel(&hub, &taken)["location"]["type"], "picked_up");
    assert_eq!(parcel(&hub, &taken)["resident"], "r-2");
    // The open is a week old: refused with an alert, and door 4 never moved.
    let stale = outcome(&mut server, &open);
    assert_eq!(stale["code"], "not_allowed_now", "{stale}");
    assert!(!hub.alerts_of("remote_request_refused").is_empty());
    let dump = server.ask(json!({"cmd": "dump"}));
    let unlocks_of_door_4 = dump["docs"]
        .as_object()
        .into_iter()
        .flat_map(|docs| docs.values())
        .filter_map(|d| d.as_object())
        .flat_map(|facts| facts.values())
        .filter(|f| f["kind"]["type"] == "unlock_sent" && f["door"] == 4)
        .count();
    assert_eq!(unlocks_of_door_4, 0);
    assert_eq!(hub.compartment(4)["door_open"], false);
    // The directory: the newcomer is in, r-3 is moved out and their desk parcel still waits
    // for them.
    let (_, residents) = hub.api("GET", "/api/v1/residents", None);
    let r3 = residents
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["resident"] == "r-3")
        .cloned()
        .unwrap_or_else(|| panic!("r-3 in {residents}"));
    assert_eq!(r3["active"], false, "{r3}");
    assert!(residents.to_string().contains("r-cloud"));
    let reply = hub.command(
        "hand-r3",
        json!({"type": "desk_pickup", "parcels": [at_desk_for_r3]}),
    );
    assert_eq!(reply["type"], "accepted", "{reply}");
    wait_until(
        "the last handover in the cloud",
        Duration::from_secs(15),
        || {
            sync_peer(&hub)["documents_pending"] == 0
                && server
                    .ask(json!({"cmd": "dump"}))
                    .to_string()
                    .contains(&format!("remote-{reassign_kept}"))
        },
    );

    // Killed and restarted (a week ahead still): it reconnects and nothing runs again.
    hub.crash_and_restart();
    wait_until(
        "the link after the restart",
        Duration::from_secs(20),
        || sync_peer(&hub)["caught_up"] == true && sync_peer(&hub)["documents_pending"] == 0,
    );
    std::thread::sleep(Duration::from_secs(3));
    for id in [&open, &reassign_kept, &reassign_taken] {
        assert_eq!(answers(&mut server, id).len(), 1, "answered once: {id}");
    }

    // Identical heads: every document the hub holds, as the cloud holds it.
    hub.terminate();
    let (mut store, _) = locker_tests::store::open(&hub);
    let docs: Vec<_> = store
        .documents()
        .into_iter()
        .filter(|d| d.facts > 0)
        .collect();
    // The directory, and this month's parcels, alerts and requests at least.
    assert!(docs.len() >= 4, "{docs:?}");
    for doc in &docs {
        let mut ours: Vec<String> = store
            .heads(&doc.key)
            .expect("heads")
            .iter()
            .map(|h| h.to_string())
            .collect();
        ours.sort();
        let theirs = server.ask(json!({"cmd": "heads", "doc": doc.automerge_id}));
        assert_eq!(theirs["heads"], json!(ours), "{:?}: {theirs}", doc.key);
    }
}

//! Residents get their codes by email, from the real binary to aiosmtpd (a server we did not
//! write, `tests/peers/smtp_server.py`):
//! - a drop-off's email arrives with the PIN, a QR image that decodes (with rqrr, a decoder we
//!   did not write) and a `Message-ID` of the sender's domain; the QR code read from it opens
//!   the door; in Spanish for a resident who chose it, and that email's PIN opens theirs;
//! - the server says "try later": the hub tries again and it arrives once;
//! - the hub is killed with a full outbox while the server refuses: after the restart each
//!   notification arrives exactly once, and the outbox is empty;
//! - a server that refuses the address for good: the notification is failed, kept, not retried.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use locker_tests::{base_config, Hub};

const SECRET: &str = "gateway-shared-secret";
use serde_json::{json, Value};

/// A peer in Python from `tests/peers/` (in the venv `tests/run` makes), writing what it
/// receives to a directory as JSON files and steered by flag files there.
struct Peer {
    child: Child,
    port: u16,
    out: tempfile::TempDir,
}

impl Peer {
    fn start(script: &str, extra: &[&str]) -> Peer {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = root.join("target/pyenv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: tests/run makes the venv with aiosmtpd",
            python.display()
        );
        let out = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut child = Command::new(python)
            .arg(root.join("tests/peers").join(script))
            .arg(port.to_string())
            .arg(out.path())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the peer");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("its first line");
        assert!(line.starts_with("listening"), "{line}");
        Peer { child, port, out }
    }

    /// aiosmtpd.
    fn smtp() -> Peer {
        Peer::start("smtp_server.py", &[])
    }

    /// The gateway, checking signatures under `secret`.
    fn webhook(secret: &str) -> Peer {
        Peer::start("webhook_receiver.py", &[secret])
    }

    fn flag(&self, name: &str, on: bool) {
        let path = self.out.path().join(name);
        if on {
            std::fs::write(path, b"").expect("flag");
        } else {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Everything received so far, in order.
    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .expect("out dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// Emails to `address`.
    fn to(&self, address: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| {
                m["to"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|a| a == address))
            })
            .collect()
    }

    /// Webhook posts about `resident`.
    fn about(&self, resident: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| m["body"]["resident"]["id"] == resident)
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, port: u16) -> String {
    config_with(dir, Some(port), None)
}

/// The hub with email to `smtp` and/or a webhook to `webhook` (secret `SECRET`).
fn config_with(dir: &Path, smtp: Option<u16>, webhook: Option<u16>) -> String {
    let mut channels = String::new();
    if let Some(port) = smtp {
        channels += &format!(
            r#"
[notify.email]
server = "127.0.0.1"
port = {port}
tls = "none"
from = "Maple Court lockers <lockers@maple.example>"
"#
        );
    }
    if let Some(port) = webhook {
        std::fs::write(dir.join("webhook.secret"), format!("{SECRET}\n")).expect("secret");
        channels += &format!(
            r#"
[notify.webhook]
url = "http://127.0.0.1:{port}/notify"
secret_file = "{}/webhook.secret"
allow_plaintext = true
timeout = "2s"
"#,
            dir.display()
        );
    }
    base_config(dir)
        + &format!(
            r#"
[notify]
retry_wait = "1s"
max_retry_wait = "2s"
per_minute = 600
max_attempts = 20
{channels}
[[bank]]
id = "A"
driver = {{ kind = "sim", latency = "0s" }}
compartments = [{{ doors = "1-6", size = "M" }}]
"#
        )
}

fn wait_until<T>(what: &str, timeout: Duration, mut ok: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = ok() {
            return v;
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Registers resident `r-{unit}` with an email address, and delivers a parcel to them.
fn deliver_to(hub: &Hub, unit: &str, language: &str) -> (String, String) {
    let email = format!("resident{unit}@maple.example");
    let reply = hub.command(
        &format!("contact-{unit}"),
        json!({"type": "register_resident", "resident": format!("r-{unit}"), "unit": unit,
               "contact": {"email": email, "language": language,
                           "phone": format!("+1555000{unit:0>4}")}}),
    );
    assert_eq!(reply["type"], "accepted", "{reply}");
    let (parcel, _) = hub.deliver_via_sim(&format!("n{unit}"), unit);
    (parcel, email)
}

fn decode_qr(image: &Value) -> String {
    let bytes = data_encoding::BASE64
        .decode(image["base64"].as_str().expect("base64").as_bytes())
        .expect("base64");
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("the QR code decodes").1
}

fn outbox(hub: &Hub) -> Vec<Value> {
    let (code, list) = hub.api("GET", "/api/v1/outbox", None);
    assert_eq!(code, 200, "{list}");
    list.as_array().cloned().unwrap_or_default()
}

#[test]
fn a_residents_email_carries_the_pin_and_a_qr_code_that_open_the_door() {
    let smtp = Peer::smtp();
    let hub = Hub::start(|dir| config(dir, smtp.port));
    hub.register_unit_7_and_acme();
    let (parcel, email) = deliver_to(&hub, "7", "en");
    let mail = wait_until("the email", Duration::from_secs(20), || {
        smtp.to(&email).into_iter().next()
    });
    assert_eq!(mail["subject"], "Your parcel is in the lockers", "{mail}");
    assert!(
        mail["from"]
            .as_str()
            .unwrap_or("")
            .contains("lockers@maple.example"),
        "{mail}"
    );
    let message_id = mail["message_id"].as_str().expect("a Message-ID");
    assert!(
        message_id.starts_with('<') && message_id.ends_with("@maple.example>"),
        "{message_id}"
    );
    let text = mail["text"].as_str().expect("a plain-text part");
    assert!(text.contains(&parcel), "{text}");
    let pin: String = text
        .lines()
        .find_map(|l| l.strip_prefix("Your pickup code (PIN): "))
        .expect("the PIN line")
        .trim()
        .to_owned();
    assert_eq!(pin.len(), 6, "{pin}");
    assert!(mail["html"].as_str().unwrap_or("").contains(&pin));
    assert!(mail["html"].as_str().unwrap_or("").contains("cid:qr"));
    let images = mail["images"].as_array().expect("images");
    assert_eq!(images.len(), 1, "{mail}");
    assert_eq!(images[0]["cid"], "qr");
    let token = decode_qr(&images[0]);
    assert!(!token.is_empty());
    // Sent: gone from the outbox, codes and all.
    wait_until("the outbox to empty", Duration::from_secs(10), || {
        outbox(&hub).is_empty().then_some(())
    });

    // The QR code read from the email opens the door, as the kiosk's camera would read it.
    let reply = hub.command(
        "qr-7",
        json!({"type": "pickup_by_qr", "bank": "A", "token": token}),
    );
    assert_eq!(reply["type"], "opening", "{reply}");
    assert_eq!(reply["parcels"][0], parcel.as_str(), "{reply}");

    // In Spanish for a resident who chose it; the PIN from that email opens their door.
    let (parcel, email) = deliver_to(&hub, "8", "es");
    let mail = wait_until("the Spanish email", Duration::from_secs(20), || {
        smtp.to(&email).into_iter().next()
    });
    assert_eq!(
        mail["subject"], "Su paquete está en los casilleros",
        "{mail}"
    );
    let pin = mail["text"]
        .as_str()
        .unwrap_or("")
        .lines()
        .find_map(|l| l.strip_prefix("Su código (PIN): "))
        .expect("the PIN line")
        .trim()
        .to_owned();
    let reply = hub.command(
        "pin-8",
        json!({"type": "pickup_by_pin", "bank": "A", "pin": pin}),
    );
    assert_eq!(reply["type"], "opening", "{reply}");
    assert_eq!(reply["parcels"][0], parcel.as_str(), "{reply}");
}

#[test]
fn a_busy_server_gets_it_later_and_a_killed_hub_sends_each_notification_once() {
    let smtp = Peer::smtp();
    let mut hub = Hub::start(|dir| config(dir, smtp.port));
    hub.register_unit_7_and_acme();
    smtp.flag("refuse", true);
    let (_, first) = deliver_to(&hub, "7", "en");
    wait_until("a refused try", Duration::from_secs(20), || {
        hub.output().contains("try again later").then_some(())
    });
    assert!(smtp.to(&first).is_empty());
    let (_, second) = deliver_to(&hub, "8", "en");
    let waiting = outbox(&hub);
    assert_eq!(waiting.len(), 2);
    let tokens: Vec<String> = waiting
        .iter()
        .filter_map(|i| i["notification"]["qr"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(tokens.len(), 2);

    // Killed with both in the outbox. On disk meanwhile, their codes are sealed: the file holds
    // neither token in the plain. The server takes mail again; the restarted hub sends them.
    let state = hub.dir.path().join("data/state.redb");
    hub.crash_and_restart_with(|| {
        let bytes = std::fs::read(&state).expect("state.redb");
        for token in &tokens {
            assert!(
                !contains(&bytes, token),
                "a QR token in the plain in state.redb"
            );
        }
    });
    smtp.flag("refuse", false);
    for address in [&first, &second] {
        wait_until(
            "the email after the restart",
            Duration::from_secs(30),
            || (!smtp.to(address).is_empty()).then_some(()),
        );
    }
    wait_until("the outbox to empty", Duration::from_secs(10), || {
        outbox(&hub).is_empty().then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let mut ids: Vec<String> = smtp
        .messages()
        .iter()
        .filter_map(|m| m["message_id"].as_str().map(str::to_owned))
        .collect();
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "each Message-ID once: {ids:?}");
    assert_eq!(all, 2, "{:?}", smtp.messages());
}

#[test]
fn an_address_the_server_refuses_for_good_is_failed_and_kept() {
    let smtp = Peer::smtp();
    let hub = Hub::start(|dir| config(dir, smtp.port));
    hub.register_unit_7_and_acme();
    smtp.flag("reject", true);
    deliver_to(&hub, "7", "en");
    wait_until("the permanent refusal", Duration::from_secs(20), || {
        hub.output().contains("no such user").then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    smtp.flag("reject", false);
    // Not tried again: it stays in the outbox, failed, and nothing arrives.
    std::thread::sleep(Duration::from_secs(3));
    assert!(smtp.messages().is_empty());
    assert_eq!(outbox(&hub).len(), 1);
    let refusals = hub.output().matches("no such user").count();
    assert_eq!(refusals, 1, "tried once:\n{}", hub.output());
}

#[test]
fn the_gateway_gets_a_signed_body_and_failures_are_retried_or_failed_as_the_status_says() {
    let gateway = Peer::webhook(SECRET);
    let hub = Hub::start(|dir| config_with(dir, None, Some(gateway.port)));
    hub.register_unit_7_and_acme();

    // A 500 first: tried again, then taken.
    gateway.flag("fail500", true);
    let (parcel, _) = deliver_to(&hub, "7", "en");
    wait_until("a 500", Duration::from_secs(20), || {
        hub.output()
            .contains("500 Internal Server Error")
            .then_some(())
    });
    gateway.flag("fail500", false);
    let post = wait_until("the post", Duration::from_secs(20), || {
        gateway.about("r-7").into_iter().next()
    });
    assert_eq!(post["signature_ok"], true, "{post}");
    assert_eq!(post["fresh"], true, "{post}");
    assert_eq!(post["schema_errors"], json!([]), "{post}");
    let body = &post["body"];
    assert_eq!(post["id"], body["id"]);
    assert_eq!(body["kind"], "delivered");
    assert_eq!(body["site"], "test-site");
    assert_eq!(body["parcels"], json!([parcel]));
    assert_eq!(body["resident"]["phone"], "+15550000007");
    let pin = body["pin"].as_str().expect("the PIN").to_owned();
    assert!(body["text"].as_str().unwrap_or("").contains(&pin));
    // The PIN the gateway got opens the door.
    let reply = hub.command(
        "pin-7",
        json!({"type": "pickup_by_pin", "bank": "A", "pin": pin}),
    );
    assert_eq!(reply["type"], "opening", "{reply}");
    // The resident hears of the pickup (before the gateway is made to fail below).
    wait_until("the picked-up post", Duration::from_secs(20), || {
        gateway
            .about("r-7")
            .into_iter()
            .find(|m| m["body"]["kind"] == "picked_up")
    });

    // No answer: tried again once the gateway answers.
    gateway.flag("hang", true);
    deliver_to(&hub, "8", "en");
    wait_until("a timeout", Duration::from_secs(20), || {
        hub.output()
            .contains("no answer from the gateway")
            .then_some(())
    });
    gateway.flag("hang", false);
    wait_until(
        "the post after the timeout",
        Duration::from_secs(40),
        || gateway.about("r-8").into_iter().next(),
    );

    // A 404: the gateway will not take it however often it is sent. Failed and kept.
    gateway.flag("fail404", true);
    deliver_to(&hub, "9", "en");
    wait_until("a 404", Duration::from_secs(20), || {
        hub.output().contains("404 Not Found").then_some(())
    });
    gateway.flag("fail404", false);
    std::thread::sleep(Duration::from_secs(4));
    assert!(gateway.about("r-9").is_empty());
    assert_eq!(
        hub.output().matches("404 Not Found").count(),
        1,
        "tried once"
    );
    assert_eq!(outbox(&hub).len(), 1);
}

#[test]
fn with_email_and_a_webhook_a_channel_that_took_it_is_not_sent_again() {
    let smtp = Peer::smtp();
    let gateway = Peer::webhook(SECRET);
    let hub = Hub::start(|dir| config_with(dir, Some(smtp.port), Some(gateway.port)));
    hub.register_unit_7_and_acme();
    gateway.flag("fail500", true);
    let (_, email) = deliver_to(&hub, "7", "en");
    wait_until("the email", Duration::from_secs(20), || {
        (!smtp.to(&email).is_empty()).then_some(())
    });
    wait_until("two 500s", Duration::from_secs(20), || {
        (hub.output().matches("500 Internal Server Error").count() >= 2).then_some(())
    });
    gateway.flag("fail500", false);
    wait_until("the post", Duration::from_secs(20), || {
        gateway.about("r-7").into_iter().next()
    });
    wait_until("the outbox to empty", Duration::from_secs(10), || {
        outbox(&hub).is_empty().then_some(())
    });
    assert_eq!(smtp.to(&email).len(), 1, "the email went once");
}

/// Every file under `dir`, as bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn pin_in(mail: &Value, prefix: &str) -> Option<String> {
    mail["text"]
        .as_str()?
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|p| p.trim().to_owned())
}

/// The reminder carries the code that works (the PIN kept sealed, the QR token signed again),
/// staff resend it, and once the parcel is collected no code is left on the hub's disk: not in
/// a table, not in a page redb freed (the outbox and the kept PINs are sealed at rest).
#[test]
fn a_reminder_and_a_resend_carry_the_code_and_none_is_left_on_disk_after_the_pickup() {
    let smtp = Peer::smtp();
    let mut hub = Hub::start(|dir| config(dir, smtp.port) + "\n[policies]\nreminders = [\"4s\"]\n");
    hub.register_unit_7_and_acme();
    let (parcel, email) = deliver_to(&hub, "7", "en");
    let first = wait_until("the delivery email", Duration::from_secs(20), || {
        smtp.to(&email).into_iter().next()
    });
    let pin = pin_in(&first, "Your pickup code (PIN): ").expect("a PIN");
    let token = decode_qr(&first["images"][0]);
    let reminder = wait_until("the reminder", Duration::from_secs(30), || {
        smtp.to(&email)
            .into_iter()
            .find(|m| m["subject"] == "Reminder: your parcel is waiting")
    });
    assert_eq!(
        pin_in(&reminder, "Your pickup code (PIN): ").as_deref(),
        Some(pin.as_str())
    );
    assert_eq!(decode_qr(&reminder["images"][0]), token, "the same QR code");

    // Staff resend it (the resident lost both).
    let reply = hub.command("resend-7", json!({"type": "resend_code", "parcel": parcel}));
    assert_eq!(reply["type"], "accepted", "{reply}");
    wait_until("the resent email", Duration::from_secs(20), || {
        (smtp.to(&email).len() >= 3).then_some(())
    });
    let resent = smtp.to(&email).pop().unwrap_or_default();
    assert_eq!(
        pin_in(&resent, "Your pickup code (PIN): ").as_deref(),
        Some(pin.as_str())
    );

    // Collected with the PIN.
    let reply = hub.command(
        "pin-7",
        json!({"type": "pickup_by_pin", "bank": "A", "pin": pin}),
    );
    assert_eq!(reply["type"], "opening", "{reply}");
    wait_until("the pickup", Duration::from_secs(15), || {
        (hub.compartment(reply["doors"][0].as_u64().unwrap_or(0))["status"] == "free").then_some(())
    });
    // The step after the pickup erased the kept PIN; a last one to be sure it is on disk.
    hub.command(
        "after",
        json!({"type": "register_resident", "resident": "r-99", "unit": "99"}),
    );
    hub.terminate();
    let (store, _) = locker_tests::store::open(&hub);
    let kept = store.local_prefixed("code/").expect("the local table");
    assert!(kept.is_empty(), "a kept PIN outlived its parcel: {kept:?}");
    drop(store);
    for (path, bytes) in files_under(hub.dir.path()) {
        if path.extension().is_some_and(|e| e == "toml") {
            continue;
        }
        assert!(
            !contains(&bytes, &token),
            "the QR token in {}",
            path.display()
        );
        for form in [format!("\"pin\":\"{pin}\""), format!("PIN): {pin}")] {
            assert!(!contains(&bytes, &form), "{form} in {}", path.display());
        }
    }
}

/// What staff see: a notification the server refused for good shows `failed` with the reason in
/// the API, on the Notifications page and on its parcel's page (never its code); a server
/// refusing everything for longer than `alert_after` raises `notifications_failing`, which
/// clears once mail goes out; "Try again now" sends the failed one.
#[test]
fn staff_see_what_is_stuck_and_why_and_try_again_and_a_failing_channel_alerts() {
    use locker_tests::page::{between, login, req};
    let smtp = Peer::smtp();
    let hub = Hub::start(|dir| {
        config(dir, smtp.port).replace("[notify]\n", "[notify]\nalert_after = \"2s\"\n")
    });
    hub.register_unit_7_and_acme();
    let (code, body) = hub.api(
        "POST",
        "/api/v1/users",
        Some(r#"{"name":"bob","role":"staff","password":"bobs long password"}"#),
    );
    assert_eq!(code, 201, "{body}");
    let (cookie, csrf) = login(hub.web, "bob", "bobs%20long%20password").expect("bob signs in");

    smtp.flag("reject", true);
    let (parcel, email) = deliver_to(&hub, "7", "en");
    let item = wait_until("the failed record", Duration::from_secs(20), || {
        outbox(&hub)
            .into_iter()
            .find(|i| i["delivery"]["state"] == "failed")
    });
    assert!(
        item["delivery"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("no such user"),
        "{item}"
    );
    assert_eq!(item["delivery"]["attempts"], 1);
    let pin = item["notification"]["pin"]
        .as_str()
        .expect("the admin API shows the code")
        .to_owned();

    let (status, _, page) = req(hub.web, "GET", "/notifications", Some(&cookie), None, "");
    assert_eq!(status, 200);
    assert!(
        page.contains("failed: the mail server refused it"),
        "{page}"
    );
    assert!(page.contains("Fix the contact"), "{page}");
    assert!(!page.contains(&pin), "staff pages never show a code");
    let (_, _, parcel_page) = req(
        hub.web,
        "GET",
        &format!("/parcels/{parcel}"),
        Some(&cookie),
        None,
        "",
    );
    assert!(
        parcel_page.contains("failed: the mail server refused it"),
        "{parcel_page}"
    );
    assert!(!parcel_page.contains(&pin));

    // The server refuses everything now (a temporary refusal) for longer than alert_after.
    smtp.flag("reject", false);
    smtp.flag("refuse", true);
    deliver_to(&hub, "8", "en");
    wait_until("the alert", Duration::from_secs(30), || {
        (!hub.alerts_of("notifications_failing").is_empty()).then_some(())
    });

    // It takes mail again; staff try the failed one again.
    smtp.flag("refuse", false);
    let id = item["id"].as_str().expect("id").to_owned();
    let retry = between(&page, &format!("/notifications/{id}/retry"), "</form>").to_owned();
    assert!(retry.contains("csrf"), "{retry}");
    let (status, headers, _) = req(
        hub.web,
        "POST",
        &format!("/notifications/{id}/retry"),
        Some(&cookie),
        Some(&format!("csrf={csrf}")),
        "",
    );
    assert_eq!(status, 303, "{headers}");
    wait_until("the failed one sent", Duration::from_secs(20), || {
        (!smtp.to(&email).is_empty()).then_some(())
    });
    wait_until("the alert to clear", Duration::from_secs(20), || {
        hub.alerts_of("notifications_failing")
            .is_empty()
            .then_some(())
    });
    wait_until("the outbox to empty", Duration::from_secs(20), || {
        outbox(&hub).is_empty().then_some(())
    });
}

/// A property's own template is used for its residents' email; a broken one is a `check-config`
/// error with its file and line.
#[test]
fn a_propertys_template_is_used_and_a_broken_one_fails_check_config_with_its_line() {
    let smtp = Peer::smtp();
    let hub = Hub::start(|dir| {
        let templates = dir.join("templates");
        std::fs::create_dir(&templates).expect("mkdir");
        std::fs::write(
            templates.join("delivered.en.j2"),
            "{% block subject %}Maple Court: unit {{ resident.unit }} has mail{% endblock %}\n\
             {% block text %}Code {{ pin }} for {{ parcels | length }} parcel(s).{% endblock %}\n\
             {% block html %}<p>Code <b>{{ pin }}</b></p>{% if qr %}<img src=\"cid:qr\">{% endif %}{% endblock %}\n",
        )
        .expect("template");
        config(dir, smtp.port).replace(
            "[notify]\n",
            &format!("[notify]\ntemplates = \"{}\"\n", templates.display()),
        )
    });
    hub.register_unit_7_and_acme();
    let (_, email) = deliver_to(&hub, "7", "en");
    let mail = wait_until("the email", Duration::from_secs(20), || {
        smtp.to(&email).into_iter().next()
    });
    assert_eq!(mail["subject"], "Maple Court: unit 7 has mail", "{mail}");
    assert!(
        mail["text"]
            .as_str()
            .unwrap_or("")
            .contains("for 1 parcel(s)."),
        "{mail}"
    );
    assert_eq!(mail["images"].as_array().map(Vec::len), Some(1));

    // Broken on line 2: check-config names the file and the line, and fails.
    let broken = hub.dir.path().join("templates/reminder.es.j2");
    std::fs::write(
        &broken,
        "{% block subject %}Recordatorio{% endblock %}\n{% block text %}{{ pin }{% endblock %}\n",
    )
    .expect("broken template");
    let out = Command::new(locker_tests::hub_binary())
        .arg("check-config")
        .arg(hub.dir.path().join("hub.toml"))
        .output()
        .expect("check-config");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains(&format!("{}:2:", broken.display())), "{said}");
}

#[test]
fn a_second_person_is_told_too_each_resident_chooses_the_channels_and_a_pickup_is_told() {
    let smtp = Peer::smtp();
    let gateway = Peer::webhook(SECRET);
    let hub = Hub::start(|dir| config_with(dir, Some(smtp.port), Some(gateway.port)));
    hub.register_unit_7_and_acme();
    let register = |unit: &str, contact: Value| {
        let reply = hub.command(
            &format!("contact-{unit}"),
            json!({"type": "register_resident", "resident": format!("r-{unit}"), "unit": unit,
                   "contact": contact}),
        );
        assert_eq!(reply["type"], "accepted", "{reply}");
    };
    // Both channels, and a partner told too.
    register(
        "7",
        json!({"email": "ann7@maple.example", "phone": "+15550000007",
               "secondary_email": "partner7@maple.example", "secondary_phone": "+15550000077"}),
    );
    // Text/push only; and no messages at all.
    register(
        "8",
        json!({"email": "bo8@maple.example", "notify": "webhook"}),
    );
    register("9", json!({"email": "cy9@maple.example", "notify": "none"}));
    // A bad choice is refused with what is allowed.
    let reply = hub.command(
        "contact-bad",
        json!({"type": "register_resident", "resident": "r-9", "unit": "9",
               "contact": {"notify": "pigeon"}}),
    );
    assert_eq!(reply["type"], "rejected", "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap_or("")
            .contains("both, email, webhook, none"),
        "{reply}"
    );

    let (parcel7, _) = hub.deliver_via_sim("n7", "7");
    hub.deliver_via_sim("n8", "8");
    hub.deliver_via_sim("n9", "9");
    let mail = wait_until("the email to both", Duration::from_secs(20), || {
        smtp.to("partner7@maple.example").into_iter().next()
    });
    let to = mail["to"].as_array().cloned().unwrap_or_default();
    assert!(
        to.contains(&json!("ann7@maple.example")),
        "one message to both: {mail}"
    );
    let post = wait_until("r-7's post", Duration::from_secs(20), || {
        gateway.about("r-7").into_iter().next()
    });
    assert_eq!(
        post["body"]["resident"]["secondary_phone"], "+15550000077",
        "{post}"
    );
    wait_until("r-8's post", Duration::from_secs(20), || {
        gateway.about("r-8").into_iter().next()
    });
    wait_until("the outbox to empty", Duration::from_secs(20), || {
        outbox(&hub).is_empty().then_some(())
    });
    assert!(
        smtp.to("bo8@maple.example").is_empty(),
        "r-8 asked for text only"
    );
    assert!(
        smtp.to("cy9@maple.example").is_empty(),
        "r-9 asked for nothing"
    );
    assert!(gateway.about("r-9").is_empty(), "r-9 asked for nothing");
    assert!(hub.output().contains("the resident asked for no messages"));

    // The pickup with the emailed PIN: the resident (and the partner) hear of it at once.
    let pin = pin_in(&mail, "Your pickup code (PIN): ").expect("the PIN");
    let reply = hub.command(
        "pin-7",
        json!({"type": "pickup_by_pin", "bank": "A", "pin": pin}),
    );
    assert_eq!(reply["type"], "opening", "{reply}");
    let told = wait_until("the picked-up email", Duration::from_secs(20), || {
        smtp.to("ann7@maple.example")
            .into_iter()
            .find(|m| m["subject"] == "Your parcel was picked up")
    });
    assert!(
        told["text"].as_str().unwrap_or("").contains(&parcel7),
        "{told}"
    );
    assert!(
        told["images"].as_array().is_none_or(|i| i.is_empty()),
        "no code in it: {told}"
    );
    let post = wait_until("the picked-up post", Duration::from_secs(20), || {
        gateway
            .about("r-7")
            .into_iter()
            .find(|m| m["body"]["kind"] == "picked_up")
    });
    assert_eq!(post["body"]["pin"], Value::Null, "{post}");
}

/// A carrier's new code (issue #13: the cloud may ask for one, the hub draws it): staff or the
/// cloud ask, the hub emails it to the address an admin registered, and nobody else sees it:
/// not the caller's answer, not the outbox listing's caller after it went, not a log line, not a
/// file on disk. The emailed code opens a drop-off. A carrier without an address is refused.
#[test]
fn a_carriers_new_code_is_emailed_to_its_address_only_and_opens_a_drop_off() {
    let smtp = Peer::smtp();
    let mut hub = Hub::start(|dir| config(dir, smtp.port));
    hub.register_unit_7_and_acme();
    let (code, _) = hub.api(
        "POST",
        "/api/v1/carriers",
        Some(r#"{"carrier": "fedex", "name": "FedEx", "email": "codes@fedex.example"}"#),
    );
    assert_eq!(code, 201);
    // Both, or neither: a code that is sent is drawn by the hub.
    let (status, body) = hub.api(
        "POST",
        "/api/v1/carriers/fedex/codes",
        Some(r#"{"send": true, "code": "12345678"}"#),
    );
    assert_eq!(status, 422, "{body}");
    // Acme has no address: refused with the reason, nothing drawn.
    let (status, body) = hub.api(
        "POST",
        "/api/v1/carriers/acme/codes",
        Some(r#"{"send": true}"#),
    );
    assert_ne!(status, 201, "{body}");
    assert!(
        body.to_string().contains("no email address"),
        "{status} {body}"
    );

    let (status, answer) = hub.api(
        "POST",
        "/api/v1/carriers/fedex/codes",
        Some(r#"{"send": true}"#),
    );
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["type"], "carrier_code_sent", "{answer}");
    let code_ref = answer["code_ref"].as_str().expect("a reference").to_owned();
    let mail = wait_until("the carrier's email", Duration::from_secs(20), || {
        smtp.to("codes@fedex.example").into_iter().next()
    });
    assert_eq!(
        mail["subject"], "New locker access code for FedEx",
        "{mail}"
    );
    let text = mail["text"].as_str().unwrap_or_default();
    let sent: String = text
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 8 && l.chars().all(|c| c.is_ascii_digit()))
        .expect("the code on a line of its own")
        .to_owned();
    assert!(text.contains(&code_ref), "{text}");
    assert!(
        !answer.to_string().contains(&sent),
        "the answer holds the code"
    );
    assert_eq!(smtp.messages().len(), 1, "one email, to the carrier only");
    wait_until("the outbox to empty", Duration::from_secs(10), || {
        outbox(&hub).is_empty().then_some(())
    });
    // The carrier list shows the new code by its reference, and the address.
    let (_, carriers) = hub.api("GET", "/api/v1/carriers", None);
    let fedex = carriers
        .as_array()
        .and_then(|l| l.iter().find(|c| c["carrier"] == "fedex"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(fedex["email"], "codes@fedex.example", "{carriers}");
    assert_eq!(
        fedex["codes"][0]["code_ref"],
        code_ref.as_str(),
        "{carriers}"
    );

    // The emailed code opens a drop-off.
    let reserved = hub.command(
        "fedex-drop",
        json!({"type": "start_drop_off", "bank": "A", "carrier_code": sent,
               "recipient": {"type": "unit", "unit": "7"}, "size": "m"}),
    );
    assert_eq!(reserved["type"], "reserved", "{reserved}");
    assert!(!hub.output().contains(&sent), "the code is in the log");
    hub.terminate();
    for (path, bytes) in files_under(hub.dir.path()) {
        for form in [format!("\"code\":\"{sent}\""), format!("\n{sent}\n")] {
            assert!(!contains(&bytes, &form), "the code in {}", path.display());
        }
    }
}

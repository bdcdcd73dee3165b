//! The real hub, in-process, as tokio's mini-redis tests its server: `Hub::start` on ephemeral
//! loopback ports, HTTP from the test, `Hub::stop`. For checks that need no outside peer; the
//! end-to-end suite (`tests/`) runs the binary against peers we did not write.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use locker_app::notify::OutboxOnly;
use locker_hub::Hub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One bank with its own controller, loopback listeners on ephemeral ports, data in `dir/data`.
fn config(dir: &Path, extra_site: &str) -> locker_config::Config {
    let text = format!(
        r#"[site]
id = "test-site"
data_dir = "{}/data"
{extra_site}

[mqtt]
listener = {{ bind = "127.0.0.1:0" }}

[web]
bind = "127.0.0.1:0"

[[bank]]
id = "A"
driver = {{ kind = "mqtt" }}
compartments = [ {{ doors = "1-4", size = "S" }} ]
"#,
        dir.display()
    );
    let path = dir.join("hub.toml");
    std::fs::write(&path, text).expect("write hub.toml");
    locker_config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// [`config`] with more sections after the bank.
fn config_with(dir: &Path, extra_site: &str, sections: &str) -> locker_config::Config {
    let path = dir.join("hub.toml");
    config(dir, extra_site);
    let text = std::fs::read_to_string(&path).expect("hub.toml") + sections;
    std::fs::write(&path, text).expect("write hub.toml");
    locker_config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

async fn start(dir: &Path, extra_site: &str) -> Hub {
    Hub::start(config(dir, extra_site), Arc::new(OutboxOnly))
        .await
        .unwrap_or_else(|e| panic!("the hub did not start: {e}"))
}

fn token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("data/api-token"))
        .expect("the API token in the data directory")
        .trim()
        .to_owned()
}

/// One raw HTTP/1.1 request: (status, headers, body).
async fn http(
    hub: &Hub,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (u16, String, String) {
    let addr = hub.listening().web;
    let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    let body = match body {
        Some((content_type, text)) => {
            head += &format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                text.len()
            );
            text
        }
        None => "",
    };
    s.write_all(format!("{head}\r\n{body}").as_bytes())
        .await
        .expect("send");
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(15), s.read_to_string(&mut raw))
        .await
        .expect("an answer in time")
        .expect("read");
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let (h, b) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (code, h.to_lowercase(), b.to_owned())
}

/// The JSON API with a bearer token: (status, parsed body).
async fn api(
    hub: &Hub,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {token}");
    let (code, _, text) = http(
        hub,
        method,
        path,
        &[("Authorization", &auth)],
        body.map(|b| ("application/json", b)),
    )
    .await;
    let value = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
    };
    (code, value)
}

fn set_cookie(headers: &str, name: &str) -> Option<String> {
    headers
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .find(|l| l.starts_with(&format!("{name}=")))
        .map(|l| l.split(';').next().unwrap_or("").to_owned())
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s.find(start).expect("marker") + start.len();
    &s[i..i + s[i..].find(end).expect("end")]
}

/// Sign in on the page: (the session's cookie, its CSRF token as `/system` carries it).
async fn login(hub: &Hub, user: &str, password: &str) -> (String, String) {
    login_at(hub, user, password, "/system", "name=csrf content=\"").await
}

/// Sign in, then read the CSRF token after `marker` on `page`.
async fn login_at(
    hub: &Hub,
    user: &str,
    password: &str,
    page: &str,
    marker: &str,
) -> (String, String) {
    let (_, h, b) = http(hub, "GET", "/login", &[], None).await;
    let pre = set_cookie(&h, "lh_login_csrf").expect("login csrf cookie");
    let token = between(&b, "name=csrf value=\"", "\"").to_owned();
    let form = format!(
        "csrf={token}&user={user}&password={}",
        password.replace(' ', "%20")
    );
    let (code, h, _) = http(
        hub,
        "POST",
        "/login",
        &[("Cookie", &pre)],
        Some(("application/x-www-form-urlencoded", &form)),
    )
    .await;
    assert_eq!(code, 303, "{user} signs in");
    let cookie = set_cookie(&h, "lh_session").expect("session cookie");
    let (_, _, body) = http(hub, "GET", page, &[("Cookie", &cookie)], None).await;
    let csrf = between(&body, marker, "\"").to_owned();
    (cookie, csrf)
}

/// A kiosk screen that shows a refusal answers with the refusal's one status (#16): cancelling a
/// drop-off the hub does not know says "Not cancelled" with 409, not "Cancelled" with 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kiosk_screen_says_what_was_refused_with_its_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), "").await;
    hub.app()
        .create_account("tablet", "kiosk", "a long enough password")
        .await
        .expect("account");
    let (cookie, csrf) = login_at(
        &hub,
        "tablet",
        "a long enough password",
        "/kiosk/A/deliver",
        "name=csrf value=\"",
    )
    .await;
    let form = format!("csrf={csrf}&reservation=res-unknown");
    let (code, _, body) = http(
        &hub,
        "POST",
        "/kiosk/A/cancel",
        &[("Cookie", &cookie)],
        Some(("application/x-www-form-urlencoded", &form)),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("Not cancelled"), "{body}");
    let form = format!("csrf={csrf}&reservation=res-unknown&tracking=");
    let (code, _, body) = http(
        &hub,
        "POST",
        "/kiosk/A/confirm",
        &[("Cookie", &cookie)],
        Some(("application/x-www-form-urlencoded", &form)),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("Not recorded"), "{body}");
    hub.stop().await;
}

/// The System page's pairing (#13 item 8): only an admin sees it and may open a code; the code
/// it shows (once) and the fingerprint let a second hub join with `init --join`, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_opens_a_pairing_on_the_system_page_and_a_second_hub_joins_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Hub::start(
        config_with(dir.path(), "", "\n[sync]\nlisten = \"127.0.0.1:0\"\n"),
        Arc::new(OutboxOnly),
    )
    .await
    .unwrap_or_else(|e| panic!("the hub did not start: {e}"));
    for (name, role) in [("ann", "admin"), ("bob", "staff")] {
        a.app()
            .create_account(name, role, "a long enough password")
            .await
            .expect("account");
    }
    let form = |csrf: &str| format!("csrf={csrf}");
    let (staff, staff_csrf) = login(&a, "bob", "a long enough password").await;
    let staff_hdr = [("Cookie", staff.as_str())];
    let (_, _, page) = http(&a, "GET", "/system", &staff_hdr, None).await;
    assert!(
        !page.contains("Pair a second hub"),
        "staff do not see pairing"
    );
    let f = form(&staff_csrf);
    let (code, _, _) = http(
        &a,
        "POST",
        "/system/pair",
        &staff_hdr,
        Some(("application/x-www-form-urlencoded", &f)),
    )
    .await;
    assert_eq!(code, 403, "staff may not open a pairing");

    let (admin, admin_csrf) = login(&a, "ann", "a long enough password").await;
    let admin_hdr = [("Cookie", admin.as_str())];
    let (_, _, page) = http(&a, "GET", "/system", &admin_hdr, None).await;
    assert!(page.contains("Pair a second hub"), "{page}");
    let f = form(&admin_csrf);
    let (code, _, page) = http(
        &a,
        "POST",
        "/system/pair",
        &admin_hdr,
        Some(("application/x-www-form-urlencoded", &f)),
    )
    .await;
    assert_eq!(code, 200, "{page}");
    let code = between(&page, "id=pairing-code>", "<").to_owned();
    let fingerprint = between(&page, "id=pairing-fingerprint>", "<").to_owned();
    let listen = a.listening().sync.expect("sync address");
    assert!(page.contains(&format!(
        "--join wss://{listen} --code {code} --fingerprint {fingerprint}"
    )));
    let (_, _, page) = http(&a, "GET", "/system", &admin_hdr, None).await;
    assert!(page.contains("A code is open until"), "{page}");

    // The second hub joins with what the page showed.
    let b_dir = tempfile::tempdir().expect("tempdir");
    let url = format!("wss://{listen}");
    config_with(b_dir.path(), "", &format!("\n[sync]\nhubs = [\"{url}\"]\n"));
    let b_config = b_dir.path().join("hub.toml");
    let joined = locker_hub::join::join(&b_config, &url, &code, &fingerprint).await;
    assert!(joined.is_ok(), "{joined:?}");
    assert!(b_dir.path().join("data/state.redb").exists());
    // Used: the page no longer says a code is open, and it does not work again.
    let (_, _, page) = http(&a, "GET", "/system", &admin_hdr, None).await;
    assert!(!page.contains("A code is open until"), "{page}");
    let c_dir = tempfile::tempdir().expect("tempdir");
    config_with(c_dir.path(), "", &format!("\n[sync]\nhubs = [\"{url}\"]\n"));
    let again =
        locker_hub::join::join(&c_dir.path().join("hub.toml"), &url, &code, &fingerprint).await;
    assert!(again.is_err_and(|e| e.contains("no pairing is open")));

    // B starts and the two sync: A's System page lists B as a connected peer and the synced
    // documents, and a resident registered at A reaches B.
    let b = Hub::start(
        locker_config::load(&b_config).unwrap_or_else(|e| panic!("{e}")),
        Arc::new(OutboxOnly),
    )
    .await
    .unwrap_or_else(|e| panic!("hub B did not start: {e}"));
    let body =
        r#"{"request_id":"r-a","type":"register_resident","resident":"r-from-a","unit":"7"}"#;
    let (code, reply) = api(
        &a,
        &token(dir.path()),
        "POST",
        "/api/v1/commands",
        Some(body),
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    let b_token = token(b_dir.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, page) = http(&a, "GET", "/system", &admin_hdr, None).await;
        let (_, residents) = api(&b, &b_token, "GET", "/api/v1/residents", None).await;
        let crossed = residents.to_string().contains("r-from-a");
        let listed = page.contains("<td>hub ") && page.contains("<td>connected</td>");
        if crossed && listed && page.contains("automerge:") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "crossed {crossed}, listed {listed}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_but_login_and_healthz_answers_without_a_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), "").await;
    assert_eq!(http(&hub, "GET", "/healthz", &[], None).await.0, 200);
    assert_eq!(http(&hub, "GET", "/login", &[], None).await.0, 200);
    for path in [
        "/",
        "/parcels",
        "/alerts",
        "/units",
        "/audit",
        "/system",
        "/users",
        "/kiosk",
        "/compartments/A/1",
        "/parcels/x",
        "/residents",
        "/carriers",
        "/analytics",
        "/analytics/deliveries.csv",
        "/notifications",
    ] {
        let (code, h, _) = http(&hub, "GET", path, &[], None).await;
        assert_eq!(code, 303, "{path}");
        assert!(h.contains("location: /login"), "{path}: {h}");
    }
    for path in [
        "/api/v1/banks",
        "/api/v1/parcels",
        "/api/v1/alerts",
        "/api/v1/units",
        "/api/v1/units/A/fridge/history?hours=24",
        "/api/v1/audit",
        "/api/v1/users",
        "/api/v1/residents",
        "/api/v1/carriers",
        "/events",
        "/dashboard/live",
        "/audit.csv",
    ] {
        let (code, _, body) = http(&hub, "GET", path, &[], None).await;
        assert_eq!(code, 401, "{path}: {body}");
    }
    let form = Some(("application/x-www-form-urlencoded", "reason=x"));
    let (code, _, _) = http(&hub, "POST", "/compartments/A/1/open", &[], form).await;
    assert_eq!(code, 401);
    for path in [
        "/residents",
        "/residents/r-1",
        "/residents/r-1/deactivate",
        "/carriers",
        "/carriers/ups/codes",
        "/carriers/ups/codes/x/revoke",
        "/carriers/ups/deactivate",
        "/alerts/a1/acknowledge",
        "/system/pair",
        "/notifications/n1/retry",
        "/parcels/p1/resend-code",
    ] {
        let form = Some(("application/x-www-form-urlencoded", "unit=1"));
        let (code, _, _) = http(&hub, "POST", path, &[], form).await;
        assert_eq!(code, 401, "{path}");
    }
    let forged = [("Cookie", "lh_session=forged")];
    let (code, _, _) = http(&hub, "GET", "/", &forged, None).await;
    assert_eq!(code, 303, "a made-up session is no session");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_callers_without_the_token_and_explains_bad_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), "").await;
    let (code, _, body) = http(&hub, "GET", "/api/v1/compartments", &[], None).await;
    assert_eq!(code, 401, "{body}");
    let wrong = [("Authorization", "Bearer wrong")];
    let (code, _, body) = http(&hub, "GET", "/api/v1/compartments", &wrong, None).await;
    assert_eq!(code, 401, "{body}");
    let token = token(dir.path());
    let (code, body) = api(&hub, &token, "POST", "/api/v1/commands", Some("{not json")).await;
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap_or("").contains("not JSON"));
    let teleport = r#"{"request_id":"x","type":"teleport"}"#;
    let (code, body) = api(&hub, &token, "POST", "/api/v1/commands", Some(teleport)).await;
    assert_eq!(code, 422);
    assert!(
        body["error"].as_str().unwrap_or("").contains("teleport"),
        "{body}"
    );
    hub.stop().await;
}

/// What was acknowledged is there after a stop and a start on the same data, and a request
/// that names a resident the directory has is then answered from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_acknowledged_is_there_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), "").await;
    let token = token(dir.path());
    let add = r#"{"resident": "r-1", "unit": "101"}"#;
    let (code, body) = api(&hub, &token, "POST", "/api/v1/residents", Some(add)).await;
    assert_eq!(code, 201, "{body}");
    // Adding it again is refused by the core's rule, whoever asks.
    let (code, body) = api(&hub, &token, "POST", "/api/v1/residents", Some(add)).await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["code"], "already_exists", "{body}");
    let command = r#"{"request_id":"c1","type":"register_resident","resident":"r-1","unit":"9","mode":"add"}"#;
    let (code, body) = api(&hub, &token, "POST", "/api/v1/commands", Some(command)).await;
    assert_eq!(
        code, 409,
        "POST /commands checks what the pages check: {body}"
    );
    assert_eq!(body["code"], "already_exists", "{body}");
    hub.stop().await;

    let hub = start(dir.path(), "").await;
    let (code, list) = api(&hub, &token, "GET", "/api/v1/residents", None).await;
    assert_eq!(code, 200);
    let r1 = list
        .as_array()
        .and_then(|l| l.iter().find(|r| r["resident"] == "r-1"))
        .unwrap_or_else(|| panic!("r-1 is gone after the restart: {list}"));
    assert_eq!(r1["unit"], "101", "the refused add changed nothing");
    hub.stop().await;
}

/// A data directory below its reserve: the hub starts and says so, and a request that would be
/// recorded is answered 503 `storage_unavailable` with nothing recorded. (A reserve larger than
/// any disk stands in for a full one, so this needs no root; `tests/tests/storage.rs` fills a
/// real filesystem.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_storage_reserve_a_request_is_refused_and_health_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = start(dir.path(), "storage_reserve_mib = 100000").await;
    let (code, _, health) = http(&hub, "GET", "/healthz", &[], None).await;
    assert_eq!(code, 200);
    let health: serde_json::Value = serde_json::from_str(&health).expect("health JSON");
    assert_eq!(health["status"], "degraded", "{health}");
    let token = token(dir.path());
    let command = r#"{"request_id":"c1","type":"register_resident","resident":"r-1","unit":"1"}"#;
    let (code, body) = api(&hub, &token, "POST", "/api/v1/commands", Some(command)).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["code"], "storage_unavailable", "{body}");
    let (_, list) = api(&hub, &token, "GET", "/api/v1/residents", None).await;
    assert_eq!(list, serde_json::json!([]), "nothing was recorded");
    hub.stop().await;
}

/// `[sync] listen` bounds what one address may hold before anything is checked: a LAN host
/// with four idle sockets open gets its fifth closed at once, while another address is still
/// served, and the places come back when the idle ones close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_listener_bounds_connections_per_address() {
    use tokio::net::TcpSocket;
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(
        config_with(dir.path(), "", "\n[sync]\nlisten = \"127.0.0.1:0\"\n"),
        Arc::new(OutboxOnly),
    )
    .await
    .unwrap_or_else(|e| panic!("the hub did not start: {e}"));
    let listen = hub.listening().sync.expect("sync address");
    let from = |ip: &str| {
        let ip: std::net::IpAddr = ip.parse().expect("ip");
        async move {
            let socket = TcpSocket::new_v4().expect("socket");
            socket.bind((ip, 0).into()).expect("bind");
            socket.connect(listen).await.expect("connect")
        }
    };
    // Open: nothing arrives for a second (the hub waits for a TLS hello). Closed: EOF or reset.
    let held_open = |mut s: TcpStream| async move {
        let mut buf = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf))
            .await
            .is_err()
    };
    let mut idle = Vec::new();
    for _ in 0..locker_hub::link::SYNC_CONNECTIONS_PER_SOURCE {
        idle.push(from("127.0.0.2").await);
    }
    // Let the listener count them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !held_open(from("127.0.0.2").await).await,
        "the fifth is closed"
    );
    assert!(
        held_open(from("127.0.0.1").await).await,
        "another address is served"
    );
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(held_open(from("127.0.0.2").await).await, "places come back");
    hub.stop().await;
}

/// The demo's month of history: written before the hub opens the store, it leaves the site as
/// the banner says (every door free, no alert open, the demo's carrier code issuable), and the
/// parcels, with analytics' numbers, are there. Seeding after it works, and a second history
/// into the same directory is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_starts_with_a_month_of_collected_parcels_and_a_clean_site() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = locker_hub::demo::DemoArgs {
        mqtt_port: 0,
        web_port: 0,
        bind: [127, 0, 0, 1].into(),
    };
    let (config, _) = locker_hub::demo::config(&args, dir.path());
    let made =
        locker_hub::demo::history(&config, locker_hub::demo::HISTORY_DAYS, 7).expect("the history");
    assert!(made.parcels >= 100, "{made:?}");
    let hub = Hub::start(config.clone(), Arc::new(OutboxOnly))
        .await
        .unwrap_or_else(|e| panic!("the hub did not start: {e}"));
    locker_hub::demo::seed(hub.app())
        .await
        .expect("the seed after the history");
    let token = std::fs::read_to_string(dir.path().join("api-token"))
        .expect("the API token in the demo's data directory")
        .trim()
        .to_owned();
    let (_, parcels) = api(&hub, &token, "GET", "/api/v1/parcels", None).await;
    let parcels = parcels.as_array().cloned().unwrap_or_default();
    assert_eq!(parcels.len() as u64, made.parcels);
    assert!(
        parcels.iter().all(|p| p["location"]["type"] == "picked_up"),
        "every parcel of the past was collected"
    );
    let (_, compartments) = api(&hub, &token, "GET", "/api/v1/compartments", None).await;
    assert!(compartments
        .as_array()
        .is_some_and(|l| !l.is_empty() && l.iter().all(|c| c["status"] == "free")));
    let (_, alerts) = api(&hub, &token, "GET", "/api/v1/alerts", None).await;
    assert_eq!(alerts, serde_json::json!([]));
    let (_, outbox) = api(&hub, &token, "GET", "/api/v1/outbox", None).await;
    assert_eq!(outbox, serde_json::json!([]), "nothing of the past is sent");
    // The past carrier's code no longer opens anything; the demo's works.
    let drop_off = |code: &str| {
        format!(
            r#"{{"request_id":"d-{code}","type":"start_drop_off","bank":"A","carrier_code":"{code}",
                "recipient":{{"type":"unit","unit":"101"}},"size":"s"}}"#
        )
    };
    let (_, old) = api(
        &hub,
        &token,
        "POST",
        "/api/v1/commands",
        Some(&drop_off("975310")),
    )
    .await;
    assert_eq!(old["type"], "rejected", "{old}");
    let (_, new) = api(
        &hub,
        &token,
        "POST",
        "/api/v1/commands",
        Some(&drop_off("246810")),
    )
    .await;
    assert_eq!(new["type"], "reserved", "{new}");
    hub.stop().await;
    assert!(
        locker_hub::demo::history(&config, 1, 7).is_err(),
        "not over a used store"
    );
}

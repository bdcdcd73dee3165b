//! The staff web page's handlers on the real hub run in-process (`Hub::start` on ephemeral
//! ports, as `in_process.rs`): residents, alerts, analytics, paging and sign-in throttling. Tests
//! that need the process itself (`locker-hub user add`, the hub's log) stay in
//! `tests/tests/web.rs`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use locker_app::notify::OutboxOnly;
use locker_hub::Hub;
use locker_tests::base_config;
use locker_tests::page::{self, flash, login, req};

/// The hub in-process on its own runtime, with the test's side blocking (as the binary's tests
/// are): its web address, its directory, and the API with its token.
struct InProcess {
    web: SocketAddr,
    dir: tempfile::TempDir,
    hub: Option<Hub>,
    rt: tokio::runtime::Runtime,
}

impl InProcess {
    fn start(config: impl FnOnce(&Path) -> String) -> InProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, config(dir.path())).expect("write hub.toml");
        let config = locker_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let hub = rt
            .block_on(Hub::start(config, Arc::new(OutboxOnly)))
            .unwrap_or_else(|e| panic!("the hub did not start: {e}"));
        InProcess {
            web: hub.listening().web,
            dir,
            hub: Some(hub),
            rt,
        }
    }

    fn hub(&self) -> &Hub {
        self.hub.as_ref().expect("running")
    }

    /// A staff account, made as `locker-hub user add` makes one.
    fn add_user(&self, name: &str, role: &str, password: &str) -> bool {
        self.rt
            .block_on(self.hub().app().create_account(name, role, password))
            .is_ok()
    }

    /// The JSON API with the hub's token: (status, parsed body).
    fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let token = std::fs::read_to_string(self.dir.path().join("data/api-token"))
            .expect("api-token in the data directory");
        let (code, text) = locker_tests::http(self.web, method, path, Some(token.trim()), body);
        let value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
        };
        (code, value)
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.take() {
            self.rt.block_on(hub.stop());
        }
    }
}

fn start() -> InProcess {
    InProcess::start(|dir| {
        // One carrier fills the whole bank in some tests (to make it overflow), which the default
        // flood limit of 3 drop-offs in progress per carrier would refuse.
        format!(
            "{}\n[policies]\ncarrier_open_reservations = 10\n\n[[bank]]\nid = \"A\"\nname = \"Lobby\"\ndriver = {{ kind = \"mqtt\" }}\ncompartments = [ {{ doors = \"1-4\", size = \"S\", column = 1 }} ]\n",
            base_config(dir)
        )
    })
}

/// Two signed-in users: (admin cookie, admin CSRF, staff cookie, staff CSRF).
fn admin_and_staff(hub: &InProcess) -> (String, String, String, String) {
    assert!(hub.add_user("ann", "admin", "correct horse battery"));
    assert!(hub.add_user("bob", "staff", "bobs long password"));
    page::sign_in_ann_and_bob(hub.web)
}

fn drop_off(hub: &InProcess, id: &str, code: &str, resident: &str) -> (u16, serde_json::Value) {
    hub.api(
        "POST",
        "/api/v1/commands",
        Some(&page::drop_off_body(id, code, resident)),
    )
}

#[test]
fn wrong_passwords_are_throttled() {
    let hub = start();
    assert!(hub.add_user("ann", "staff", "correct horse battery"));
    for _ in 0..5 {
        assert_eq!(login(hub.web, "ann", "wrong-password"), Err(401));
    }
    // Paused now, even with the right password.
    assert_eq!(login(hub.web, "ann", "correct%20horse%20battery"), Err(429));
}

#[test]
fn residents_are_added_searched_edited_and_deactivated_on_the_page_and_the_api() {
    let hub = start();
    let (_, _, staff, csrf) = admin_and_staff(&hub);
    let post = |path: &str, form: &str| req(hub.web, "POST", path, Some(&staff), Some(form), "");

    // CSRF first, then bad input with a clear 400.
    assert_eq!(post("/residents", "resident=r-1&unit=101").0, 403);
    let (code, _, body) = post(
        "/residents",
        &format!("csrf={csrf}&resident=r%201&unit=101"),
    );
    assert_eq!(code, 400);
    assert!(body.contains("must not contain spaces"), "{body}");
    let (code, _, body) = post("/residents", &format!("csrf={csrf}&resident=r-1"));
    assert_eq!(code, 400);
    assert!(body.contains("unit is required"), "{body}");

    // Add two, search, and refuse a duplicate.
    let (code, h, _) = post(
        "/residents",
        &format!("csrf={csrf}&resident=r-1&unit=101&accessible=yes"),
    );
    assert_eq!(code, 303, "{h}");
    assert!(flash(&h).contains("ok=Added r-1"), "{h}");
    assert_eq!(
        post("/residents", &format!("csrf={csrf}&resident=r-2&unit=202")).0,
        303
    );
    let (code, _, body) = post("/residents", &format!("csrf={csrf}&resident=r-1&unit=999"));
    assert_eq!(code, 400);
    assert!(body.contains("already exists"), "{body}");
    let (code, _, page) = req(hub.web, "GET", "/residents?q=202", Some(&staff), None, "");
    assert_eq!(code, 200);
    assert!(page.contains("data-resident=\"r-2\"") && !page.contains("data-resident=\"r-1\""));

    // Edit the unit and reach; deactivate; a moved-out resident gets nothing new.
    assert_eq!(
        post("/residents/r-1", &format!("csrf={csrf}&unit=303")).0,
        303
    );
    assert_eq!(
        post("/residents/nobody", &format!("csrf={csrf}&unit=1")).0,
        400
    );
    // The row's contact: set, shown, a bad address refused, then cleared.
    let contact = "&email=ann%40example.org&phone=%2B15551234567&language=es";
    let (code, h, _) = post("/residents/r-1", &format!("csrf={csrf}&unit=303{contact}"));
    assert_eq!(code, 303, "{h}");
    let (_, _, page) = req(hub.web, "GET", "/residents?q=r-1", Some(&staff), None, "");
    assert!(page.contains("value=\"ann@example.org\""), "{page}");
    assert!(page.contains("<option value=es selected>"), "{page}");
    let (code, _, body) = post(
        "/residents/r-1",
        &format!("csrf={csrf}&unit=303&email=not-an-address"),
    );
    assert_eq!(code, 400);
    assert!(body.contains("is not an email address"), "{body}");
    post(
        "/residents/r-1",
        &format!("csrf={csrf}&unit=303&email=&phone=&language=es"),
    );
    // "Try again now" for a notification that is not in the outbox: said so, nothing changes.
    let (code, h, _) = post("/notifications/no-such-item/retry", &format!("csrf={csrf}"));
    assert_eq!(code, 303);
    assert!(
        flash(&h).contains("err=no notification no-such-item in the outbox"),
        "{h}"
    );
    assert_eq!(
        post("/notifications/no-such-item/retry", "csrf=forged").0,
        403,
        "a forged CSRF token"
    );
    let (_, list) = hub.api("GET", "/api/v1/residents", None);
    let r1 = list
        .as_array()
        .and_then(|l| l.iter().find(|r| r["resident"] == "r-1").cloned())
        .unwrap_or_default();
    assert_eq!(
        (r1["email"].clone(), r1["language"].clone()),
        (serde_json::Value::Null, serde_json::json!("es")),
        "{r1}"
    );
    let (code, h, _) = post("/residents/r-1/deactivate", &format!("csrf={csrf}"));
    assert_eq!(code, 303);
    assert!(flash(&h).contains("ok=Deactivated"), "{h}");
    let (_, h, _) = post("/residents/r-1/deactivate", &format!("csrf={csrf}"));
    assert!(
        flash(&h).contains("err=resident r-1 is already deactivated"),
        "{h}"
    );
    let (code, list) = hub.api("GET", "/api/v1/residents", None);
    assert_eq!(code, 200);
    let r1 = list
        .as_array()
        .and_then(|l| l.iter().find(|r| r["resident"] == "r-1"))
        .expect("r-1 listed");
    assert_eq!(
        (
            r1["unit"].as_str(),
            r1["active"].as_bool(),
            r1["accessible"].as_bool()
        ),
        (Some("303"), Some(false), Some(false))
    );
    let (code, reply) = hub.api(
        "POST",
        "/api/v1/commands",
        Some("{\"request_id\":\"c1\",\"type\":\"desk_check_in\",\"resident\":\"r-1\"}"),
    );
    assert_eq!(code, 409, "{reply}");
    // Deactivated residents are hidden unless asked for.
    let (_, _, page) = req(hub.web, "GET", "/residents", Some(&staff), None, "");
    assert!(!page.contains("data-resident=\"r-1\""));
    let (_, _, page) = req(hub.web, "GET", "/residents?all=yes", Some(&staff), None, "");
    assert!(page.contains("Save and reactivate"));

    // The JSON API: add, edit (reactivates), deactivate, and its 4xx answers.
    let (code, _) = hub.api(
        "POST",
        "/api/v1/residents",
        Some("{\"resident\":\"r-3\",\"unit\":\"303\",\"accessible\":true}"),
    );
    assert_eq!(code, 201);
    let (code, body) = hub.api(
        "POST",
        "/api/v1/residents",
        Some("{\"resident\":\"r-3\",\"unit\":\"303\"}"),
    );
    assert_eq!(code, 409, "{body}");
    let (code, body) = hub.api("POST", "/api/v1/residents", Some("{\"resident\":\"r-4\"}"));
    assert_eq!(code, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("unit"),
        "{body}"
    );
    let (code, _) = hub.api("POST", "/api/v1/residents", Some("not json"));
    assert_eq!(code, 400);
    let (code, _) = hub.api("POST", "/api/v1/residents/r-1", Some("{\"unit\":\"101\"}"));
    assert_eq!(code, 200);
    let (code, _) = hub.api("POST", "/api/v1/residents/nobody", Some("{\"unit\":\"1\"}"));
    assert_eq!(code, 404);
    let (code, _) = hub.api("POST", "/api/v1/residents/r-3/deactivate", None);
    assert_eq!(code, 200);
    let (code, _) = hub.api("POST", "/api/v1/residents/r-3/deactivate", None);
    assert_eq!(code, 409);

    // Every change is in the audit trail under the staff user's name.
    let (_, _, csv) = req(
        hub.web,
        "GET",
        "/audit.csv?actor=bob",
        Some(&staff),
        None,
        "",
    );
    assert!(
        csv.contains("resident_registered") && csv.contains("resident_deactivated"),
        "{csv}"
    );
}

#[test]
fn alerts_are_acknowledged_with_a_note_shown_in_the_history_and_the_audit() {
    let hub = start();
    let (_, _, staff, csrf) = admin_and_staff(&hub);
    let (code, _) = hub.api(
        "POST",
        "/api/v1/residents",
        Some("{\"resident\":\"r-1\",\"unit\":\"101\"}"),
    );
    assert_eq!(code, 201);
    hub.api(
        "POST",
        "/api/v1/carriers",
        Some("{\"carrier\":\"ups\",\"name\":\"UPS\"}"),
    );
    hub.api(
        "POST",
        "/api/v1/carriers/ups/codes",
        Some("{\"code\":\"11223344\"}"),
    );
    // Four doors reserved, the fifth parcel overflows to the desk: a "locker full" alert.
    for i in 1..=5 {
        drop_off(&hub, &format!("f{i}"), "11223344", "r-1");
    }
    let (_, alerts) = hub.api("GET", "/api/v1/alerts", None);
    let alert = alerts
        .as_array()
        .and_then(|l| l.iter().find(|a| a["kind"] == "locker_full"))
        .and_then(|a| a["id"].as_str())
        .unwrap_or_else(|| panic!("a locker-full alert: {alerts}"))
        .to_owned();

    // Bad notes are refused with a 4xx, the alert stays open.
    let long = "x".repeat(501);
    let (code, _, body) = req(
        hub.web,
        "POST",
        &format!("/alerts/{alert}/acknowledge"),
        Some(&staff),
        Some(&format!("csrf={csrf}&note={long}")),
        "",
    );
    assert_eq!(code, 400);
    assert!(body.contains("at most 500"), "{body}");
    let (code, body) = hub.api(
        "POST",
        &format!("/api/v1/alerts/{alert}/acknowledge"),
        Some("{\"note\":\"bell\\u0007\"}"),
    );
    assert_eq!(code, 422, "{body}");
    let (code, _) = hub.api("POST", "/api/v1/alerts/nope/acknowledge", Some("{}"));
    assert_eq!(code, 404);
    assert_eq!(
        req(
            hub.web,
            "POST",
            &format!("/alerts/{alert}/acknowledge"),
            Some(&staff),
            Some("note=x"),
            ""
        )
        .0,
        403
    );

    // Acknowledged on the page with a note: in the history and the audit, under bob's name.
    let (code, h, _) = req(
        hub.web,
        "POST",
        &format!("/alerts/{alert}/acknowledge"),
        Some(&staff),
        Some(&format!(
            "csrf={csrf}&note=Cleared+the+parcel+room+%3Cshelf+2%3E"
        )),
        "",
    );
    assert_eq!(code, 303);
    assert!(flash(&h).contains("ok=Acknowledged"), "{h}");
    let (_, _, page) = req(hub.web, "GET", "/alerts", Some(&staff), None, "");
    assert!(
        page.contains("<td>Cleared the parcel room &lt;shelf 2&gt;</td>"),
        "{page}"
    );
    let (_, _, csv) = req(
        hub.web,
        "GET",
        "/audit.csv?actor=bob",
        Some(&staff),
        None,
        "",
    );
    assert!(
        csv.contains("alert_cleared") && csv.contains("Cleared the parcel room"),
        "{csv}"
    );
}

#[test]
fn analytics_page_draws_charts_and_exports_each_as_csv() {
    let hub = start();
    let (_, _, staff, _) = admin_and_staff(&hub);
    hub.api(
        "POST",
        "/api/v1/residents",
        Some("{\"resident\":\"r-1\",\"unit\":\"101\"}"),
    );
    let (code, reply) = hub.api(
        "POST",
        "/api/v1/commands",
        Some("{\"request_id\":\"c1\",\"type\":\"desk_check_in\",\"resident\":\"r-1\"}"),
    );
    assert_eq!(code, 200, "{reply}");
    let parcel = reply["parcel"].as_str().expect("parcel").to_owned();
    let (code, reply) = hub.api(
        "POST",
        "/api/v1/commands",
        Some(&format!(
            "{{\"request_id\":\"c2\",\"type\":\"desk_pickup\",\"parcels\":[\"{parcel}\"]}}"
        )),
    );
    assert_eq!(code, 200, "{reply}");

    let (code, _, page) = req(hub.web, "GET", "/analytics", Some(&staff), None, "");
    assert_eq!(code, 200);
    assert_eq!(
        page.matches("<svg class=").count(),
        2,
        "bar chart and heatmap"
    );
    assert!(
        page.contains("href=/analytics aria-current=page"),
        "nav link"
    );
    for chart in ["deliveries", "heatmap", "utilisation", "pickup"] {
        assert!(
            page.contains(&format!("/analytics/{chart}.csv")),
            "{chart} link"
        );
        let (code, h, csv) = req(
            hub.web,
            "GET",
            &format!("/analytics/{chart}.csv"),
            Some(&staff),
            None,
            "",
        );
        assert_eq!(code, 200, "{chart}");
        assert!(h.contains("text/csv"), "{h}");
        assert!(csv.lines().count() >= 2, "{chart}: {csv}");
    }
    // Today has the one parcel received at the desk; it was picked up.
    let (_, _, days) = req(
        hub.web,
        "GET",
        "/analytics/deliveries.csv",
        Some(&staff),
        None,
        "",
    );
    assert!(days.trim_end().ends_with(",1"), "{days}");
    assert_eq!(days.lines().count(), 31);
    let (_, _, pickup) = req(
        hub.web,
        "GET",
        "/analytics/pickup.csv",
        Some(&staff),
        None,
        "",
    );
    assert!(
        pickup.lines().nth(1).is_some_and(|l| l.ends_with(",1,0")),
        "{pickup}"
    );
    let (_, _, sizes) = req(
        hub.web,
        "GET",
        "/analytics/utilisation.csv",
        Some(&staff),
        None,
        "",
    );
    assert!(sizes.contains("S,4,0,"), "{sizes}");
    let (code, _, body) = req(
        hub.web,
        "GET",
        "/analytics/nope.csv",
        Some(&staff),
        None,
        "",
    );
    assert_eq!(code, 404);
    assert!(body.contains("deliveries.csv"), "{body}");
}

/// A big building's residents come a page at a time, so the page stays within the 200 KB
/// budget on a tablet.
#[test]
fn a_big_resident_list_is_paged_within_the_page_budget() {
    let hub = start();
    let (_, _, staff, _) = admin_and_staff(&hub);
    for i in 0..400 {
        let body = format!(
            r#"{{"type":"register_resident","request_id":"res-{i}","resident":"r-{i:03}","unit":"{}"}}"#,
            1000 + i
        );
        let (code, reply) = hub.api("POST", "/api/v1/commands", Some(&body));
        assert_eq!(code, 200, "{reply}");
    }
    let get = |path: &str| req(hub.web, "GET", path, Some(&staff), None, "");
    let (code, _, first) = get("/residents");
    assert_eq!(code, 200);
    assert!(first.len() < 200 * 1024, "{} bytes", first.len());
    assert!(first.contains("Page 1 of 4"), "{first}");
    assert!(first.contains("data-resident=\"r-000\""));
    assert!(!first.contains("data-resident=\"r-399\""));
    let (_, _, last) = get("/residents?q=&page=4");
    assert!(last.contains("Page 4 of 4"));
    assert!(last.contains("data-resident=\"r-399\""));
    assert!(!last.contains("data-resident=\"r-000\""));
    // Out of range pages show the nearest one; a search narrows to one page.
    assert!(get("/residents?page=99").2.contains("Page 4 of 4"));
    let (_, _, one) = get("/residents?q=r-123");
    assert!(one.contains("data-resident=\"r-123\"") && !one.contains("Page 1 of"));
}

/// A `multipart/form-data` body: text fields, then a file (the browser's order: the CSRF token
/// comes first). (Content-Type header line, body.)
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----lockerhubtest7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((file_name, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        format!("Content-Type: multipart/form-data; boundary={boundary}\r\n"),
        body,
    )
}

fn roll_sample(name: &str) -> Vec<u8> {
    let path = format!("{}/roll/samples/{name}.csv", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_rent_roll_is_previewed_applied_and_reviewed_on_the_page() {
    let hub = start();
    let (admin, admin_csrf, staff, csrf) = admin_and_staff(&hub);
    assert!(hub.add_user("tab", "kiosk", "kiosk tablet password"));
    // A kiosk tablet's session (its page has no staff frame to read a CSRF token from: the
    // login form's will do, the role is refused before the token is looked at).
    let (_, h, b) = req(hub.web, "GET", "/login", None, None, "");
    let pre = page::set_cookie(&h, "lh_login_csrf").expect("login csrf cookie");
    let kiosk_csrf = page::between(&b, "name=csrf value=\"", "\"").to_owned();
    let (code, h, _) = req(
        hub.web,
        "POST",
        "/login",
        Some(&pre),
        Some(&format!(
            "csrf={kiosk_csrf}&user=tab&password=kiosk%20tablet%20password"
        )),
        "",
    );
    assert_eq!(code, 303);
    let kiosk = page::set_cookie(&h, "lh_session").expect("kiosk session");
    let upload = |cookie: &str, fields: &[(&str, &str)], file: Option<(&str, &[u8])>| {
        let (ctype, body) = multipart(fields, file);
        locker_tests::exchange_bytes(
            hub.web,
            "POST",
            "/roll",
            &format!("Cookie: {cookie}\r\n{ctype}"),
            &body,
        )
    };
    let (_, _, page) = req(hub.web, "GET", "/residents", Some(&staff), None, "");
    assert!(page.contains("No rent roll imported yet"), "{page}");
    assert!(page.contains("enctype=multipart/form-data"), "{page}");

    // Who may not: no CSRF token, a forged one, a token after the file, a kiosk tablet.
    let yardi = roll_sample("yardi");
    let file = Some(("yardi.csv", yardi.as_slice()));
    assert_eq!(upload(&staff, &[("layout", "yardi")], file).0, 403);
    assert_eq!(upload(&staff, &[("csrf", "forged")], file).0, 403);
    let (ctype, mut body) = multipart(&[], file);
    body.truncate(body.len() - 2 - "----lockerhubtest7MA4YWxkTrZu0gW--\r\n".len());
    body.extend_from_slice(
        format!("----lockerhubtest7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n------lockerhubtest7MA4YWxkTrZu0gW--\r\n").as_bytes(),
    );
    let (code, _, _) = locker_tests::exchange_bytes(
        hub.web,
        "POST",
        "/roll",
        &format!("Cookie: {staff}\r\n{ctype}"),
        &body,
    );
    assert_eq!(code, 403, "a CSRF token after the file is too late");
    assert_eq!(upload(&kiosk, &[("csrf", &kiosk_csrf)], file).0, 403);

    // Garbage: a broken body, no file, an empty file, not UTF-8, no header. Each a clear 400.
    let (code, _, _) = locker_tests::exchange_bytes(
        hub.web,
        "POST",
        "/roll",
        &format!("Cookie: {staff}\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"),
        b"--xyz\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc",
    );
    assert_eq!(code, 400);
    let (code, _, body) = upload(&staff, &[("csrf", &csrf)], None);
    assert_eq!(code, 400);
    assert!(body.contains("choose the rent roll"), "{body}");
    let (code, _, body) = upload(&staff, &[("csrf", &csrf)], Some(("empty.csv", b"")));
    assert_eq!(code, 400);
    assert!(body.contains("the file is empty"), "{body}");
    let latin1 = b"Unit,Name\r\n101,Jos\xe9 Garc\xeda\r\n";
    let (code, _, body) = upload(&staff, &[("csrf", &csrf)], Some(("latin1.csv", latin1)));
    assert_eq!(code, 400);
    assert!(body.contains("line 2 is not UTF-8"), "{body}");
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    let (code, _, body) = upload(&staff, &[("csrf", &csrf)], Some(("photo.png", png)));
    assert_eq!(code, 400, "{body}");
    let (code, _, body) = upload(
        &staff,
        &[("csrf", &csrf), ("layout", "yardi")],
        Some(("other.csv", b"Apartment;Person\n1;Ann\n")),
    );
    assert_eq!(code, 400);
    assert!(body.contains("no header found"), "{body}");
    let (code, _, body) = upload(&staff, &[("csrf", &csrf), ("layout", "nope")], file);
    assert_eq!(code, 400);
    assert!(body.contains("unknown layout"), "{body}");
    // Windows-1252 when chosen.
    let (code, _, body) = upload(
        &staff,
        &[
            ("csrf", &csrf),
            ("layout", "yardi"),
            ("encoding", "windows-1252"),
        ],
        Some(("latin1.csv", latin1)),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("1 to create"), "{body}");

    // The Yardi export: a preview that changes nothing, then applied once.
    let (code, _, preview) = upload(&staff, &[("csrf", &csrf), ("layout", "yardi")], file);
    assert_eq!(code, 200, "{preview}");
    assert!(
        preview.contains("3 rows read as yardi (header on line 5"),
        "{preview}"
    );
    assert!(preview.contains("3 to create"), "{preview}");
    assert!(
        preview.contains("a future resident or applicant"),
        "{preview}"
    );
    let (_, list) = hub.api("GET", "/api/v1/residents", None);
    assert!(list.as_array().is_some_and(|l| l.is_empty()), "{list}");
    let token = preview
        .split("name=token value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("apply token")
        .to_owned();
    let apply = |t: &str| {
        req(
            hub.web,
            "POST",
            "/roll/apply",
            Some(&staff),
            Some(&format!("csrf={csrf}&token={t}")),
            "",
        )
    };
    let (code, h, _) = apply(&token);
    assert_eq!(code, 303, "{h}");
    assert!(
        flash(&h).contains("ok=Imported yardi.csv%3A 3 created"),
        "{h}"
    );
    let (code, _, body) = apply(&token);
    assert_eq!(code, 400, "a preview applies once");
    assert!(body.contains("expired or was applied"), "{body}");
    // Another user cannot apply someone else's preview.
    let (_, _, preview) = upload(&staff, &[("csrf", &csrf), ("layout", "yardi")], file);
    assert!(preview.contains("3 unchanged"), "{preview}");
    let token = preview
        .split("name=token value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("apply token")
        .to_owned();
    let (code, _, _) = req(
        hub.web,
        "POST",
        "/roll/apply",
        Some(&admin),
        Some(&format!("csrf={admin_csrf}&token={token}")),
        "",
    );
    assert_eq!(code, 400, "bob's preview is bob's");
    assert_eq!(apply(&token).0, 303);

    let (_, list) = hub.api("GET", "/api/v1/residents", None);
    let jane = list
        .as_array()
        .and_then(|l| l.iter().find(|r| r["resident"] == "t0001001").cloned())
        .expect("t0001001 imported");
    assert_eq!(jane["name"], "Doe, Jane");
    assert_eq!(jane["on_roll"], true);
    assert_eq!(jane["tenancy"]["move_in"], "2025-03-01");
    let (_, _, page) = req(hub.web, "GET", "/residents?q=doe", Some(&staff), None, "");
    assert!(page.contains("data-resident=\"t0001001\""), "{page}");
    assert!(
        page.contains("Last import:") && page.contains("from yardi.csv"),
        "{page}"
    );

    // A row that partly matches waits on the page; staff decide there.
    let roll = r#"{"residents":[
        {"resident":"t0001001","unit":"101","name":"Doe, Jane"},
        {"resident":"t0001002","unit":"102","name":"Roe, Richard"},
        {"resident":"NEW-4","unit":"104","name":"José García"}]}"#;
    let (code, body) = hub.api("PUT", "/api/v1/residents", Some(roll));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["summary"]["review"], 1, "{body}");
    let (_, _, page) = req(hub.web, "GET", "/residents", Some(&staff), None, "");
    assert!(page.contains("Rows waiting for review (1)"), "{page}");
    let id = page
        .split("action=\"/roll/review/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a review form")
        .to_owned();
    let decide = |d: &str, c: &str| {
        req(
            hub.web,
            "POST",
            &format!("/roll/review/{id}"),
            Some(&staff),
            Some(&format!("csrf={c}&decision={d}")),
            "",
        )
    };
    assert_eq!(decide("same", "forged").0, 403);
    assert_eq!(decide("perhaps", &csrf).0, 400);
    let (code, h, _) = decide("same", &csrf);
    assert_eq!(code, 303, "{h}");
    assert!(flash(&h).contains("ok=Updated the resident"), "{h}");
    let (_, _, page) = req(hub.web, "GET", "/residents", Some(&staff), None, "");
    assert!(!page.contains("Rows waiting for review"), "{page}");
}

#[test]
fn the_rent_roll_api_imports_files_and_lists_refuses_bad_rows_whole_and_reviews() {
    let hub = InProcess::start(|dir| {
        format!(
            "{}\n[import]\ncountry_code = \"1\"\nmove_out_grace = \"0s\"\n",
            base_config(dir)
        )
    });
    let token = std::fs::read_to_string(hub.dir.path().join("data/api-token")).expect("token");
    let post_file = |query: &str, bytes: &[u8], bearer: Option<&str>| {
        let auth = bearer
            .map(|t| format!("Authorization: Bearer {}\r\n", t.trim()))
            .unwrap_or_default();
        let (code, _, body) = locker_tests::exchange_bytes(
            hub.web,
            "POST",
            &format!("/api/v1/roll{query}"),
            &format!("{auth}Content-Type: text/csv\r\n"),
            bytes,
        );
        let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        (code, json)
    };
    let rm = roll_sample("rent_manager");

    // No token, then bad queries and bad files: clear 4xx, nothing imported.
    assert_eq!(post_file("", &rm, None).0, 401);
    assert_eq!(post_file("", &rm, Some("wrong-token")).0, 401);
    let (code, body) = post_file("?layout=nope", &rm, Some(&token));
    assert_eq!(code, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("rent_manager"),
        "{body}"
    );
    assert_eq!(post_file("?dry_run=maybe", &rm, Some(&token)).0, 400);
    let (code, body) = post_file("?layout=rent_manager", b"\xff\xfe\xfd", Some(&token));
    assert_eq!(code, 422, "{body}");
    let (code, body) = post_file("?layout=rent_manager", b"", Some(&token));
    assert_eq!(code, 422, "{body}");

    // A dry run, then the import, then the same file again: nothing changes.
    let (code, body) = post_file("?layout=rent_manager&dry_run=true", &rm, Some(&token));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["applied"], false);
    assert_eq!(body["summary"]["created"], 2);
    assert_eq!(body["file"]["skipped"][0]["reason"], "status \"Past\"");
    let (_, list) = hub.api("GET", "/api/v1/residents", None);
    assert_eq!(list.as_array().map(Vec::len), Some(0));
    let (code, body) = post_file("?layout=rent_manager&source=nightly.csv", &rm, Some(&token));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["applied"], true);
    let (_, list) = hub.api("GET", "/api/v1/residents", None);
    let omar = list
        .as_array()
        .and_then(|l| l.iter().find(|r| r["resident"] == "T-7001").cloned())
        .expect("T-7001");
    assert_eq!(omar["phone"], "+15552010001");
    let (_, body) = post_file("?layout=rent_manager", &rm, Some(&token));
    assert_eq!(
        (
            body["summary"]["created"].clone(),
            body["summary"]["updated"].clone(),
            body["summary"]["unchanged"].clone()
        ),
        (
            serde_json::json!(0),
            serde_json::json!(0),
            serde_json::json!(2)
        ),
        "{body}"
    );

    // A bad row refuses the whole import, with every rejected line in the answer.
    let bad = b"Tenant ID,Name,Unit,Email\nT-7001,Omar Haddad,12,omar@example.com\nT-8,Bad Mail,20,nope\nT-7001,Dup,12,\n";
    let (code, body) = post_file("?layout=rent_manager", bad, Some(&token));
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["code"], "invalid_input");
    let rejected = body["report"]["plan"]["rejected"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rejected.len(), 2, "{body}");
    assert_eq!(rejected[0]["line"], 3);
    assert_eq!(rejected[1]["line"], 4);
    let (_, list) = hub.api("GET", "/api/v1/residents", None);
    assert!(
        list.as_array()
            .is_some_and(|l| l.iter().all(|r| r["active"] == true)),
        "nothing half-applied: T-7002 is not moved out by a refused roll: {list}"
    );

    // Without the token nothing else of the rent roll answers either.
    let bare = |method: &str, path: &str, body: Option<&str>| {
        locker_tests::http(hub.web, method, path, None, body).0
    };
    assert_eq!(
        bare("PUT", "/api/v1/residents", Some("{\"residents\":[]}")),
        401
    );
    assert_eq!(bare("GET", "/api/v1/roll/review", None), 401);
    assert_eq!(
        bare(
            "POST",
            "/api/v1/roll/review/x",
            Some("{\"decision\":\"same\"}")
        ),
        401
    );

    // The JSON list: garbage refused; a partial match waits for review; the decision applies.
    let (code, _) = hub.api("PUT", "/api/v1/residents", Some("not json"));
    assert_eq!(code, 400);
    let (code, body) = hub.api(
        "PUT",
        "/api/v1/residents",
        Some("{\"residents\":[{\"unit\":\"1\"}]}"),
    );
    assert_eq!(code, 422, "{body}");
    let (code, body) = hub.api(
        "PUT",
        "/api/v1/residents",
        Some("{\"residents\":[],\"dry\":true}"),
    );
    assert_eq!(code, 422, "unknown fields are refused: {body}");
    let roll = r#"{"source":"pms sync","residents":[
        {"resident":"T-7001","unit":"12","name":"Omar Haddad","email":"omar@example.com"},
        {"resident":"X-2","unit":"14","name":"Lena Fischer","email":"LENA@example.com"}]}"#;
    let (code, body) = hub.api("PUT", "/api/v1/residents", Some(roll));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["summary"]["review"], 1, "{body}");
    let (code, review) = hub.api("GET", "/api/v1/roll/review", None);
    assert_eq!(code, 200);
    let item = review["items"][0].clone();
    assert_eq!(item["candidate"], "T-7002", "{review}");
    assert_eq!(review["last_import"]["source"], "pms sync");
    let id = item["review"].as_str().expect("review id").to_owned();
    let (code, _) = hub.api(
        "POST",
        &format!("/api/v1/roll/review/{id}"),
        Some("{\"decision\":\"maybe\"}"),
    );
    assert_eq!(code, 422);
    let (code, _) = hub.api(
        "POST",
        "/api/v1/roll/review/no-such",
        Some("{\"decision\":\"same\"}"),
    );
    assert_eq!(code, 422);
    let (code, body) = hub.api(
        "POST",
        &format!("/api/v1/roll/review/{id}"),
        Some("{\"decision\":\"same\"}"),
    );
    assert_eq!(code, 200, "{body}");
    let (_, review) = hub.api("GET", "/api/v1/roll/review", None);
    assert_eq!(review["items"].as_array().map(Vec::len), Some(0));
    // From now on X-2 is T-7002: the same list changes nothing.
    let (_, body) = hub.api("PUT", "/api/v1/residents", Some(roll));
    assert_eq!(body["summary"]["unchanged"], 2, "{body}");

    // A resident the roll no longer lists is moved out (grace 0 here), never deleted.
    let (_, body) = hub.api(
        "PUT",
        "/api/v1/residents",
        Some(r#"{"residents":[{"resident":"T-7001","unit":"12","name":"Omar Haddad"}]}"#),
    );
    assert_eq!(
        body["summary"]["leaving"], 1,
        "the grace period starts: {body}"
    );
    let (_, body) = hub.api(
        "PUT",
        "/api/v1/residents",
        Some(r#"{"residents":[{"resident":"T-7001","unit":"12","name":"Omar Haddad"}]}"#),
    );
    assert_eq!(body["summary"]["moved_out"], 1, "{body}");
    let (_, list) = hub.api("GET", "/api/v1/residents", None);
    let lena = list
        .as_array()
        .and_then(|l| l.iter().find(|r| r["resident"] == "T-7002").cloned())
        .expect("kept");
    assert_eq!(lena["active"], false);
}

/// A carrier's address for codes, and "Email a new code": an admin's, with CSRF; staff see the
/// address but cannot send; a bad address is a 400; the code goes to the outbox and is shown
/// on no page; the API without a token is 401 and `send` with a code is 422.
#[test]
fn an_admin_emails_a_carrier_a_new_code_from_the_page_and_nobody_sees_it() {
    let hub = start();
    let (admin, admin_csrf, staff, staff_csrf) = admin_and_staff(&hub);
    let as_admin =
        |path: &str, form: &str| req(hub.web, "POST", path, Some(&admin), Some(form), "");
    let (code, _, body) = as_admin(
        "/carriers",
        &format!("csrf={admin_csrf}&carrier=ups&name=UPS&email=not-an-address"),
    );
    assert_eq!(code, 400);
    assert!(body.contains("is not an email address"), "{body}");
    let (code, h, _) = as_admin(
        "/carriers",
        &format!("csrf={admin_csrf}&carrier=ups&name=UPS&email=codes%40ups.example"),
    );
    assert_eq!(code, 303, "{h}");

    // Staff see the address and no button; a staff post, and an admin's without CSRF, are 403.
    let (_, _, page) = req(hub.web, "GET", "/carriers", Some(&staff), None, "");
    assert!(page.contains("codes@ups.example"), "{page}");
    assert!(!page.contains("/carriers/ups/codes/send"), "{page}");
    let (code, _, _) = req(
        hub.web,
        "POST",
        "/carriers/ups/codes/send",
        Some(&staff),
        Some(&format!("csrf={staff_csrf}")),
        "",
    );
    assert_eq!(code, 403);
    assert_eq!(as_admin("/carriers/ups/codes/send", "").0, 403);
    let (code, _) = locker_tests::http(
        hub.web,
        "POST",
        "/api/v1/carriers/ups/codes",
        None,
        Some("{\"send\":true}"),
    );
    assert_eq!(code, 401);
    let (code, _) = hub.api(
        "POST",
        "/api/v1/carriers/ups/codes",
        Some("{\"send\":true,\"code\":\"11223344\"}"),
    );
    assert_eq!(code, 422);
    let (code, body) = hub.api("POST", "/api/v1/carriers/ups/codes", Some("{\"send\":1}"));
    assert_eq!(code, 422, "{body}");
    assert!(hub.api("GET", "/api/v1/outbox", None).1 == serde_json::json!([]));

    // The admin's page shows the button; pressing it queues the code for the address.
    let (_, _, page) = req(hub.web, "GET", "/carriers", Some(&admin), None, "");
    assert!(page.contains("/carriers/ups/codes/send"), "{page}");
    let (code, h, body) = as_admin("/carriers/ups/codes/send", &format!("csrf={admin_csrf}"));
    assert_eq!(code, 303, "{h}");
    let (_, outbox) = hub.api("GET", "/api/v1/outbox", None);
    let sent = outbox[0]["notification"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("the code in the outbox: {outbox}"))
        .to_owned();
    assert_eq!(outbox[0]["notification"]["carrier"], "ups");
    assert!(!h.contains(&sent) && !body.contains(&sent));
    for path in ["/carriers", "/notifications"] {
        let (code, _, page) = req(hub.web, "GET", path, Some(&admin), None, "");
        assert_eq!(code, 200);
        assert!(!page.contains(&sent), "the code on {path}");
        if path == "/notifications" {
            assert!(page.contains("carrier ups"), "{page}");
        }
    }
    // It opens a drop-off.
    let (code, _) = hub.api(
        "POST",
        "/api/v1/residents",
        Some("{\"resident\":\"r-1\",\"unit\":\"101\"}"),
    );
    assert_eq!(code, 201);
    let (_, reply) = drop_off(&hub, "ups-1", &sent, "r-1");
    assert_eq!(reply["type"], "reserved", "{reply}");
}

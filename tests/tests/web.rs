//! The staff web page's handlers against the real binary: sign-in, sessions, CSRF, roles,
//! throttling, bad input, and `locker-hub user add` on the running hub.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use locker_tests::{base_config, hub_binary, Hub};

fn start() -> Hub {
    Hub::start(|dir| {
        // One carrier fills the whole bank in some tests (to make it overflow), which the default
        // flood limit of 3 drop-offs in progress per carrier would refuse.
        format!(
            "{}\n[policies]\ncarrier_open_reservations = 10\n\n[[bank]]\nid = \"A\"\nname = \"Lobby\"\ndriver = {{ kind = \"mqtt\" }}\ncompartments = [ {{ doors = \"1-4\", size = \"S\", column = 1 }} ]\n",
            base_config(dir)
        )
    })
}

/// One raw HTTP/1.1 request: (status, headers, body).
fn req(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
    extra: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}");
    if let Some(c) = cookie {
        head += &format!("Cookie: {c}\r\n");
    }
    let body = form.unwrap_or("");
    if form.is_some() {
        head += &format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    write!(s, "{head}\r\n{body}").expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let (h, b) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (code, h.to_owned(), b.to_owned())
}

fn set_cookie(headers: &str, name: &str) -> Option<String> {
    headers
        .lines()
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .find(|l| l.starts_with(&format!("{name}=")))
        .map(|l| l.split(';').next().unwrap_or("").to_owned())
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s.find(start).expect("marker") + start.len();
    &s[i..i + s[i..].find(end).expect("end")]
}

fn add_user(hub: &Hub, name: &str, role: &str, password: &str) -> std::process::Output {
    let mut child = Command::new(hub_binary())
        .args(["user", "add", name, "--role", role, "--config"])
        .arg(hub.dir.path().join("hub.toml"))
        .args(["--web", &hub.web.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run user add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("password");
    child.wait_with_output().expect("output")
}

/// Sign in: (session cookie, CSRF token of the session). `None` if refused (with the status).
fn login(hub: &Hub, user: &str, password: &str) -> Result<(String, String), u16> {
    let (_, h, b) = req(hub.web, "GET", "/login", None, None, "");
    let pre = set_cookie(&h, "lh_login_csrf").expect("login csrf cookie");
    let token = between(&b, "name=csrf value=\"", "\"").to_owned();
    let (code, h, _) = req(
        hub.web,
        "POST",
        "/login",
        Some(&pre),
        Some(&format!("csrf={token}&user={user}&password={password}")),
        "",
    );
    if code != 303 {
        return Err(code);
    }
    let cookie = set_cookie(&h, "lh_session").expect("session cookie");
    assert!(
        h.to_lowercase().contains("httponly") && h.contains("SameSite=Strict"),
        "{h}"
    );
    let (_, _, page) = req(hub.web, "GET", "/system", Some(&cookie), None, "");
    let csrf = between(&page, "name=csrf content=\"", "\"").to_owned();
    Ok((cookie, csrf))
}

// `nothing_but_login_and_healthz_answers_without_a_session` runs in-process:
// `hub/tests/in_process.rs` (it needs no outside peer).

#[test]
fn user_add_on_the_running_hub_then_roles_csrf_and_bad_input() {
    let hub = start();
    let out = add_user(&hub, "ann", "admin", "correct horse battery");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = add_user(&hub, "bob", "staff", "short");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 10"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(add_user(&hub, "bob", "staff", "bobs long password")
        .status
        .success());
    let out = add_user(&hub, "ann", "staff", "another long password");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    let (admin, admin_csrf) =
        login(&hub, "ann", "correct%20horse%20battery").expect("admin signs in");
    let (staff, staff_csrf) = login(&hub, "bob", "bobs%20long%20password").expect("staff signs in");
    assert_eq!(req(hub.web, "GET", "/", Some(&staff), None, "").0, 200);

    // Roles: staff may not manage users or open a whole bank.
    assert_eq!(req(hub.web, "GET", "/users", Some(&staff), None, "").0, 403);
    assert_eq!(req(hub.web, "GET", "/users", Some(&admin), None, "").0, 200);
    let (code, _, _) = req(
        hub.web,
        "POST",
        "/banks/A/open-all",
        Some(&staff),
        Some(&format!("csrf={staff_csrf}&reason=x&confirm=yes")),
        "",
    );
    assert_eq!(code, 403);
    let (code, _, body) = req(hub.web, "GET", "/api/v1/users", Some(&staff), None, "");
    assert_eq!(code, 403, "{body}");

    // CSRF: a form without the token, or with another session's, is refused.
    let (code, _, _) = req(
        hub.web,
        "POST",
        "/compartments/A/1/open",
        Some(&staff),
        Some("reason=check"),
        "",
    );
    assert_eq!(code, 403);
    let (code, _, _) = req(
        hub.web,
        "POST",
        "/compartments/A/1/open",
        Some(&staff),
        Some(&format!("csrf={admin_csrf}&reason=check")),
        "",
    );
    assert_eq!(code, 403);
    // The JSON API with a session cookie needs the X-CSRF-Token header.
    let json = "{\"request_id\":\"w1\",\"type\":\"desk_check_in\",\"resident\":\"nobody\"}";
    let mut s = TcpStream::connect(hub.web).expect("connect");
    write!(s, "POST /api/v1/commands HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {staff}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}", json.len()).expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    assert!(raw.starts_with("HTTP/1.1 403"), "{raw}");
    assert!(raw.contains("X-CSRF-Token"), "{raw}");

    // Bad input: a clear 4xx naming the field.
    let (code, _, body) = req(
        hub.web,
        "POST",
        "/compartments/A/1/open",
        Some(&staff),
        Some(&format!("csrf={staff_csrf}")),
        "",
    );
    assert_eq!(code, 400);
    assert!(body.contains("reason is required"), "{body}");
    let (code, _, body) = req(
        hub.web,
        "GET",
        "/audit?from=yesterday",
        Some(&staff),
        None,
        "",
    );
    assert_eq!(code, 400);
    assert!(body.contains("from"), "{body}");

    // A good action is recorded under the user's name.
    let (code, h, _) = req(
        hub.web,
        "POST",
        "/parcels/check-in",
        Some(&staff),
        Some(&format!("csrf={staff_csrf}&resident=r-1")),
        "",
    );
    assert_eq!(code, 303, "{h}");
    let (_, _, csv) = req(
        hub.web,
        "GET",
        "/audit.csv?actor=bob",
        Some(&staff),
        None,
        "",
    );
    assert!(csv.starts_with("id,at_utc"), "{csv}");

    // Sign out ends the session.
    let (code, _, _) = req(
        hub.web,
        "POST",
        "/logout",
        Some(&staff),
        Some(&format!("csrf={staff_csrf}")),
        "",
    );
    assert_eq!(code, 303);
    assert_eq!(req(hub.web, "GET", "/", Some(&staff), None, "").0, 303);
}

#[test]
fn wrong_passwords_are_throttled() {
    let hub = start();
    assert!(add_user(&hub, "ann", "staff", "correct horse battery")
        .status
        .success());
    for _ in 0..5 {
        assert_eq!(login(&hub, "ann", "wrong-password"), Err(401));
    }
    // Paused now, even with the right password.
    assert_eq!(login(&hub, "ann", "correct%20horse%20battery"), Err(429));
}

/// Two signed-in users: (admin cookie, admin CSRF, staff cookie, staff CSRF).
fn admin_and_staff(hub: &Hub) -> (String, String, String, String) {
    assert!(add_user(hub, "ann", "admin", "correct horse battery")
        .status
        .success());
    assert!(add_user(hub, "bob", "staff", "bobs long password")
        .status
        .success());
    let (admin, admin_csrf) =
        login(hub, "ann", "correct%20horse%20battery").expect("admin signs in");
    let (staff, staff_csrf) = login(hub, "bob", "bobs%20long%20password").expect("staff signs in");
    (admin, admin_csrf, staff, staff_csrf)
}

/// The flash message a redirect carries, decoded enough to read.
fn flash(headers: &str) -> String {
    let location = headers
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or("");
    location.replace("%20", " ")
}

fn drop_off(hub: &Hub, id: &str, code: &str, resident: &str) -> (u16, serde_json::Value) {
    hub.api(
        "POST",
        "/api/v1/commands",
        Some(&format!(
            "{{\"request_id\":\"{id}\",\"type\":\"start_drop_off\",\"bank\":\"A\",\"carrier_code\":\"{code}\",\
             \"recipient\":{{\"type\":\"resident\",\"resident\":\"{resident}\"}},\"size\":\"small\"}}"
        )),
    )
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
fn carrier_codes_issued_on_the_page_open_a_compartment_until_revoked() {
    let hub = start();
    let (admin, admin_csrf, staff, staff_csrf) = admin_and_staff(&hub);
    let (code, _) = hub.api(
        "POST",
        "/api/v1/residents",
        Some("{\"resident\":\"r-1\",\"unit\":\"101\"}"),
    );
    assert_eq!(code, 201);

    // Adding carriers and issuing codes is for admins; staff can look.
    let (code, _, _) = req(
        hub.web,
        "POST",
        "/carriers",
        Some(&staff),
        Some(&format!("csrf={staff_csrf}&carrier=ups&name=UPS")),
        "",
    );
    assert_eq!(code, 403);
    let (code, _, _) = req(
        hub.web,
        "POST",
        "/carriers",
        Some(&admin),
        Some("carrier=ups&name=UPS"),
        "",
    );
    assert_eq!(code, 403, "no CSRF token");
    let (code, h, _) = req(
        hub.web,
        "POST",
        "/carriers",
        Some(&admin),
        Some(&format!("csrf={admin_csrf}&carrier=ups&name=UPS")),
        "",
    );
    assert_eq!(code, 303, "{h}");
    let (code, _, page) = req(hub.web, "GET", "/carriers", Some(&staff), None, "");
    assert_eq!(code, 200);
    assert!(page.contains("data-carrier=\"ups\"") && !page.contains("Issue code"));
    let (code, _, _) = req(
        hub.web,
        "POST",
        "/carriers/ups/codes",
        Some(&staff),
        Some(&format!("csrf={staff_csrf}")),
        "",
    );
    assert_eq!(code, 403, "staff cannot issue carrier codes");
    let (code, body) = http_with_session(
        &hub,
        "POST",
        "/api/v1/carriers/ups/codes",
        &staff,
        &staff_csrf,
    );
    assert_eq!(code, 403, "{body}");

    // A typed code must be digits, long enough.
    let (code, _, body) = req(
        hub.web,
        "POST",
        "/carriers/ups/codes",
        Some(&admin),
        Some(&format!("csrf={admin_csrf}&code=12ab")),
        "",
    );
    assert_eq!(code, 400);
    assert!(body.contains("6 to 16 digits"), "{body}");

    // Issue a generated code on the page: shown once, not cached, and it works at the bank.
    let (code, h, page) = req(
        hub.web,
        "POST",
        "/carriers/ups/codes",
        Some(&admin),
        Some(&format!("csrf={admin_csrf}&code=")),
        "",
    );
    assert_eq!(code, 200, "{page}");
    assert!(h.to_lowercase().contains("cache-control: no-store"), "{h}");
    let issued = between(&page, "data-code>", "</p>").to_owned();
    assert!(
        issued.len() >= 6 && issued.chars().all(|c| c.is_ascii_digit()),
        "{issued}"
    );
    let (code, reply) = drop_off(&hub, "d1", &issued, "r-1");
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["type"], "reserved", "{reply}");

    // The list names the code by reference only; revoking it by reference stops it.
    let (_, _, page) = req(hub.web, "GET", "/carriers", Some(&admin), None, "");
    assert!(!page.contains(&issued), "the plaintext is shown only once");
    let code_ref = between(&page, "data-code-ref=\"", "\"").to_owned();
    let (code, h, _) = req(
        hub.web,
        "POST",
        &format!("/carriers/ups/codes/{code_ref}/revoke"),
        Some(&staff),
        Some(&format!("csrf={staff_csrf}")),
        "",
    );
    assert_eq!(code, 403, "{h}");
    let (code, h, _) = req(
        hub.web,
        "POST",
        &format!("/carriers/ups/codes/{code_ref}/revoke"),
        Some(&admin),
        Some(&format!("csrf={admin_csrf}")),
        "",
    );
    assert_eq!(code, 303);
    assert!(flash(&h).contains("ok=Revoked"), "{h}");
    let (code, reply) = drop_off(&hub, "d2", &issued, "r-1");
    assert_eq!(code, 409, "{reply}");
    assert_eq!(reply["code"], "bad_credential", "{reply}");

    // The API: a typed code, 201 with its reference, works; DELETE revokes it.
    let (code, body) = hub.api(
        "POST",
        "/api/v1/carriers/ups/codes",
        Some("{\"code\":\"24681357\"}"),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["code"], "24681357");
    let api_ref = body["code_ref"].as_str().expect("code_ref").to_owned();
    let (code, body) = hub.api(
        "POST",
        "/api/v1/carriers/ups/codes",
        Some("{\"code\":\"24681357\"}"),
    );
    assert_eq!(code, 409, "the same code twice: {body}");
    let (code, _) = hub.api(
        "POST",
        "/api/v1/carriers/ups/codes",
        Some("{\"code\":\"123\"}"),
    );
    assert_eq!(code, 422);
    let (code, _) = hub.api("POST", "/api/v1/carriers/nobody/codes", Some("{}"));
    assert_eq!(code, 409);
    let (code, list) = hub.api("GET", "/api/v1/carriers", None);
    assert_eq!(code, 200);
    assert_eq!(list[0]["codes"][0]["code_ref"], api_ref.as_str(), "{list}");
    assert_eq!(drop_off(&hub, "d3", "24681357", "r-1").0, 200);
    let (code, _) = hub.api(
        "DELETE",
        &format!("/api/v1/carriers/ups/codes/{api_ref}"),
        None,
    );
    assert_eq!(code, 204);
    let (code, _) = hub.api(
        "DELETE",
        &format!("/api/v1/carriers/ups/codes/{api_ref}"),
        None,
    );
    assert_eq!(code, 404);
    assert_eq!(drop_off(&hub, "d4", "24681357", "r-1").0, 409);

    // A deactivated carrier's codes stop working too.
    let (_, body) = hub.api("POST", "/api/v1/carriers/ups/codes", Some("{}"));
    let third = body["code"].as_str().expect("generated code").to_owned();
    let (code, _) = hub.api("POST", "/api/v1/carriers/ups/deactivate", None);
    assert_eq!(code, 200);
    assert_eq!(drop_off(&hub, "d5", &third, "r-1").0, 409);

    // Issued under the admin's name, and no plaintext code anywhere in the audit or the log.
    let (_, _, csv) = req(
        hub.web,
        "GET",
        "/audit.csv?actor=ann",
        Some(&admin),
        None,
        "",
    );
    assert!(
        csv.contains("carrier_code_issued") && csv.contains("carrier_code_revoked"),
        "{csv}"
    );
    let (_, _, all) = req(hub.web, "GET", "/audit.csv", Some(&admin), None, "");
    let output = hub.output();
    for secret in [issued.as_str(), "24681357", third.as_str()] {
        assert!(!all.contains(secret), "{secret} in the audit trail");
        assert!(!output.contains(secret), "{secret} in the hub's log");
    }
}

/// A JSON POST of `{}` with a session cookie and its CSRF header: (status, body).
fn http_with_session(
    hub: &Hub,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(hub.web).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {cookie}\r\n\
         X-CSRF-Token: {csrf}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    )
    .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (
        code,
        raw.split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .to_owned(),
    )
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
    assert!(first.contains("Page 1 of 3"), "{first}");
    assert!(first.contains("data-resident=\"r-000\""));
    assert!(!first.contains("data-resident=\"r-399\""));
    let (_, _, last) = get("/residents?q=&page=3");
    assert!(last.contains("Page 3 of 3"));
    assert!(last.contains("data-resident=\"r-399\""));
    assert!(!last.contains("data-resident=\"r-000\""));
    // Out of range pages show the nearest one; a search narrows to one page.
    assert!(get("/residents?page=99").2.contains("Page 3 of 3"));
    let (_, _, one) = get("/residents?q=r-123");
    assert!(one.contains("data-resident=\"r-123\"") && !one.contains("Page 1 of"));
}

//! The staff web page's handlers against the real binary: sign-in, sessions, CSRF, roles,
//! throttling, bad input, and `locker-hub user add` on the running hub.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use locker_tests::{base_config, hub_binary, Hub};

fn start() -> Hub {
    Hub::start(|dir| {
        format!(
            "{}\n[[bank]]\nid = \"A\"\nname = \"Lobby\"\ndriver = {{ kind = \"mqtt\" }}\ncompartments = [ {{ doors = \"1-4\", size = \"S\", column = 1 }} ]\n",
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

#[test]
fn nothing_but_login_and_healthz_answers_without_a_session() {
    let hub = start();
    assert_eq!(req(hub.web, "GET", "/healthz", None, None, "").0, 200);
    assert_eq!(req(hub.web, "GET", "/login", None, None, "").0, 200);
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
    ] {
        let (code, h, _) = req(hub.web, "GET", path, None, None, "");
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
        "/events",
        "/dashboard/live",
        "/audit.csv",
    ] {
        let (code, _, body) = req(hub.web, "GET", path, None, None, "");
        assert_eq!(code, 401, "{path}: {body}");
    }
    let (code, _, _) = req(
        hub.web,
        "POST",
        "/compartments/A/1/open",
        None,
        Some("reason=x"),
        "",
    );
    assert_eq!(code, 401);
    let (code, _, _) = req(hub.web, "GET", "/", Some("lh_session=forged"), None, "");
    assert_eq!(code, 303, "a made-up session is no session");
}

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

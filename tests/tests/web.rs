//! The staff web page against the real binary, where the test needs the process: `locker-hub
//! user add` on the running hub (a command-line peer), and carrier codes (whose plaintext must
//! not reach the hub's log). The page's other handlers are tested in-process
//! (`hub/tests/web_pages.rs`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use locker_tests::page::{between, flash, http_with_session, login, req};
use locker_tests::{base_config, hub_binary, page, Hub};

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

/// Two signed-in users: (admin cookie, admin CSRF, staff cookie, staff CSRF).
fn admin_and_staff(hub: &Hub) -> (String, String, String, String) {
    assert!(add_user(hub, "ann", "admin", "correct horse battery")
        .status
        .success());
    assert!(add_user(hub, "bob", "staff", "bobs long password")
        .status
        .success());
    page::sign_in_ann_and_bob(hub.web)
}

fn drop_off(hub: &Hub, id: &str, code: &str, resident: &str) -> (u16, serde_json::Value) {
    hub.api(
        "POST",
        "/api/v1/commands",
        Some(&page::drop_off_body(id, code, resident)),
    )
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
        login(hub.web, "ann", "correct%20horse%20battery").expect("admin signs in");
    let (staff, staff_csrf) =
        login(hub.web, "bob", "bobs%20long%20password").expect("staff signs in");
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
        hub.web,
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

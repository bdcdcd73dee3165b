//! Shared helpers for the end-to-end tests: start the real `locker-hub` binary, find out where it
//! listens, talk HTTP and MQTT to it, and stop it with a signal.
//!
//! The tests live in `tests/tests/`; each starts its own hub on ephemeral loopback ports, so they
//! can run in parallel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

pub mod certs;
pub mod faketime;
pub mod kiosk;
pub mod store;

/// The `locker-hub` binary under test: `LOCKER_HUB_BIN` if set, otherwise the workspace's debug
/// build, which is built once per test process if needed.
pub fn hub_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("LOCKER_HUB_BIN") {
        return PathBuf::from(p);
    }
    static BUILD: Once = Once::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    BUILD.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "locker-hub"])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building locker-hub failed");
    });
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("debug").join("locker-hub")
}

/// `locker-hub hash-password`, as an installer would run it: the argon2 hash for a config file.
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(hub_binary())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(password.as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("hash-password output");
    assert!(out.status.success(), "hash-password failed");
    let hash = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned();
    assert!(hash.starts_with("$argon2"), "{hash}");
    hash
}

/// A running hub process.
pub struct Hub {
    child: Child,
    /// The command line and extra environment, to start the same hub again after a crash.
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    pub mqtt: Option<SocketAddr>,
    pub mqtts: Option<SocketAddr>,
    /// Where a second hub connects for sync (`[sync] listen`).
    pub sync: Option<SocketAddr>,
    pub web: SocketAddr,
    /// Everything the hub printed on stdout and stderr so far.
    pub output: Arc<Mutex<String>>,
    /// Keeps the configuration and data directory alive for the hub's lifetime.
    pub dir: tempfile::TempDir,
}

/// Loopback listeners on ephemeral ports, anonymous clients off, data in `dir/data`: prepend to
/// a test's own config.
pub fn base_config(dir: &Path) -> String {
    format!(
        r#"[site]
id = "test-site"
name = "Test site"
data_dir = "{}/data"

[mqtt]
listener = {{ bind = "127.0.0.1:0" }}
observers = [{{ username = "{}", password_hash = "{}" }}]

[web]
bind = "127.0.0.1:0"
"#,
        dir.display(),
        OBSERVER.0,
        OBSERVER_HASH,
    )
}

/// A read-only staff tool's MQTT login, declared by every [`base_config`]: it may read bank state,
/// status, door observations, sensor readings and alerts.
pub const OBSERVER: (&str, &str) = ("observer", "observer password");
const OBSERVER_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$V4RcAyDzn2sOoA9nFWOtvQ$6AC8QYRk2/ITL4eDzY/TUtYljQo5//3zEPbayWybjUg";

/// The password of every kiosk login made by [`kiosks`].
pub const KIOSK_PASSWORD: &str = "kiosk password";
const KIOSK_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$3shDQO7OKubZIZjWFtqfSQ$N6+zybnMvwW1tDWi+2NxDEZuXkgm0075cyszfdU0eOw";

/// A bank's `kiosks = [...]` line: one kiosk per id, each with the username `kiosk-{id}` and
/// [`KIOSK_PASSWORD`].
pub fn kiosks(ids: &[&str]) -> String {
    let entries: Vec<String> = ids
        .iter()
        .map(|id| {
            format!(r#"{{ id = "{id}", username = "kiosk-{id}", password_hash = "{KIOSK_HASH}" }}"#)
        })
        .collect();
    format!("kiosks = [{}]\n", entries.join(", "))
}

/// The login of kiosk `id` made by [`kiosks`].
pub fn kiosk_login(id: &str) -> (String, &'static str) {
    (format!("kiosk-{id}"), KIOSK_PASSWORD)
}

impl Hub {
    /// Start `locker-hub run` with a configuration made by `config(dir)`, where `dir` is a fresh
    /// temporary directory (the test may put certificates there), and wait for its ready line.
    pub fn start(config: impl FnOnce(&Path) -> String) -> Hub {
        Self::start_with_env(config, &[])
    }

    /// [`Hub::start`] with extra environment variables for the hub process (a preloaded
    /// library that fakes the system clock, say).
    pub fn start_with_env(config: impl FnOnce(&Path) -> String, env: &[(&str, String)]) -> Hub {
        Self::start_in(tempfile::tempdir().expect("tempdir"), config, env)
    }

    /// [`Hub::start_with_env`] in a directory the test prepared (a data directory made by
    /// `locker-hub init --join`, say).
    pub fn start_in(
        dir: tempfile::TempDir,
        config: impl FnOnce(&Path) -> String,
        env: &[(&str, String)],
    ) -> Hub {
        let text = config(dir.path());
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, text).expect("write config");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        Self::spawn_env(vec!["run".into(), "--config".into(), path.into()], dir, env)
    }

    /// Start `locker-hub demo` with the given extra arguments.
    pub fn demo(args: &[&str]) -> Hub {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut all = vec!["demo".into()];
        all.extend(args.iter().map(Into::into));
        Self::spawn(all, dir)
    }

    /// Kill the hub with SIGKILL (no chance to flush anything) and start it again with the same
    /// configuration and data. Returns how long the new process took to become ready.
    pub fn crash_and_restart(&mut self) -> Duration {
        self.crash_and_restart_with(|| {})
    }

    /// [`Hub::crash_and_restart`], doing `between` while the hub is down (repair its disk).
    pub fn crash_and_restart_with(&mut self, between: impl FnOnce()) -> Duration {
        let _ = self.child.kill();
        let _ = self.child.wait();
        between();
        let dir = tempfile::tempdir().expect("tempdir");
        let placeholder = std::mem::replace(&mut self.dir, dir);
        let started = Instant::now();
        let fresh = Self::spawn_env(self.args.clone(), placeholder, self.env.clone());
        let took = started.elapsed();
        let old = std::mem::replace(self, fresh);
        // The old value's child is already dead; dropping it kills nothing new.
        drop(old);
        took
    }

    fn spawn(args: Vec<std::ffi::OsString>, dir: tempfile::TempDir) -> Hub {
        Self::spawn_env(args, dir, Vec::new())
    }

    fn spawn_env(
        args: Vec<std::ffi::OsString>,
        dir: tempfile::TempDir,
        env: Vec<(String, String)>,
    ) -> Hub {
        let mut cmd = Command::new(hub_binary());
        cmd.args(&args);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start locker-hub");
        let output = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("locker-hub ready:") {
                    let _ = ready_tx.send(line.clone());
                }
                out.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let err = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                err.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let line = match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "locker-hub did not become ready; it printed:\n{}",
                    output.lock().unwrap()
                );
            }
        };
        let field = |name: &str| -> Option<String> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_owned))
        };
        let addr = |s: String| -> SocketAddr {
            s.trim_start_matches("http://")
                .trim_start_matches("https://")
                .parse()
                .expect("address in ready line")
        };
        Hub {
            child,
            args,
            env,
            mqtt: field("mqtt").map(addr),
            mqtts: field("mqtts").map(addr),
            sync: field("sync").map(addr),
            web: addr(field("web").expect("web address")),
            output,
            dir,
        }
    }

    /// The plain MQTT listener (panics if the config has none).
    /// The hub's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn mqtt(&self) -> SocketAddr {
        self.mqtt.expect("plain MQTT listener")
    }

    /// `GET path` on the web listener: (status code, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.web, path)
    }

    /// The API token the hub made in its data directory (`base_config` puts it in `dir/data`).
    pub fn api_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data").join("api-token"))
            .expect("api-token in the data directory")
            .trim()
            .to_owned()
    }

    /// Call the JSON API with the hub's token: (status, parsed body).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let (code, text) = http(self.web, method, path, Some(&self.api_token()), body);
        let value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
        };
        (code, value)
    }

    /// `POST /api/v1/commands` with `body` under `request_id`: the hub's reply (any status).
    pub fn command(&self, request_id: &str, body: serde_json::Value) -> serde_json::Value {
        let mut body = body;
        body["request_id"] = serde_json::json!(request_id);
        self.api("POST", "/api/v1/commands", Some(&body.to_string()))
            .1
    }

    /// Resident `r-7` in unit 7 and carrier `acme` with access code `555777`, through the API.
    pub fn register_unit_7_and_acme(&self) {
        for (i, body) in [
            serde_json::json!({"type": "register_resident", "resident": "r-7", "unit": "7"}),
            serde_json::json!({"type": "register_carrier", "carrier": "acme", "name": "Acme"}),
            serde_json::json!({"type": "issue_carrier_code", "carrier": "acme", "code": "555777"}),
        ]
        .into_iter()
        .enumerate()
        {
            let reply = self.command(&format!("setup-{i}"), body);
            assert_eq!(reply["type"], "accepted", "{reply}");
        }
    }

    /// Delivers one parcel for resident `r-{unit}` in `unit` through a bank `A` whose in-hub
    /// simulated controller (`driver = { kind = "sim" }`) opens its doors and closes them after
    /// 4 s; registers the resident and carrier `acme` (code `135790`) first. `tag` keeps request
    /// ids apart. Returns the parcel id and its door once the delivery is complete.
    pub fn deliver_via_sim(&self, tag: &str, unit: &str) -> (String, u64) {
        for (i, body) in [
            serde_json::json!({"type": "register_resident", "resident": format!("r-{unit}"), "unit": unit}),
            serde_json::json!({"type": "register_carrier", "carrier": "acme", "name": "Acme"}),
            serde_json::json!({"type": "issue_carrier_code", "carrier": "acme", "code": "135790"}),
        ]
        .into_iter()
        .enumerate()
        {
            let reply = self.command(&format!("{tag}-setup-{i}"), body);
            assert!(
                reply["type"] == "accepted" || reply["code"] == "already_exists",
                "{reply}"
            );
        }
        let reserved = self.command(
            &format!("{tag}-drop"),
            serde_json::json!({"type": "start_drop_off", "bank": "A", "carrier_code": "135790",
                   "recipient": {"type": "unit", "unit": unit}, "size": "m"}),
        );
        assert_eq!(reserved["type"], "reserved", "{reserved}");
        let door = reserved["door"].as_u64().expect("door");
        let until = |what: &str, ok: &dyn Fn() -> bool| {
            let started = std::time::Instant::now();
            while !ok() {
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "timed out waiting for {what}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        until("the door to open", &|| {
            self.compartment(door)["door_open"] == true
        });
        let confirmed = self.command(
            &format!("{tag}-confirm"),
            serde_json::json!({"type": "confirm_parcel", "reservation": reserved["reservation"]}),
        );
        assert_eq!(confirmed["type"], "parcel_confirmed", "{confirmed}");
        until("the delivery", &|| {
            let c = self.compartment(door);
            c["status"] == "occupied" && c["door_open"] == false
        });
        (
            confirmed["parcel"].as_str().expect("parcel id").to_owned(),
            door,
        )
    }

    /// Open alerts of `kind` from `GET /api/v1/alerts`.
    pub fn alerts_of(&self, kind: &str) -> Vec<serde_json::Value> {
        let (code, list) = self.api("GET", "/api/v1/alerts", None);
        assert_eq!(code, 200, "{list}");
        list.as_array()
            .map(|l| l.iter().filter(|a| a["kind"] == kind).cloned().collect())
            .unwrap_or_default()
    }

    /// Compartment `door` from `GET /api/v1/compartments` (`Null` if there is none).
    pub fn compartment(&self, door: u64) -> serde_json::Value {
        let (_, list) = self.api("GET", "/api/v1/compartments", None);
        list.as_array()
            .and_then(|l| l.iter().find(|c| c["door"] == door).cloned())
            .unwrap_or(serde_json::Value::Null)
    }

    /// `GET /healthz` as JSON.
    pub fn health(&self) -> serde_json::Value {
        let (code, body) = self.get("/healthz");
        assert_eq!(code, 200, "healthz: {body}");
        serde_json::from_str(&body).expect("healthz JSON")
    }

    /// Poll `/healthz` until `pred` holds (or panic after `timeout`).
    pub fn wait_health(
        &self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let h = self.health();
            if pred(&h) {
                return h;
            }
            assert!(
                start.elapsed() < timeout,
                "health never matched; last: {h}\nhub output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Send SIGTERM and wait for the exit: (status, time from signal to exit).
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let pid = self.child.id() as libc::pid_t;
        let start = Instant::now();
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status, start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                panic!("locker-hub ignored SIGTERM for 10 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait until the hub has printed `needle` (stdout and stderr are read by other threads, so
    /// a line can arrive a moment after the ready line). Returns everything printed so far.
    pub fn wait_output(&self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let out = self.output();
            if out.contains(needle) {
                return out;
            }
            assert!(
                start.elapsed() < timeout,
                "the hub never printed {needle:?}; it printed:\n{out}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET (the tests need nothing more, and it keeps an HTTP client crate out).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http(addr, "GET", path, None, None)
}

/// A minimal HTTP/1.1 request: (status code, body). axum answers these small bodies with a
/// Content-Length, so no chunked decoding is needed.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut headers = String::new();
    if let Some(token) = bearer {
        headers += &format!("Authorization: Bearer {token}\r\n");
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        headers += "Content-Type: application/json\r\n";
    }
    let (code, _, body) = exchange(addr, method, path, &headers, body);
    (code, body)
}

/// One HTTP/1.1 request with `headers` (each line ending in CRLF) and `body` (with its
/// Content-Length when not empty), on a connection of its own: (status, head, body).
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    exchange_bytes(addr, method, path, headers, body.as_bytes())
}

/// [`exchange`] with a body of any bytes (a file upload that is not UTF-8).
pub fn exchange_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect web");
    s.set_read_timeout(Some(Duration::from_secs(15))).ok();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}");
    if !body.is_empty() {
        head += &format!("Content-Length: {}\r\n", body.len());
    }
    write!(s, "{head}\r\n").expect("send");
    s.write_all(body).expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let (h, b) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (code, h.to_owned(), b.to_owned())
}

/// Run a command-line MQTT client (`mosquitto_sub`/`mosquitto_pub`); `None` if it is missing.
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Helpers for tests of the staff web page (sign-in, forms, sessions), over plain HTTP/1.1 to
/// the hub's web address: the same for the binary (`tests/tests/web.rs`) and the hub run
/// in-process (`hub/tests/web_pages.rs`).
pub mod page {
    use std::net::SocketAddr;

    /// One raw HTTP/1.1 request: (status, headers, body).
    pub fn req(
        addr: SocketAddr,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: Option<&str>,
        extra: &str,
    ) -> (u16, String, String) {
        let mut headers = extra.to_owned();
        if let Some(c) = cookie {
            headers += &format!("Cookie: {c}\r\n");
        }
        if form.is_some() {
            headers += "Content-Type: application/x-www-form-urlencoded\r\n";
        }
        super::exchange(addr, method, path, &headers, form.unwrap_or(""))
    }

    pub fn set_cookie(headers: &str, name: &str) -> Option<String> {
        headers
            .lines()
            .filter_map(|l| {
                l.strip_prefix("set-cookie: ")
                    .or_else(|| l.strip_prefix("Set-Cookie: "))
            })
            .find(|l| l.starts_with(&format!("{name}=")))
            .map(|l| l.split(';').next().unwrap_or("").to_owned())
    }

    pub fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
        let i = s.find(start).expect("marker") + start.len();
        &s[i..i + s[i..].find(end).expect("end")]
    }

    /// Sign in: (session cookie, CSRF token of the session). `None` if refused (with the status).
    pub fn login(web: SocketAddr, user: &str, password: &str) -> Result<(String, String), u16> {
        let (_, h, b) = req(web, "GET", "/login", None, None, "");
        let pre = set_cookie(&h, "lh_login_csrf").expect("login csrf cookie");
        let token = between(&b, "name=csrf value=\"", "\"").to_owned();
        let (code, h, _) = req(
            web,
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
        let (_, _, page) = req(web, "GET", "/system", Some(&cookie), None, "");
        let csrf = between(&page, "name=csrf content=\"", "\"").to_owned();
        Ok((cookie, csrf))
    }

    /// The flash message a redirect carries, decoded enough to read.
    pub fn flash(headers: &str) -> String {
        let location = headers
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .unwrap_or("");
        location.replace("%20", " ")
    }

    /// A JSON POST of `{}` with a session cookie and its CSRF header: (status, body).
    pub fn http_with_session(
        web: SocketAddr,
        method: &str,
        path: &str,
        cookie: &str,
        csrf: &str,
    ) -> (u16, String) {
        let headers = format!(
            "Cookie: {cookie}\r\nX-CSRF-Token: {csrf}\r\nContent-Type: application/json\r\n"
        );
        let (code, _, body) = super::exchange(web, method, path, &headers, "{}");
        (code, body)
    }

    /// Sign in the two users every page test makes (ann, an admin; bob, staff): (admin cookie,
    /// admin CSRF, staff cookie, staff CSRF).
    pub fn sign_in_ann_and_bob(web: SocketAddr) -> (String, String, String, String) {
        let (admin, admin_csrf) =
            login(web, "ann", "correct%20horse%20battery").expect("admin signs in");
        let (staff, staff_csrf) =
            login(web, "bob", "bobs%20long%20password").expect("staff signs in");
        (admin, admin_csrf, staff, staff_csrf)
    }

    /// The body of a `start_drop_off` command for `resident` with carrier code `code`.
    pub fn drop_off_body(id: &str, code: &str, resident: &str) -> String {
        format!("{{\"request_id\":\"{id}\",\"type\":\"start_drop_off\",\"bank\":\"A\",\"carrier_code\":\"{code}\",\
                 \"recipient\":{{\"type\":\"resident\",\"resident\":\"{resident}\"}},\"size\":\"small\"}}")
    }
}

//! `locker-hub user add NAME --role admin|staff|kiosk [--config FILE]`.
//!
//! redb lets one process open the store, and the hub is normally running when an installer adds
//! the first admin. So the command asks the running hub: it reads the configuration for the web
//! address and the data directory, authenticates with `DATA_DIR/api-token` (so it must run as the
//! service user, e.g. `sudo -u locker-hub`), and calls `POST /api/v1/users`. Over TLS it trusts
//! exactly the certificate named in the configuration. The password is read from standard input
//! (prompted without echo on a terminal).

use std::io::{BufRead, IsTerminal, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;

/// Add a user on the running hub. Returns the message to print.
pub fn add(
    config_path: &Path,
    web: Option<SocketAddr>,
    name: &str,
    role: &str,
) -> Result<String, String> {
    locker_app::accounts::check_name(name)?;
    locker_core::Role::parse(role).map_err(|r| r.message)?;
    let config = locker_config::load(config_path).map_err(|p| p.to_string())?;
    let token_path = config.site.data_dir.join("api-token");
    let token = std::fs::read_to_string(&token_path)
        .map_err(|e| format!("cannot read {}: {e} (run as the hub's service user, e.g. `sudo -u locker-hub locker-hub user add ...`, after the hub has started once)", token_path.display()))?;
    let password = read_password()?;
    locker_app::accounts::check_password(&password)?;
    let body = serde_json::to_string(&locker_web::api::NewUser {
        name: name.to_owned(),
        role: role.to_owned(),
        password,
    })
    .map_err(|e| e.to_string())?;
    let mut addr = web.unwrap_or(config.web.bind);
    if addr.ip().is_unspecified() {
        addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port());
    }
    let request = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        token.trim(),
        body.len()
    );
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| {
        format!(
            "cannot reach the hub at {addr}: {e}. Is it running? (`systemctl status locker-hub`)"
        )
    })?;
    tcp.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let raw = match &config.web.tls {
        None => exchange(tcp, &request)?,
        Some(files) => {
            let tls = crate::tls::pinned_client(&files.cert)?;
            let conn = rustls::ClientConnection::new(
                Arc::new(tls),
                ServerName::IpAddress(addr.ip().into()),
            )
            .map_err(|e| e.to_string())?;
            exchange(rustls::StreamOwned::new(conn, tcp), &request)?
        }
    };
    let code: u16 = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let answer = raw.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("").trim();
    match code {
        201 => Ok(format!("added {role} user {name}")),
        _ => {
            let why = serde_json::from_str::<serde_json::Value>(answer)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| answer.to_owned());
            Err(format!("the hub refused (HTTP {code}): {why}"))
        }
    }
}

fn exchange(mut s: impl Read + Write, request: &str) -> Result<String, String> {
    s.write_all(request.as_bytes())
        .map_err(|e| format!("cannot send to the hub: {e}"))?;
    let mut raw = Vec::new();
    // A TLS peer that closes without close_notify still sent a complete answer.
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(format!("no answer from the hub: {e}")),
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

/// One line from standard input; on a terminal, prompted and not echoed.
fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("Password for the new user: ");
        let _ = std::io::stderr().flush();
    }
    let _echo = tty.then(NoEcho::new).flatten();
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    if tty {
        eprintln!();
    }
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err("empty password: type it, or pipe it on standard input".into());
    }
    Ok(password)
}

/// Terminal echo off while it lives.
struct NoEcho(libc::termios);

impl NoEcho {
    fn new() -> Option<NoEcho> {
        // SAFETY: tcgetattr/tcsetattr on stdin with a termios we own; no other memory touched.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return None;
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return None;
            }
            Some(NoEcho(saved))
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        // SAFETY: restores the settings saved in `new`.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &self.0);
        }
    }
}

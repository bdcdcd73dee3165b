//! How residents are told about their parcels (`[notify]`): the hub sends what its outbox
//! holds. Without the section, notifications wait in the outbox for `GET /api/v1/outbox`.
//!
//! ```toml
//! [notify]
//! max_attempts = 8            # then the notification is failed (dead letter), kept and shown
//! per_minute = 30             # a backlog drains at this rate
//!
//! [notify.email]
//! server = "smtp.example.org"
//! tls = "starttls"            # or "tls" (implicit, port 465), or "none" (a relay on this LAN)
//! from = "Parcel lockers <lockers@example.org>"
//! username = "lockers@example.org"
//! password_file = "/etc/locker-hub/smtp.password"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use crate::raw::{Ctx, Table};

/// Delivery of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Tries before a notification is failed (kept in the outbox, shown, not tried again).
    pub max_attempts: u32,
    /// Notifications sent per minute at most, so a backlog drains without flooding.
    pub per_minute: u32,
    /// The first wait after a failure; each further one doubles, up to `max_retry_wait`.
    pub retry_wait: Duration,
    /// The longest wait between two tries of one notification.
    pub max_retry_wait: Duration,
    /// A channel that has failed every try for this long raises an alert for staff.
    pub alert_after: Duration,
    /// A directory of message templates overriding the built-in ones (`KIND.LANGUAGE.j2`).
    pub templates: Option<PathBuf>,
    /// Email over SMTP.
    pub email: Option<Email>,
    /// An HTTPS POST of each notification, signed, for an SMS or push gateway.
    pub webhook: Option<Webhook>,
}

/// A gateway that takes notifications as signed JSON (`docs/notify.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `https://…` (or `http://…` with `allow_plaintext`).
    pub url: String,
    /// File holding the shared secret the body is signed with (HMAC-SHA256).
    pub secret_file: PathBuf,
    /// Extra certificate authorities (PEM) trusted for the gateway, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// How long one POST may take.
    pub timeout: Duration,
    /// `http://` is refused unless this is true (codes would cross the network in the clear).
    pub allow_plaintext: bool,
}

/// How the SMTP server is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required), port 587 by default.
    StartTls,
    /// TLS from the first byte, port 465 by default.
    Implicit,
    /// No TLS at all, port 25 by default: for a relay on a LAN you trust, and for tests.
    None,
}

/// Email over SMTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The SMTP server's host name or address.
    pub server: String,
    /// Its port (587, 465 or 25 by default, after `tls`).
    pub port: u16,
    /// STARTTLS, implicit TLS or none.
    pub tls: SmtpTls,
    /// The sender, `Name <address>` or an address.
    pub from: String,
    /// The SMTP login, with `password_file`.
    pub username: Option<String>,
    /// The password, read when sending (never in this file).
    pub password_file: Option<PathBuf>,
    /// Extra certificate authorities (PEM) trusted for the server, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// How long one conversation with the server may take.
    pub timeout: Duration,
}

pub(crate) fn read(root: &mut Table, cx: &mut Ctx) -> Option<Option<Notify>> {
    let Some(item) = root.get("notify") else {
        return Some(None);
    };
    let mut t = item.table(cx)?;
    let max_attempts = t.int_or(cx, "max_attempts", 1..=100, 8) as u32;
    let per_minute = t.int_or(cx, "per_minute", 1..=6000, 30) as u32;
    let retry_wait = t.duration_within(
        cx,
        "retry_wait",
        Duration::from_secs(30),
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    let max_retry_wait = t.duration_within(
        cx,
        "max_retry_wait",
        Duration::from_secs(3600),
        Duration::from_secs(1),
        Duration::from_secs(86_400),
    );
    let alert_after = t.duration_within(
        cx,
        "alert_after",
        Duration::from_secs(3600),
        Duration::from_secs(1),
        Duration::from_secs(86_400),
    );
    let templates = match t.get("templates") {
        Some(item) => item.path(cx).and_then(|dir| {
            if dir.is_dir() {
                Some(Some(dir))
            } else {
                cx.error(
                    &item.span(),
                    item.key(),
                    format!("{} is not a directory", dir.display()),
                );
                None
            }
        }),
        None => Some(None),
    };
    let email = match t.get("email") {
        Some(item) => match item.table(cx) {
            Some(e) => email(e, cx).map(Some),
            None => None,
        },
        None => Some(None),
    };
    let webhook = match t.get("webhook") {
        Some(item) => match item.table(cx) {
            Some(w) => webhook(w, cx).map(Some),
            None => None,
        },
        None => Some(None),
    };
    let section = t.loc();
    t.finish(cx);
    let (email, webhook) = (email?, webhook?);
    if email.is_none() && webhook.is_none() {
        cx.error_at(
            &section,
            "`[notify]` names no channel: give `[notify.email]` or `[notify.webhook]`, or remove \
             the section (the outbox then waits for `GET /api/v1/outbox`)",
        );
        return None;
    }
    if max_retry_wait < retry_wait {
        cx.error_at(&section, "`max_retry_wait` is shorter than `retry_wait`");
        return None;
    }
    Some(Some(Notify {
        max_attempts,
        per_minute,
        retry_wait,
        max_retry_wait,
        alert_after,
        templates: templates?,
        email,
        webhook,
    }))
}

fn webhook(mut t: Table, cx: &mut Ctx) -> Option<Webhook> {
    let allow_plaintext = t.bool_or(cx, "allow_plaintext", false);
    let url = t.require(cx, "url").and_then(|u| {
        let text = u.str(cx)?;
        let rest = match (text.strip_prefix("https://"), text.strip_prefix("http://")) {
            (Some(rest), _) => rest,
            (None, Some(rest)) if allow_plaintext => rest,
            (None, Some(_)) => {
                cx.error(
                    &u.span(),
                    u.key(),
                    format!(
                        "`{text}` is plain HTTP: residents' codes would cross the network \
                         unencrypted; use `https://`, or set `allow_plaintext = true` for a LAN \
                         you trust"
                    ),
                );
                return None;
            }
            _ => {
                cx.error(
                    &u.span(),
                    u.key(),
                    format!("`{text}` is not an https:// URL"),
                );
                return None;
            }
        };
        if rest.is_empty() || rest.starts_with('/') {
            cx.error(&u.span(), u.key(), format!("`{text}` names no host"));
            return None;
        }
        Some(text.to_owned())
    });
    let secret_file = t.require(cx, "secret_file").and_then(|f| f.path(cx));
    let ca_file = t.opt_readable_file(cx, "ca_file");
    let timeout = t.duration_within(
        cx,
        "timeout",
        Duration::from_secs(10),
        Duration::from_secs(1),
        Duration::from_secs(120),
    );
    t.finish(cx);
    Some(Webhook {
        url: url?,
        secret_file: secret_file?,
        ca_file: ca_file?,
        timeout,
        allow_plaintext,
    })
}

fn email(mut t: Table, cx: &mut Ctx) -> Option<Email> {
    let server = t.require(cx, "server").and_then(|s| {
        let host = s.str(cx)?;
        if host.is_empty() || host.contains(['/', ':', ' ']) {
            cx.error(
                &s.span(),
                s.key(),
                "a host name or address, such as `smtp.example.org` (the port goes in `port`)",
            );
            return None;
        }
        Some(host.to_owned())
    });
    let tls = match t.get("tls") {
        None => Some(SmtpTls::StartTls),
        Some(item) => item.choice(
            cx,
            "TLS mode",
            &[
                ("starttls", SmtpTls::StartTls),
                ("tls", SmtpTls::Implicit),
                ("none", SmtpTls::None),
            ],
        ),
    };
    let default_port = match tls {
        Some(SmtpTls::Implicit) => 465,
        Some(SmtpTls::None) => 25,
        _ => 587,
    };
    let port = t.int_or(cx, "port", 1..=65535, default_port) as u16;
    let from = t.require(cx, "from").and_then(|f| {
        let text = f.str(cx)?;
        let address = match (text.rfind('<'), text.ends_with('>')) {
            (Some(open), true) => &text[open + 1..text.len() - 1],
            _ => text,
        };
        let ok = address
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'))
            && !address.contains(char::is_whitespace);
        if !ok {
            cx.error(
                &f.span(),
                f.key(),
                format!("`{text}` is not a sender such as `Lockers <lockers@example.org>`"),
            );
            return None;
        }
        Some(text.to_owned())
    });
    let username = t.opt_string(cx, "username");
    let password_file = t.opt_path(cx, "password_file");
    let ca_file = t.opt_readable_file(cx, "ca_file");
    let timeout = t.duration_within(
        cx,
        "timeout",
        Duration::from_secs(30),
        Duration::from_secs(1),
        Duration::from_secs(300),
    );
    let section = t.loc();
    t.finish(cx);
    let (username, password_file) = (username, password_file?);
    if username.is_some() != password_file.is_some() {
        cx.error_at(
            &section,
            "`username` and `password_file` go together (or leave both out)",
        );
        return None;
    }
    Some(Email {
        server: server?,
        port,
        tls: tls?,
        from: from?,
        username,
        password_file,
        ca_file: ca_file?,
        timeout,
    })
}

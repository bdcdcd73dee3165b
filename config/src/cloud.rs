//! Optional sync with a cloud service and with a second hub of the site (`[sync]`). The hub works
//! fully without it.
//!
//! ```toml
//! [sync]
//! endpoints = ["wss://sync.example.org/sites/maple-court", "wss://sync2.example.org/sites/maple-court"]
//! token_file = "/etc/locker-hub/sync.token"   # the token itself never goes in this file
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::raw::{Ctx, Item, Table};

/// Where and how to sync state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sync {
    /// Cloud sync servers (`wss://`, or `ws://` with `allow_plaintext`), tried in order: the hub
    /// keeps one cloud connection, and moves to the next URL when one fails.
    pub endpoints: Vec<String>,
    /// Other hubs of this site to connect to (each one connection, at the same time as the
    /// cloud's): `wss://` to a hub paired with this one (`locker-hub init --join`), each side
    /// checking the other's certificate; `ws://` with the token, with `allow_plaintext`.
    pub hubs: Vec<String>,
    /// Where this hub accepts a second hub's connection: TLS with the hub's certificate, open to
    /// paired hubs and to a hub that joins with a pairing code; with `allow_plaintext`, plain
    /// WebSocket for any hub that sends the token instead.
    pub listen: Option<SocketAddr>,
    /// File holding the access token, sent as `Authorization: Bearer` to the cloud (and, with
    /// `allow_plaintext`, between hubs). Kept out of the config (and out of synced documents)
    /// because it is a secret; it need not exist yet. Required for `endpoints`, `ws://` hubs
    /// and a plain `listen`.
    pub token_file: Option<PathBuf>,
    /// Extra certificate authorities (PEM) trusted for `wss://`, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// `ws://` (no TLS) is refused unless this is true: for a LAN you trust, and for tests.
    pub allow_plaintext: bool,
    /// How long a document being synced waits for the peer's answer before the next goes.
    pub reply_timeout: Duration,
    /// The longest wait between attempts to reach a peer (the waits double from 1 s up to it).
    pub max_backoff: Duration,
    /// This hub runs the requests the cloud makes (one hub per site; the others relay them).
    pub execute_requests: bool,
    /// A remote open older than this is refused.
    pub remote_open_max_age: Duration,
    /// Remote opens accepted per hour for the site.
    pub remote_opens_per_hour: u32,
}

pub(crate) fn read(root: &mut Table, cx: &mut Ctx) -> Option<Option<Sync>> {
    let Some(item) = root.get("sync") else {
        return Some(None);
    };
    let mut t = item.table(cx)?;
    let allow_plaintext = t.bool_or(cx, "allow_plaintext", false);
    let single = t.get("endpoint");
    let list = t.get("endpoints");
    let endpoints = match (single, list) {
        (Some(one), Some(_)) => {
            if one.str(cx).is_some() {
                cx.error(
                    &one.span(),
                    one.key(),
                    "give either `endpoint` or `endpoints`, not both",
                );
            }
            None
        }
        (Some(one), None) => {
            one.str(cx)
                .and_then(|url| match check_endpoint(url, allow_plaintext) {
                    Ok(()) => Some(vec![url.to_owned()]),
                    Err(message) => {
                        cx.error(&one.span(), one.key(), message);
                        None
                    }
                })
        }
        (None, Some(list)) => urls(cx, list, allow_plaintext),
        (None, None) => Some(Vec::new()),
    };
    let hubs = match t.get("hubs") {
        Some(list) => urls(cx, list, allow_plaintext),
        None => Some(Vec::new()),
    };
    let listen = match t.get("listen") {
        Some(item) => {
            let text = item.str(cx);
            match text.map(str::parse::<SocketAddr>) {
                Some(Ok(addr)) => Some(Some(addr)),
                Some(Err(e)) => {
                    cx.error(
                        &item.span(),
                        item.key(),
                        format!("not an address and port such as `0.0.0.0:7300`: {e}"),
                    );
                    None
                }
                None => None,
            }
        }
        None => Some(None),
    };
    let token_file = t.opt_path(cx, "token_file");
    let ca_file = t.opt_readable_file(cx, "ca_file");
    let reply_timeout = t.duration_within(
        cx,
        "reply_timeout",
        Duration::from_secs(10),
        Duration::from_secs(1),
        Duration::from_secs(600),
    );
    let max_backoff = t.duration_within(
        cx,
        "max_backoff",
        Duration::from_secs(60),
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    let execute_requests = t.bool_or(cx, "execute_requests", false);
    let remote_open_max_age = t.duration_within(
        cx,
        "remote_open_max_age",
        Duration::from_secs(600),
        Duration::from_secs(10),
        Duration::from_secs(3600),
    );
    let remote_opens_per_hour = t.int_or(cx, "remote_opens_per_hour", 0..=1000, 10) as u32;
    let section = t.loc();
    t.finish(cx);
    let sync = Sync {
        endpoints: endpoints?,
        hubs: hubs?,
        listen: listen?,
        token_file: token_file?,
        ca_file: ca_file?,
        allow_plaintext,
        reply_timeout,
        max_backoff,
        execute_requests,
        remote_open_max_age,
        remote_opens_per_hour,
    };
    let needs_token = !sync.endpoints.is_empty()
        || sync.hubs.iter().any(|h| h.starts_with("ws://"))
        || (sync.listen.is_some() && allow_plaintext);
    if needs_token && sync.token_file.is_none() {
        cx.error_at(
            &section,
            "`[sync]` needs `token_file`: the cloud (`endpoints`), a `ws://` hub and a plain \
             `listen` are reached with a token (paired hubs over `wss://` need none)",
        );
        return None;
    }
    if sync.endpoints.is_empty() && sync.hubs.is_empty() && sync.listen.is_none() {
        cx.error_at(
            &section,
            "`[sync]` names nothing to sync with: give `endpoints` (the cloud), `hubs` or `listen` \
             (a second hub), or remove the section",
        );
        return None;
    }
    Some(Some(sync))
}

fn urls(cx: &mut Ctx, item: Item<'_, '_>, allow_plaintext: bool) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut ok = true;
    for u in item.array(cx)? {
        let Some(url) = u.str(cx) else {
            ok = false;
            continue;
        };
        match check_endpoint(url, allow_plaintext) {
            Ok(()) => out.push(url.to_owned()),
            Err(message) => {
                cx.error(&u.span(), u.key(), message);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn check_endpoint(url: &str, allow_plaintext: bool) -> Result<(), String> {
    let rest = match (url.strip_prefix("wss://"), url.strip_prefix("ws://")) {
        (Some(rest), _) => rest,
        (None, Some(rest)) if allow_plaintext => rest,
        (None, Some(_)) => {
            return Err(format!(
                "`{url}` is plain WebSocket: the token and every document would cross the \
                 network unencrypted; use `wss://`, or set `allow_plaintext = true` for a LAN \
                 you trust"
            ))
        }
        (None, None) => {
            return Err(format!(
            "`{url}` must be a WebSocket URL starting with `wss://` (or `ws://` on a trusted LAN)"
        ))
        }
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("`{url}` has no host name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn endpoints() {
        assert!(check_endpoint("wss://sync.example.org/v1", false).is_ok());
        assert!(check_endpoint("ws://10.0.0.2:9000", true).is_ok());
        assert!(check_endpoint("ws://10.0.0.2:9000", false).is_err());
        assert!(check_endpoint("https://sync.example.org", true).is_err());
        assert!(check_endpoint("wss:///v1", false).is_err());
    }
}

//! Pairing two hubs of one site, from the command line.
//!
//! - `locker-hub pair` on hub A (which has `[sync] listen`): opens a one-time pairing code
//!   (`locker_app::pairing`) and prints it with A's certificate fingerprint and the command to
//!   run on hub B.
//! - `locker-hub init --join wss://A:PORT --code CODE --fingerprint SHA256` on hub B, before B
//!   first starts: connects to A over TLS pinned to that fingerprint, presenting B's own
//!   certificate and the code; A answers with the site id, its hub id and the site key. B then
//!   creates its store with that site key (so codes and badges verify at both hubs), with a hub
//!   id of its own, and trusts A's certificate from then on. Nothing is copied by hand, and no
//!   `state.redb` ever moves between machines.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use locker_app::pairing::{self, PairedHub};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::link::{self, Dial, Welcome};

/// `locker-hub pair`: open a pairing on this hub. Returns what to tell the installer.
pub fn pair(config_path: &Path) -> Result<String, String> {
    let config = locker_config::load(config_path).map_err(|p| p.to_string())?;
    let listen = match &config.sync {
        Some(sync) if sync.listen.is_some() && !sync.allow_plaintext => sync.listen,
        Some(sync) if sync.listen.is_some() => {
            return Err(
                "`[sync] listen` is plain WebSocket (`allow_plaintext = true`), which \
                 pairing does not use: remove `allow_plaintext` so the listener speaks TLS"
                    .into(),
            )
        }
        _ => {
            return Err(
                "this hub does not accept a second hub: add `listen = \"0.0.0.0:7300\"` \
                 to `[sync]` and restart it"
                    .into(),
            )
        }
    };
    let data_dir = &config.site.data_dir;
    crate::init::run(data_dir)?;
    let fingerprint = own_fingerprint(data_dir)?;
    let opened = pairing::open(data_dir, locker_app::clock::now().0).map_err(|e| e.to_string())?;
    let url = match listen {
        Some(addr) if addr.port() != 0 => listen_url(addr),
        _ => "wss://THIS-HUB:PORT".to_owned(),
    };
    Ok(format!(
        "pairing code: {code}\n\
         valid for {minutes} minutes, for one hub; {tries} wrong codes close it\n\
         this hub's certificate: SHA-256 {fingerprint}\n\
         \n\
         on the second hub, before its first start (its [site] id must be {site:?}):\n  \
         locker-hub init --join {url} --code {code} --fingerprint {fingerprint}\n\
         then give it `hubs = [\"{url}\"]` in [sync] and start it",
        code = opened.code,
        minutes = pairing::CODE_LIFETIME_MS / 60_000,
        tries = pairing::MAX_TRIES,
        site = config.site.id,
    ))
}

/// The address a second hub dials for a `listen` address (the host name for 0.0.0.0).
pub fn listen_url(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("wss://{}:{}", crate::init::hostname(), addr.port())
    } else {
        format!("wss://{addr}")
    }
}

/// `locker-hub unpair HUB`: stop trusting a paired hub (its next connection is refused; one
/// open now lasts until it drops). Returns what to tell the installer.
pub fn unpair(config_path: &Path, hub_id: &str) -> Result<String, String> {
    let config = locker_config::load(config_path).map_err(|p| p.to_string())?;
    let data_dir = &config.site.data_dir;
    if pairing::remove_paired(data_dir, hub_id)? {
        return Ok(format!(
            "hub {hub_id} is no longer paired with this one: its next connection is refused"
        ));
    }
    let paired: Vec<String> = pairing::paired(data_dir)?
        .into_iter()
        .map(|h| h.hub_id)
        .collect();
    Err(format!(
        "no paired hub {hub_id:?}; paired: {}",
        if paired.is_empty() {
            "none".to_owned()
        } else {
            paired.join(", ")
        }
    ))
}

/// `locker-hub init --join`: join the site of the hub at `url`. Returns what to tell the
/// installer.
pub async fn join(
    config_path: &Path,
    url: &str,
    code: &str,
    fingerprint: &str,
) -> Result<String, String> {
    let config = locker_config::load(config_path).map_err(|p| p.to_string())?;
    let data_dir = &config.site.data_dir;
    if data_dir.join("state.redb").exists() {
        return Err(format!(
            "{} already has a store: a hub joins a site before its first start (its own site \
             key would otherwise be replaced); use an empty data directory",
            data_dir.display()
        ));
    }
    let pinned = normalize_fingerprint(fingerprint)?;
    let pair_url = pair_url(url)?;
    crate::init::run(data_dir)?;
    let hub_id = locker_app::engine::hub_id(&config).map_err(|e| e.to_string())?;

    let mut request = pair_url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("bad URL {url}: {e}"))?;
    let header = |v: &str| HeaderValue::from_str(v).map_err(|_| format!("{v:?} cannot be sent"));
    let headers = request.headers_mut();
    headers.insert(
        "authorization",
        header(&format!("Pairing {}", code.trim()))?,
    );
    headers.insert(link::SITE_HEADER, header(&config.site.id)?);
    headers.insert(link::HUB_HEADER, header(&hub_id)?);
    let (cert, key) = crate::init::tls_paths(data_dir);
    let tls = Arc::new(crate::tls::pinned_to(
        vec![pinned.clone()],
        Some((&cert, &key)),
    )?);
    let dialed = tokio::time::timeout(Duration::from_secs(15), link::dial(request, tls))
        .await
        .map_err(|_| format!("no answer from {url} within 15 s"))?;
    let mut ws = match dialed {
        Ok(ws) => ws,
        Err(Dial::Refused(status, why)) => return Err(format!("{url} refused: {status} {why}")),
        Err(Dial::Failed(why)) => return Err(why),
    };
    let welcome = loop {
        let next = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .map_err(|_| "the other hub accepted the code but sent nothing".to_owned())?;
        match next {
            Some(Ok(Message::Text(text))) => {
                break serde_json::from_str::<Welcome>(&text)
                    .map_err(|e| format!("the other hub's answer is not understood: {e}"))?
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err("the other hub closed the connection without the site key".into())
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("the connection failed: {e}")),
        }
    };
    if welcome.version != 1 {
        return Err(format!(
            "the other hub speaks pairing version {}; this one speaks 1: upgrade the older",
            welcome.version
        ));
    }
    if welcome.site_id != config.site.id {
        return Err(format!(
            "the other hub is site {:?}, this one is configured as {:?}",
            welcome.site_id, config.site.id
        ));
    }
    let site_key = parse_key(&welcome.site_key)?;
    locker_sync::create_joined(data_dir, &hub_id, &welcome.site_id, site_key)
        .map_err(|e| e.to_string())?;
    pairing::add_paired(
        data_dir,
        PairedHub {
            hub_id: welcome.hub_id.clone(),
            sha256: pinned,
            paired_ms: locker_app::clock::now().0,
        },
    )?;
    let listed = config.sync.as_ref().is_some_and(|s| {
        s.hubs
            .iter()
            .any(|h| h.trim_end_matches('/') == url.trim_end_matches('/'))
    });
    let next = if listed {
        "start it: it syncs with the other hub".to_owned()
    } else {
        format!(
            "add `hubs = [\"{url}\"]` to [sync] in {}, then start it",
            config_path.display()
        )
    };
    Ok(format!(
        "joined site {:?} as hub {hub_id}, paired with hub {} (its certificate SHA-256 {})\n{next}",
        welcome.site_id,
        welcome.hub_id,
        fingerprint.trim()
    ))
}

/// The SHA-256 of this hub's certificate (`DATA_DIR/tls/hub.crt`).
pub fn own_fingerprint(data_dir: &Path) -> Result<String, String> {
    let (cert, _) = crate::init::tls_paths(data_dir);
    let der = CertificateDer::from_pem_file(&cert)
        .map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    Ok(crate::files::fingerprint(&der))
}

/// A fingerprint as printed or as a browser shows it: hex, with or without colons or a
/// `SHA256:` prefix.
fn normalize_fingerprint(given: &str) -> Result<String, String> {
    let trimmed = given.trim();
    let body = trimmed
        .strip_prefix("SHA256:")
        .or_else(|| trimmed.strip_prefix("sha256:"))
        .unwrap_or(trimmed);
    let hex: String = body
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(format!(
            "{given:?} is not a SHA-256 fingerprint (64 hex digits, as `locker-hub pair` prints)"
        ))
    }
}

/// The `/pair` address of the hub at `url` (`wss://host:port`, any path).
fn pair_url(url: &str) -> Result<String, String> {
    let rest = url.trim().strip_prefix("wss://").ok_or_else(|| {
        format!("{url:?}: pairing goes over TLS, give the other hub's `wss://` address")
    })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(format!("wss://{authority}{}", link::PAIR_PATH))
}

fn parse_key(hex: &str) -> Result<[u8; 32], String> {
    let bad = || "the other hub sent a site key that is not 32 bytes of hex".to_owned();
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_read_as_printed_or_as_browsers_show_them() {
        let hex = "ab".repeat(32);
        assert_eq!(normalize_fingerprint(&hex).unwrap(), hex);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(
            normalize_fingerprint(&format!("SHA256:{colons}")).unwrap(),
            hex
        );
        assert!(normalize_fingerprint("abcd").is_err());
        assert!(normalize_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn the_pairing_address_is_the_hubs_with_the_pair_path() {
        assert_eq!(
            pair_url("wss://10.0.0.5:7300").unwrap(),
            "wss://10.0.0.5:7300/pair"
        );
        assert_eq!(
            pair_url("wss://a.local:7300/x").unwrap(),
            "wss://a.local:7300/pair"
        );
        assert!(pair_url("ws://10.0.0.5:7300").is_err());
        assert!(pair_url("wss:///").is_err());
    }

    #[test]
    fn a_site_key_is_32_bytes_of_hex() {
        let key = parse_key(&crate::link::hex(&[7u8; 32])).unwrap();
        assert_eq!(key, [7u8; 32]);
        assert!(parse_key("00").is_err());
        assert!(parse_key(&"g0".repeat(32)).is_err());
    }
}

//! Optional link to a cloud sync service (`[sync]`). The hub works fully without it.
//!
//! ```toml
//! [sync]
//! endpoint = "wss://sync.example.org/v1"
//! token_file = "/etc/locker-hub/sync.token"   # the token itself never goes in this file
//! ```

use std::path::PathBuf;

use crate::raw::{Ctx, Table};

/// Where and how to sync state with a cloud service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sync {
    /// WebSocket URL (`ws://` or `wss://`).
    pub endpoint: String,
    /// File holding the access token. Kept out of the config (and out of synced documents)
    /// because it is a secret; it may be written later by pairing, so it is not required
    /// to exist yet.
    pub token_file: PathBuf,
}

pub(crate) fn read(root: &mut Table, cx: &mut Ctx) -> Option<Option<Sync>> {
    let Some(item) = root.get("sync") else {
        return Some(None);
    };
    let mut t = item.table(cx)?;
    let endpoint = t.require(cx, "endpoint").and_then(|e| {
        let url = e.str(cx)?;
        match check_endpoint(url) {
            Ok(()) => Some(url.to_owned()),
            Err(message) => {
                cx.error(&e.span(), e.key(), message);
                None
            }
        }
    });
    let token_file = t.require(cx, "token_file").and_then(|f| f.path(cx));
    t.finish(cx);
    Some(Some(Sync {
        endpoint: endpoint?,
        token_file: token_file?,
    }))
}

fn check_endpoint(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("wss://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| {
            format!("`{url}` must be a WebSocket URL starting with `wss://` (or `ws://` on a trusted LAN)")
        })?;
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
        assert!(check_endpoint("wss://sync.example.org/v1").is_ok());
        assert!(check_endpoint("ws://10.0.0.2:9000").is_ok());
        assert!(check_endpoint("https://sync.example.org").is_err());
        assert!(check_endpoint("wss:///v1").is_err());
    }
}

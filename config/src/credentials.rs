//! Broker logins: bank controllers (`mqtt = { username, password_hash }` in a bank), kiosks
//! (`kiosks = [{ id, username, password_hash }]` in a bank) and read-only staff tools
//! (`observers = [{ username, password_hash }]` in `[mqtt]`).
//!
//! Only password hashes are accepted, as PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`, as printed by `locker-hub hash-password`),
//! so a leaked or shared config file does not leak working passwords. The hash is checked
//! for shape here; the broker verifies passwords against it.

use crate::raw::check_topic_id;
use crate::raw::{Ctx, Item, Loc, Table};

/// A bank controller's broker login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankMqtt {
    /// MQTT username, unique on the site.
    pub username: String,
    /// Argon2 PHC hash string of the password.
    pub password_hash: String,
}

/// A kiosk's broker login: a kiosk belongs to one bank and may only send that bank's kiosk
/// requests and read its own replies (`docs/mqtt-api.md`, "Who may do what").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KioskLogin {
    /// Kiosk id, unique in its bank (`[A-Za-z0-9_-]+`): its replies go to
    /// `…/bank/{bank}/kiosk/reply/{id}`.
    pub id: String,
    /// MQTT username, unique on the site.
    pub username: String,
    /// Argon2 PHC hash string of the password.
    pub password_hash: String,
}

/// The credentials (`None` if they have problems) and the username with where it was
/// written, kept either way because usernames are checked site-wide.
pub(crate) struct CredentialsRead {
    pub(crate) credentials: Option<BankMqtt>,
    pub(crate) username: Option<(String, Loc)>,
}

/// The hub's own MQTT client logs in with this name; no configured login may take it.
pub const RESERVED_USERNAME: &str = "locker-hub";

const HASH_ADVICE: &str = "store a hash: run `locker-hub hash-password`";

pub(crate) fn read(item: &Item, cx: &mut Ctx) -> CredentialsRead {
    let Some(mut t) = item.table(cx) else {
        return CredentialsRead {
            credentials: None,
            username: None,
        };
    };
    let read = read_fields(&mut t, cx);
    t.finish(cx);
    read
}

/// One kiosk entry: `{ id, username, password_hash }`; `None` for the login when it has problems.
pub(crate) fn read_kiosk(item: &Item, cx: &mut Ctx) -> (Option<KioskLogin>, CredentialsRead) {
    let Some(mut t) = item.table(cx) else {
        return (
            None,
            CredentialsRead {
                credentials: None,
                username: None,
            },
        );
    };
    let id = t.require(cx, "id").and_then(|i| check_topic_id(&i, cx));
    let read = read_fields(&mut t, cx);
    t.finish(cx);
    let login = match (id, &read.credentials) {
        (Some(id), Some(c)) => Some(KioskLogin {
            id,
            username: c.username.clone(),
            password_hash: c.password_hash.clone(),
        }),
        _ => None,
    };
    (login, read)
}

fn read_fields(t: &mut Table<'_, '_>, cx: &mut Ctx) -> CredentialsRead {
    let username = t
        .require(cx, "username")
        .and_then(|u| Some((check_topic_id(&u, cx)?, u.loc())));
    if let Some(plain) = t.get("password") {
        cx.error(
            &plain.span(),
            plain.key(),
            format!(
                "plain passwords are not accepted; {HASH_ADVICE} and put it in `password_hash`"
            ),
        );
    }
    let hash = t.require(cx, "password_hash").and_then(|h| {
        let text = h.str(cx)?;
        match check_phc(text) {
            Ok(()) => Some(text.to_owned()),
            Err(message) => {
                cx.error(&h.span(), h.key(), message);
                None
            }
        }
    });
    if let Some((name, loc)) = &username {
        if name == RESERVED_USERNAME {
            cx.error_at(
                loc,
                format!(
                    "`{RESERVED_USERNAME}` is the hub's own MQTT login: choose another username"
                ),
            );
        }
    }
    let credentials = match (&username, hash) {
        (Some((name, _)), Some(hash)) => Some(BankMqtt {
            username: name.clone(),
            password_hash: hash,
        }),
        _ => None,
    };
    CredentialsRead {
        credentials,
        username,
    }
}

/// Checks that `text` is an Argon2 PHC string: `$argon2id$v=19$m=..,t=..,p=..$salt$hash`.
/// Never echoes the text back: if it is a plain password it should not end up in logs.
pub(crate) fn check_phc(text: &str) -> Result<(), String> {
    let Some(rest) = text.strip_prefix('$') else {
        return Err(format!(
            "this looks like a plain password, not a hash; {HASH_ADVICE}"
        ));
    };
    let mut fields: Vec<&str> = rest.split('$').collect();
    let algorithm = fields.remove(0);
    if !matches!(algorithm, "argon2id" | "argon2i" | "argon2d") {
        return Err(format!(
            "unsupported hash algorithm `{}` (expected argon2id); {HASH_ADVICE}",
            algorithm.chars().take(16).collect::<String>()
        ));
    }
    if fields.first().is_some_and(|f| f.starts_with("v=")) {
        let version = fields.remove(0);
        if !matches!(version, "v=16" | "v=19") {
            return Err("unknown argon2 version (expected v=19)".into());
        }
    }
    let [params, salt, hash] = fields[..] else {
        return Err(format!(
            "not a complete PHC hash (expected `${algorithm}$v=19$m=...,t=...,p=...$SALT$HASH`); {HASH_ADVICE}"
        ));
    };
    let mut seen = Vec::new();
    for param in params.split(',') {
        let Some((name, value)) = param.split_once('=') else {
            return Err(format!("bad argon2 parameter list `{params}`"));
        };
        let numeric = !value.is_empty() && value.chars().all(|c| c.is_ascii_digit());
        if !matches!(name, "m" | "t" | "p") || !numeric {
            return Err(format!("bad argon2 parameter `{param}`"));
        }
        seen.push(name);
    }
    if !["m", "t", "p"].iter().all(|p| seen.contains(p)) {
        return Err("argon2 parameters must include m, t and p".into());
    }
    let b64 = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    };
    // 8 bytes of salt and 16 bytes of hash, in unpadded base64, are the useful minimums.
    if salt.len() < 11 || !b64(salt) {
        return Err("the salt is not base64 of at least 8 bytes".into());
    }
    if hash.len() < 22 || !b64(hash) {
        return Err("the hash is not base64 of at least 16 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_phc;

    const GOOD: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                        wY3cKwTYqRj6Z3xhL5K1d3ue4FzgYvO1fh3lJ8H9Ttg";

    #[test]
    fn accepts_argon2_phc() {
        assert_eq!(check_phc(GOOD), Ok(()));
        assert_eq!(
            check_phc("$argon2i$m=4096,t=3,p=1$c29tZXNhbHRzb21l$0123456789abcdefghijklmnop"),
            Ok(())
        );
    }

    #[test]
    fn rejects_plain_and_broken() {
        let plain = check_phc("hunter2").unwrap_err();
        assert!(plain.contains("plain password") && plain.contains("hash-password"));
        assert!(!plain.contains("hunter2"));
        assert!(check_phc("$2b$12$abcdefghijklmnopqrstuv")
            .unwrap_err()
            .contains("unsupported"));
        assert!(check_phc("$argon2id$v=19$m=19456,t=2,p=1")
            .unwrap_err()
            .contains("not a complete"));
        assert!(check_phc(
            "$argon2id$v=19$m=19456,t=2$c29tZXNhbHRzb21lc2FsdA$wY3cKwTYqRj6Z3xhL5K1d3ue4Fz"
        )
        .unwrap_err()
        .contains("m, t and p"));
        assert!(
            check_phc("$argon2id$v=19$m=1,t=2,p=1$salt$wY3cKwTYqRj6Z3xhL5K1d3ue4Fz")
                .unwrap_err()
                .contains("salt")
        );
        assert!(check_phc(
            "$argon2id$v=7$m=1,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$wY3cKwTYqRj6Z3xhL5K1d3ue4Fz"
        )
        .unwrap_err()
        .contains("version"));
    }
}

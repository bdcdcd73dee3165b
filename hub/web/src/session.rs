//! Login sessions and their CSRF tokens.
//!
//! A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie (Secure when the
//! page is served over TLS). Sessions are kept in memory only: a restart of the hub logs everyone
//! out, which is acceptable for a mail-room page and keeps bearer secrets off the disk.
//!
//! Every session has its own CSRF token (synchroniser-token pattern): each form carries it in a
//! hidden `csrf` field, and scripts send it as `X-CSRF-Token`. A state-changing request made with
//! a session cookie is refused without it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use locker_app::Actor;
use locker_core::Role;

/// Name of the session cookie.
pub const COOKIE: &str = "lh_session";
/// A session ends after this long without a request.
const IDLE: Duration = Duration::from_secs(12 * 3600);

#[derive(Clone, Debug)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    last_seen: Instant,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compare secrets without leaking where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// Start a session; returns its token (for the cookie).
    pub fn create(&self, user: &str, role: Role) -> String {
        let token = random_token();
        if let Ok(mut map) = self.map.lock() {
            // Forget expired sessions now and then, so the map cannot grow without bound.
            map.retain(|_, s| s.last_seen.elapsed() < IDLE);
            map.insert(
                token.clone(),
                Session {
                    user: user.to_owned(),
                    role,
                    csrf: random_token(),
                    last_seen: Instant::now(),
                },
            );
        }
        token
    }

    /// The live session for `token`, refreshed.
    pub fn get(&self, token: &str) -> Option<Session> {
        let mut map = self.map.lock().ok()?;
        let s = map.get_mut(token)?;
        if s.last_seen.elapsed() >= IDLE {
            map.remove(token);
            return None;
        }
        s.last_seen = Instant::now();
        Some(s.clone())
    }

    pub fn end(&self, token: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(token);
        }
    }

    /// End every session of `user` (deactivated, or role or password changed).
    pub fn end_user(&self, user: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, s| s.user != user);
        }
    }
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for a cookie only the server reads.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c += "; Secure";
    }
    if let Some(age) = max_age {
        c += &format!("; Max-Age={age}");
    }
    c
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Principal {
    /// Recorded as the actor of every staff action.
    pub user: String,
    pub role: Role,
    /// The session's CSRF token; `None` for the API token (no cookie, so no CSRF risk).
    pub csrf: Option<String>,
    pub(crate) session: Option<String>,
}

impl Principal {
    /// The caller as the application's services know it.
    pub fn actor(&self) -> Actor {
        Actor::new(self.user.clone(), self.role)
    }
}

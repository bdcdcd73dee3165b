//! Who is connecting: MQTT logins, checked at the front door before anything reaches rumqttd.
//!
//! Configured logins (bank controllers, kiosks, read-only observers) are checked against the
//! argon2 hashes from the configuration; a plain password is never stored. In-process clients
//! (the drivers of banks without a controller, simulated banks, the health probe) get a random
//! token per process that exists only in memory. Each login maps to one [`Role`], and the role
//! decides what the connection may publish and subscribe (see `locker_gate::acl`).
//!
//! Work before a login is bounded, because argon2 is expensive by design (~19 MiB and tens of
//! milliseconds per check):
//! - at most [`ARGON2_WORKERS`] checks run at once and at most [`ARGON2_QUEUE`] wait; past that a
//!   CONNECT is refused at once as "server busy" (no thread, no memory);
//! - a source address with [`FAILURES_BEFORE_PAUSE`] failed logins within [`FAILURE_WINDOW`] is
//!   refused without a check for [`PAUSE`];
//! - a login that verified before (its password's SHA-256 is cached) and every in-process token is
//!   checked cheaply, even from a paused address, so a real bank reconnecting during an attack
//!   gets in at once.
//!
//! The web page's sign-in uses the same pool ([`Argon2Pool`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use locker_app::passwords::constant_time_eq;
use locker_gate::acl::Role;

pub use locker_app::passwords::{
    hash_password, verify_phc, Argon2Pool, Busy, ARGON2_QUEUE, ARGON2_WORKERS,
};

/// The username of the hub's own MQTT client at the internal listener. The configuration may not
/// give it to anyone.
pub const HUB_USERNAME: &str = locker_config::RESERVED_USERNAME;

/// Failed logins from one address within [`FAILURE_WINDOW`] before the address is paused.
pub const FAILURES_BEFORE_PAUSE: u32 = 10;
/// The window in which failures are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a paused address is refused without a check.
pub const PAUSE: Duration = Duration::from_secs(60);

/// Who a connection is, once its login checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The username, or `anonymous`.
    pub login: String,
    pub role: Role,
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Unknown user, wrong password, or no login where one is needed.
    NotAuthorized,
    /// Too many checks are running or waiting.
    Busy,
    /// This address failed too often recently.
    Paused,
}

enum Secret {
    /// A PHC string from the configuration.
    Argon2(String),
    /// A random token made by this process for an in-process client.
    Token(String),
}

struct Account {
    role: Role,
    secret: Secret,
}

#[derive(Default)]
struct Failures {
    first: Option<Instant>,
    count: u32,
    paused_until: Option<Instant>,
}

/// Decides who may connect to the broker.
pub struct Authenticator {
    accounts: HashMap<String, Account>,
    allow_anonymous: bool,
    hub_password: String,
    pool: Arc<Argon2Pool>,
    /// username → SHA-256 of the last password that verified: argon2 is not paid again when a
    /// bank reconnects after a network blip or a hub restart's reconnect storm.
    verified: Mutex<HashMap<String, [u8; 32]>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// A configured login: username, argon2 hash, role.
pub struct ConfiguredLogin {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

impl Authenticator {
    pub fn new(
        logins: impl IntoIterator<Item = ConfiguredLogin>,
        allow_anonymous: bool,
        pool: Arc<Argon2Pool>,
    ) -> Authenticator {
        Authenticator {
            accounts: logins
                .into_iter()
                .map(|l| {
                    (
                        l.username,
                        Account {
                            role: l.role,
                            secret: Secret::Argon2(l.password_hash),
                        },
                    )
                })
                .collect(),
            allow_anonymous,
            hub_password: random_token(),
            pool,
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Make a login for an in-process client with `role` (a driver, a simulated bank, the probe):
    /// `(username, password)`, valid for this process only.
    pub fn add_internal(&mut self, username: &str, role: Role) -> (String, String) {
        let token = random_token();
        self.accounts.insert(
            username.to_owned(),
            Account {
                role,
                secret: Secret::Token(token.clone()),
            },
        );
        (username.to_owned(), token)
    }

    /// The hub's own credentials at the internal listener.
    pub fn hub_credentials(&self) -> (&str, &str) {
        (HUB_USERNAME, &self.hub_password)
    }

    /// Is this the hub's own login? (Checked by rumqttd's hook at the internal listener.)
    pub fn is_hub(&self, username: &str, password: &str) -> bool {
        username == HUB_USERNAME
            && constant_time_eq(password.as_bytes(), self.hub_password.as_bytes())
    }

    /// Check a CONNECT's login from `peer`. `login` is `None` for a client that sent no username.
    pub async fn login(
        &self,
        peer: IpAddr,
        client_id: &str,
        login: Option<(&str, &str)>,
    ) -> Result<Identity, Refused> {
        let Some((username, password)) = login else {
            return if self.allow_anonymous {
                Ok(Identity {
                    login: "anonymous".into(),
                    role: Role::Observer,
                })
            } else {
                Err(Refused::NotAuthorized)
            };
        };
        let Some(account) = self.accounts.get(username) else {
            if !self.paused(peer) {
                warn!(%peer, client_id, username, "MQTT login refused: unknown username");
            }
            self.failed(peer);
            return Err(Refused::NotAuthorized);
        };
        let identity = Identity {
            login: username.to_owned(),
            role: account.role.clone(),
        };
        let hash = match &account.secret {
            Secret::Token(token) => {
                return if constant_time_eq(token.as_bytes(), password.as_bytes()) {
                    Ok(identity)
                } else {
                    self.failed(peer);
                    Err(Refused::NotAuthorized)
                };
            }
            Secret::Argon2(hash) => hash,
        };
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        if let Ok(cache) = self.verified.lock() {
            if cache
                .get(username)
                .is_some_and(|d| constant_time_eq(d, &digest))
            {
                return Ok(identity);
            }
        }
        if self.paused(peer) {
            return Err(Refused::Paused);
        }
        match self.pool.verify(hash, password).await {
            Err(Busy) => Err(Refused::Busy),
            Ok(true) => {
                info!(%peer, client_id, username, role = identity.role.kind(), "MQTT login");
                if let Ok(mut cache) = self.verified.lock() {
                    cache.insert(username.to_owned(), digest);
                }
                Ok(identity)
            }
            Ok(false) => {
                warn!(%peer, client_id, username, "MQTT login refused: wrong password");
                self.failed(peer);
                Err(Refused::NotAuthorized)
            }
        }
    }

    fn paused(&self, peer: IpAddr) -> bool {
        let now = Instant::now();
        self.failures
            .lock()
            .map(|f| {
                f.get(&peer)
                    .and_then(|f| f.paused_until)
                    .is_some_and(|until| until > now)
            })
            .unwrap_or(false)
    }

    fn failed(&self, peer: IpAddr) {
        let now = Instant::now();
        let Ok(mut all) = self.failures.lock() else {
            return;
        };
        // Keep the table small: forget windows that ended (an attacker rotating addresses can
        // make it grow only by the addresses it has, and each entry is a few bytes).
        if all.len() > 4096 {
            all.retain(|_, f| {
                f.paused_until.is_some_and(|u| u > now)
                    || f.first.is_some_and(|t| now - t < FAILURE_WINDOW)
            });
        }
        let f = all.entry(peer).or_default();
        if f.first.is_none_or(|t| now - t >= FAILURE_WINDOW) {
            f.first = Some(now);
            f.count = 0;
        }
        f.count += 1;
        if f.count >= FAILURES_BEFORE_PAUSE && f.paused_until.is_none_or(|u| u <= now) {
            warn!(%peer, failures = f.count, pause = ?PAUSE, "MQTT logins from this address paused after repeated failures");
            f.paused_until = Some(now + PAUSE);
        }
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn auth(anonymous: bool) -> Authenticator {
        let hash = hash_password("s3cret-lobby").unwrap();
        Authenticator::new(
            [ConfiguredLogin {
                username: "bank-lobby".into(),
                password_hash: hash,
                role: Role::Bank {
                    bank: "lobby".into(),
                },
            }],
            anonymous,
            Arc::default(),
        )
    }

    #[tokio::test]
    async fn bank_password_is_checked_against_its_hash() {
        let auth = auth(false);
        let ok = auth
            .login(PEER, "c1", Some(("bank-lobby", "s3cret-lobby")))
            .await
            .unwrap();
        assert_eq!(
            ok.role,
            Role::Bank {
                bank: "lobby".into()
            }
        );
        // Second time comes from the cache and must still say yes.
        assert!(auth
            .login(PEER, "c1", Some(("bank-lobby", "s3cret-lobby")))
            .await
            .is_ok());
        assert_eq!(
            auth.login(PEER, "c1", Some(("bank-lobby", "wrong"))).await,
            Err(Refused::NotAuthorized)
        );
        assert_eq!(
            auth.login(PEER, "c1", Some(("nobody", "s3cret-lobby")))
                .await,
            Err(Refused::NotAuthorized)
        );
        assert_eq!(
            auth.login(PEER, "c1", None).await,
            Err(Refused::NotAuthorized)
        );
    }

    #[tokio::test]
    async fn anonymous_clients_are_observers_where_allowed() {
        let auth = auth(true);
        assert_eq!(
            auth.login(PEER, "c", None).await.unwrap().role,
            Role::Observer
        );
    }

    #[tokio::test]
    async fn an_address_that_keeps_failing_is_paused_but_known_logins_still_get_in() {
        let auth = auth(false);
        // Verified once, so cached.
        assert!(auth
            .login(PEER, "c", Some(("bank-lobby", "s3cret-lobby")))
            .await
            .is_ok());
        for _ in 0..FAILURES_BEFORE_PAUSE {
            let _ = auth.login(PEER, "c", Some(("nobody", "guess"))).await;
        }
        assert_eq!(
            auth.login(PEER, "c", Some(("bank-lobby", "guess"))).await,
            Err(Refused::Paused)
        );
        assert!(auth
            .login(PEER, "c", Some(("bank-lobby", "s3cret-lobby")))
            .await
            .is_ok());
        let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(
            auth.login(other, "c", Some(("bank-lobby", "guess"))).await,
            Err(Refused::NotAuthorized)
        );
    }

    #[tokio::test]
    async fn internal_tokens_and_the_hub_login() {
        let mut auth = auth(false);
        let (user, pass) = auth.add_internal("driver-A", Role::Bank { bank: "A".into() });
        assert!(auth.login(PEER, "d", Some((&user, &pass))).await.is_ok());
        assert!(auth.login(PEER, "d", Some((&user, "x"))).await.is_err());
        let (u, p) = auth.hub_credentials();
        let (u, p) = (u.to_owned(), p.to_owned());
        assert!(auth.is_hub(&u, &p));
        assert!(!auth.is_hub(&u, "guess"));
        // The hub's login is not a front-door login.
        assert!(auth.login(PEER, "h", Some((&u, &p))).await.is_err());
    }

    #[tokio::test]
    async fn a_full_pool_says_busy_at_once() {
        let pool = Arc::new(Argon2Pool::default());
        let hash = hash_password("x").unwrap();
        let mut tasks = Vec::new();
        for _ in 0..(ARGON2_QUEUE + ARGON2_WORKERS + 8) {
            let (pool, hash) = (pool.clone(), hash.clone());
            tasks.push(tokio::spawn(async move { pool.verify(&hash, "y").await }));
        }
        let mut busy = 0;
        for t in tasks {
            if t.await.unwrap() == Err(Busy) {
                busy += 1;
            }
        }
        assert!(busy >= 1, "some checks must be refused as busy");
    }

    #[test]
    fn a_malformed_hash_refuses_instead_of_panicking() {
        assert!(!verify_phc("not-a-phc-string", "anything"));
    }
}

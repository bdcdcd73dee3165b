//! Username/password checks for MQTT clients, called by rumqttd's auth hook.
//!
//! Banks log in with the username and the argon2 password hash from the configuration (a plain
//! password is never stored). The hub's own client logs in with a random password made at start-up
//! that lives only in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

/// The username of the hub's own MQTT client. The configuration may not give it to a bank.
pub const HUB_USERNAME: &str = "locker-hub";

/// Decides who may connect to the broker.
pub struct Authenticator {
    /// username → (bank id, PHC hash string).
    banks: HashMap<String, (String, String)>,
    hub_password: String,
    /// username → SHA-256 of the last password that verified. Argon2 costs tens of milliseconds
    /// by design; a bank that reconnects after a network blip should not pay it again, and a
    /// broker restart with 50 banks reconnecting at once should not stall the listener for seconds.
    verified: Mutex<HashMap<String, [u8; 32]>>,
}

impl Authenticator {
    /// `banks`: (bank id, username, password hash) for every bank that has MQTT credentials.
    pub fn new(banks: impl IntoIterator<Item = (String, String, String)>) -> Arc<Authenticator> {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let hub_password = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Arc::new(Authenticator {
            banks: banks
                .into_iter()
                .map(|(bank, user, hash)| (user, (bank, hash)))
                .collect(),
            hub_password,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// The hub's own credentials.
    pub fn hub_credentials(&self) -> (&str, &str) {
        (HUB_USERNAME, &self.hub_password)
    }

    /// Is this login good? Blocking (argon2): call it off the async threads.
    pub fn check(&self, client_id: &str, username: &str, password: &str) -> bool {
        if username == HUB_USERNAME {
            return constant_time_eq(password.as_bytes(), self.hub_password.as_bytes());
        }
        let Some((bank, hash)) = self.banks.get(username) else {
            warn!(client_id, username, "MQTT login refused: unknown username");
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        if let Ok(cache) = self.verified.lock() {
            if cache
                .get(username)
                .is_some_and(|d| constant_time_eq(d, &digest))
            {
                return true;
            }
        }
        let ok = PasswordHash::new(hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        if ok {
            info!(client_id, username, bank, "bank logged in");
            if let Ok(mut cache) = self.verified.lock() {
                cache.insert(username.to_owned(), digest);
            }
        } else {
            warn!(
                client_id,
                username, bank, "MQTT login refused: wrong password"
            );
        }
        ok
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hash a password for the configuration file (`locker-hub hash-password`).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bank_password_is_checked_against_its_hash() {
        let hash = hash_password("s3cret-lobby").unwrap();
        let auth = Authenticator::new([("lobby".into(), "bank-lobby".into(), hash)]);
        assert!(auth.check("c1", "bank-lobby", "s3cret-lobby"));
        // Second time comes from the cache and must still say yes.
        assert!(auth.check("c1", "bank-lobby", "s3cret-lobby"));
        assert!(!auth.check("c1", "bank-lobby", "wrong"));
        assert!(!auth.check("c1", "nobody", "s3cret-lobby"));
    }

    #[test]
    fn hub_credentials_work_and_nothing_else_does_for_that_user() {
        let auth = Authenticator::new([]);
        let (user, pass) = auth.hub_credentials();
        let (user, pass) = (user.to_owned(), pass.to_owned());
        assert!(auth.check("hub", &user, &pass));
        assert!(!auth.check("hub", &user, "guess"));
    }

    #[test]
    fn a_malformed_hash_refuses_instead_of_panicking() {
        let auth = Authenticator::new([("b".into(), "u".into(), "not-a-phc-string".into())]);
        assert!(!auth.check("c", "u", "anything"));
    }
}

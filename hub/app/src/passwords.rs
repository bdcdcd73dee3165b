//! Passwords: argon2 hashing and a bounded pool of verifications, shared by MQTT logins (the
//! broker's front door) and the web page's sign-in.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use rand::RngCore;
use tracing::warn;

/// Argon2 checks that may run at once (the machine has 2 cores; each check holds ~19 MiB).
pub const ARGON2_WORKERS: usize = 2;
/// Argon2 checks that may wait for a worker; one more is refused as busy.
pub const ARGON2_QUEUE: usize = 16;
/// A bounded pool for argon2 verifications, shared by MQTT and web logins: [`ARGON2_WORKERS`]
/// long-lived threads (not tokio's blocking pool, whose many short-lived threads would each keep
/// a malloc arena holding a freed 19 MiB argon2 block).
pub struct Argon2Pool {
    jobs: Mutex<std::sync::mpsc::Sender<Check>>,
    waiting: Arc<AtomicUsize>,
}

struct Check {
    hash: String,
    password: String,
    reply: tokio::sync::oneshot::Sender<bool>,
}

/// The pool was full: refuse the login now, cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl Default for Argon2Pool {
    fn default() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Check>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..ARGON2_WORKERS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let ok = verify_phc(&job.hash, &job.password);
                    let _ = job.reply.send(ok);
                });
            if let Err(e) = spawned {
                warn!(error = %e, "cannot start an argon2 worker thread");
            }
        }
        Argon2Pool {
            jobs: Mutex::new(tx),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Argon2Pool {
    /// Verify `password` against the PHC string `hash` on a worker thread, or say `Busy` at
    /// once when [`ARGON2_QUEUE`] checks are already waiting.
    pub async fn verify(&self, hash: &str, password: &str) -> Result<bool, Busy> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= ARGON2_QUEUE + ARGON2_WORKERS {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self.jobs.lock().is_ok_and(|jobs| {
            jobs.send(Check {
                hash: hash.to_owned(),
                password: password.to_owned(),
                reply,
            })
            .is_ok()
        });
        let ok = sent && answer.await.unwrap_or(false);
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        Ok(ok)
    }
}

/// Blocking argon2 check; a malformed hash verifies nothing.
pub fn verify_phc(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
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

/// Compares two secrets (tokens, codes) in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

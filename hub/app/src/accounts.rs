//! Staff accounts: a name, a role and an argon2 password hash.
//!
//! Accounts live in the store's local, never-synced table (one JSON map under one key), so a
//! password hash never enters CRDT history. The engine thread owns the store; this module reads
//! the map once at start and writes it back through the engine (durably) on every change, keeping
//! an in-memory copy for logins.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::engine::Job;
use crate::error::AppError;
use crate::passwords::{Argon2Pool, Busy};

/// What a user may do: the core's roles, so one rule says what each may ask.
pub use locker_core::Role;

/// An account as it may be shown: never the hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountView {
    pub name: String,
    pub role: Role,
    pub active: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// argon2 PHC string. Never shown, never sent anywhere.
    pub hash: String,
    pub active: bool,
}

impl User {
    pub fn view(&self) -> AccountView {
        AccountView {
            name: self.name.clone(),
            role: self.role,
            active: self.active,
        }
    }
}

/// The account list, cached in memory, written through the engine.
pub struct Accounts {
    jobs: Sender<Job>,
    cache: Mutex<BTreeMap<String, User>>,
    /// One writer at a time, so two concurrent changes cannot lose one another.
    write: tokio::sync::Mutex<()>,
}

/// A user name: 1 to 32 of `a-z 0-9 . _ -`, so it reads well in the audit trail.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name {name:?} must be 1 to 32 characters of a-z, 0-9, '.', '_' or '-'"
        ))
    }
}

/// Minimum password length: long enough that throttled guessing gets nowhere.
pub const MIN_PASSWORD: usize = 10;

pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!(
            "the password must have at least {MIN_PASSWORD} characters"
        ));
    }
    Ok(())
}

impl Accounts {
    /// Read the account map from the store (empty on a new installation).
    pub async fn load(jobs: Sender<Job>) -> Result<Accounts, AppError> {
        let stored = engine(&jobs, Job::LoadAccounts).await?;
        let map: BTreeMap<String, User> = match stored {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                AppError::Storage(format!("the stored staff accounts are unreadable: {e}"))
            })?,
            None => BTreeMap::new(),
        };
        Ok(Accounts {
            jobs,
            cache: Mutex::new(map),
            write: tokio::sync::Mutex::new(()),
        })
    }

    pub fn get(&self, name: &str) -> Option<User> {
        self.cache.lock().ok()?.get(name).cloned()
    }

    pub fn list(&self) -> Vec<User> {
        self.cache
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Create or change an account; durable before it returns.
    pub async fn put(&self, user: User) -> Result<(), AppError> {
        let _one_writer = self.write.lock().await;
        let mut next = self
            .cache
            .lock()
            .map_err(|_| AppError::Storage("account list unavailable".to_owned()))?
            .clone();
        next.insert(user.name.clone(), user);
        let value = serde_json::to_vec(&next).map_err(|e| AppError::Storage(e.to_string()))?;
        save(&self.jobs, value).await?;
        if let Ok(mut cache) = self.cache.lock() {
            *cache = next;
        }
        Ok(())
    }

    /// Check a password on the shared argon2 pool. Unknown and deactivated users cost the same
    /// argon2 work as known ones, so timing does not tell which names exist. `Err(Busy)` when
    /// the pool is full: refuse the sign-in for now.
    pub async fn verify(
        &self,
        pool: &Argon2Pool,
        name: &str,
        password: &str,
    ) -> Result<Option<User>, Busy> {
        let user = self.get(name);
        let hash = user
            .as_ref()
            .map(|u| u.hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_owned());
        let ok = pool.verify(&hash, password).await?;
        Ok(user.filter(|u| ok && u.active))
    }
}

/// Hash a new password (argon2id with the crate's default, OWASP-recommended parameters).
pub async fn hash(password: &str) -> Result<String, AppError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || crate::passwords::hash_password(&password))
        .await
        .map_err(|e| AppError::Storage(e.to_string()))?
        .map_err(|e| AppError::Storage(format!("cannot hash the password: {e}")))
}

/// Ask the engine for the stored account map, or write it, and wait (bounded).
async fn engine<T>(
    jobs: &Sender<Job>,
    make: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, AppError>>) -> Job,
) -> Result<T, AppError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    jobs.send(make(tx)).map_err(|_| AppError::Stopping)?;
    match tokio::time::timeout(std::time::Duration::from_secs(10), rx).await {
        Ok(Ok(v)) => v,
        _ => Err(AppError::Timeout),
    }
}

async fn save(jobs: &Sender<Job>, value: Vec<u8>) -> Result<(), AppError> {
    engine(jobs, |reply| Job::SaveAccounts { value, reply }).await
}

/// The argon2 hash of a random string nobody knows, verified against when a name is unknown.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$YVsfI9S5Ls4E8Tf5g2J3kZ2sOkfwX9pXcK2Zx0n5yK8";

//! Pairing a second hub of the site: the one-time code, and the list of hubs this hub trusts.
//!
//! `locker-hub pair` (or the System page) on hub A opens a pairing: a code of 12 characters,
//! valid for [`CODE_LIFETIME_MS`] and for one use, of which only the SHA-256 is kept, in
//! `DATA_DIR/tls/pairing.json`. Hub B's `locker-hub init --join` presents it over TLS pinned to
//! A's certificate fingerprint; A's sync listener [`redeem`]s it, records B's certificate in
//! `DATA_DIR/tls/paired-hubs.json` and answers with the site id and the site key. B records A's
//! certificate in its own list. From then on each hub accepts the other by its certificate
//! alone (mutual TLS, both sides pinned); no token is involved.
//!
//! A wrong code uses up one of [`MAX_TRIES`]; after the last one the pairing is closed, so a
//! code cannot be guessed (60 bits, five tries). The files are read at each use, so the command
//! line and the running hub share them without talking to each other.

use std::fs;
use std::path::{Path, PathBuf};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::files::replace_file;
use crate::passwords::constant_time_eq;

/// How long a pairing code may be used.
pub const CODE_LIFETIME_MS: u64 = 10 * 60 * 1000;
/// Wrong codes accepted before the pairing is closed.
pub const MAX_TRIES: u32 = 5;
/// The code's characters: Crockford's base 32 (no I, L, O or U to misread).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_LEN: usize = 12;

/// Where an open pairing is kept.
pub fn pairing_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("pairing.json")
}

/// Where the hubs this hub trusts are listed.
pub fn paired_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join("paired-hubs.json")
}

/// Why a pairing step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    #[error("no pairing is open on this hub: run `locker-hub pair` on it first")]
    NoneOpen,
    #[error("the pairing code has expired: run `locker-hub pair` again")]
    Expired,
    #[error("wrong pairing code ({tries_left} tries left)")]
    Wrong { tries_left: u32 },
    #[error("wrong pairing code; too many wrong codes, so the pairing is closed: run `locker-hub pair` again")]
    Closed,
    #[error("{0}")]
    Files(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Open {
    code_sha256: String,
    expires_ms: u64,
    tries_left: u32,
}

/// A pairing just opened: the code to show once, and until when it works (Unix ms).
#[derive(Debug, Clone)]
pub struct Opened {
    pub code: String,
    pub expires_ms: u64,
}

/// Open a pairing (replacing any open one) and return its code. Only its hash is stored.
pub fn open(data_dir: &Path, now_ms: u64) -> Result<Opened, PairingError> {
    let mut rng = rand::rng();
    let raw: String = (0..CODE_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let code = format!("{}-{}-{}", &raw[0..4], &raw[4..8], &raw[8..12]);
    let open = Open {
        code_sha256: hash(&raw),
        expires_ms: now_ms + CODE_LIFETIME_MS,
        tries_left: MAX_TRIES,
    };
    let path = pairing_path(data_dir);
    ensure_dir(&path)?;
    let bytes = serde_json::to_vec_pretty(&open).map_err(|e| PairingError::Files(e.to_string()))?;
    replace_file(&path, &bytes, 0o600).map_err(PairingError::Files)?;
    Ok(Opened {
        code,
        expires_ms: open.expires_ms,
    })
}

/// Check a code presented by a hub that joins. Right: the pairing is closed (the code never
/// works again) and `Ok`. Wrong: one try is used up; the last one closes the pairing.
pub fn redeem(data_dir: &Path, code: &str, now_ms: u64) -> Result<(), PairingError> {
    let path = pairing_path(data_dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(PairingError::NoneOpen),
        Err(e) => {
            return Err(PairingError::Files(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    let Ok(mut open) = serde_json::from_slice::<Open>(&bytes) else {
        close(&path)?;
        return Err(PairingError::NoneOpen);
    };
    if now_ms >= open.expires_ms {
        close(&path)?;
        return Err(PairingError::Expired);
    }
    let given = hash(&normalize(code));
    if constant_time_eq(given.as_bytes(), open.code_sha256.as_bytes()) {
        close(&path)?;
        return Ok(());
    }
    open.tries_left = open.tries_left.saturating_sub(1);
    if open.tries_left == 0 {
        close(&path)?;
        return Err(PairingError::Closed);
    }
    let bytes = serde_json::to_vec_pretty(&open).map_err(|e| PairingError::Files(e.to_string()))?;
    replace_file(&path, &bytes, 0o600).map_err(PairingError::Files)?;
    Err(PairingError::Wrong {
        tries_left: open.tries_left,
    })
}

/// When the open pairing's code stops working, if one is open.
pub fn open_until(data_dir: &Path, now_ms: u64) -> Option<u64> {
    let bytes = fs::read(pairing_path(data_dir)).ok()?;
    let open: Open = serde_json::from_slice(&bytes).ok()?;
    (open.expires_ms > now_ms && open.tries_left > 0).then_some(open.expires_ms)
}

/// A hub this hub trusts: the other side of a pairing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairedHub {
    /// The other hub's id (as it said when pairing).
    pub hub_id: String,
    /// SHA-256 of its certificate, lowercase hex.
    pub sha256: String,
    /// When the pairing was made (Unix ms).
    pub paired_ms: u64,
}

/// The hubs this hub trusts; none when the file does not exist.
pub fn paired(data_dir: &Path) -> Result<Vec<PairedHub>, String> {
    let path = paired_path(data_dir);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a valid list of paired hubs: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Trust `hub` from now on (a hub paired again replaces its earlier certificate).
pub fn add_paired(data_dir: &Path, hub: PairedHub) -> Result<(), String> {
    let mut list = paired(data_dir)?;
    list.retain(|h| h.hub_id != hub.hub_id);
    list.push(hub);
    let path = paired_path(data_dir);
    ensure_dir(&path).map_err(|e| e.to_string())?;
    let bytes = serde_json::to_vec_pretty(&list).map_err(|e| e.to_string())?;
    replace_file(&path, &bytes, 0o644)
}

/// Stop trusting the hub `hub_id`: its next connection is refused. False if it was not paired.
pub fn remove_paired(data_dir: &Path, hub_id: &str) -> Result<bool, String> {
    let mut list = paired(data_dir)?;
    let before = list.len();
    list.retain(|h| h.hub_id != hub_id);
    if list.len() == before {
        return Ok(false);
    }
    let bytes = serde_json::to_vec_pretty(&list).map_err(|e| e.to_string())?;
    replace_file(&paired_path(data_dir), &bytes, 0o644)?;
    Ok(true)
}

/// Which paired hub a certificate fingerprint belongs to.
pub fn paired_hub(data_dir: &Path, sha256: &str) -> Result<Option<PairedHub>, String> {
    Ok(paired(data_dir)?.into_iter().find(|h| h.sha256 == sha256))
}

/// A code as typed: upper case, without separators, with the letters Crockford's alphabet
/// reads as digits (I and L as 1, O as 0).
fn normalize(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        })
        .collect()
}

fn hash(code: &str) -> String {
    crate::files::fingerprint(code.as_bytes())
}

fn close(path: &Path) -> Result<(), PairingError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PairingError::Files(format!(
            "cannot close the pairing {}: {e}",
            path.display()
        ))),
    }
}

fn ensure_dir(path: &Path) -> Result<(), PairingError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| PairingError::Files(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_within_its_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let opened = open(dir.path(), 1_000).unwrap();
        assert_eq!(opened.code.len(), 14, "{}", opened.code);
        assert_eq!(
            open_until(dir.path(), 1_000),
            Some(1_000 + CODE_LIFETIME_MS)
        );
        // Typed in lower case without dashes: still right.
        let typed = opened.code.replace('-', "").to_lowercase();
        assert_eq!(redeem(dir.path(), &typed, 2_000), Ok(()));
        assert_eq!(
            redeem(dir.path(), &opened.code, 2_000),
            Err(PairingError::NoneOpen)
        );
        assert_eq!(open_until(dir.path(), 2_000), None);
    }

    #[test]
    fn an_expired_code_is_refused_and_closes_the_pairing() {
        let dir = tempfile::tempdir().unwrap();
        let opened = open(dir.path(), 0).unwrap();
        assert_eq!(
            redeem(dir.path(), &opened.code, CODE_LIFETIME_MS),
            Err(PairingError::Expired)
        );
        assert_eq!(
            redeem(dir.path(), &opened.code, 1),
            Err(PairingError::NoneOpen)
        );
    }

    #[test]
    fn five_wrong_codes_close_the_pairing_so_guessing_ends() {
        let dir = tempfile::tempdir().unwrap();
        let opened = open(dir.path(), 0).unwrap();
        for left in (1..MAX_TRIES).rev() {
            assert_eq!(
                redeem(dir.path(), "0000-0000-0000", 1),
                Err(PairingError::Wrong { tries_left: left })
            );
        }
        assert_eq!(
            redeem(dir.path(), "0000-0000-0000", 1),
            Err(PairingError::Closed)
        );
        // The right code no longer works either.
        assert_eq!(
            redeem(dir.path(), &opened.code, 1),
            Err(PairingError::NoneOpen)
        );
    }

    #[test]
    fn the_file_keeps_no_code() {
        let dir = tempfile::tempdir().unwrap();
        let opened = open(dir.path(), 0).unwrap();
        let text = fs::read_to_string(pairing_path(dir.path())).unwrap();
        assert!(!text.contains(&opened.code.replace('-', "")), "{text}");
    }

    #[test]
    fn damaged_files_trust_nobody_and_open_no_pairing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tls")).unwrap();
        std::fs::write(paired_path(dir.path()), b"{ not a list").unwrap();
        assert!(paired(dir.path()).is_err());
        assert!(paired_hub(dir.path(), "aa").is_err());
        std::fs::write(pairing_path(dir.path()), b"garbage").unwrap();
        assert_eq!(
            redeem(dir.path(), "0000-0000-0000", 1),
            Err(PairingError::NoneOpen)
        );
        assert!(
            !pairing_path(dir.path()).exists(),
            "the damaged pairing is closed"
        );
    }

    #[test]
    fn paired_hubs_are_listed_and_replaced_by_id() {
        let dir = tempfile::tempdir().unwrap();
        assert!(paired(dir.path()).unwrap().is_empty());
        let hub = |sha: &str| PairedHub {
            hub_id: "b".into(),
            sha256: sha.into(),
            paired_ms: 1,
        };
        add_paired(dir.path(), hub("aa")).unwrap();
        add_paired(dir.path(), hub("bb")).unwrap();
        assert_eq!(paired(dir.path()).unwrap(), vec![hub("bb")]);
        assert_eq!(paired_hub(dir.path(), "aa").unwrap(), None);
        assert_eq!(paired_hub(dir.path(), "bb").unwrap(), Some(hub("bb")));
        assert!(!remove_paired(dir.path(), "other").unwrap());
        assert!(remove_paired(dir.path(), "b").unwrap());
        assert_eq!(paired_hub(dir.path(), "bb").unwrap(), None);
    }
}

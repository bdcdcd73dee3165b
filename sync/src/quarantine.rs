//! What start-up found, and moving damaged rows out of the way.
//!
//! Damage is never fatal and never silent: a chunk that does not load is moved, bytes and all, to
//! the `quarantine` table with a description of where it came from, the document is built from
//! what is intact, and the `LoadReport` says which table and document lost what.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::error::{RedbContext, StoreError};
use crate::redb_store::{CHUNKS, QUARANTINE};

/// One quarantined row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    pub table: String,
    pub key: String,
    pub document: String,
    pub reason: String,
    pub bytes: usize,
}

/// A fact that is in a document but cannot be read as a `Record` (written by a newer or broken
/// peer). It stays in the document (CRDT history cannot be edited) and is skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecodable {
    pub document: String,
    pub fact_id: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Documents loaded at start: name and fact count.
    pub loaded: Vec<(String, usize)>,
    pub quarantined: Vec<Quarantined>,
    pub undecodable: Vec<Undecodable>,
    /// Documents that hold changes whose dependencies are missing (their facts are not visible
    /// until sync brings the missing changes): name and number of missing hashes.
    pub missing_deps: Vec<(String, usize)>,
    /// Set when redb could not read the file at all: where the damaged file was moved, and why.
    pub database_replaced: Option<(PathBuf, String)>,
    pub elapsed: Duration,
}

impl LoadReport {
    /// True when nothing was damaged, skipped or replaced.
    pub fn is_clean(&self) -> bool {
        self.quarantined.is_empty()
            && self.undecodable.is_empty()
            && self.missing_deps.is_empty()
            && self.database_replaced.is_none()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let facts: usize = self.loaded.iter().map(|(_, n)| n).sum();
        write!(
            f,
            "loaded {} documents ({facts} facts) in {:?}",
            self.loaded.len(),
            self.elapsed
        )?;
        if let Some((aside, reason)) = &self.database_replaced {
            write!(
                f,
                "; DATABASE UNREADABLE ({reason}): moved to {} and started empty",
                aside.display()
            )?;
        }
        for q in &self.quarantined {
            write!(
                f,
                "; QUARANTINED table {} document {} key {} ({} bytes): {}",
                q.table, q.document, q.key, q.bytes, q.reason
            )?;
        }
        for u in &self.undecodable {
            write!(
                f,
                "; skipped fact {} in {}: {}",
                u.fact_id, u.document, u.reason
            )?;
        }
        for (doc, n) in &self.missing_deps {
            write!(f, "; document {doc} waits for {n} missing changes")?;
        }
        Ok(())
    }
}

/// Moves one chunk into the quarantine table (inside the caller's transaction).
pub(crate) fn quarantine_chunk(
    tx: &WriteTransaction,
    q: &Quarantined,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let mut quarantine = tx.open_table(QUARANTINE).ctx("open quarantine")?;
    let seq = match quarantine.last().ctx("read quarantine")? {
        Some((k, _)) => k.value() + 1,
        None => 0,
    };
    let description = serde_json::to_string(q).unwrap_or_else(|_| q.reason.clone());
    quarantine
        .insert(seq, (description.as_str(), bytes))
        .ctx("write quarantine")?;
    let mut chunks = tx.open_table(CHUNKS).ctx("open chunks")?;
    chunks.remove(q.key.as_str()).ctx("remove damaged chunk")?;
    Ok(())
}

/// Everything in the quarantine table: description and original bytes.
pub(crate) fn list<T: ReadableTable<u64, (&'static str, &'static [u8])>>(
    table: &T,
) -> Result<Vec<(Quarantined, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    for row in table.iter().ctx("read quarantine")? {
        let (_, v) = row.ctx("read quarantine row")?;
        let (description, bytes) = v.value();
        let q = serde_json::from_str(description).unwrap_or_else(|_| Quarantined {
            table: "?".into(),
            key: "?".into(),
            document: "?".into(),
            reason: description.to_string(),
            bytes: bytes.len(),
        });
        out.push((q, bytes.to_vec()));
    }
    Ok(out)
}

//! Keeping secrets out of documents: pickup codes are stored only as keyed hashes, and a scanner
//! checks every stored byte of every document (history included) for plaintext.

use automerge::AutoCommit;
use hmac::{Hmac, Mac};
use redb::{ReadableDatabase, ReadableTable};
use sha2::Sha256;

use crate::error::{RedbContext, StoreError};
use crate::record::Record;
use crate::redb_store::{CHUNKS, DOCS, QUARANTINE};
use crate::store::Store;

/// HMAC-SHA256 of a pickup code under the site key, hex. Documents hold this, never the code: a
/// copy of a document (which is synced off site and keeps every past value) does not reveal
/// codes, and 6-digit codes cannot be brute-forced from it without the key.
pub fn code_hash(site_key: &[u8; 32], code: &str) -> String {
    // new_from_slice only fails for key lengths HMAC cannot take; 32 bytes is always fine.
    let mut mac = match Hmac::<Sha256>::new_from_slice(site_key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(b"locker-hub/pickup-code/v1\0");
    mac.update(code.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where a needle was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretHit {
    pub needle: String,
    /// e.g. "chunks/<key>", "document parcels-2026-11 (uncompressed, full history)".
    pub location: String,
}

impl<R: Record> Store<R> {
    pub fn code_hash(&self, code: &str) -> String {
        code_hash(&self.site_key, code)
    }

    /// Searches every byte that could leave the hub for each needle: every stored chunk as is,
    /// every document re-encoded without compression (Automerge deflates large columns, which
    /// would hide a plaintext from a raw scan) including all history, the quarantine table and
    /// the open-thread index.
    pub fn scan_for_secrets(&self, needles: &[&str]) -> Result<Vec<SecretHit>, StoreError> {
        let mut hits = Vec::new();
        let mut check = |location: &str, bytes: &[u8]| {
            for needle in needles {
                if !needle.is_empty() && contains(bytes, needle.as_bytes()) {
                    hits.push(SecretHit {
                        needle: needle.to_string(),
                        location: location.to_string(),
                    });
                }
            }
        };
        let tx = self.db.begin_read().ctx("begin read")?;
        let chunks = tx.open_table(CHUNKS).ctx("open chunks")?;
        for row in chunks.iter().ctx("read chunks")? {
            let (k, v) = row.ctx("read chunk")?;
            check(&format!("chunks/{}", k.value()), v.value());
        }
        let docs = tx.open_table(DOCS).ctx("open docs")?;
        for row in docs.iter().ctx("read docs")? {
            let (k, v) = row.ctx("read docs row")?;
            let (id, _) = v.value();
            let all: Vec<u8> = crate::redb_store::read_chunks(&chunks, id)?
                .into_iter()
                .flat_map(|(_, b)| b)
                .collect();
            if all.is_empty() {
                continue;
            }
            let mut doc = AutoCommit::load(&all).map_err(|e| StoreError::Damaged {
                table: "chunks",
                doc: k.value().to_string(),
                key: id.to_string(),
                message: e.to_string(),
            })?;
            check(
                &format!("document {} (uncompressed, full history)", k.value()),
                &doc.save_nocompress(),
            );
        }
        for (key, live) in &self.docs {
            let mut doc = live.doc.clone();
            check(
                &format!("document {key} in memory (uncompressed, full history)"),
                &doc.save_nocompress(),
            );
        }
        let quarantine = tx.open_table(QUARANTINE).ctx("open quarantine")?;
        for (q, bytes) in crate::quarantine::list(&quarantine)? {
            check(&format!("quarantine/{}", q.key), &bytes);
        }
        Ok(hits)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_hash_is_keyed_and_stable() {
        let a = code_hash(&[1; 32], "123456");
        assert_eq!(a, code_hash(&[1; 32], "123456"));
        assert_ne!(
            a,
            code_hash(&[2; 32], "123456"),
            "a different site key gives another hash"
        );
        assert_ne!(a, code_hash(&[1; 32], "123457"));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("123456"));
    }
}

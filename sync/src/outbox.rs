//! Local, never-synced tables: the outbox of plaintext notifications and a small key-value table
//! for local secrets and settings. Neither is ever part of a document.

use redb::{Durability, ReadableDatabase, ReadableTable};

use crate::error::{RedbContext, StoreError};
use crate::record::Record;
use crate::redb_store::{LOCAL, OUTBOX};
use crate::store::Store;

impl<R: Record> Store<R> {
    /// Durably stores a notification payload (e.g. holding a plaintext pickup code) until it has
    /// been handed off. To store it with the facts of the same step in one commit, use
    /// `append_with_outbox`.
    pub fn outbox_put(&mut self, id: &str, payload: &[u8]) -> Result<(), StoreError> {
        self.append_with_outbox(&[], &[(id, payload)])
    }

    /// Everything not yet handed off, in id order (e.g. to retry after a restart).
    pub fn outbox_pending(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().ctx("begin read")?;
        let table = tx.open_table(OUTBOX).ctx("open outbox")?;
        let sealer = crate::sealed::Sealer::new(&self.site_key);
        let mut out = Vec::new();
        for row in table.iter().ctx("read outbox")? {
            let (k, v) = row.ctx("read outbox row")?;
            let id = k.value().to_string();
            // Sealed (or plain, from an earlier version); one that does not open is kept, and
            // shows as undecodable.
            let payload = sealer
                .open(&id, v.value())
                .unwrap_or_else(|| v.value().to_vec());
            out.push((id, payload));
        }
        Ok(out)
    }

    /// Once handed off: the plaintext leaves the table (durably). Erasing an unknown id is fine.
    /// redb may keep the old bytes in a freed page until it is reused; the file never leaves the
    /// hub (see docs/state.md, "Secrets").
    pub fn outbox_erase(&mut self, id: &str) -> Result<(), StoreError> {
        self.write_local(|tx| {
            let mut table = tx.open_table(OUTBOX).ctx("open outbox")?;
            table.remove(id).ctx("erase outbox item")?;
            Ok(())
        })
    }

    /// A local setting or secret (staff password hash, MQTT credentials, ...).
    pub fn local_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().ctx("begin read")?;
        let table = tx.open_table(LOCAL).ctx("open local")?;
        Ok(table
            .get(key)
            .ctx("read local")?
            .map(|v| v.value().to_vec()))
    }

    /// Every local entry whose key starts with `prefix`, in key order.
    pub fn local_prefixed(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().ctx("begin read")?;
        let table = tx.open_table(LOCAL).ctx("open local")?;
        let mut out = Vec::new();
        for row in table.range(prefix..).ctx("read local")? {
            let (k, v) = row.ctx("read local row")?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Durably sets a local setting or secret.
    pub fn local_put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write_local(|tx| {
            let mut table = tx.open_table(LOCAL).ctx("open local")?;
            table.insert(key, value).ctx("write local")?;
            Ok(())
        })
    }

    pub fn local_delete(&mut self, key: &str) -> Result<(), StoreError> {
        self.write_local(|tx| {
            let mut table = tx.open_table(LOCAL).ctx("open local")?;
            table.remove(key).ctx("delete local")?;
            Ok(())
        })
    }

    /// The site key (32 bytes, made from OS randomness on first open, kept in the local `meta`
    /// table, never synced). Pickup codes are stored only as HMACs under it.
    pub fn site_key(&self) -> [u8; 32] {
        self.site_key
    }

    fn write_local(
        &mut self,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.check_writable()?;
        let mut tx = self.db.begin_write().ctx("begin write")?;
        tx.set_durability(Durability::Immediate)
            .ctx("set durability")?;
        body(&tx)?;
        tx.commit().ctx("durable commit")
    }
}

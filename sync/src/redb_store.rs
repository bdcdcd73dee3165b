//! The redb file: its tables, how it is opened (and set aside if redb cannot read it), and the
//! chunk table in automerge-repo's storage layout.
//!
//! Document bytes live in `chunks` under automerge-repo's keys, `<document id>/snapshot/<hash>`
//! and `<document id>/incremental/<hash>`, so that a sync layer (samod) can read and write the
//! very same rows through its storage trait (see `ChunkStore` and docs/state.md). Everything else
//! here is local to this hub and never synced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use sha2::{Digest, Sha256};

use crate::error::{RedbContext, StoreError};

/// The data format this build writes. Bump it (and add a migration in `Store::open`) whenever a
/// table's meaning changes; a file with a newer version is refused, not misread.
pub const FORMAT_VERSION: u32 = 1;

/// Settings and identity: "format_version" (u32 LE), "hub_id", "site_id", "site_key" (32 bytes).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Our name index: document name -> (automerge-repo document id, fact count).
pub(crate) const DOCS: TableDefinition<&str, (&str, u64)> = TableDefinition::new("docs");
/// Automerge bytes, keyed as automerge-repo storage keys joined with "/".
pub(crate) const CHUNKS: TableDefinition<&str, &[u8]> = TableDefinition::new("chunks");
/// Plaintext notifications (pickup codes) waiting to be handed off; erased once handed off.
pub(crate) const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");
/// Small local key-value settings and secrets (staff password hashes, MQTT credentials).
pub(crate) const LOCAL: TableDefinition<&str, &[u8]> = TableDefinition::new("local");
/// Sync state per (peer storage id, document name): automerge's encoded `sync::State` (the heads
/// both sides are known to share), written in the transaction that stores what it describes.
pub(crate) const SYNC_STATES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("sync_states");
/// Each document's heads (32-byte change hashes, concatenated), written with its chunks: what a
/// sync session compares with a peer's saved state without loading the document.
pub(crate) const DOC_HEADS: TableDefinition<&str, &[u8]> = TableDefinition::new("doc_heads");
/// Tables of the open-thread index of earlier versions, deleted at open: the hub keeps old open
/// parcels in view with its own "open since" mark, and tells `maintain` which months to keep.
pub(crate) const THREAD_FACTS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("thread_facts");
/// See [`THREAD_FACTS`].
pub(crate) const CLOSED_THREADS: TableDefinition<&str, &str> =
    TableDefinition::new("closed_threads");
/// Damaged rows moved out of the way: seq -> (JSON description, original bytes).
pub(crate) const QUARANTINE: TableDefinition<u64, (&str, &[u8])> =
    TableDefinition::new("quarantine");

pub(crate) const CHUNKS_NAME: &str = "chunks";

/// Opens (or creates) the database. If redb itself cannot read the file (truncated, overwritten),
/// the file is renamed to `state.redb.damaged-<ms>` and a fresh one is created: the hub keeps
/// running and the damaged file is kept for recovery. Returns where the damaged file went.
pub(crate) fn open_database(
    path: &Path,
    cache_bytes: Option<usize>,
) -> Result<(Database, Option<(PathBuf, String)>), StoreError> {
    let open = |p: &Path| {
        let mut builder = Database::builder();
        if let Some(bytes) = cache_bytes {
            builder.set_cache_size(bytes);
        }
        builder.create(p)
    };
    if !path.exists() {
        return create_atomically(path, open).map(|db| (db, None));
    }
    match open(path) {
        Ok(db) => Ok((db, None)),
        Err(e) if is_damage(&e) => {
            let reason = e.to_string();
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let aside = path.with_file_name(format!(
                "{}.damaged-{ms}",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("state.redb")
            ));
            std::fs::rename(path, &aside).map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            tracing::error!(
                file = %path.display(), moved_to = %aside.display(), %reason,
                "state database is damaged; moved aside and starting with a fresh one"
            );
            let db = create_atomically(path, open)?;
            Ok((db, Some((aside, reason))))
        }
        Err(e) => Err(e).ctx(&format!("open {}", path.display())),
    }
}

/// A new file is created under a temporary name, given its format version, and renamed into
/// place: a crash during creation leaves no half-made `state.redb` that would look damaged.
fn create_atomically(
    path: &Path,
    open: impl Fn(&Path) -> Result<Database, redb::DatabaseError>,
) -> Result<Database, StoreError> {
    let tmp = path.with_extension("redb.creating");
    let io = |source| StoreError::Io {
        path: tmp.clone(),
        source,
    };
    if tmp.exists() {
        std::fs::remove_file(&tmp).map_err(io)?;
    }
    let db = open(&tmp).ctx(&format!("create {}", tmp.display()))?;
    let tx = db.begin_write().ctx("begin write")?;
    {
        let mut meta = tx.open_table(META).ctx("create meta")?;
        meta.insert("format_version", FORMAT_VERSION.to_le_bytes().as_slice())
            .ctx("write format_version")?;
    }
    tx.commit().ctx("commit new database")?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(db)
}

fn is_damage(e: &redb::DatabaseError) -> bool {
    use redb::{DatabaseError, StorageError};
    match e {
        DatabaseError::Storage(StorageError::Corrupted(_)) => true,
        DatabaseError::Storage(StorageError::Io(io)) => matches!(
            io.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
        ),
        // Already open, locked, too old a format: not damage; report, do not move anything.
        _ => false,
    }
}

/// `<id>/snapshot/<sha256 of the heads>`: compacting the same heads twice gives the same key.
pub(crate) fn snapshot_key(doc_id: &str, heads: &[automerge::ChangeHash]) -> String {
    let mut sorted: Vec<_> = heads.to_vec();
    sorted.sort();
    let mut h = Sha256::new();
    for head in &sorted {
        h.update(head.0);
    }
    format!("{doc_id}/snapshot/{}", hex(&h.finalize()))
}

/// `<id>/incremental/<sha256 of the bytes>`: writing the same chunk twice is a no-op.
pub(crate) fn incremental_key(doc_id: &str, bytes: &[u8]) -> String {
    format!("{doc_id}/incremental/{}", hex(&Sha256::digest(bytes)))
}

pub(crate) fn is_snapshot_key(key: &str) -> bool {
    key.split('/').nth(1) == Some("snapshot")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every chunk of one document, snapshots first (loading needs the snapshot before the changes
/// that build on it), then incrementals, each group in key order.
pub(crate) fn read_chunks<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    doc_id: &str,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let prefix = format!("{doc_id}/");
    let mut out = Vec::new();
    for row in table.range(prefix.as_str()..).ctx("read chunks")? {
        let (k, v) = row.ctx("read chunk")?;
        let key = k.value();
        if !key.starts_with(&prefix) {
            break;
        }
        out.push((key.to_string(), v.value().to_vec()));
    }
    out.sort_by_key(|(k, _)| !is_snapshot_key(k));
    Ok(out)
}

/// Raw access to the `chunks` table for a sync layer: automerge-repo storage semantics
/// (load / load_range / put / delete on "/"-joined keys), but errors are reported instead of
/// swallowed, and every put and delete is one durable commit. A samod storage adapter wraps this
/// and stops the process on an error (see docs/state.md, "Sync").
#[derive(Clone)]
pub struct ChunkStore {
    pub(crate) db: Arc<Database>,
}

impl ChunkStore {
    pub fn load(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().ctx("begin read")?;
        let table = tx.open_table(CHUNKS).ctx("open chunks")?;
        Ok(table
            .get(key)
            .ctx("read chunk")?
            .map(|v| v.value().to_vec()))
    }

    /// Every row whose key starts with `prefix` (a whole key component: "a/b" does not match
    /// "a/bc/x").
    pub fn load_range(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().ctx("begin read")?;
        let table = tx.open_table(CHUNKS).ctx("open chunks")?;
        let mut out = Vec::new();
        for row in table.range(prefix..).ctx("read chunks")? {
            let (k, v) = row.ctx("read chunk")?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            let rest = &key[prefix.len()..];
            if prefix.is_empty()
                || rest.is_empty()
                || rest.starts_with('/')
                || prefix.ends_with('/')
            {
                out.push((key.to_string(), v.value().to_vec()));
            }
        }
        Ok(out)
    }

    pub fn put(&self, key: &str, data: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().ctx("begin write")?;
        {
            let mut table = tx.open_table(CHUNKS).ctx("open chunks")?;
            table.insert(key, data).ctx("write chunk")?;
        }
        tx.commit().ctx("commit chunk")
    }

    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        let tx = self.db.begin_write().ctx("begin write")?;
        {
            let mut table = tx.open_table(CHUNKS).ctx("open chunks")?;
            table.remove(key).ctx("delete chunk")?;
        }
        tx.commit().ctx("commit chunk delete")
    }
}

//! `Store`: opening the database, loading the live documents, appending facts durably,
//! compaction and retention. Outbox/local tables, secrets and sync access are further `impl`
//! blocks in their own files.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use automerge::{ActorId, AutoCommit, AutomergeError, OnPartialLoad, ReadDoc, VerificationMode};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use serde_json::{Map, Value};

use crate::codec;
use crate::docs::{document_id_string, DocKey};
use crate::error::{RedbContext, StoreError};
use crate::quarantine::{quarantine_chunk, LoadReport, Quarantined, Undecodable};
use crate::record::Record;
use crate::redb_store::{
    incremental_key, open_database, read_chunks, snapshot_key, ChunkStore, CHUNKS, CHUNKS_NAME,
    CLOSED_THREADS, DOCS, DOC_HEADS, FORMAT_VERSION, LOCAL, META, OUTBOX, QUARANTINE, SYNC_STATES,
    THREAD_FACTS,
};

#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Names the site in document ids, so every hub of one site and the cloud agree on them.
    /// Defaults to the hub id (a site with one hub).
    pub site_id: Option<String>,
    /// "Now" for the live window and retention. Defaults to the system clock; tests and the
    /// benchmark pin it.
    pub now_ms: Option<u64>,
    /// Partitions older than this many full months are deleted by `maintain` (audit history).
    pub retention_months: u32,
    /// `maintain` compacts a document once it has more incremental chunks than this.
    pub compact_after_chunks: usize,
    /// `append` compacts inline past this many chunks, in case `maintain` is never called.
    pub compact_hard_limit: usize,
    /// redb page cache size; `None` keeps redb's default.
    pub cache_bytes: Option<usize>,
    /// The hub syncs with peers: retention deletes a partition only once every peer this store
    /// has synced with has all of it (and keeps everything until some peer has synced).
    pub keep_unsynced: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            site_id: None,
            now_ms: None,
            retention_months: 24,
            compact_after_chunks: 64,
            compact_hard_limit: 1024,
            cache_bytes: Some(16 << 20),
            keep_unsynced: false,
        }
    }
}

/// What `documents()` tells about one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocInfo {
    pub key: DocKey,
    /// automerge-repo document id (base58check), as in `automerge:<id>`.
    pub automerge_id: String,
    /// Bytes of its snapshot and incremental chunks in redb.
    pub stored_bytes: u64,
    pub chunks: usize,
    pub loaded: bool,
    pub facts: u64,
}

/// What `maintain` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maintenance {
    pub compacted: Vec<DocKey>,
    pub unloaded: Vec<DocKey>,
    pub expired: Vec<DocKey>,
}

/// One document held in memory.
pub(crate) struct LiveDoc {
    pub(crate) id: String,
    pub(crate) doc: AutoCommit,
    /// Chunk keys of this document that we loaded or wrote: compaction replaces exactly these
    /// (never a chunk someone else, e.g. a sync layer, wrote meanwhile).
    pub(crate) chunk_keys: Vec<String>,
    pub(crate) incrementals: usize,
    /// Entries in the root map. Kept by hand: automerge's `length` walks the whole map.
    pub(crate) facts: u64,
    /// False until the document's name is in the `docs` table.
    pub(crate) registered: bool,
    /// The heads of what is on disk: the next write stores the changes after them. (Not
    /// automerge's `save_incremental`, whose cursor starts empty on a loaded document: the
    /// first write after a load stored the whole document again.)
    pub(crate) saved: Vec<automerge::ChangeHash>,
}

pub struct Store<R: Record> {
    pub(crate) db: Arc<Database>,
    pub(crate) path: PathBuf,
    pub(crate) hub_id: String,
    pub(crate) site_id: String,
    pub(crate) actor: ActorId,
    pub(crate) site_key: [u8; 32],
    pub(crate) opts: StoreOptions,
    pub(crate) now_ms: u64,
    pub(crate) docs: BTreeMap<DocKey, LiveDoc>,
    /// Set after a failed durable commit: memory may be ahead of disk, so no more writes.
    pub(crate) poisoned: Option<String>,
    _records: PhantomData<fn() -> R>,
}

/// A live document loaded at start, with its decoded facts.
type LoadedLive<R> = (DocKey, String, Loaded, Vec<Result<R, (String, String)>>);

/// A document as read from redb: the automerge doc and what could not be loaded.
pub(crate) struct Loaded {
    pub(crate) doc: AutoCommit,
    pub(crate) kept: Vec<String>,
    pub(crate) incrementals: usize,
    pub(crate) damaged: Vec<(String, String, Vec<u8>)>,
}

impl<R: Record> Store<R> {
    /// Open (or create) `data_dir/state.redb`, load the live documents, quarantine anything
    /// damaged, and return the facts the core needs to rebuild its state: every fact of the live
    /// documents plus every fact of a thread that is still open, sorted by id (= time).
    pub fn open(
        data_dir: &Path,
        hub_id: &str,
        opts: StoreOptions,
    ) -> Result<(Store<R>, Vec<R>, LoadReport), StoreError> {
        let started = Instant::now();
        let mut report = LoadReport::default();
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join("state.redb");
        let (db, replaced) = open_database(&path, opts.cache_bytes)?;
        report.database_replaced = replaced;
        let db = Arc::new(db);
        let site_id = opts.site_id.clone().unwrap_or_else(|| hub_id.to_string());
        let site_key = init_meta(&db, &path, hub_id, &site_id, None)?;

        let mut actor_bytes = hub_id.as_bytes().to_vec();
        let mut session = [0u8; 8];
        getrandom::fill(&mut session).map_err(|e| StoreError::Io {
            path: path.clone(),
            source: std::io::Error::other(format!("no OS randomness: {e}")),
        })?;
        actor_bytes.extend_from_slice(&session);

        let now_ms = opts.now_ms.unwrap_or_else(system_now_ms);
        let mut store = Store {
            db,
            path,
            hub_id: hub_id.to_string(),
            site_id,
            actor: ActorId::from(actor_bytes),
            site_key,
            opts,
            now_ms,
            docs: BTreeMap::new(),
            poisoned: None,
            _records: PhantomData,
        };

        // Which documents to load: site, directory and the live partitions that exist.
        let index = store.read_index()?;
        let mut wanted: Vec<DocKey> = vec![DocKey::Site, DocKey::Directory];
        for (name, _) in &index {
            match name.parse::<DocKey>() {
                Ok(key) if key.is_live(now_ms) && !wanted.contains(&key) => wanted.push(key),
                Ok(_) => {}
                Err(e) => report.undecodable.push(Undecodable {
                    document: name.clone(),
                    fact_id: String::new(),
                    reason: format!("table docs: {e}"),
                }),
            }
        }
        let chunk_sets = {
            let tx = store.db.begin_read().ctx("begin read")?;
            let chunks = tx.open_table(CHUNKS).ctx("open chunks")?;
            wanted
                .iter()
                .map(|key| {
                    let id = store.doc_id(key);
                    read_chunks(&chunks, &id).map(|c| (*key, id, c))
                })
                .collect::<Result<Vec<_>, _>>()?
        };

        // Load and decode on as many threads as there are cores (two on the target machine),
        // biggest documents first: a month of parcels takes ~0.15 s to load. More threads than
        // cores would only add allocator arenas (resident memory) and contention.
        let mut queue = chunk_sets;
        queue.sort_by_key(|(_, _, chunks)| {
            std::cmp::Reverse(chunks.iter().map(|(_, b)| b.len()).sum::<usize>())
        });
        let queue = std::sync::Mutex::new(queue.into_iter().collect::<VecDeque<_>>());
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 4);
        let mut decoded: Vec<LoadedLive<R>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let next = match queue.lock() {
                                Ok(mut q) => q.pop_front(),
                                Err(_) => None,
                            };
                            let Some((key, id, chunks)) = next else {
                                break;
                            };
                            let loaded = load_document(chunks);
                            let facts = decode_all::<R>(&loaded.doc);
                            done.push((key, id, loaded, facts));
                        }
                        done
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok())
                .flatten()
                .collect()
        });
        decoded.sort_by_key(|(key, ..)| *key);

        let mut facts: Vec<R> = Vec::new();
        let mut damaged_rows = Vec::new();
        for (key, id, loaded, doc_facts) in decoded {
            let name = key.to_string();
            for (chunk_key, reason, bytes) in loaded.damaged {
                damaged_rows.push((
                    Quarantined {
                        table: CHUNKS_NAME.into(),
                        key: chunk_key,
                        document: name.clone(),
                        reason,
                        bytes: bytes.len(),
                    },
                    bytes,
                ));
            }
            let mut doc = loaded.doc;
            let missing = doc.get_missing_deps(&[]);
            if !missing.is_empty() {
                report.missing_deps.push((name.clone(), missing.len()));
            }
            let mut count = 0;
            for fact in doc_facts {
                match fact {
                    Ok(fact) => {
                        facts.push(fact);
                        count += 1;
                    }
                    Err((fact_id, reason)) => report.undecodable.push(Undecodable {
                        document: name.clone(),
                        fact_id,
                        reason,
                    }),
                }
            }
            report.loaded.push((name, count));
            let doc_len = doc.length(automerge::ROOT) as u64;
            doc.set_actor(store.actor.clone());
            let registered = index.iter().any(|(n, _)| *n == key.to_string());
            let saved = doc.get_heads();
            store.docs.insert(
                key,
                LiveDoc {
                    id,
                    doc,
                    chunk_keys: loaded.kept,
                    incrementals: loaded.incrementals,
                    facts: doc_len,
                    registered,
                    saved,
                },
            );
        }
        if !damaged_rows.is_empty() {
            let tx = store.db.begin_write().ctx("begin write")?;
            for (q, bytes) in &damaged_rows {
                tracing::error!(table = %q.table, document = %q.document, key = %q.key,
                    reason = %q.reason, "damaged chunk quarantined");
                quarantine_chunk(&tx, q, bytes)?;
            }
            tx.commit().ctx("commit quarantine")?;
            report.quarantined = damaged_rows.into_iter().map(|(q, _)| q).collect();
        }

        // A process that never lives long enough for `maintain` (a crash loop, a hub restarted
        // often) would otherwise add chunks at every start until the inline limit, and each one
        // makes the next load slower. Compact what is over the routine limit now; a failure (a
        // full disk) only leaves it for later.
        let live: BTreeSet<DocKey> = store.docs.keys().copied().collect();
        match store.compact_over(store.opts.compact_after_chunks, &live) {
            Ok(done) if !done.is_empty() => {
                tracing::info!(documents = done.len(), "compacted at start");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not compact at start; maintenance will"),
        }

        facts.sort_by(|a, b| a.id().cmp(b.id()));
        release_freed_memory();
        report.elapsed = started.elapsed();
        if report.is_clean() {
            tracing::info!("{report}");
        } else {
            tracing::error!("{report}");
        }
        Ok((store, facts, report))
    }

    /// Append facts; returns only after one durable commit that holds all of them.
    /// Idempotent on fact id: a fact whose id is already stored is skipped.
    pub fn append(&mut self, facts: &[R]) -> Result<(), StoreError> {
        self.append_with_outbox(facts, &[])
    }

    /// Append facts and put outbox items (e.g. the plaintext code of a notification) in ONE
    /// durable commit, so the daemon can confirm a step with one fsync and never confirms a code
    /// that is not on disk.
    pub fn append_with_outbox(
        &mut self,
        facts: &[R],
        outbox: &[(&str, &[u8])],
    ) -> Result<(), StoreError> {
        self.append_with(facts, outbox, &[])
    }

    /// `append_with_outbox`, and in the same transaction local secrets (`key`, `Some(value)` to
    /// keep, `None` to erase). Outbox items and secrets are sealed at rest (`sealed.rs`).
    pub fn append_with(
        &mut self,
        facts: &[R],
        outbox: &[(&str, &[u8])],
        secrets: &[(&str, Option<&[u8]>)],
    ) -> Result<(), StoreError> {
        self.check_writable()?;
        if facts.is_empty() && outbox.is_empty() && secrets.is_empty() {
            return Ok(());
        }
        // Encode everything first, so a bad fact changes nothing.
        let mut encoded: Vec<(&R, DocKey, Map<String, Value>)> = Vec::with_capacity(facts.len());
        for fact in facts {
            if fact.id().is_empty() {
                return Err(StoreError::Encode {
                    fact_id: String::new(),
                    message: "empty id".into(),
                });
            }
            match serde_json::to_value(fact) {
                Ok(Value::Object(map)) => encoded.push((fact, fact.document(), map)),
                Ok(other) => {
                    return Err(StoreError::Encode {
                        fact_id: fact.id().to_string(),
                        message: format!("serializes to {other}, expected a JSON object"),
                    })
                }
                Err(e) => {
                    return Err(StoreError::Encode {
                        fact_id: fact.id().to_string(),
                        message: e.to_string(),
                    })
                }
            }
        }
        for (_, key, _) in &encoded {
            self.ensure_loaded(key)?;
        }

        let mut touched: BTreeSet<DocKey> = BTreeSet::new();
        for (fact, key, map) in &encoded {
            let Some(live) = self.docs.get_mut(key) else {
                continue; // ensure_loaded put it there
            };
            if codec::has_fact(&live.doc, fact.id()) {
                continue;
            }
            if let Err(e) = codec::put_fact(&mut live.doc, fact.id(), map) {
                self.rollback(&touched);
                live_rollback(self.docs.get_mut(key));
                return Err(StoreError::Encode {
                    fact_id: fact.id().to_string(),
                    message: e.to_string(),
                });
            }
            live.facts += 1;
            touched.insert(*key);
        }
        let sealer = crate::sealed::Sealer::new(&self.site_key);
        let outbox: Vec<(&str, Vec<u8>)> = outbox
            .iter()
            .map(|(id, payload)| (*id, sealer.seal(id, payload)))
            .collect();
        let outbox: Vec<(&str, &[u8])> = outbox.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        let local: Vec<(&str, Option<Vec<u8>>)> = secrets
            .iter()
            .map(|(k, v)| (*k, v.map(|v| sealer.seal(k, v))))
            .collect();
        self.persist_inner(&touched, None, &outbox, &[], &local)?;
        self.compact_over(self.opts.compact_hard_limit, &touched)?;
        Ok(())
    }

    /// A local secret kept with `append_with`, opened; `None` if there is none (or it does not
    /// open: another site's file).
    pub fn secret_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sealer = crate::sealed::Sealer::new(&self.site_key);
        Ok(self
            .local_get(key)?
            .and_then(|bytes| sealer.open(key, &bytes)))
    }

    /// Facts of one document, sorted by id. Loads an older partition from redb on demand
    /// (without keeping it in memory).
    pub fn facts_in(&self, key: &DocKey) -> Result<Vec<R>, StoreError> {
        let from = |doc: &AutoCommit| {
            decode_all::<R>(doc)
                .into_iter()
                .filter_map(|fact| match fact {
                    Ok(f) => Some(f),
                    Err((id, reason)) => {
                        tracing::warn!(document = %key, fact = %id, %reason, "skipped fact");
                        None
                    }
                })
                .collect()
        };
        if let Some(live) = self.docs.get(key) {
            return Ok(from(&live.doc));
        }
        let id = self.doc_id(key);
        let chunks = {
            let tx = self.db.begin_read().ctx("begin read")?;
            let table = tx.open_table(CHUNKS).ctx("open chunks")?;
            read_chunks(&table, &id)?
        };
        let loaded = load_document(chunks);
        if let Some((chunk, reason, _)) = loaded.damaged.into_iter().next() {
            return Err(StoreError::Damaged {
                table: CHUNKS_NAME,
                doc: key.to_string(),
                key: chunk,
                message: reason,
            });
        }
        Ok(from(&loaded.doc))
    }

    /// Every document in the index (and any loaded one not yet written).
    pub fn documents(&self) -> Vec<DocInfo> {
        let result = (|| -> Result<Vec<DocInfo>, StoreError> {
            let tx = self.db.begin_read().ctx("begin read")?;
            let docs = tx.open_table(DOCS).ctx("open docs")?;
            let chunks = tx.open_table(CHUNKS).ctx("open chunks")?;
            let mut out = Vec::new();
            for row in docs.iter().ctx("read docs")? {
                let (k, v) = row.ctx("read docs row")?;
                let Ok(key) = k.value().parse::<DocKey>() else {
                    continue;
                };
                let (id, facts) = v.value();
                let stored = read_chunks(&chunks, id)?;
                out.push(DocInfo {
                    key,
                    automerge_id: id.to_string(),
                    stored_bytes: stored.iter().map(|(_, b)| b.len() as u64).sum(),
                    chunks: stored.len(),
                    loaded: self.docs.contains_key(&key),
                    facts,
                });
            }
            for (key, live) in &self.docs {
                if !live.registered {
                    out.push(DocInfo {
                        key: *key,
                        automerge_id: live.id.clone(),
                        stored_bytes: 0,
                        chunks: 0,
                        loaded: true,
                        facts: 0,
                    });
                }
            }
            out.sort_by_key(|d| d.key);
            Ok(out)
        })();
        result.unwrap_or_else(|e| {
            tracing::error!("listing documents: {e}");
            Vec::new()
        })
    }

    /// Housekeeping for an idle moment (the daemon calls it from a timer): compact documents with
    /// many incremental chunks, unload documents that left the live window, and delete partitions
    /// past the retention period, except those of `keep_from_ms`'s month and later (the caller's
    /// oldest open parcel or alert began then: its facts must outlive the retention period).
    pub fn maintain(
        &mut self,
        now_ms: u64,
        keep_from_ms: Option<u64>,
    ) -> Result<Maintenance, StoreError> {
        self.check_writable()?;
        self.now_ms = now_ms;
        let mut done = Maintenance::default();
        let all: BTreeSet<DocKey> = self.docs.keys().copied().collect();
        done.compacted = self.compact_over(self.opts.compact_after_chunks, &all)?;
        let leaving: Vec<DocKey> = self
            .docs
            .keys()
            .filter(|k| !k.is_live(now_ms))
            .copied()
            .collect();
        for key in leaving {
            if let Some(mut live) = self.docs.remove(&key) {
                // Leave it compact on disk so loading it on demand is one snapshot.
                if live.incrementals > 0 && live.doc.get_missing_deps(&[]).is_empty() {
                    self.write_snapshot(&key, &mut live)?;
                }
                done.unloaded.push(key);
            }
        }
        done.expired = self.expire(now_ms, keep_from_ms)?;
        Ok(done)
    }

    /// Compacts one document now: its snapshot and incremental chunks are replaced by one
    /// snapshot in one transaction.
    pub fn compact(&mut self, key: &DocKey) -> Result<(), StoreError> {
        self.check_writable()?;
        self.ensure_loaded(key)?;
        if let Some(mut live) = self.docs.remove(key) {
            let result = self.write_snapshot(key, &mut live);
            self.docs.insert(*key, live);
            result?;
        }
        Ok(())
    }

    /// Direct access to the chunk table for a sync layer (see `ChunkStore`).
    pub fn chunk_store(&self) -> ChunkStore {
        ChunkStore {
            db: self.db.clone(),
        }
    }

    /// The documents written to disk, with their automerge-repo ids, from the name index alone
    /// (unlike `documents`, which reads every chunk to count bytes).
    pub fn held_documents(&self) -> Result<Vec<(DocKey, String)>, StoreError> {
        Ok(self
            .read_index()?
            .into_iter()
            .filter_map(|(name, id)| name.parse::<DocKey>().ok().map(|k| (k, id)))
            .collect())
    }

    /// True when this hub has the document: in the index on disk, or in memory with facts.
    pub fn holds(&self, key: &DocKey) -> bool {
        match self.docs.get(key) {
            Some(live) => live.registered || live.facts > 0,
            None => self
                .read_index()
                .map(|index| index.iter().any(|(name, _)| *name == key.to_string()))
                .unwrap_or(false),
        }
    }

    /// The stored data-format version of this file.
    pub fn format_version(&self) -> u32 {
        FORMAT_VERSION
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn hub_id(&self) -> &str {
        &self.hub_id
    }

    pub fn site_id(&self) -> &str {
        &self.site_id
    }

    /// The automerge-repo document id (base58check) of a document of this site.
    pub fn doc_id(&self, key: &DocKey) -> String {
        document_id_string(&key.document_id(&self.site_id))
    }

    // ----- internals shared with the other impl blocks -----

    pub(crate) fn check_writable(&self) -> Result<(), StoreError> {
        match &self.poisoned {
            Some(reason) => Err(StoreError::Poisoned(reason.clone())),
            None => Ok(()),
        }
    }

    /// Commits, durably and in one transaction, the new incremental chunk of every touched
    /// document and outbox items. On failure the store is poisoned: memory holds changes that
    /// are not on disk.
    /// `persist`, with rows of the sync-state table (peer, document name, encoded state) in the
    /// same transaction.
    pub(crate) fn persist_with(
        &mut self,
        touched: &BTreeSet<DocKey>,
        outbox: &[(&str, &[u8])],
        sync_states: &[(&str, String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        self.persist_inner(touched, None, outbox, sync_states, &[])
    }

    /// Commits `chunk` (changes already encoded, for `key`) with anything else of `key` not
    /// saved yet and the sync states, durably.
    pub(crate) fn persist_chunk(
        &mut self,
        key: &DocKey,
        chunk: Vec<u8>,
        sync_states: &[(&str, String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let touched = BTreeSet::from([*key]);
        self.persist_inner(&touched, Some((*key, chunk)), &[], sync_states, &[])
    }

    fn persist_inner(
        &mut self,
        touched: &BTreeSet<DocKey>,
        encoded: Option<(DocKey, Vec<u8>)>,
        outbox: &[(&str, &[u8])],
        sync_states: &[(&str, String, Vec<u8>)],
        local: &[(&str, Option<Vec<u8>>)],
    ) -> Result<(), StoreError> {
        let mut writes: Vec<(DocKey, String, Vec<u8>)> = Vec::new();
        if let Some((key, bytes)) = encoded {
            if let Some(live) = self.docs.get(&key) {
                writes.push((key, incremental_key(&live.id, &bytes), bytes));
            }
        }
        for key in touched {
            if let Some(live) = self.docs.get_mut(key) {
                let bytes = live.doc.save_after(&live.saved);
                if !bytes.is_empty() {
                    live.saved = live.doc.get_heads();
                    writes.push((*key, incremental_key(&live.id, &bytes), bytes));
                }
            }
        }
        let result = (|| -> Result<(), StoreError> {
            let mut tx = self.db.begin_write().ctx("begin write")?;
            tx.set_durability(Durability::Immediate)
                .ctx("set durability")?;
            {
                let mut chunks = tx.open_table(CHUNKS).ctx("open chunks")?;
                for (_, chunk_key, bytes) in &writes {
                    chunks
                        .insert(chunk_key.as_str(), bytes.as_slice())
                        .ctx("write chunk")?;
                }
                let mut docs = tx.open_table(DOCS).ctx("open docs")?;
                let mut heads = tx.open_table(DOC_HEADS).ctx("open doc_heads")?;
                for key in touched {
                    if let Some(live) = self.docs.get_mut(key) {
                        let name = key.to_string();
                        docs.insert(name.as_str(), (live.id.as_str(), live.facts))
                            .ctx("write docs")?;
                        heads
                            .insert(
                                name.as_str(),
                                encode_heads(&live.doc.get_heads()).as_slice(),
                            )
                            .ctx("write doc_heads")?;
                    }
                }
            }
            if !sync_states.is_empty() {
                let mut table = tx.open_table(SYNC_STATES).ctx("open sync_states")?;
                for (peer, doc, state) in sync_states {
                    table
                        .insert((*peer, doc.as_str()), state.as_slice())
                        .ctx("write sync state")?;
                }
            }
            if !outbox.is_empty() {
                let mut table = tx.open_table(OUTBOX).ctx("open outbox")?;
                for (id, payload) in outbox {
                    table.insert(*id, *payload).ctx("write outbox")?;
                }
            }
            if !local.is_empty() {
                let mut table = tx.open_table(crate::redb_store::LOCAL).ctx("open local")?;
                for (key, value) in local {
                    match value {
                        Some(v) => table.insert(*key, v.as_slice()).ctx("write local")?,
                        None => table.remove(*key).ctx("erase local")?,
                    };
                }
            }
            tx.commit().ctx("durable commit")
        })();
        match result {
            Ok(()) => {
                for (key, chunk_key, _) in writes {
                    if let Some(live) = self.docs.get_mut(&key) {
                        live.chunk_keys.push(chunk_key);
                        live.incrementals += 1;
                        live.registered = true;
                    }
                }
                for key in touched {
                    if let Some(live) = self.docs.get_mut(key) {
                        live.registered = true;
                    }
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!("durable commit failed, store poisoned: {e}");
                self.poisoned = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Loads a document into memory if it is not there: from redb if it exists, else new.
    pub(crate) fn ensure_loaded(&mut self, key: &DocKey) -> Result<(), StoreError> {
        if self.docs.contains_key(key) {
            return Ok(());
        }
        let id = self.doc_id(key);
        let (chunks, registered) = {
            let tx = self.db.begin_read().ctx("begin read")?;
            let table = tx.open_table(CHUNKS).ctx("open chunks")?;
            let docs = tx.open_table(DOCS).ctx("open docs")?;
            let registered = docs
                .get(key.to_string().as_str())
                .ctx("read docs")?
                .is_some();
            (read_chunks(&table, &id)?, registered)
        };
        let loaded = load_document(chunks);
        if !loaded.damaged.is_empty() {
            let tx = self.db.begin_write().ctx("begin write")?;
            for (chunk_key, reason, bytes) in &loaded.damaged {
                let q = Quarantined {
                    table: CHUNKS_NAME.into(),
                    key: chunk_key.clone(),
                    document: key.to_string(),
                    reason: reason.clone(),
                    bytes: bytes.len(),
                };
                tracing::error!(table = %q.table, document = %q.document, key = %q.key,
                    reason = %q.reason, "damaged chunk quarantined");
                quarantine_chunk(&tx, &q, bytes)?;
            }
            tx.commit().ctx("commit quarantine")?;
        }
        let mut doc = loaded.doc;
        doc.set_actor(self.actor.clone());
        let facts = doc.length(automerge::ROOT) as u64;
        let saved = doc.get_heads();
        self.docs.insert(
            *key,
            LiveDoc {
                id,
                doc,
                chunk_keys: loaded.kept,
                incrementals: loaded.incrementals,
                facts,
                registered,
                saved,
            },
        );
        Ok(())
    }

    fn rollback(&mut self, touched: &BTreeSet<DocKey>) {
        for key in touched {
            live_rollback(self.docs.get_mut(key));
        }
    }

    /// Compacts the given documents that have more than `limit` incremental chunks.
    fn compact_over(
        &mut self,
        limit: usize,
        keys: &BTreeSet<DocKey>,
    ) -> Result<Vec<DocKey>, StoreError> {
        let mut done = Vec::new();
        for key in keys {
            let due = self.docs.get(key).is_some_and(|l| l.incrementals > limit);
            if due {
                if let Some(mut live) = self.docs.remove(key) {
                    let result = self.write_snapshot(key, &mut live);
                    self.docs.insert(*key, live);
                    result?;
                    done.push(*key);
                }
            }
        }
        Ok(done)
    }

    /// Replaces the document's known chunks by one snapshot in one durable transaction.
    /// Skipped while the document waits for missing changes: `save()` would leave them out.
    fn write_snapshot(&mut self, key: &DocKey, live: &mut LiveDoc) -> Result<(), StoreError> {
        if !live.doc.get_missing_deps(&[]).is_empty() {
            tracing::warn!(document = %key, "not compacting: document waits for missing changes");
            return Ok(());
        }
        let bytes = live.doc.save();
        let heads = live.doc.get_heads();
        let snap_key = snapshot_key(&live.id, &heads);
        let result = (|| -> Result<(), StoreError> {
            let tx = self.db.begin_write().ctx("begin write")?;
            {
                let mut chunks = tx.open_table(CHUNKS).ctx("open chunks")?;
                chunks
                    .insert(snap_key.as_str(), bytes.as_slice())
                    .ctx("write snapshot")?;
                for old in &live.chunk_keys {
                    if *old != snap_key {
                        chunks.remove(old.as_str()).ctx("remove compacted chunk")?;
                    }
                }
                let mut docs = tx.open_table(DOCS).ctx("open docs")?;
                docs.insert(key.to_string().as_str(), (live.id.as_str(), live.facts))
                    .ctx("write docs")?;
                let mut stored = tx.open_table(DOC_HEADS).ctx("open doc_heads")?;
                stored
                    .insert(key.to_string().as_str(), encode_heads(&heads).as_slice())
                    .ctx("write doc_heads")?;
            }
            tx.commit().ctx("commit compaction")
        })();
        // On error nothing changed on disk (the transaction is atomic) nor in memory.
        result?;
        live.chunk_keys = vec![snap_key];
        live.saved = heads;
        live.incrementals = 0;
        live.registered = true;
        Ok(())
    }

    fn expire(
        &mut self,
        now_ms: u64,
        keep_from_ms: Option<u64>,
    ) -> Result<Vec<DocKey>, StoreError> {
        let index = self.read_index()?;
        let keep_from = keep_from_ms.map(|ms| crate::docs::Month::of_ms(ms).index());
        let candidates: Vec<DocKey> = index
            .iter()
            .filter_map(|(name, _)| name.parse::<DocKey>().ok())
            .filter(|k| k.is_expired(now_ms, self.opts.retention_months))
            .filter(|k| match (k, keep_from) {
                (DocKey::Monthly(_, month), Some(first)) => month.index() < first,
                _ => true,
            })
            .collect();
        let candidates = if self.opts.keep_unsynced {
            self.acknowledged_by_every_peer(candidates)?
        } else {
            candidates
        };
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.db.begin_write().ctx("begin write")?;
        let mut expired = Vec::new();
        {
            let mut chunks = tx.open_table(CHUNKS).ctx("open chunks")?;
            let mut docs = tx.open_table(DOCS).ctx("open docs")?;
            let mut heads_table = tx.open_table(DOC_HEADS).ctx("open doc_heads")?;
            for key in candidates {
                let name = key.to_string();
                let id = self.doc_id(&key);
                let rows: Vec<String> = read_chunks(&chunks, &id)?
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect();
                for row in rows {
                    chunks.remove(row.as_str()).ctx("remove expired chunk")?;
                }
                docs.remove(name.as_str()).ctx("remove expired doc")?;
                heads_table
                    .remove(name.as_str())
                    .ctx("remove expired heads")?;
                self.docs.remove(&key);
                expired.push(key);
            }
        }
        tx.commit().ctx("commit expiry")?;
        Ok(expired)
    }

    /// The partitions every peer with a saved sync state has all of (none while no peer has
    /// synced). Loads each candidate once, to compare its heads.
    fn acknowledged_by_every_peer(
        &mut self,
        candidates: Vec<DocKey>,
    ) -> Result<Vec<DocKey>, StoreError> {
        let peers: BTreeSet<String> = {
            let tx = self.db.begin_read().ctx("begin read")?;
            let table = tx.open_table(SYNC_STATES).ctx("open sync_states")?;
            let mut peers = BTreeSet::new();
            for row in table.iter().ctx("read sync_states")? {
                let (k, _) = row.ctx("read sync_states row")?;
                peers.insert(k.value().0.to_owned());
            }
            peers
        };
        if peers.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for key in candidates {
            let mut all = true;
            for peer in &peers {
                if !self.peer_has(peer, &key)? {
                    tracing::info!(document = %key, %peer, "past retention but not yet synced to this peer: kept");
                    all = false;
                    break;
                }
            }
            self.unload_if_cold(&key);
            if all {
                out.push(key);
            }
        }
        Ok(out)
    }

    pub(crate) fn read_index(&self) -> Result<Vec<(String, String)>, StoreError> {
        let tx = self.db.begin_read().ctx("begin read")?;
        let docs = tx.open_table(DOCS).ctx("open docs")?;
        let mut out = Vec::new();
        for row in docs.iter().ctx("read docs")? {
            let (k, v) = row.ctx("read docs row")?;
            out.push((k.value().to_string(), v.value().0.to_string()));
        }
        Ok(out)
    }
}

/// Heads as stored in `doc_heads`: their 32-byte hashes, concatenated.
pub(crate) fn encode_heads(heads: &[automerge::ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

pub(crate) fn decode_heads(bytes: &[u8]) -> Option<Vec<automerge::ChangeHash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    bytes
        .chunks(32)
        .map(|c| <[u8; 32]>::try_from(c).ok().map(automerge::ChangeHash))
        .collect()
}

/// Drops the uncommitted puts of a failed append, and recounts (rare, so the O(n) count is fine).
fn live_rollback(live: Option<&mut LiveDoc>) {
    if let Some(live) = live {
        live.doc.rollback();
        live.facts = live.doc.length(automerge::ROOT) as u64;
    }
}

/// The hub id recorded in the store in `data_dir`, without opening the store: `None` when there
/// is no store yet (or it has no hub id). The daemon keeps using the id a store was made with,
/// so its facts, old and new, carry one id.
pub fn stored_hub_id(data_dir: &Path) -> Result<Option<String>, StoreError> {
    let path = data_dir.join("state.redb");
    if !path.exists() {
        return Ok(None);
    }
    let db = Database::open(&path).ctx("open state.redb")?;
    let tx = db.begin_read().ctx("begin read")?;
    let meta = match tx.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e).ctx("open meta"),
    };
    Ok(meta
        .get("hub_id")
        .ctx("read hub_id")?
        .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
}

/// Create `data_dir/state.redb` for a hub that joins a site (`locker-hub init --join`), before
/// it is first opened: its own hub id, and the site's id and key as the paired hub sent them, so
/// codes and badges hashed at either hub verify at both. Refuses a data directory that already
/// has a store: a hub's site key is never replaced.
pub fn create_joined(
    data_dir: &Path,
    hub_id: &str,
    site_id: &str,
    site_key: [u8; 32],
) -> Result<(), StoreError> {
    let path = data_dir.join("state.redb");
    if path.exists() {
        return Err(StoreError::Io {
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "this hub already has a store; a hub joins a site only before its first start",
            ),
        });
    }
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let (db, _) = open_database(&path, StoreOptions::default().cache_bytes)?;
    init_meta(&db, &path, hub_id, site_id, Some(site_key))?;
    Ok(())
}

/// First open: create the tables, check format version and hub id, create the site key (or
/// take `given_key`, for a hub that joins a site).
fn init_meta(
    db: &Database,
    path: &Path,
    hub_id: &str,
    site_id: &str,
    given_key: Option<[u8; 32]>,
) -> Result<[u8; 32], StoreError> {
    let tx = db.begin_write().ctx("begin write")?;
    let site_key;
    {
        let mut meta = tx.open_table(META).ctx("open meta")?;
        let version = meta
            .get("format_version")
            .ctx("read format_version")?
            .map(|v| {
                let b = v.value();
                let mut le = [0u8; 4];
                le.copy_from_slice(&b[..b.len().min(4)]);
                u32::from_le_bytes(le)
            });
        match version {
            Some(found) if found > FORMAT_VERSION => {
                return Err(StoreError::FormatTooNew {
                    path: path.to_path_buf(),
                    found,
                    supported: FORMAT_VERSION,
                })
            }
            Some(_) => {}
            None => {
                meta.insert("format_version", FORMAT_VERSION.to_le_bytes().as_slice())
                    .ctx("write format_version")?;
            }
        }
        let stored_hub = meta
            .get("hub_id")
            .ctx("read hub_id")?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned());
        match stored_hub {
            Some(stored) if stored != hub_id => {
                return Err(StoreError::HubIdMismatch {
                    path: path.to_path_buf(),
                    stored,
                    given: hub_id.to_string(),
                })
            }
            Some(_) => {}
            None => {
                meta.insert("hub_id", hub_id.as_bytes())
                    .ctx("write hub_id")?;
                meta.insert("site_id", site_id.as_bytes())
                    .ctx("write site_id")?;
            }
        }
        let existing = meta
            .get("site_key")
            .ctx("read site_key")?
            .map(|v| v.value().to_vec());
        site_key = match existing {
            Some(bytes) if bytes.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&bytes);
                k
            }
            _ => {
                let k = match given_key {
                    Some(k) => k,
                    None => {
                        let mut k = [0u8; 32];
                        getrandom::fill(&mut k).map_err(|e| StoreError::Io {
                            path: path.to_path_buf(),
                            source: std::io::Error::other(format!("no OS randomness: {e}")),
                        })?;
                        k
                    }
                };
                meta.insert("site_key", k.as_slice())
                    .ctx("write site_key")?;
                k
            }
        };
        // Create every table, so readers never meet a missing one.
        tx.open_table(DOCS).ctx("create docs")?;
        tx.open_table(CHUNKS).ctx("create chunks")?;
        tx.open_table(OUTBOX).ctx("create outbox")?;
        tx.open_table(LOCAL).ctx("create local")?;
        tx.open_table(SYNC_STATES).ctx("create sync_states")?;
        tx.open_table(DOC_HEADS).ctx("create doc_heads")?;
        // The open-thread index of earlier versions: nothing reads it any more.
        tx.delete_table(THREAD_FACTS).ctx("delete thread_facts")?;
        tx.delete_table(CLOSED_THREADS)
            .ctx("delete closed_threads")?;
        tx.open_table(QUARANTINE).ctx("create quarantine")?;
    }
    tx.commit().ctx("commit init")?;
    Ok(site_key)
}

/// Builds a document from its chunks. Fast path: one `load` of all chunks concatenated. If that
/// fails, each chunk is checked on its own, damaged ones are set aside, and the rest are loaded.
pub(crate) fn load_document(chunks: Vec<(String, Vec<u8>)>) -> Loaded {
    let incrementals = chunks
        .iter()
        .filter(|(k, _)| !crate::redb_store::is_snapshot_key(k))
        .count();
    if chunks.is_empty() {
        return Loaded {
            doc: AutoCommit::new(),
            kept: Vec::new(),
            incrementals: 0,
            damaged: Vec::new(),
        };
    }
    let all: Vec<u8> = chunks.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    if let Ok(doc) = AutoCommit::load(&all) {
        return Loaded {
            doc,
            kept: chunks.into_iter().map(|(k, _)| k).collect(),
            incrementals,
            damaged: Vec::new(),
        };
    }
    let mut doc = AutoCommit::new();
    let mut kept = Vec::new();
    let mut damaged = Vec::new();
    let mut incrementals = 0;
    for (key, bytes) in chunks {
        match check_chunk(&bytes).and_then(|()| doc.load_incremental(&bytes).map(|_| ())) {
            Ok(()) => {
                if !crate::redb_store::is_snapshot_key(&key) {
                    incrementals += 1;
                }
                kept.push(key);
            }
            Err(e) => damaged.push((key, e.to_string(), bytes)),
        }
    }
    Loaded {
        doc,
        kept,
        incrementals,
        damaged,
    }
}

/// A chunk is intact if it parses completely with checksums verified. Missing dependencies are
/// fine here (an incremental chunk builds on earlier ones).
pub(crate) fn check_chunk(bytes: &[u8]) -> Result<(), AutomergeError> {
    let options = automerge::LoadOptions::new()
        .on_partial_load(OnPartialLoad::Error)
        .verification_mode(VerificationMode::Check);
    match automerge::Automerge::load_with_options(bytes, options) {
        Ok(_) | Err(AutomergeError::MissingDeps) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every fact of a document in id order; an entry that does not decode comes back as
/// (id, reason). Only failures carry the id, so a good fact costs no extra allocation.
pub(crate) fn decode_all<R: Record>(doc: &AutoCommit) -> Vec<Result<R, (String, String)>> {
    let mut out = Vec::with_capacity(doc.length(automerge::ROOT));
    codec::for_each_fact(doc, |id, value| {
        out.push(
            value
                .and_then(|v| serde_json::from_value::<R>(v).map_err(|e| e.to_string()))
                .map_err(|reason| (id.to_string(), reason)),
        );
    });
    out
}

/// Loading parses whole documents on worker threads; glibc keeps what they freed in per-thread
/// arenas, which would count against the hub's memory budget for as long as it runs. Hand it
/// back to the OS once, after start.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap bookkeeping; no pointers are involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

//! Merging a large sync message away from the thread that owns the store.
//!
//! A week offline comes back as one sync message of thousands of facts: applying it, finding
//! the new facts and encoding the chunk to store takes hundreds of milliseconds, which on the
//! engine thread would hold up every door. So the store hands out an [`Offload`]: the message,
//! the peer's sync state and a handle on the database. [`Offload::prepare`] (any thread) loads
//! its own copy of the document from disk, applies the message to it, decodes the new facts and
//! encodes the chunk of the peer's changes. [`Store::adopt`] (the owner's thread) then takes in
//! what changed here meanwhile (a merge of the few local changes into the prepared copy), makes
//! the prepared copy the live document, and commits the chunk with the peer's sync state in one
//! durable transaction before returning the new facts: still durable before they are acted on.
//!
//! While a message is being prepared there are two copies of that document in memory; the
//! prepared one replaces the live one when it is adopted.

use automerge::sync::{Message, State as SyncState, SyncDoc};
use automerge::{ActorId, AutoCommit, ChangeHash, ReadDoc, ROOT};
use redb::{Database, ReadableDatabase};
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::docs::DocKey;
use crate::error::{RedbContext, StoreError};
use crate::merge::{new_facts, root_keys};
use crate::record::Record;
use crate::redb_store::{read_chunks, CHUNKS};
use crate::store::{load_document, LiveDoc, Store};

/// A sync message to merge elsewhere (see the module's documentation).
pub struct Offload {
    pub key: DocKey,
    /// The peer's storage id.
    pub peer: String,
    db: Arc<Database>,
    doc_id: String,
    actor: ActorId,
    state: SyncState,
    message: Vec<u8>,
}

/// Why a prepared merge could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The peer's message is not a sync message, or its changes do not apply: nothing applied.
    #[error("{0}")]
    BadMessage(String),
    /// A chunk of the document on disk is damaged: the message goes back, to be merged where
    /// the store sets the chunk aside.
    #[error("a chunk of the document is damaged")]
    Damaged {
        state: Box<SyncState>,
        message: Vec<u8>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A merge made off the owner's thread, to be [`Store::adopt`]ed.
pub struct Prepared<R> {
    pub key: DocKey,
    pub peer: String,
    /// The peer's sync state after the message.
    pub state: SyncState,
    doc: AutoCommit,
    /// The peer's changes, as an incremental chunk (empty when it brought none).
    chunk: Vec<u8>,
    /// For a document that was not in memory: the chunks it was loaded from.
    kept: Vec<String>,
    incrementals: usize,
    facts: Vec<R>,
    /// The heads of the document as it was loaded for the prepare.
    loaded_heads: Vec<ChangeHash>,
    /// Whether the shared heads or the document moved (else the sync state need not be saved).
    moved: bool,
}

impl std::fmt::Debug for Offload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offload")
            .field("key", &self.key)
            .field("peer", &self.peer)
            .field("bytes", &self.message.len())
            .finish_non_exhaustive()
    }
}

impl<R> Prepared<R> {
    /// The facts the message brought that were new to the prepared copy.
    pub fn facts(&self) -> &[R] {
        &self.facts
    }
}

impl Offload {
    /// Bytes of the message being merged.
    pub fn len(&self) -> usize {
        self.message.len()
    }

    pub fn is_empty(&self) -> bool {
        self.message.is_empty()
    }

    /// Load the document from disk, apply the message, decode the new facts and encode the
    /// peer's changes. Reads the database only (a read transaction), so the owner goes on
    /// writing meanwhile.
    pub fn prepare<R: Record>(mut self) -> Result<Prepared<R>, PrepareError> {
        let chunks = {
            let tx = self.db.begin_read().ctx("begin read")?;
            let table = tx.open_table(CHUNKS).ctx("open chunks")?;
            read_chunks(&table, &self.doc_id)?
        };
        let loaded = load_document(chunks);
        if !loaded.damaged.is_empty() {
            return Err(PrepareError::Damaged {
                state: Box::new(self.state),
                message: self.message,
            });
        }
        let mut doc = loaded.doc;
        doc.set_actor(self.actor.clone());
        let message =
            Message::decode(&self.message).map_err(|e| PrepareError::BadMessage(e.to_string()))?;
        let before = doc.get_heads();
        let shared_before = self.state.shared_heads.clone();
        doc.sync()
            .receive_sync_message(&mut self.state, message)
            .map_err(|e| PrepareError::BadMessage(e.to_string()))?;
        let after = doc.get_heads();
        let moved = after != before || self.state.shared_heads != shared_before;
        let facts = if after == before {
            Vec::new()
        } else {
            new_facts::<R>(&mut doc, &self.key, &before).0
        };
        // The peer's changes: what the document has since the heads it was loaded at. (Not
        // `save_incremental`: on a document just loaded that is the whole document, which made
        // every merged message write the document again, 1.2 MB for a week of parcels, on the
        // engine thread.)
        let chunk = if after == before {
            Vec::new()
        } else {
            doc.save_after(&before)
        };
        Ok(Prepared {
            key: self.key,
            peer: self.peer,
            state: self.state,
            doc,
            chunk,
            kept: loaded.kept,
            incrementals: loaded.incrementals,
            facts,
            loaded_heads: before,
            moved,
        })
    }
}

impl<R: Record> Store<R> {
    /// A sync message from `peer` for `key`, to be merged off this thread (see
    /// [`Offload::prepare`] and [`Store::adopt`]).
    pub fn offload(&self, peer: &str, key: &DocKey, state: SyncState, message: &[u8]) -> Offload {
        Offload {
            key: *key,
            peer: peer.to_owned(),
            db: self.db.clone(),
            doc_id: self.doc_id(key),
            actor: self.actor.clone(),
            state,
            message: message.to_vec(),
        }
    }

    /// Takes in a merge prepared elsewhere: the changes made here since it was loaded are
    /// merged into it, it becomes the live document, and the peer's changes and sync state are
    /// committed durably together. Returns the facts new to this replica (not those that
    /// arrived meanwhile by another way), sorted by id.
    pub fn adopt(&mut self, prepared: Prepared<R>) -> Result<Vec<R>, StoreError> {
        self.check_writable()?;
        let Prepared {
            key,
            peer,
            state,
            mut doc,
            chunk,
            kept,
            incrementals,
            facts,
            loaded_heads,
            moved,
        } = prepared;
        let row = moved.then(|| (peer.as_str(), key.to_string(), state.encode()));
        let rows: Vec<_> = row.into_iter().collect();
        if chunk.is_empty() {
            if !rows.is_empty() {
                self.persist_with(&BTreeSet::new(), &[], &rows)?;
            }
            return Ok(Vec::new());
        }
        let mut facts = facts;
        match self.docs.get_mut(&key) {
            Some(live) => {
                // What reached the live copy since the prepared one was loaded (steps here,
                // other peers): its facts are not new, and its changes go into the prepared
                // copy. Read from those changes alone, so this costs what arrived meanwhile,
                // not the size of the document.
                let meanwhile = live.doc.get_changes(&loaded_heads);
                if !meanwhile.is_empty() {
                    let known = root_keys(&meanwhile);
                    facts.retain(|f| !known.contains(f.id()));
                    doc.apply_changes(meanwhile)
                        .map_err(|e| StoreError::BadChanges {
                            doc: key.to_string(),
                            message: e.to_string(),
                        })?;
                }
                live.facts += facts.len() as u64;
                // On disk once the chunk is: what was loaded, what was written here meanwhile,
                // and the peer's changes.
                live.saved = doc.get_heads();
                live.doc = doc;
            }
            None => {
                let count = doc.length(ROOT) as u64;
                let saved = doc.get_heads();
                self.docs.insert(
                    key,
                    LiveDoc {
                        id: self.doc_id(&key),
                        doc,
                        chunk_keys: kept,
                        incrementals,
                        facts: count,
                        registered: true,
                        saved,
                    },
                );
            }
        }
        self.persist_chunk(&key, chunk, &rows)?;
        facts.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(facts)
    }
}

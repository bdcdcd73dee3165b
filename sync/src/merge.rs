//! Automerge-level access for sync: saves, heads, changes since some heads, and taking in remote
//! changes or sync messages. Whatever comes in is merged by union of fact ids; the facts that are
//! new to this replica are returned so the core can apply them, and they are durable first.

use std::collections::BTreeSet;

use automerge::sync::{Message, State as SyncState, SyncDoc};
use automerge::{legacy, ChangeHash, ReadDoc, ROOT};

use crate::codec;
use crate::docs::DocKey;
use crate::error::StoreError;
use crate::record::Record;
use redb::ReadableDatabase;

use crate::error::RedbContext;
use crate::redb_store::{DOC_HEADS, SYNC_STATES};
use crate::store::{check_chunk, Store};

impl<R: Record> Store<R> {
    /// The full document (one automerge `save()`), e.g. to seed a new replica.
    pub fn save(&mut self, key: &DocKey) -> Result<Vec<u8>, StoreError> {
        self.ensure_loaded(key)?;
        Ok(self.doc_mut(key)?.doc.save())
    }

    pub fn heads(&mut self, key: &DocKey) -> Result<Vec<ChangeHash>, StoreError> {
        self.ensure_loaded(key)?;
        Ok(self.doc_mut(key)?.doc.get_heads())
    }

    /// The changes a replica that has `heads` lacks.
    pub fn changes_since(
        &mut self,
        key: &DocKey,
        heads: &[ChangeHash],
    ) -> Result<Vec<u8>, StoreError> {
        self.ensure_loaded(key)?;
        Ok(self.doc_mut(key)?.doc.save_after(heads))
    }

    /// Merges a remote document's changes (a `save()`, `save_incremental()` or `changes_since`
    /// output) into ours, durably, and returns the facts that are new here, sorted by id.
    /// Bytes that do not parse are rejected whole with nothing applied.
    pub fn merge_changes(&mut self, key: &DocKey, changes: &[u8]) -> Result<Vec<R>, StoreError> {
        self.check_writable()?;
        check_chunk(changes).map_err(|e| StoreError::BadChanges {
            doc: key.to_string(),
            message: e.to_string(),
        })?;
        self.ensure_loaded(key)?;
        let live = self.doc_mut(key)?;
        let before = live.doc.get_heads();
        live.doc
            .load_incremental(changes)
            .map_err(|e| StoreError::BadChanges {
                doc: key.to_string(),
                message: e.to_string(),
            })?;
        self.after_merge(key, &before, None)
    }

    /// Produces the next sync message for a peer (automerge sync protocol), if any.
    pub fn generate_sync_message(
        &mut self,
        key: &DocKey,
        state: &mut SyncState,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_writable()?;
        self.ensure_loaded(key)?;
        let live = self.doc_mut(key)?;
        Ok(live
            .doc
            .sync()
            .generate_sync_message(state)
            .map(Message::encode))
    }

    /// Applies a peer's sync message; the facts new to this replica are durable when this
    /// returns them.
    pub fn receive_sync_message(
        &mut self,
        key: &DocKey,
        state: &mut SyncState,
        message: &[u8],
    ) -> Result<Vec<R>, StoreError> {
        self.receive_from(None, key, state, message)
    }

    /// `receive_sync_message` from the peer whose storage id is `peer`: its sync state for this
    /// document is saved in the transaction that stores the changes the message brought (or on
    /// its own when it brought none), so a restart resumes from the heads both sides share.
    pub fn receive_from_peer(
        &mut self,
        peer: &str,
        key: &DocKey,
        state: &mut SyncState,
        message: &[u8],
    ) -> Result<Vec<R>, StoreError> {
        self.receive_from(Some(peer), key, state, message)
    }

    fn receive_from(
        &mut self,
        peer: Option<&str>,
        key: &DocKey,
        state: &mut SyncState,
        message: &[u8],
    ) -> Result<Vec<R>, StoreError> {
        self.check_writable()?;
        let bad = |message: String| StoreError::BadChanges {
            doc: key.to_string(),
            message,
        };
        let message = Message::decode(message).map_err(|e| bad(e.to_string()))?;
        self.ensure_loaded(key)?;
        let live = self.doc_mut(key)?;
        let before = live.doc.get_heads();
        let shared_before = state.shared_heads.clone();
        live.doc
            .sync()
            .receive_sync_message(state, message)
            .map_err(|e| bad(e.to_string()))?;
        let row = peer
            .filter(|_| state.shared_heads != shared_before || live.doc.get_heads() != before)
            .map(|p| (p, key.to_string(), state.encode()));
        self.after_merge(key, &before, row)
    }

    /// The sync state saved for `peer` and this document, or a fresh one.
    pub fn sync_state(&self, peer: &str, key: &DocKey) -> Result<SyncState, StoreError> {
        let tx = self.db.begin_read().ctx("begin read")?;
        let table = tx.open_table(SYNC_STATES).ctx("open sync_states")?;
        let row = table
            .get((peer, key.to_string().as_str()))
            .ctx("read sync state")?;
        Ok(match row {
            Some(bytes) => SyncState::decode(bytes.value()).unwrap_or_else(|e| {
                tracing::warn!(%peer, document = %key, error = %e,
                    "saved sync state unreadable; starting this document's sync afresh");
                SyncState::new()
            }),
            None => SyncState::new(),
        })
    }

    /// True when this document's heads are all among those `peer` is known to have (from the
    /// saved sync state): nothing of it would be lost if it were deleted here. Reads the heads
    /// stored with the document, so a document not in memory is not loaded (one stored before
    /// heads were kept is).
    pub fn peer_has(&mut self, peer: &str, key: &DocKey) -> Result<bool, StoreError> {
        let shared = self.sync_state(peer, key)?.shared_heads;
        let heads = match self.stored_heads(key)? {
            Some(heads) => heads,
            None => self.heads(key)?,
        };
        Ok(!heads.is_empty() && heads.iter().all(|h| shared.contains(h)))
    }

    /// The document's heads: from memory if it is loaded, else as stored with it.
    fn stored_heads(&mut self, key: &DocKey) -> Result<Option<Vec<ChangeHash>>, StoreError> {
        if let Some(live) = self.docs.get_mut(key) {
            return Ok(Some(live.doc.get_heads()));
        }
        let tx = self.db.begin_read().ctx("begin read")?;
        let table = tx.open_table(DOC_HEADS).ctx("open doc_heads")?;
        let row = table.get(key.to_string().as_str()).ctx("read doc_heads")?;
        Ok(row.and_then(|v| crate::store::decode_heads(v.value())))
    }

    /// Drops a document from memory if it is outside the live window (after a peer caught up
    /// on an old month): everything of it is on disk already.
    pub fn unload_if_cold(&mut self, key: &DocKey) {
        if !key.is_live(self.now_ms) {
            self.docs.remove(key);
        }
    }

    /// Finds the facts that appeared since `before`, persists the merged changes (with the
    /// thread index) in one durable commit, and returns the new facts.
    fn after_merge(
        &mut self,
        key: &DocKey,
        before: &[ChangeHash],
        sync_state: Option<(&str, String, Vec<u8>)>,
    ) -> Result<Vec<R>, StoreError> {
        let rows: Vec<_> = sync_state.into_iter().collect();
        let live = self.doc_mut(key)?;
        let after = live.doc.get_heads();
        if after == before {
            if !rows.is_empty() {
                self.persist_with(&BTreeSet::new(), &[], &rows)?;
            }
            return Ok(Vec::new());
        }
        let (facts, added) = new_facts::<R>(&mut live.doc, key, before);
        let live = self.doc_mut(key)?;
        live.facts += added;
        let touched = BTreeSet::from([*key]);
        self.persist_with(&touched, &[], &rows)?;
        Ok(facts)
    }

    pub(crate) fn doc_mut(
        &mut self,
        key: &DocKey,
    ) -> Result<&mut crate::store::LiveDoc, StoreError> {
        self.docs
            .get_mut(key)
            .ok_or_else(|| StoreError::UnknownDocument(key.to_string()))
    }
}

/// The records that appeared in `doc` between `before` and `after` (and were not there before:
/// a concurrent write of the same id is not new), decoded, and how many there were (a record
/// that cannot be decoded counts but is skipped, with a warning).
pub(crate) fn new_facts<R: Record>(
    doc: &mut automerge::AutoCommit,
    key: &DocKey,
    before: &[ChangeHash],
) -> (Vec<R>, u64) {
    // The keys the new changes put in the root map, read from the changes themselves: a diff
    // of the document between the two heads costs time in proportion to the whole document
    // (~17 ms a message for a month of parcels), the changes in proportion to what is new.
    let new_ids = root_keys(&doc.get_changes(before));
    let mut facts = Vec::new();
    let mut added = 0u64;
    for id in new_ids {
        if matches!(doc.get_at(ROOT, id.as_str(), before), Ok(Some(_))) {
            continue; // was here already (a concurrent write of the same id)
        }
        added += 1;
        let decoded = codec::read_one(doc, &id)
            .unwrap_or_else(|| Err("vanished".into()))
            .and_then(|v| serde_json::from_value::<R>(v).map_err(|e| e.to_string()));
        match decoded {
            Ok(fact) => facts.push(fact),
            Err(reason) => {
                tracing::warn!(document = %key, fact = %id, %reason,
                    "merged fact cannot be read; kept in the document, skipped")
            }
        }
    }
    (facts, added)
}

/// The keys that `changes` put in the root map (the ids of the facts they add).
pub(crate) fn root_keys(changes: &[automerge::Change]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for change in changes {
        for op in change.decode().operations {
            if op.obj != legacy::ObjectId::Root {
                continue;
            }
            if let (legacy::Key::Map(id), legacy::OpType::Make(_) | legacy::OpType::Put(_)) =
                (op.key, &op.action)
            {
                ids.insert(id.to_string());
            }
        }
    }
    ids
}

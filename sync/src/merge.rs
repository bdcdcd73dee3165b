//! Automerge-level access for sync: saves, heads, changes since some heads, and taking in remote
//! changes or sync messages. Whatever comes in is merged by union of fact ids; the facts that are
//! new to this replica are returned so the core can apply them, and they are durable first.

use std::collections::BTreeSet;

use automerge::sync::{Message, State as SyncState, SyncDoc};
use automerge::{ChangeHash, PatchAction, ReadDoc, ROOT};

use crate::codec;
use crate::docs::DocKey;
use crate::error::StoreError;
use crate::record::Record;
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
        self.after_merge(key, &before)
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
        self.check_writable()?;
        let bad = |message: String| StoreError::BadChanges {
            doc: key.to_string(),
            message,
        };
        let message = Message::decode(message).map_err(|e| bad(e.to_string()))?;
        self.ensure_loaded(key)?;
        let live = self.doc_mut(key)?;
        let before = live.doc.get_heads();
        live.doc
            .sync()
            .receive_sync_message(state, message)
            .map_err(|e| bad(e.to_string()))?;
        self.after_merge(key, &before)
    }

    /// Finds the facts that appeared since `before`, persists the merged changes (with the
    /// thread index) in one durable commit, and returns the new facts.
    fn after_merge(&mut self, key: &DocKey, before: &[ChangeHash]) -> Result<Vec<R>, StoreError> {
        let live = self.doc_mut(key)?;
        let after = live.doc.get_heads();
        if after == before {
            return Ok(Vec::new());
        }
        let mut new_ids: BTreeSet<String> = BTreeSet::new();
        for patch in live.doc.diff(before, &after) {
            if patch.obj != ROOT {
                continue;
            }
            if let PatchAction::PutMap { key: id, .. } = patch.action {
                new_ids.insert(id);
            }
        }
        let mut facts = Vec::new();
        let mut added = 0u64;
        for id in new_ids {
            if matches!(live.doc.get_at(ROOT, id.as_str(), before), Ok(Some(_))) {
                continue; // was here already (a concurrent write of the same id)
            }
            added += 1;
            let decoded = codec::read_one(&live.doc, &id)
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
        let live = self.doc_mut(key)?;
        live.facts += added;
        let touched = BTreeSet::from([*key]);
        self.persist(&touched, &[])?;
        Ok(facts)
    }

    fn doc_mut(&mut self, key: &DocKey) -> Result<&mut crate::store::LiveDoc, StoreError> {
        self.docs
            .get_mut(key)
            .ok_or_else(|| StoreError::UnknownDocument(key.to_string()))
    }
}

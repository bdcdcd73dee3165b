//! Spike: samod 0.16 (Rust automerge-repo) over our redb store, through its storage trait.
//!
//! Our `chunks` table already uses automerge-repo's storage keys, so the adapter is a thin
//! pass-through to `ChunkStore`. What it adds is what samod's trait cannot express: a storage
//! error stops the process (fail-stop) instead of being swallowed, and a counter of pending
//! writes gives a durability barrier (`wait_idle`). The tests show that samod finds a document
//! the store wrote under its derived id and sees its facts, and that a fact written through
//! samod is loaded by the store after a restart: sync needs no change of model.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use automerge::transaction::Transactable;
use automerge::{ObjType, ReadDoc, ROOT};
use common::*;
use locker_sync::{ChunkStore, DocKey, Family, Store, StoreError};
use samod::storage::{Storage, StorageKey};
use samod::{DocumentId, Repo};

type S = Store<Fact>;

/// samod storage over our chunk table.
#[derive(Clone)]
struct RedbStorage {
    chunks: ChunkStore,
    pending: Arc<AtomicUsize>,
    on_error: Arc<dyn Fn(StoreError) + Send + Sync>,
}

impl RedbStorage {
    /// Production would pass a hook that logs and aborts: samod deletes the chunks a snapshot
    /// replaces once `put` returns, so a put that "succeeded" without being on disk loses data.
    fn new(chunks: ChunkStore, on_error: Arc<dyn Fn(StoreError) + Send + Sync>) -> Self {
        RedbStorage {
            chunks,
            pending: Arc::new(AtomicUsize::new(0)),
            on_error,
        }
    }

    /// Our durability barrier: resolves once every put/delete samod has issued is committed.
    async fn wait_idle(&self) {
        while self.pending.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

fn join(key: &StorageKey) -> String {
    key.into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("/")
}

impl Storage for RedbStorage {
    fn load(&self, key: StorageKey) -> impl Future<Output = Option<Vec<u8>>> + Send {
        let this = self.clone();
        async move {
            let k = join(&key);
            let c = this.chunks.clone();
            match tokio::task::spawn_blocking(move || c.load(&k)).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => {
                    (this.on_error)(e);
                    None
                }
                Err(e) => panic!("storage task died: {e}"),
            }
        }
    }

    fn load_range(
        &self,
        prefix: StorageKey,
    ) -> impl Future<Output = HashMap<StorageKey, Vec<u8>>> + Send {
        let this = self.clone();
        async move {
            let p = join(&prefix);
            let c = this.chunks.clone();
            match tokio::task::spawn_blocking(move || c.load_range(&p)).await {
                Ok(Ok(rows)) => rows
                    .into_iter()
                    .filter_map(|(k, v)| StorageKey::from_parts(k.split('/')).ok().map(|k| (k, v)))
                    .collect(),
                Ok(Err(e)) => {
                    (this.on_error)(e);
                    HashMap::new()
                }
                Err(e) => panic!("storage task died: {e}"),
            }
        }
    }

    fn put(&self, key: StorageKey, data: Vec<u8>) -> impl Future<Output = ()> + Send {
        let this = self.clone();
        this.pending.fetch_add(1, Ordering::SeqCst);
        async move {
            let k = join(&key);
            let c = this.chunks.clone();
            let result = tokio::task::spawn_blocking(move || c.put(&k, &data)).await;
            this.pending.fetch_sub(1, Ordering::SeqCst);
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => (this.on_error)(e),
                Err(e) => panic!("storage task died: {e}"),
            }
        }
    }

    fn delete(&self, key: StorageKey) -> impl Future<Output = ()> + Send {
        let this = self.clone();
        this.pending.fetch_add(1, Ordering::SeqCst);
        async move {
            let k = join(&key);
            let c = this.chunks.clone();
            let result = tokio::task::spawn_blocking(move || c.delete(&k)).await;
            this.pending.fetch_sub(1, Ordering::SeqCst);
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => (this.on_error)(e),
                Err(e) => panic!("storage task died: {e}"),
            }
        }
    }
}

fn fail_test() -> Arc<dyn Fn(StoreError) + Send + Sync> {
    Arc::new(|e| panic!("storage error (production: log and abort): {e}"))
}

#[test]
fn samod_finds_our_document_by_its_derived_id_and_its_writes_reach_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let key = DocKey::monthly(Family::Parcels, NOV_15);
    let mut g = Gen::new("hub-a");
    let facts = g.parcel_life(NOV_15, "p1", 7, false);
    let (chunks, doc_id) = {
        let (mut store, _, _) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
        store.append(&facts).unwrap();
        (store.chunk_store(), store.doc_id(&key))
    };

    // samod keeps its storage inside tasks until the runtime goes: run it in its own runtime and
    // drop that, so the redb file is closed before the store reopens it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let remote = runtime.block_on(async {
        let storage = RedbStorage::new(chunks, fail_test());
        let repo = Repo::build_tokio()
            .with_storage(storage.clone())
            .load()
            .await;
        let id = DocumentId::from_str(&doc_id).unwrap();
        let handle = repo
            .find(id.clone())
            .await
            .unwrap()
            .expect("samod finds the document in redb");
        assert_eq!(handle.document_id(), &id);
        assert_eq!(handle.url().to_string(), format!("automerge:{doc_id}"));
        let ids: Vec<String> = handle.with_document(|doc| doc.keys(ROOT).collect());
        assert_eq!(ids, facts.iter().map(|f| f.id.clone()).collect::<Vec<_>>());

        // A fact written through samod (as a sync peer's change would be).
        let remote = g.fact(
            NOV_15 + 99,
            Some("p1"),
            None,
            Kind::Notified { unit: "9C".into() },
        );
        handle.with_document(|doc| {
            let mut tx = doc.transaction();
            let obj = tx
                .put_object(ROOT, remote.id.as_str(), ObjType::Map)
                .unwrap();
            tx.put(&obj, "id", remote.id.as_str()).unwrap();
            tx.put(&obj, "at_ms", remote.at_ms).unwrap();
            tx.put(&obj, "actor", remote.actor.as_str()).unwrap();
            tx.put(&obj, "parcel", "p1").unwrap();
            let kind = tx.put_object(&obj, "kind", ObjType::Map).unwrap();
            tx.put(&kind, "type", "notified").unwrap();
            tx.put(&kind, "unit", "9C").unwrap();
            tx.commit();
        });
        // samod has no "durable" signal; our barrier: let it issue the put, then wait for commits.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        storage.wait_idle().await;
        repo.stop().await;
        storage.wait_idle().await;
        // What samod left in our table: our chunks plus its own incremental(s), same layout.
        let rows = storage.chunks.load_range(&doc_id).unwrap();
        let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        eprintln!("chunks after samod: {keys:?}");
        assert!(keys.iter().all(|k| k.starts_with(&format!("{doc_id}/"))));
        assert!(keys.len() >= 2);
        remote
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));

    // The store, reopened, sees the fact samod wrote (u64 came back as Uint: same JSON).
    let (_, loaded, report) = S::open(dir.path(), "hub-a", opts_at(NOV_15)).unwrap();
    assert!(report.is_clean(), "{report}");
    let mut expected = facts.clone();
    let mut remote = remote;
    remote.door = None;
    remote.bank = None;
    expected.push(remote);
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(loaded, expected);
}

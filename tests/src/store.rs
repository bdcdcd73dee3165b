//! The hub's store, opened from a test once the hub has stopped: to scan what it saved, or to
//! compare its documents with a peer's.

use std::path::Path;

use serde_json::Value;

use crate::Hub;

/// Any fact, as JSON: enough to open the hub's store from a test without the hub's types.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct AnyFact(pub Value);

impl locker_sync::Record for AnyFact {
    fn id(&self) -> &str {
        self.0["id"].as_str().unwrap_or_default()
    }
    fn at_ms(&self) -> u64 {
        self.0["at"].as_u64().unwrap_or_default()
    }
    fn document(&self) -> locker_sync::DocKey {
        locker_sync::DocKey::Site
    }
}

/// Opens the store of `hub` (site `test-site`, under the hub id its store recorded), with the
/// facts it loaded. The hub must have stopped: the store is one process's at a time.
pub fn open(hub: &Hub) -> (locker_sync::Store<AnyFact>, Vec<AnyFact>) {
    open_at(&hub.dir.path().join("data"))
}

/// [`open`] by the data directory's path (while the hub that owns it is down).
pub fn open_at(data: &Path) -> (locker_sync::Store<AnyFact>, Vec<AnyFact>) {
    let (store, facts, _) = locker_sync::Store::<AnyFact>::open(
        data,
        &locker_sync::stored_hub_id(data)
            .expect("read the store")
            .expect("the hub recorded its id"),
        locker_sync::StoreOptions {
            site_id: Some("test-site".into()),
            ..Default::default()
        },
    )
    .expect("open the hub's store after it stopped");
    (store, facts)
}

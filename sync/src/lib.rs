//! locker-sync: the hub's local-first state store.
//!
//! Every fact about the site is a write-once entry, keyed by its globally unique id, in an
//! Automerge document; documents are partitioned by kind and month (`docs`), persisted in one
//! redb file as automerge-repo-style chunks (`redb_store`), and loaded at start only if live.
//! Secrets stay in local tables (`outbox`, `secrets`), damage is quarantined (`quarantine`), and
//! remote changes merge by union (`merge`). See docs/state.md for the model and its rules.

mod codec;
pub mod docs;
pub mod error;
mod merge;
pub mod offload;
mod outbox;
pub mod quarantine;
pub mod record;
pub mod redb_store;
mod sealed;
pub mod secrets;
pub mod session;
mod store;
pub mod wire;

pub use automerge::sync::State as SyncState;
pub use automerge::ChangeHash;
pub use docs::{document_id_string, DocKey, Family, Month};
pub use error::StoreError;
pub use offload::{Offload, PrepareError, Prepared};
pub use quarantine::{LoadReport, Quarantined, Undecodable};
pub use record::Record;
pub use redb_store::{ChunkStore, FORMAT_VERSION};
pub use secrets::{code_hash, SecretHit};
pub use session::{PeerRole, Session, SessionConfig, SessionError, SessionStatus, Step};
pub use store::{create_joined, stored_hub_id, DocInfo, Maintenance, Store, StoreOptions};

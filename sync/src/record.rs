//! What the store stores: append-only records ("facts") that know their own id, time and
//! document. The daemon implements this for the workflow core's `Fact` through a newtype, so this
//! crate does not depend on the core.

use serde::{de::DeserializeOwned, Serialize};

use crate::docs::DocKey;

pub trait Record: Serialize + DeserializeOwned + Clone + Send {
    /// Globally unique and time-ordered: `<zero-padded ms>-<hub id>-<counter>`. It is the key of
    /// the record in its document, so two replicas that add records merge by union, and sorting
    /// by id sorts by time.
    fn id(&self) -> &str;
    /// When it happened, in ms since the Unix epoch.
    fn at_ms(&self) -> u64;
    /// Which document it belongs in (see `DocKey`).
    fn document(&self) -> DocKey;
}

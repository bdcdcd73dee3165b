//! The one error type of the store. Every variant says what failed and where (which table, which
//! document, which fact), because the operator reading the log has no debugger.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create or read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("redb: {what}: {source}")]
    Redb {
        what: String,
        #[source]
        source: Box<redb::Error>,
    },

    #[error(
        "{path} has data format version {found}, this build understands up to {supported}: \
         run a newer locker-hub (the file was left untouched)"
    )]
    FormatTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error(
        "{path} belongs to hub {stored:?}, not {given:?}: point the hub at its own data directory"
    )]
    HubIdMismatch {
        path: PathBuf,
        stored: String,
        given: String,
    },

    #[error("fact {fact_id:?} cannot be stored: {message}")]
    Encode { fact_id: String, message: String },

    #[error("document {doc}: fact {fact_id:?} cannot be read back: {message}")]
    Decode {
        doc: String,
        fact_id: String,
        message: String,
    },

    #[error("document {doc}: stored chunk {key:?} in table {table} is damaged: {message}")]
    Damaged {
        table: &'static str,
        doc: String,
        key: String,
        message: String,
    },

    #[error("document {doc}: incoming changes rejected: {message}")]
    BadChanges { doc: String, message: String },

    #[error("{0:?} is not a document name (expected site, directory or <family>-YYYY-MM)")]
    BadDocName(String),

    #[error("unknown document {0}")]
    UnknownDocument(String),

    #[error(
        "the store refused further writes after a failed durable commit ({0}); \
         reopen it to continue from what is on disk"
    )]
    Poisoned(String),
}

impl StoreError {
    /// Wraps any redb error with a short description of what we were doing.
    pub(crate) fn redb(what: impl Into<String>) -> impl FnOnce(redb::Error) -> StoreError {
        let what = what.into();
        move |source| StoreError::Redb {
            what,
            source: Box::new(source),
        }
    }
}

/// Lets `?` wrap any of redb's specific error types with a description.
pub(crate) trait RedbContext<T> {
    fn ctx(self, what: &str) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> RedbContext<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::redb(what)(e.into()))
    }
}

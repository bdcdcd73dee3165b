//! The application layer's one error type. Every service answers `Result<_, AppError>`; the web
//! crate maps it to HTTP statuses in one place (`locker_web::error`), and a refusal of the core
//! keeps its machine-readable code.

use locker_core::{RejectCode, Rejection};

/// Why a service could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// The core refused the request (its code says why, for machines; its message for people).
    #[error("{}", .0.message)]
    Rejected(Rejection),
    /// The thing the caller named (a resident, a user, an alert, an outbox item) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller's input is not acceptable, found before anything reached the core.
    #[error("{0}")]
    Invalid(String),
    /// The caller is known, and its role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Something with that name exists already (a staff account).
    #[error("{0}")]
    Conflict(String),
    /// The hub is stopping: the engine takes no more work.
    #[error("the hub is stopping")]
    Stopping,
    /// The engine did not answer in time.
    #[error("no answer from the engine")]
    Timeout,
    /// Reading or writing the hub's own state failed (not the caller's doing).
    #[error("{0}")]
    Storage(String),
}

impl From<Rejection> for AppError {
    fn from(r: Rejection) -> Self {
        AppError::Rejected(r)
    }
}

impl AppError {
    /// The core's code, for a refusal.
    pub fn code(&self) -> Option<RejectCode> {
        match self {
            AppError::Rejected(r) => Some(r.code),
            _ => None,
        }
    }

    /// A refusal whose code says the named thing is unknown becomes `NotFound`: for a request
    /// whose address names that thing (`/residents/{id}`), "unknown" means "no such resource".
    pub fn not_found_if(self, code: RejectCode) -> AppError {
        match self {
            AppError::Rejected(r) if r.code == code => AppError::NotFound(r.message),
            other => other,
        }
    }
}

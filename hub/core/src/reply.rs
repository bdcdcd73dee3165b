//! The answer to a request: what happened (`Outcome`), or why it was refused (`Rejection`
//! with a machine-readable `RejectCode`). Replies are kept in facts (a repeated request id gets
//! the first answer again), so they never hold a plaintext code.

use serde::{Deserialize, Serialize};

use crate::ids::{Millis, ParcelId, RequestId, ReservationId};
use crate::layout::Size;
use crate::view::CompartmentView;

/// Answer to a request. Never contains a plaintext code (so it can be stored in facts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub request_id: RequestId,
    #[serde(flatten)]
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    SizeSuggested {
        size: Size,
    },
    /// A compartment is reserved and its door is being unlocked.
    Reserved {
        reservation: ReservationId,
        bank: String,
        door: u16,
        size: Size,
    },
    ParcelConfirmed {
        reservation: ReservationId,
        parcel: ParcelId,
    },
    DropOffCancelled {
        reservation: ReservationId,
    },
    /// No compartment fits: the parcel is recorded at the front desk and staff are alerted.
    LockerFull {
        parcel: ParcelId,
    },
    /// These doors are being unlocked.
    Opening {
        bank: String,
        doors: Vec<u16>,
        parcels: Vec<ParcelId>,
    },
    CheckedIn {
        parcel: ParcelId,
    },
    Audit {
        compartments: Vec<CompartmentView>,
    },
    Accepted,
    /// A new carrier code is in the outbox for the carrier's email address. Only its reference
    /// is said (how staff revoke it); the code itself goes to the carrier alone.
    CarrierCodeSent {
        carrier: crate::ids::CarrierId,
        code_ref: String,
    },
    /// A rent roll was imported: what it did, in numbers.
    RollImported {
        summary: crate::view::RollSummary,
    },
    Rejected(Rejection),
}

/// Machine-readable reason a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    InvalidInput,
    UnknownBank,
    UnknownDoor,
    UnknownResident,
    UnknownCarrier,
    UnknownParcel,
    UnknownReservation,
    UnknownUnlock,
    UnknownAlert,
    /// Wrong, used or expired code, badge or carrier code.
    BadCredential,
    KeypadLocked,
    AmbiguousRecipient,
    AmbiguousCode,
    BankOffline,
    NothingToCollect,
    /// The request does not fit the current state (door busy, parcel already collected, ...).
    NotAllowedNow,
    /// The request id was used before for a different request.
    RequestIdReused,
    /// Too many requests of this kind from this carrier (or kiosk) for now.
    RateLimited,
    /// The caller may not send this request (a kiosk asking for a staff action, a staff account
    /// for an admin's). Decided by `access::authorize`.
    NotPermitted,
    /// Adding something that is already there (a resident id, a carrier code in use).
    AlreadyExists,
    /// The hub cannot record anything right now (its disk is full or read-only). Never decided
    /// by the core: the shell answers with it while its storage refuses writes.
    StorageUnavailable,
}

/// A refused request: what went wrong and where, in words a kiosk or staff page can show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
    /// For `KeypadLocked`: when the keypad opens again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
}

impl Rejection {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
            until: None,
        }
    }
}

//! Sans-IO locker workflow core.
//!
//! A deterministic state machine for a site of locker banks: commands (from kiosks, staff and
//! the cloud), observations (from lock controllers) and the current time go in; facts to record,
//! effects to carry out and replies come out. It owns no sockets, files, clocks or randomness:
//! the shell (the `locker-hub` daemon) supplies time and entropy, persists facts and executes
//! effects.
//!
//! ```text
//!   Input ──► Core::handle(now, input, entropy) ──► Output { facts, effects, reply }
//!   timer ──► Core::tick(now, entropy)          ──► Output
//!   sync  ──► Core::merge(now, facts, entropy)  ──► Output { facts, effects }
//! ```
//!
//! # Contracts
//! * **Durable before acknowledged.** Persist `Output.facts` before executing `Output.effects` or
//!   sending `Output.reply`.
//! * **Facts are the only state.** Everything else is derived by folding facts in `FactId` order,
//!   so replicas with the same facts agree (`state.rs`). Conflicts between concurrent facts follow
//!   "what physically happened wins" (`conflict.rs`).
//! * **Secrets stay out of facts.** Codes are stored as keyed hashes; a plaintext PIN or QR token
//!   appears only in `Effect::Notify`.
//! * **Idempotent requests.** A repeated `request_id` returns the first reply and does nothing.
//!
//! See `docs/core.md` for the design note.

mod access;
mod codes;
mod cold;
mod conflict;
mod core;
mod directory;
mod dropoff;
mod effect;
mod fact;
mod faults;
mod holds;
mod ids;
mod input;
mod layout;
mod pickup;
mod project;
mod remote;
mod reply;
mod roll;
mod staff;
mod state;
mod view;

pub use crate::access::{
    authorize, cloud_may_write, folded, need_for, Caller, Need, Role, CLOUD_AUTHOR,
};
pub use crate::codes::Entropy;
pub use crate::cold::{SensorView, SummaryView, UnitView};
pub use crate::core::Core;
pub use crate::directory::{
    check_contact, LANGUAGES, MAX_CARRIER_CODE, MIN_CARRIER_CODE, SENT_CARRIER_CODE_DIGITS,
};
pub use crate::effect::{Effect, KioskUpdate, NotifyKind, Output};
pub use crate::fact::{
    Actor, AlertKind, CredentialKind, DeskReason, Fact, FactKind, Registration, ReleaseReason,
    UnitRef, UnlockPurpose, VoidReason,
};
pub use crate::ids::remote_request_id;
pub use crate::ids::{
    sanitize_hub_id, AlertId, CarrierId, CodeId, FactId, FactIdError, Millis, ParcelId, RequestId,
    ReservationId, ResidentId, StaffId, UnlockId,
};
pub use crate::input::{
    AuditFinding, Command, Contact, Disposition, HoldTarget, Input, Observation, Operator,
    Recipient, RegisterMode, Request, ReviewDecision, RollRow, Tenancy, UnlockReport,
    NOTIFY_CHOICES,
};
pub use crate::layout::{
    BankLayout, CompartmentLayout, Dimensions, Policies, SensorLayout, SiteLayout, Size, SizeLimit,
    TempClass, TempRange, UnitLayout,
};
pub use crate::remote::{cloud_may_ask, CLOUD_CARRIER_CODES_PER_DAY};
pub use crate::reply::{Outcome, RejectCode, Rejection, Reply};
pub use crate::roll::check_date;
pub use crate::staff::ALERT_NOTE_MAX;
pub use crate::state::{Alert, Location};
pub use crate::view::{
    BankView, CarrierCodeView, CarrierView, CompartmentStatus, CompartmentView, ParcelView,
    PerishableFlag, ResidentView, RollChange, RollImportView, RollLeaving, RollPlan, RollRejection,
    RollReviewItem, RollSummary,
};

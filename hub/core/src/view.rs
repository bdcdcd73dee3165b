//! Read-only views for the web page, the audit walk and MQTT retained state.

use serde::{Deserialize, Serialize};

use crate::ids::{CarrierId, Millis, ParcelId, ReservationId, ResidentId, UnlockId};
use crate::layout::{Size, TempClass};

/// What a compartment is doing, from a person's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompartmentStatus {
    Free,
    Reserved,
    Occupied,
    /// Holds parcels whose hold ran out: staff should remove them.
    Expired,
    /// Holds parcels that concurrent deliveries both claim.
    Disputed,
    OutOfService,
    /// Bank controller offline, or the board behind this door does not answer.
    Offline,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompartmentView {
    pub bank: String,
    pub door: u16,
    pub size: Size,
    pub temperature: TempClass,
    pub accessible: bool,
    pub status: CompartmentStatus,
    pub out_of_service: bool,
    pub door_open: bool,
    /// Whose parcels are inside (at most one resident).
    pub resident: Option<ResidentId>,
    pub parcels: Vec<ParcelId>,
    pub reservation: Option<ReservationId>,
    pub pending_unlock: Option<UnlockId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelView {
    pub id: ParcelId,
    pub resident: Option<ResidentId>,
    pub carrier: Option<CarrierId>,
    pub tracking: Option<String>,
    pub size: Option<Size>,
    pub temperature: TempClass,
    pub location: Location,
    /// Placed by a carrier, delivery not completed yet.
    pub depositing: bool,
    pub delivered_at: Millis,
    /// When the hold runs out (parcels held in a compartment only).
    pub expires_at: Option<Millis>,
    pub hold_until: Option<Millis>,
    pub expired: bool,
    /// Flagged to staff after a temperature excursion in its unit: check or replace it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perishable: Option<PerishableFlag>,
}

/// Why a parcel was flagged: the unit and when the excursion began.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerishableFlag {
    pub unit: String,
    pub since: Millis,
}

/// A resident as the directory pages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidentView {
    pub resident: ResidentId,
    pub unit: String,
    /// Needs compartments within accessible reach.
    pub accessible: bool,
    /// False once deactivated (moved out).
    pub active: bool,
    pub hold_until: Option<Millis>,
    /// How many badges are registered to them (the badge ids themselves are never kept).
    pub badges: usize,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The language of their messages (`en` when not set).
    pub language: Option<String>,
    /// Which channels tell them (`both` when not set; `none`: no messages).
    pub notify: Option<String>,
    /// A second person told too.
    pub secondary_email: Option<String>,
    pub secondary_phone: Option<String>,
    pub tenancy: crate::input::Tenancy,
    /// The rent roll decides whether they live here.
    pub on_roll: bool,
    /// Missing from the roll since then: moved out at the first import after the grace period.
    pub off_roll_since: Option<Millis>,
}

/// A carrier and the references of its live access codes (never the codes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierView {
    pub carrier: CarrierId,
    pub name: String,
    /// Deactivated: its codes no longer open anything.
    pub revoked: bool,
    /// Where codes sent to the carrier go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub codes: Vec<CarrierCodeView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierCodeView {
    /// The id of the fact that issued the code: how staff name it to revoke it.
    pub code_ref: String,
    pub issued_at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankView {
    pub bank: String,
    pub online: bool,
    pub keypad_locked_until: Option<Millis>,
}

/// Where a parcel is. Every parcel is in exactly one of these.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Location {
    Compartment {
        bank: String,
        door: u16,
    },
    /// Front desk or package room.
    Desk,
    PickedUp,
    /// Returned to sender (or taken back by the carrier before the delivery completed).
    Returned,
    /// Recorded in a compartment that an audit walk found empty.
    Missing,
    /// Physically in a compartment that a concurrent delivery for another resident also claims;
    /// staff must sort it out (audit walk or removal).
    Disputed {
        bank: String,
        door: u16,
    },
}

// --- the rent roll (`roll.rs`) ---

/// What an import would do (a dry run) or did. Lists are in line order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollPlan {
    /// Rows read.
    pub rows: u64,
    pub create: Vec<RollChange>,
    pub update: Vec<RollChange>,
    /// Rows that match a resident exactly and change nothing.
    pub unchanged: u64,
    /// Rows whose move-out date has passed (their resident, if any, leaves like one missing
    /// from the roll).
    pub past: u64,
    pub review: Vec<RollReviewItem>,
    pub rejected: Vec<RollRejection>,
    /// Residents missing from the roll whose grace period runs (or starts with this import).
    pub leaving: Vec<RollLeaving>,
    /// Residents moved out by this import (their grace period is over).
    pub move_out: Vec<RollLeaving>,
}

/// A resident the import creates or updates, and what changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollChange {
    pub line: u64,
    pub resident: ResidentId,
    pub unit: String,
    pub name: String,
    /// What changes, in words (`unit 101 → 102`, `email`, `reactivated`, …); empty when created.
    pub changes: Vec<String>,
}

/// A row that partly matches a resident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollReviewItem {
    /// The id of the fact that queued it, once queued (what `resolve_roll_review` names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
    pub line: u64,
    /// The id the row goes by.
    pub key: String,
    pub unit: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub candidate: ResidentId,
    pub candidate_unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_name: Option<String>,
    pub reason: String,
    /// When it was queued (queued items only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Millis>,
}

/// A row the import refuses, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollRejection {
    pub line: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident: Option<String>,
    pub reason: String,
}

/// A resident on the way out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollLeaving {
    pub resident: ResidentId,
    pub unit: String,
    /// Missing from the roll since (`None`: from this import on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Millis>,
    /// When they are moved out, at the first import from then on.
    pub moves_out_at: Millis,
    /// Parcels still waiting for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parcels: Vec<ParcelId>,
}

/// What an applied import did, in numbers (the reply, kept with the request's answer).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollSummary {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub review: u64,
    pub rejected: u64,
    pub leaving: u64,
    pub moved_out: u64,
}

impl RollPlan {
    pub fn summary(&self) -> RollSummary {
        let n = |v: usize| v as u64;
        RollSummary {
            rows: self.rows,
            created: n(self.create.len()),
            updated: n(self.update.len()),
            unchanged: self.unchanged,
            review: n(self.review.len()),
            rejected: n(self.rejected.len()),
            leaving: n(self.leaving.len()),
            moved_out: n(self.move_out.len()),
        }
    }
}

/// The last import, for the Residents page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollImportView {
    pub at: Millis,
    pub by: String,
    pub source: String,
    pub summary: RollSummary,
}

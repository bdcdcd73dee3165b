//! Facts: the append-only record of what happened. They are the only state that persists;
//! everything else is derived by folding them in `FactId` order (see `state.rs`).
//!
//! Secrets never appear here: PINs, badge ids and carrier codes are stored as
//! `HMAC-SHA256(site key, code)` in hex (see `codes.rs`).

use serde::{Deserialize, Serialize};

use crate::ids::{
    AlertId, CarrierId, CodeId, FactId, Millis, ParcelId, RequestId, ReservationId, ResidentId,
    StaffId, UnlockId,
};
use crate::input::{Disposition, HoldTarget, Operator, Request};
use crate::layout::{Size, TempClass};
use crate::reply::Reply;

/// One recorded fact. `bank`, `door` and `parcel` say where and what it is about (for audit
/// queries); multi-parcel facts list their parcels in `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub id: FactId,
    pub at: Millis,
    pub actor: Actor,
    pub bank: Option<String>,
    pub door: Option<u16>,
    pub parcel: Option<ParcelId>,
    pub kind: FactKind,
}

/// Who caused a fact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    Carrier {
        id: CarrierId,
    },
    Resident {
        id: ResidentId,
    },
    Staff {
        id: StaffId,
    },
    Cloud,
    /// A lock controller reported it.
    Controller,
    /// The hub decided it (timers, follow-ups).
    System,
}

impl From<&Operator> for Actor {
    fn from(op: &Operator) -> Self {
        match op {
            Operator::Staff { id } => Actor::Staff { id: id.clone() },
            Operator::Cloud => Actor::Cloud,
        }
    }
}

/// How a resident (or carrier) proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    Pin,
    Qr,
    Badge,
    CarrierCode,
}

/// Why an unlock was sent; decides what a door opening means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UnlockPurpose {
    Delivery {
        reservation: ReservationId,
    },
    /// Door opening means these parcels were collected by this resident.
    Pickup {
        resident: ResidentId,
        parcels: Vec<ParcelId>,
        method: CredentialKind,
        code: Option<CodeId>,
    },
    /// Staff override: door opening means these parcels left the compartment.
    Removal {
        parcels: Vec<ParcelId>,
        disposition: Disposition,
        reason: String,
    },
    StaffOpen {
        reason: String,
    },
}

/// Why a reservation ended without a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    Cancelled,
    /// The door closed with no parcel confirmed.
    ClosedEmpty,
    /// Not used within the reservation timeout.
    Expired,
    /// The door would not unlock and no other compartment fits.
    DoorFailed,
}

/// Why a parcel went to the desk instead of a locker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeskReason {
    /// Locker full: no compartment fitted.
    Overflow,
    /// Staff checked it in at the desk.
    CheckIn,
}

/// Why a pickup code stopped working early.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoidReason {
    Reassigned,
}

/// Kinds of alert for staff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    DoorAjar,
    /// Door opened with no unlock command.
    ForcedOpen,
    /// The controller could not pulse a lock; compartment taken out of service.
    UnlockFailed,
    /// Nobody knows whether an unlock opened its door; a person must look and decide.
    UnlockOutcomeUnknown,
    /// The hub's disk is full or read-only. Raised by the shell and kept in memory only (it
    /// cannot be written); never in a fact.
    StorageUnavailable,
    BankOffline,
    /// Doors of an online bank its controller cannot reach (a silent board).
    DoorsUnreachable,
    /// A controller reported something that contradicts what the hub believes.
    Inconsistency,
    KeypadLockout,
    LockerFull,
    ParcelExpired,
    /// Recorded by earlier versions for a single compartment; refrigerated units now raise the
    /// kinds below.
    TemperatureOutOfRange,
    /// A unit's sensor read above the band for longer than `alarm_after`.
    TooWarm,
    /// A unit's sensor read below the band for longer than `alarm_after`.
    TooCold,
    /// No reading from a unit's sensor for longer than its silence limit.
    SensorSilent,
    /// A unit's own door (its controller's door input) open longer than `door_open_limit`.
    UnitDoorOpen,
    /// The unit's controller reports alarms of its own.
    UnitDeviceAlarm,
    /// An excursion outlasted `excursion_limit`: the parcels named must be checked or replaced.
    PerishableAtRisk,
    /// Concurrent facts from two replicas contradicted each other (see `conflict.rs`).
    Conflict,
    /// The same PIN is live for two residents (two replicas issued it concurrently).
    AmbiguousCode,
    /// The cloud wrote a fact only a hub may record: kept in its document, never folded
    /// (`access::folded`).
    CloudWriteIgnored,
    /// A request from the cloud was refused (too old, too many opens this hour, not allowed).
    RemoteRequestRefused,
    /// Someone asked for a parcel to be taken to the desk (`send_to_desk`): a task for staff,
    /// cleared when the parcel leaves its compartment.
    DeskRequested,
    /// A resident was moved out (off the rent roll past the grace period) with a parcel still
    /// waiting: return it or find them. Cleared when the parcel leaves.
    MovedOutWithParcel,
    /// A notification channel (email, webhook) has failed every try for `notify.alert_after`.
    /// Raised by the shell and kept in memory only, like `StorageUnavailable`.
    NotificationsFailing,
}

/// What an alarm of a refrigerated unit is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnitRef {
    pub unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    /// When the condition began (an excursion's first counted reading), so a restart resumes
    /// the excursion clock where it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Millis>,
}

/// One resident of [`FactKind::ResidentsRegistered`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub resident: ResidentId,
    pub unit: String,
    pub accessible: bool,
    #[serde(default, skip_serializing_if = "crate::input::Contact::is_empty")]
    pub contact: crate::input::Contact,
    #[serde(default, skip_serializing_if = "crate::input::Tenancy::is_empty")]
    pub tenancy: crate::input::Tenancy,
}

/// Everything that can happen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FactKind {
    // --- directory ---
    /// Registers or updates a resident, and reactivates a deactivated one.
    ResidentRegistered {
        resident: ResidentId,
        unit: String,
        accessible: bool,
        /// What the registration said about reaching them (fields left out are unchanged).
        #[serde(default, skip_serializing_if = "crate::input::Contact::is_empty")]
        contact: crate::input::Contact,
        /// Lease and tenancy dates (fields left out are unchanged).
        #[serde(default, skip_serializing_if = "crate::input::Tenancy::is_empty")]
        tenancy: crate::input::Tenancy,
        /// Registered by a rent-roll import: from now on the roll decides whether they live
        /// here (moved out when they leave it, after the grace period).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        roll: bool,
    },
    /// A rent-roll import's registrations, many to a fact: each fact costs the store a splice
    /// of its document, so a roll of 100,000 writes a hundred facts, not 100,000. Folded as one
    /// `resident_registered` (from the roll) per entry, in order.
    ResidentsRegistered {
        residents: Vec<Registration>,
    },
    ResidentDeactivated {
        resident: ResidentId,
    },
    /// A resident the roll brought in is missing from it (or its move-out date has passed): the
    /// grace period before they are moved out starts now. Registering them again ends it.
    ResidentOffRoll {
        resident: ResidentId,
    },
    /// A rent-roll import was applied (what it did, in numbers). The open review items of
    /// earlier imports end here: the newest roll is the truth.
    RollImported {
        source: String,
        rows: u64,
        created: u64,
        updated: u64,
        unchanged: u64,
        review: u64,
        rejected: u64,
        moved_out: u64,
        /// Residents off the roll whose grace period runs.
        #[serde(default)]
        leaving: u64,
    },
    /// A row that partly matched a resident, waiting for staff (`resolve_roll_review`).
    RollReviewQueued {
        row: crate::input::RollRow,
        /// The id the row goes by (its own, or made from unit and name).
        key: String,
        candidate: ResidentId,
        reason: String,
    },
    RollReviewResolved {
        review: String,
        decision: crate::input::ReviewDecision,
    },
    /// Staff said a roll id is this resident: rows with that id update them.
    RollLinked {
        key: String,
        resident: ResidentId,
    },
    BadgeRegistered {
        resident: ResidentId,
        badge_hash: String,
    },
    BadgeRevoked {
        badge_hash: String,
    },
    CarrierRegistered {
        carrier: CarrierId,
        name: String,
        /// Where codes sent to the carrier go: `None` keeps the address known, empty clears it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
    },
    CarrierCodeIssued {
        carrier: CarrierId,
        code_hash: String,
    },
    CarrierCodeRevoked {
        code_hash: String,
    },
    CarrierRevoked {
        carrier: CarrierId,
    },
    TrackingPreAdvised {
        tracking: String,
        resident: ResidentId,
    },
    VacationHoldSet {
        target: HoldTarget,
        until: Millis,
    },
    VacationHoldCleared {
        target: HoldTarget,
    },

    // --- drop-off ---
    CompartmentReserved {
        reservation: ReservationId,
        carrier: CarrierId,
        resident: ResidentId,
        size: Size,
        temperature: TempClass,
        share: bool,
        /// The tracking number given with `start_drop_off`, used when `confirm_parcel` gives
        /// none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracking: Option<String>,
    },
    /// The carrier confirmed this parcel (header `parcel`) is in the open compartment.
    ParcelPlaced {
        reservation: ReservationId,
        tracking: Option<String>,
    },
    /// The door closed with confirmed parcels: they are now held for the resident.
    DeliveryCompleted {
        reservation: ReservationId,
        resident: ResidentId,
        parcels: Vec<ParcelId>,
    },
    ReservationReleased {
        reservation: ReservationId,
        reason: ReleaseReason,
    },
    /// A parcel (header `parcel`) held at the front desk / package room.
    ParcelAtDesk {
        resident: ResidentId,
        carrier: Option<CarrierId>,
        tracking: Option<String>,
        size: Option<Size>,
        temperature: TempClass,
        reason: DeskReason,
    },
    /// A pickup credential was issued. Only the keyed hash of the PIN is stored.
    CodeIssued {
        code: CodeId,
        resident: ResidentId,
        parcels: Vec<ParcelId>,
        pin_hash: String,
        qr_expires: Millis,
    },
    CodeVoided {
        code: CodeId,
        reason: VoidReason,
    },
    /// Staff (or the cloud) had a live code sent to its resident again; the code itself is in
    /// no fact.
    CodeResent {
        code: CodeId,
        parcels: Vec<ParcelId>,
    },

    // --- doors and locks ---
    /// An unlock command went to the controller (attempt 1 is the decision, later ones retries).
    UnlockSent {
        unlock: UnlockId,
        purpose: UnlockPurpose,
        attempt: u8,
    },
    UnlockAcked {
        unlock: UnlockId,
    },
    /// Door seen open; `unlock` is the unlock it answers, `None` when nothing authorised it.
    DoorOpened {
        unlock: Option<UnlockId>,
    },
    DoorClosed,
    /// The lock released but nobody opened the door in time.
    UnlockLapsed {
        unlock: UnlockId,
    },
    /// The controller said it could not pulse (earlier versions: no acknowledgement after
    /// every attempt).
    UnlockFailed {
        unlock: UnlockId,
    },
    /// Nobody knows whether the lock was pulsed: the hub restarted with it in flight, or the
    /// frame left and nobody confirmed, or the controller never answered. It is never re-sent
    /// automatically; the door being seen open, or a person, resolves it.
    UnlockOutcomeUnknown {
        unlock: UnlockId,
    },
    /// The unlock never went on the wire (its deadline passed first, or the bus was down): the
    /// door did not move.
    UnlockNotSent {
        unlock: UnlockId,
    },
    /// A person decided what happened to an unknown-outcome unlock.
    UnlockResolved {
        unlock: UnlockId,
        opened: bool,
    },
    BankOffline,
    BankOnline,
    /// The bank's controller reports these doors unreachable (their board is silent); replaces
    /// the previous set, empty when all are reachable again.
    DoorsUnreachable {
        doors: Vec<u16>,
    },
    ServiceChanged {
        out_of_service: bool,
        reason: String,
    },

    // --- pickup ---
    /// A wrong, used or expired credential at a bank (counts towards the keypad lockout).
    CodeRejected {
        method: CredentialKind,
    },
    ParcelsPickedUpAtDesk {
        parcels: Vec<ParcelId>,
    },

    // --- holds ---
    ReminderSent {
        parcels: Vec<ParcelId>,
        index: u32,
    },
    /// The residents were told these parcels' hold ends soon (`expiring_notice_ms` before).
    ExpiryWarned {
        parcels: Vec<ParcelId>,
    },
    /// The hold of the header `parcel` ran out; staff must remove it.
    HoldExpired,
    ParcelsReassigned {
        parcels: Vec<ParcelId>,
        to: ResidentId,
    },

    // --- audit walk ---
    AuditConfirmed {
        parcels: Vec<ParcelId>,
    },
    AuditFoundEmpty {
        missing: Vec<ParcelId>,
    },
    /// A parcel (header `parcel`) found that had no record.
    AuditFoundParcel {
        resident: Option<ResidentId>,
        tracking: Option<String>,
        to_desk: bool,
    },

    // --- alerts ---
    /// The alert id is this fact's id.
    AlertRaised {
        alert: AlertKind,
        message: String,
        /// For alarms of a refrigerated unit: which unit (of the header's bank) and sensor.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<UnitRef>,
    },

    // --- refrigerated units ---
    /// The header `parcel` sat in unit `unit` (of the header's bank) during an excursion that
    /// began at `since` and outlasted the excursion limit: staff should check or replace it.
    PerishableFlagged {
        unit: String,
        since: Millis,
    },
    /// One sensor's readings over `[from, to)`: never every reading, one fact per interval.
    TemperatureSummary {
        unit: String,
        sensor: String,
        from: Millis,
        to: Millis,
        count: u32,
        min_decicelsius: i32,
        max_decicelsius: i32,
        mean_decicelsius: i32,
    },
    AlertCleared {
        alert: AlertId,
        /// A person's note when they acknowledged it (none when the hub cleared it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },

    // --- the cloud ---
    /// The cloud asks this site's executing hub to run `request` (written by the cloud only,
    /// into the month's `requests` document; run once, under the request id
    /// `remote-<this fact's id>`: see `remote.rs`).
    RemoteRequested {
        request: Request,
    },

    // --- idempotency ---
    /// A request was answered; replaying `request` returns `reply` and changes nothing.
    /// `fingerprint` (HMAC of the request under a key derived from the site key: requests carry
    /// codes) catches a request id reused for another request.
    Answered {
        request: RequestId,
        fingerprint: String,
        reply: Reply,
    },
}

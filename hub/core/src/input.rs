//! What goes into the core: commands (requests from kiosks, staff and the cloud, each with a
//! client-chosen `request_id`) and observations (what controllers report).
//!
//! Every type maps 1:1 onto a JSON MQTT payload: enums are internally tagged with `"type"`.

use serde::{Deserialize, Serialize};

use crate::ids::Millis;
use crate::ids::{
    AlertId, CarrierId, ParcelId, RequestId, ReservationId, ResidentId, StaffId, UnlockId,
};
use crate::layout::{Dimensions, Size, TempClass};

/// One input to [`crate::Core::handle`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "input", content = "body", rename_all = "snake_case")]
pub enum Input {
    Command(Command),
    Observation(Observation),
}

/// A request with its idempotency key. JSON: `{"request_id": "...", "type": "pickup_by_pin", ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub request_id: RequestId,
    #[serde(flatten)]
    pub request: Request,
}

/// Who issued a staff or directory command. The shell authenticates staff (and the cloud link)
/// before it builds the command; the core records whoever it is told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operator {
    Staff { id: StaffId },
    Cloud,
}

/// Who a resident is and how to reach them, as a registration gives it. Each field given
/// replaces what was known (an empty string clears it); a field left out keeps it. Checked by
/// the core (`check_contact`): a name, an email address, a phone number in international form
/// (`+` and 7 to 15 digits), a language the messages exist in (`en`, `es`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The name staff see and search by (1 to 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Which channels tell them ([`NOTIFY_CHOICES`]: `both`, the default, `email`, `webhook`,
    /// or `none` for a resident who asked for no messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// A second person told too (a partner, a carer): their email address and phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_phone: Option<String>,
}

/// The channel choices of [`Contact::notify`].
pub const NOTIFY_CHOICES: [&str; 4] = ["both", "email", "webhook", "none"];

impl Contact {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.email.is_none()
            && self.phone.is_none()
            && self.language.is_none()
            && self.notify.is_none()
            && self.secondary_email.is_none()
            && self.secondary_phone.is_none()
    }
}

/// A resident's lease and tenancy dates as the property's rent roll gives them, each
/// `YYYY-MM-DD` (`check_date`). Left out: unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenancy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_in: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_out: Option<String>,
}

impl Tenancy {
    pub fn is_empty(&self) -> bool {
        self.lease_start.is_none()
            && self.lease_end.is_none()
            && self.move_in.is_none()
            && self.move_out.is_none()
    }
}

/// One resident of a rent roll (a row of the property-management system's export, or an item
/// of the bulk `PUT /api/v1/residents`), read but not yet checked: the core checks every field
/// (`roll.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollRow {
    /// Where the row is in what staff gave: the file's line number, or the list's item number.
    pub line: u64,
    /// The property-management system's own id for the resident (a tenant or resident code).
    /// Without one the row's id is made from the unit and the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident: Option<String>,
    pub unit: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Tenancy::is_empty")]
    pub tenancy: Tenancy,
}

/// What staff decide about a row of the rent roll that partly matched a resident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// The row is that resident: update them from it, and match the row's id to them from now
    /// on.
    Same,
    /// The row is someone else: create a resident from it.
    New,
    /// Do nothing now; the row comes back with the next import if it is still there.
    Dismiss,
}

/// Whether registering a resident may create one, change one, or either. Checked and applied in
/// one step, so "add" never overwrites a resident added a moment before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterMode {
    /// Create or change.
    #[default]
    Upsert,
    /// Create; refused with `already_exists` if the id is taken.
    Add,
    /// Change (and reactivate); refused with `unknown_resident` if there is no such resident.
    Update,
}

/// How a carrier names the recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Recipient {
    /// A unit number; must have exactly one resident.
    Unit {
        unit: String,
    },
    Resident {
        resident: ResidentId,
    },
    /// A scanned tracking number that was pre-advised.
    Tracking {
        tracking: String,
    },
}

/// What a vacation hold applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HoldTarget {
    Parcel { parcel: ParcelId },
    Resident { resident: ResidentId },
}

/// Where parcels removed by staff go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    ReturnToSender,
    PackageRoom,
}

/// What staff found at a compartment during an audit walk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuditFinding {
    /// The compartment holds exactly what the hub believes.
    AsRecorded,
    /// The compartment is empty; recorded parcels are marked missing.
    FoundEmpty,
    /// A parcel the hub has no record of. Without a known resident it must be taken to the desk.
    FoundParcel {
        resident: Option<ResidentId>,
        tracking: Option<String>,
        to_desk: bool,
    },
}

/// Requests, one variant per MQTT request type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    // --- carrier at a kiosk ---
    /// Suggest a size class from measured dimensions.
    SuggestSize {
        dimensions: Dimensions,
    },
    /// Authenticate, name the recipient and size, reserve a compartment and open it.
    StartDropOff {
        bank: String,
        carrier_code: String,
        recipient: Recipient,
        #[serde(default)]
        size: Option<Size>,
        #[serde(default)]
        dimensions: Option<Dimensions>,
        #[serde(default)]
        temperature: TempClass,
        /// The carrier says this parcel fits with that resident's earlier parcels from them.
        #[serde(default)]
        share: bool,
        #[serde(default)]
        tracking: Option<String>,
    },
    /// The carrier confirms a parcel is in the open compartment (may repeat for several parcels).
    ConfirmParcel {
        reservation: ReservationId,
        #[serde(default)]
        tracking: Option<String>,
    },
    /// Open the door of a reservation that was moved after a door fault.
    OpenReservation {
        reservation: ReservationId,
    },
    CancelDropOff {
        reservation: ReservationId,
    },

    // --- resident at a kiosk ---
    PickupByPin {
        bank: String,
        pin: String,
    },
    PickupByQr {
        bank: String,
        token: String,
    },
    PickupByBadge {
        bank: String,
        badge: String,
    },

    // --- staff ---
    StaffOpenDoor {
        by: Operator,
        bank: String,
        door: u16,
        reason: String,
    },
    /// Open every door of a bank (maintenance).
    StaffOpenBank {
        by: Operator,
        bank: String,
        reason: String,
    },
    SetOutOfService {
        by: Operator,
        bank: String,
        door: u16,
        out_of_service: bool,
        reason: String,
    },
    /// Give parcels to another resident; the old codes are voided and a new one is issued.
    ReassignParcels {
        by: Operator,
        parcels: Vec<ParcelId>,
        to: ResidentId,
    },
    /// A parcel that never went into a locker, checked in at the desk.
    DeskCheckIn {
        by: Operator,
        resident: ResidentId,
        #[serde(default)]
        tracking: Option<String>,
        #[serde(default)]
        carrier: Option<CarrierId>,
    },
    DeskPickup {
        by: Operator,
        parcels: Vec<ParcelId>,
    },
    /// Staff override: open a compartment and take its parcels out (expired ones, usually).
    RemoveParcels {
        by: Operator,
        bank: String,
        door: u16,
        disposition: Disposition,
        reason: String,
    },
    /// Ask staff to take a parcel from its compartment to the desk (a resident who cannot come
    /// to the lockers asked, usually through the property's app). Opens nothing: it raises a
    /// `desk_requested` alert naming the parcel and its door, cleared when the parcel leaves the
    /// compartment.
    SendToDesk {
        by: Operator,
        parcel: ParcelId,
        reason: String,
    },
    /// Send a parcel's live pickup code to its resident again (they lost the message). The
    /// same code: nothing changes at the lockers. Recorded without the code.
    ResendCode {
        by: Operator,
        parcel: ParcelId,
    },
    /// Bring the directory in line with the property's rent roll (the whole roll: a resident
    /// the roll brought in and who is missing from it is moved out after
    /// `Policies::move_out_grace_ms`). All or nothing: refused when a row is rejected, unless
    /// `skip_rejected`. See `roll.rs`.
    ImportRoll {
        by: Operator,
        /// What staff imported (a file name, `api`), for the record.
        source: String,
        rows: Vec<RollRow>,
        #[serde(default)]
        skip_rejected: bool,
    },
    /// Settle a row of the last import that partly matched a resident.
    ResolveRollReview {
        by: Operator,
        /// The review item (the id of the fact that queued it).
        review: String,
        decision: ReviewDecision,
    },
    SetVacationHold {
        by: Operator,
        target: HoldTarget,
        until: Millis,
    },
    ClearVacationHold {
        by: Operator,
        target: HoldTarget,
    },
    /// A person decides the outcome of an unlock that was in flight when the hub restarted.
    ResolveUnlock {
        by: Operator,
        unlock: UnlockId,
        opened: bool,
    },
    AcknowledgeAlert {
        by: Operator,
        alert: AlertId,
        /// What the person found or did (at most `ALERT_NOTE_MAX` characters). Left out of the
        /// JSON when absent, so a request without a note has the fingerprint it always had.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// List what the hub believes each compartment holds.
    AuditList {
        by: Operator,
    },
    AuditRecord {
        by: Operator,
        bank: String,
        door: u16,
        finding: AuditFinding,
    },

    // --- directory (staff or cloud) ---
    RegisterResident {
        by: Operator,
        resident: ResidentId,
        unit: String,
        #[serde(default)]
        accessible: bool,
        /// Add only, update only, or either (the default, for integrations that sync a roll).
        #[serde(default)]
        mode: RegisterMode,
        /// Email, phone and language for the resident's messages.
        #[serde(default, skip_serializing_if = "Contact::is_empty")]
        contact: Contact,
    },
    /// The resident moved out: no new deliveries, check-ins or reassignments to them. Parcels
    /// already held stay collectable. Registering the resident again reactivates them.
    DeactivateResident {
        by: Operator,
        resident: ResidentId,
    },
    RegisterBadge {
        by: Operator,
        resident: ResidentId,
        badge: String,
    },
    RevokeBadge {
        by: Operator,
        badge: String,
    },
    /// Register a carrier, or rename and reinstate one. `email` is where codes sent with
    /// [`Request::SendCarrierCode`] go: left out it keeps the address known, empty clears it.
    RegisterCarrier {
        by: Operator,
        carrier: CarrierId,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
    },
    IssueCarrierCode {
        by: Operator,
        carrier: CarrierId,
        code: String,
    },
    /// Issue a new code the core draws, and send it to the carrier's registered email address
    /// (through the local outbox). Whoever asks never sees the code, so the cloud may ask.
    SendCarrierCode {
        by: Operator,
        carrier: CarrierId,
    },
    RevokeCarrierCode {
        by: Operator,
        code: String,
    },
    /// Revoke a carrier code without knowing it: `code_ref` is the id of the fact that issued it
    /// (the plaintext is shown once, so staff only ever have the reference).
    RevokeCarrierCodeRef {
        by: Operator,
        carrier: CarrierId,
        code_ref: String,
    },
    RevokeCarrier {
        by: Operator,
        carrier: CarrierId,
    },
    PreAdvise {
        by: Operator,
        tracking: String,
        resident: ResidentId,
    },
}

/// What controllers report. Observations carry no request id: a repeated observation that changes
/// nothing (a second "door opened" for an open door) is ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Observation {
    /// The controller pulsed the lock of an unlock.
    LockAcknowledged {
        bank: String,
        door: u16,
        #[serde(default)]
        unlock: Option<UnlockId>,
    },
    /// The controller's answer to an unlock it did not pulse, or cannot say it pulsed.
    UnlockNotPulsed {
        bank: String,
        door: u16,
        unlock: UnlockId,
        report: UnlockReport,
        /// The controller's words, for the alert and the log.
        #[serde(default)]
        reason: String,
    },
    DoorOpened {
        bank: String,
        door: u16,
    },
    DoorClosed {
        bank: String,
        door: u16,
    },
    /// Answer to a `QueryDoors` effect (or a periodic report).
    DoorState {
        bank: String,
        door: u16,
        open: bool,
        #[serde(default)]
        occupied: Option<bool>,
    },
    ControllerOnline {
        bank: String,
    },
    ControllerOffline {
        bank: String,
    },
    /// The controller is online and says which doors it cannot reach right now (empty: all of
    /// them). Implies `ControllerOnline`.
    DoorsUnreachable {
        bank: String,
        doors: Vec<u16>,
    },
    /// One reading of a refrigerated unit's sensor (raw telemetry: it is summarised, never
    /// recorded one by one).
    UnitReading {
        bank: String,
        unit: String,
        sensor: String,
        decicelsius: i32,
        /// The unit's own door, where its controller has a door input.
        #[serde(default)]
        door_open: Option<bool>,
        /// Alarms the unit's controller raises itself, by name.
        #[serde(default)]
        device_alarms: Vec<String>,
    },
}

/// How an unlock that was not confirmed ended, as its controller tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnlockReport {
    /// The board or controller said it could not pulse.
    Failed,
    /// It never went on the wire (its deadline passed first, or the bus was down).
    NotSent,
    /// It went on the wire and nobody confirmed: the door may have opened.
    Unknown,
}

//! What comes out of the core: effects for the shell to carry out, and replies to requests.

use serde::{Deserialize, Serialize};

use crate::fact::{AlertKind, Fact};
use crate::ids::{
    AlertId, CarrierId, CodeId, Millis, ParcelId, ReservationId, ResidentId, UnlockId,
};
use crate::reply::Reply;

/// The result of one step.
///
/// **Durable before acknowledged:** the shell must persist `facts` (in order) before it carries
/// out any of `effects` or sends `reply`. If it crashes in between, nothing was promised that the
/// record does not show; an unlock that was recorded but maybe not sent is detected at the next
/// start and handed to a person (it is never re-sent automatically).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub facts: Vec<Fact>,
    pub effects: Vec<Effect>,
    pub reply: Option<Reply>,
}

/// Why a resident is being told something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    /// Parcels are in a locker; carries the PIN and QR token.
    Delivered,
    Reminder,
    /// The hold ends soon (`expiring_notice_ms` before); carries the live code.
    Expiring,
    Expired,
    /// Parcels are at the front desk / package room.
    AtDesk,
    /// These parcels were reassigned away from this resident; earlier codes no longer work.
    Withdrawn,
    /// These parcels were collected (at the lockers with the resident's code, or at the desk):
    /// told at once, so a pickup by someone else is noticed while it can still be followed.
    PickedUp,
}

/// Asynchronous news for the kiosk running a drop-off session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KioskUpdate {
    DeliveryCompleted {
        parcels: Vec<ParcelId>,
    },
    ReservationReleased {
        reason: crate::fact::ReleaseReason,
    },
    /// The reserved door failed to unlock; another compartment is offered (send
    /// `open_reservation` to open it).
    DoorOffered {
        failed_door: u16,
        door: u16,
    },
    /// The door failed and nothing else fits: the parcel goes to the desk.
    Overflow {
        parcel: ParcelId,
    },
    /// A pickup door failed to unlock; the resident should ask at the desk.
    PickupDoorFailed {
        door: u16,
    },
    /// Nobody could confirm the unlock of `door`: it may be open. The person should check it;
    /// the hub never re-sends such an unlock by itself.
    DoorMayBeOpen {
        door: u16,
    },
    /// The unlock of `door` was not sent in time (the door did not move): try again.
    DoorNotOpened {
        door: u16,
    },
}

/// Something for the shell to do, after the facts of the same step are persisted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Effect {
    /// Send an unlock to the bank's controller with QoS 1. It must not be put on the wire at
    /// or after `deadline`: the person who asked has moved on by then.
    Unlock {
        bank: String,
        door: u16,
        unlock_id: UnlockId,
        deadline: Millis,
    },
    /// Ask the controller for the doors' current state (answers as `Observation::DoorState`).
    QueryDoors {
        bank: String,
        doors: Vec<u16>,
    },
    /// Tell a resident; the shell puts this in the local outbox (outside every synced document).
    /// This is the only place a plaintext PIN or QR token leaves the core.
    Notify {
        resident: ResidentId,
        parcels: Vec<ParcelId>,
        pin: Option<String>,
        qr: Option<String>,
        kind: NotifyKind,
        /// The live pickup code the message is about. With `pin` given (the code was just
        /// issued), the shell keeps the PIN, sealed in its local table, while the code is live
        /// (`Core::code_is_live`); with `pin: None`, it adds the PIN it kept (a reminder, a
        /// resend), so the resident always has a code that works.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<CodeId>,
    },
    /// Send a carrier a code just issued to it (`Request::SendCarrierCode`); the shell puts it in
    /// the local outbox, like `Notify`. The only place a carrier code the core drew leaves it.
    NotifyCarrier {
        carrier: CarrierId,
        code: String,
        /// The id of the fact that issued it: how staff name it to revoke it.
        code_ref: String,
    },
    RaiseAlert {
        alert: AlertId,
        kind: AlertKind,
        bank: Option<String>,
        door: Option<u16>,
        message: String,
    },
    ClearAlert {
        alert: AlertId,
    },
    /// Compartment state changed: republish its retained state.
    PublishCompartment {
        bank: String,
        door: u16,
    },
    /// Bank state changed (online/offline, keypad lockout): republish it.
    PublishBank {
        bank: String,
    },
    /// News for the kiosk at `bank` about a drop-off or pickup.
    Kiosk {
        bank: String,
        reservation: Option<ReservationId>,
        update: KioskUpdate,
    },
}

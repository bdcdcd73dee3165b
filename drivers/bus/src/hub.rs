//! What the hub publishes (bank state, alerts, kiosk updates) and what kiosks exchange with it
//! (requests and replies): the public contract of `docs/mqtt-api.md`, as types of their own.
//!
//! The workflow core has types of the same shape, and the hub converts at the edge
//! (`locker-app`'s engine and `locker-hub`'s inbound decoder). A refactor inside the core
//! therefore cannot change what a kiosk or a staff tool receives: only a change here can, and
//! `docs/mqtt-api.md`'s examples are parsed and round-tripped against these types by a test.

use serde::{Deserialize, Serialize};

/// A compartment's size class. Kiosks may also send the short names (`xs`, `s`, `m`, `l`, `xl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    #[serde(alias = "xs")]
    ExtraSmall,
    #[serde(alias = "s")]
    Small,
    #[serde(alias = "m")]
    Medium,
    #[serde(alias = "l")]
    Large,
    #[serde(alias = "xl")]
    ExtraLarge,
    Bulk,
}

/// A compartment's temperature class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Temperature {
    #[default]
    Ambient,
    Refrigerated,
    Frozen,
}

/// What a compartment is doing, from a person's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompartmentStatus {
    Free,
    Reserved,
    Occupied,
    /// Holds parcels whose hold ran out.
    Expired,
    /// Holds parcels that concurrent deliveries both claim.
    Disputed,
    OutOfService,
    /// The bank's controller, or the board behind this door, does not answer.
    Offline,
}

/// One compartment in a [`BankState`]: never whose parcels it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompartmentState {
    pub door: u16,
    pub size: Size,
    pub temperature: Temperature,
    pub accessible: bool,
    pub status: CompartmentStatus,
    pub door_open: bool,
}

/// Payload of `BankTopics::state`: published by the hub, retained, whenever a compartment of
/// the bank changes and for every bank at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankState {
    pub bank: String,
    /// `None` before the bank's controller has been heard from.
    pub online: Option<bool>,
    /// Unix ms until which the bank's keypad refuses codes (after too many wrong ones).
    pub keypad_locked_until: Option<u64>,
    pub compartments: Vec<CompartmentState>,
    /// Unix ms, when this state was computed.
    pub at: u64,
}

/// Payload of `ALERTS`: an alert raised or cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AlertEvent {
    Raised {
        alert: String,
        /// `door_ajar`, `forced_open`, `unlock_failed`, ... (`docs/mqtt-api.md`, "Alerts").
        kind: String,
        bank: Option<String>,
        door: Option<u16>,
        message: String,
        /// For a refrigerated unit's alarm: its unit, and its sensor (`null` for an alarm of
        /// the whole unit). Both are absent for any other alert.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        sensor: Option<Option<String>>,
    },
    Cleared {
        alert: String,
    },
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Why a reservation ended without a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    Cancelled,
    ClosedEmpty,
    Expired,
    DoorFailed,
}

/// What happened after a reply, for the kiosk that is waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KioskUpdate {
    DeliveryCompleted {
        parcels: Vec<String>,
    },
    ReservationReleased {
        reason: ReleaseReason,
    },
    /// The reserved door failed to unlock; this one is offered (`open_reservation` opens it).
    DoorOffered {
        failed_door: u16,
        door: u16,
    },
    /// The door failed and nothing else fits: the parcel goes to the desk.
    Overflow {
        parcel: String,
    },
    /// A pickup door failed to unlock; ask at the desk.
    PickupDoorFailed {
        door: u16,
    },
    /// Nobody could confirm the unlock: the door may be open; it is not opened again by itself.
    DoorMayBeOpen {
        door: u16,
    },
    /// The unlock could not be sent in time and the door did not move: try again.
    DoorNotOpened {
        door: u16,
    },
}

/// Payload of `BankTopics::kiosk_update`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskUpdateMessage {
    /// The drop-off it is about, when it is about one.
    pub reservation: Option<String>,
    pub update: KioskUpdate,
}

/// A parcel's measured size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    pub length_mm: u32,
    pub width_mm: u32,
    pub height_mm: u32,
}

/// How a carrier names the recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Recipient {
    /// A unit number; it must have exactly one resident.
    Unit {
        unit: String,
    },
    Resident {
        resident: String,
    },
    /// A scanned tracking number that was pre-advised.
    Tracking {
        tracking: String,
    },
}

/// What a kiosk may ask: what a carrier or a resident does at a bank. Anything else is not a
/// kiosk request and does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KioskAction {
    SuggestSize {
        dimensions: Dimensions,
    },
    StartDropOff {
        bank: String,
        carrier_code: String,
        recipient: Recipient,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<Size>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dimensions: Option<Dimensions>,
        #[serde(default)]
        temperature: Temperature,
        /// The parcel fits with the resident's earlier parcels from the same carrier.
        #[serde(default)]
        share: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracking: Option<String>,
    },
    ConfirmParcel {
        reservation: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tracking: Option<String>,
    },
    OpenReservation {
        reservation: String,
    },
    CancelDropOff {
        reservation: String,
    },
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
}

/// Payload of `BankTopics::kiosk_request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskRequest {
    /// Chosen by the kiosk; the same id again returns the first answer and does nothing.
    pub request_id: String,
    /// Where to answer: the kiosk's own `…/kiosk/reply/{kiosk}` or below it. MQTT 5 kiosks may
    /// use the Response Topic property instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(flatten)]
    pub action: KioskAction,
}

/// Why a request was refused (`docs/mqtt-api.md`, "Replies").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    BadCredential,
    KeypadLocked,
    AmbiguousRecipient,
    AmbiguousCode,
    BankOffline,
    NothingToCollect,
    NotAllowedNow,
    RequestIdReused,
    RateLimited,
    StorageUnavailable,
    NotPermitted,
    AlreadyExists,
}

/// What the hub answers a kiosk request with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KioskOutcome {
    SizeSuggested {
        size: Size,
    },
    /// A compartment is reserved and its door is being unlocked.
    Reserved {
        reservation: String,
        bank: String,
        door: u16,
        size: Size,
    },
    ParcelConfirmed {
        reservation: String,
        parcel: String,
    },
    DropOffCancelled {
        reservation: String,
    },
    /// No compartment fits: the parcel is recorded at the front desk.
    LockerFull {
        parcel: String,
    },
    /// These doors are being unlocked.
    Opening {
        bank: String,
        doors: Vec<u16>,
        parcels: Vec<String>,
    },
    Accepted,
    Rejected {
        code: RejectCode,
        message: String,
        /// For `keypad_locked`: Unix ms when the keypad opens again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<u64>,
    },
}

/// Payload of a reply on the kiosk's reply topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskReply {
    pub request_id: String,
    #[serde(flatten)]
    pub outcome: KioskOutcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staff_action_is_not_a_kiosk_request() {
        let staff = r#"{"request_id":"k","type":"staff_open_bank","bank":"A","reason":"x","by":{"kind":"cloud"}}"#;
        assert!(serde_json::from_str::<KioskRequest>(staff).is_err());
        let pin = r#"{"request_id":"k","type":"pickup_by_pin","bank":"A","pin":"1"}"#;
        let r: KioskRequest = serde_json::from_str(pin).expect("a kiosk request");
        assert_eq!(
            r.action,
            KioskAction::PickupByPin {
                bank: "A".into(),
                pin: "1".into()
            }
        );
    }

    #[test]
    fn a_unit_alarm_always_names_its_sensor_even_when_it_has_none() {
        let whole_unit = AlertEvent::Raised {
            alert: "a".into(),
            kind: "unit_door_open".into(),
            bank: Some("B".into()),
            door: None,
            message: "m".into(),
            unit: Some("fridge".into()),
            sensor: Some(None),
        };
        let json = serde_json::to_value(&whole_unit).expect("json");
        assert_eq!(json["sensor"], serde_json::Value::Null);
        assert!(json.as_object().is_some_and(|o| o.contains_key("sensor")));
        assert_eq!(
            serde_json::from_value::<AlertEvent>(json).expect("parses back"),
            whole_unit
        );
        let door = r#"{"event":"raised","alert":"a","kind":"door_ajar","bank":"A","door":1,"message":"m"}"#;
        let parsed: AlertEvent = serde_json::from_str(door).expect("an alert");
        assert_eq!(
            serde_json::to_value(&parsed).expect("json"),
            serde_json::from_str::<serde_json::Value>(door).expect("json"),
            "no unit, no sensor"
        );
    }

    #[test]
    fn short_size_names_are_read_and_long_ones_written() {
        let s: Size = serde_json::from_str("\"s\"").expect("short name");
        assert_eq!(serde_json::to_string(&s).expect("json"), "\"small\"");
    }
}

//! The edge between the core's types and the bus's public payloads (`locker_bus::hub`): every
//! message the hub publishes and every kiosk request it reads is converted here, in one place.
//! The matches are exhaustive, so a new variant in the core does not compile until someone says
//! what it is on the wire; the tests check that each shared name is spelled the same.

use locker_bus::hub as bus;
use locker_core::{
    Alert, Command, CompartmentStatus, CompartmentView, Dimensions, KioskUpdate, Outcome,
    Recipient, RejectCode, ReleaseReason, Reply, Request, RequestId, ReservationId, ResidentId,
    Size, TempClass,
};

pub fn size(s: Size) -> bus::Size {
    match s {
        Size::ExtraSmall => bus::Size::ExtraSmall,
        Size::Small => bus::Size::Small,
        Size::Medium => bus::Size::Medium,
        Size::Large => bus::Size::Large,
        Size::ExtraLarge => bus::Size::ExtraLarge,
        Size::Bulk => bus::Size::Bulk,
    }
}

fn size_in(s: bus::Size) -> Size {
    match s {
        bus::Size::ExtraSmall => Size::ExtraSmall,
        bus::Size::Small => Size::Small,
        bus::Size::Medium => Size::Medium,
        bus::Size::Large => Size::Large,
        bus::Size::ExtraLarge => Size::ExtraLarge,
        bus::Size::Bulk => Size::Bulk,
    }
}

pub fn temperature(t: TempClass) -> bus::Temperature {
    match t {
        TempClass::Ambient => bus::Temperature::Ambient,
        TempClass::Refrigerated => bus::Temperature::Refrigerated,
        TempClass::Frozen => bus::Temperature::Frozen,
    }
}

fn temperature_in(t: bus::Temperature) -> TempClass {
    match t {
        bus::Temperature::Ambient => TempClass::Ambient,
        bus::Temperature::Refrigerated => TempClass::Refrigerated,
        bus::Temperature::Frozen => TempClass::Frozen,
    }
}

pub fn status(s: CompartmentStatus) -> bus::CompartmentStatus {
    match s {
        CompartmentStatus::Free => bus::CompartmentStatus::Free,
        CompartmentStatus::Reserved => bus::CompartmentStatus::Reserved,
        CompartmentStatus::Occupied => bus::CompartmentStatus::Occupied,
        CompartmentStatus::Expired => bus::CompartmentStatus::Expired,
        CompartmentStatus::Disputed => bus::CompartmentStatus::Disputed,
        CompartmentStatus::OutOfService => bus::CompartmentStatus::OutOfService,
        CompartmentStatus::Offline => bus::CompartmentStatus::Offline,
    }
}

pub fn reject_code(c: RejectCode) -> bus::RejectCode {
    match c {
        RejectCode::InvalidInput => bus::RejectCode::InvalidInput,
        RejectCode::UnknownBank => bus::RejectCode::UnknownBank,
        RejectCode::UnknownDoor => bus::RejectCode::UnknownDoor,
        RejectCode::UnknownResident => bus::RejectCode::UnknownResident,
        RejectCode::UnknownCarrier => bus::RejectCode::UnknownCarrier,
        RejectCode::UnknownParcel => bus::RejectCode::UnknownParcel,
        RejectCode::UnknownReservation => bus::RejectCode::UnknownReservation,
        RejectCode::UnknownUnlock => bus::RejectCode::UnknownUnlock,
        RejectCode::UnknownAlert => bus::RejectCode::UnknownAlert,
        RejectCode::BadCredential => bus::RejectCode::BadCredential,
        RejectCode::KeypadLocked => bus::RejectCode::KeypadLocked,
        RejectCode::AmbiguousRecipient => bus::RejectCode::AmbiguousRecipient,
        RejectCode::AmbiguousCode => bus::RejectCode::AmbiguousCode,
        RejectCode::BankOffline => bus::RejectCode::BankOffline,
        RejectCode::NothingToCollect => bus::RejectCode::NothingToCollect,
        RejectCode::NotAllowedNow => bus::RejectCode::NotAllowedNow,
        RejectCode::RequestIdReused => bus::RejectCode::RequestIdReused,
        RejectCode::RateLimited => bus::RejectCode::RateLimited,
        RejectCode::StorageUnavailable => bus::RejectCode::StorageUnavailable,
        RejectCode::NotPermitted => bus::RejectCode::NotPermitted,
        RejectCode::AlreadyExists => bus::RejectCode::AlreadyExists,
    }
}

pub fn release_reason(r: ReleaseReason) -> bus::ReleaseReason {
    match r {
        ReleaseReason::Cancelled => bus::ReleaseReason::Cancelled,
        ReleaseReason::ClosedEmpty => bus::ReleaseReason::ClosedEmpty,
        ReleaseReason::Expired => bus::ReleaseReason::Expired,
        ReleaseReason::DoorFailed => bus::ReleaseReason::DoorFailed,
    }
}

/// A bank's public, retained state: what each compartment is doing, never whose parcels it holds.
pub fn bank_state<'a>(
    bank: &str,
    online: Option<bool>,
    keypad_locked_until: Option<u64>,
    compartments: impl IntoIterator<Item = &'a CompartmentView>,
    at: u64,
) -> bus::BankState {
    bus::BankState {
        bank: bank.to_owned(),
        online,
        keypad_locked_until,
        compartments: compartments
            .into_iter()
            .map(|c| bus::CompartmentState {
                door: c.door,
                size: size(c.size),
                temperature: temperature(c.temperature),
                accessible: c.accessible,
                status: status(c.status),
                door_open: c.door_open,
            })
            .collect(),
        at,
    }
}

/// The name of an alert's kind on the wire (`door_ajar`), as the core spells it.
pub fn alert_kind(kind: &locker_core::AlertKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{kind:?}"),
    }
}

/// An alert raised: from the core's alert (with its unit and sensor, for a refrigerated unit).
pub fn alert_raised(alert: &Alert) -> bus::AlertEvent {
    bus::AlertEvent::Raised {
        alert: alert.id.to_string(),
        kind: alert_kind(&alert.kind),
        bank: alert.bank.clone(),
        door: alert.door,
        message: alert.message.clone(),
        unit: alert.unit.as_ref().map(|u| u.unit.clone()),
        sensor: alert.unit.as_ref().map(|u| u.sensor.clone()),
    }
}

pub fn kiosk_update(reservation: Option<String>, update: &KioskUpdate) -> bus::KioskUpdateMessage {
    let ids = |v: &[locker_core::ParcelId]| v.iter().map(|p| p.to_string()).collect();
    let update = match update {
        KioskUpdate::DeliveryCompleted { parcels } => bus::KioskUpdate::DeliveryCompleted {
            parcels: ids(parcels),
        },
        KioskUpdate::ReservationReleased { reason } => bus::KioskUpdate::ReservationReleased {
            reason: release_reason(*reason),
        },
        KioskUpdate::DoorOffered { failed_door, door } => bus::KioskUpdate::DoorOffered {
            failed_door: *failed_door,
            door: *door,
        },
        KioskUpdate::Overflow { parcel } => bus::KioskUpdate::Overflow {
            parcel: parcel.to_string(),
        },
        KioskUpdate::PickupDoorFailed { door } => {
            bus::KioskUpdate::PickupDoorFailed { door: *door }
        }
        KioskUpdate::DoorMayBeOpen { door } => bus::KioskUpdate::DoorMayBeOpen { door: *door },
        KioskUpdate::DoorNotOpened { door } => bus::KioskUpdate::DoorNotOpened { door: *door },
    };
    bus::KioskUpdateMessage {
        reservation,
        update,
    }
}

/// A reply to a kiosk. Kiosk requests cannot have staff outcomes (a desk check-in, an audit):
/// should one ever reach here it goes out as `accepted`, which says nothing more.
pub fn kiosk_reply(reply: &Reply) -> bus::KioskReply {
    let ids = |v: &[locker_core::ParcelId]| v.iter().map(|p| p.to_string()).collect();
    let outcome = match &reply.outcome {
        Outcome::SizeSuggested { size: s } => bus::KioskOutcome::SizeSuggested { size: size(*s) },
        Outcome::Reserved {
            reservation,
            bank,
            door,
            size: s,
        } => bus::KioskOutcome::Reserved {
            reservation: reservation.to_string(),
            bank: bank.clone(),
            door: *door,
            size: size(*s),
        },
        Outcome::ParcelConfirmed {
            reservation,
            parcel,
        } => bus::KioskOutcome::ParcelConfirmed {
            reservation: reservation.to_string(),
            parcel: parcel.to_string(),
        },
        Outcome::DropOffCancelled { reservation } => bus::KioskOutcome::DropOffCancelled {
            reservation: reservation.to_string(),
        },
        Outcome::LockerFull { parcel } => bus::KioskOutcome::LockerFull {
            parcel: parcel.to_string(),
        },
        Outcome::Opening {
            bank,
            doors,
            parcels,
        } => bus::KioskOutcome::Opening {
            bank: bank.clone(),
            doors: doors.clone(),
            parcels: ids(parcels),
        },
        Outcome::CheckedIn { .. }
        | Outcome::Audit { .. }
        | Outcome::RollImported { .. }
        | Outcome::CarrierCodeSent { .. }
        | Outcome::Accepted => bus::KioskOutcome::Accepted,
        Outcome::Rejected(r) => bus::KioskOutcome::Rejected {
            code: reject_code(r.code),
            message: r.message.clone(),
            until: r.until.map(|t| t.0),
        },
    };
    bus::KioskReply {
        request_id: reply.request_id.to_string(),
        outcome,
    }
}

/// A kiosk's request as the core's command.
pub fn kiosk_command(request: bus::KioskRequest) -> Command {
    let dimensions = |d: bus::Dimensions| Dimensions {
        length_mm: d.length_mm,
        width_mm: d.width_mm,
        height_mm: d.height_mm,
    };
    let request_id = RequestId(request.request_id);
    let request = match request.action {
        bus::KioskAction::SuggestSize { dimensions: d } => Request::SuggestSize {
            dimensions: dimensions(d),
        },
        bus::KioskAction::StartDropOff {
            bank,
            carrier_code,
            recipient,
            size,
            dimensions: d,
            temperature,
            share,
            tracking,
        } => Request::StartDropOff {
            bank,
            carrier_code,
            recipient: match recipient {
                bus::Recipient::Unit { unit } => Recipient::Unit { unit },
                bus::Recipient::Resident { resident } => Recipient::Resident {
                    resident: ResidentId(resident),
                },
                bus::Recipient::Tracking { tracking } => Recipient::Tracking { tracking },
            },
            size: size.map(size_in),
            dimensions: d.map(dimensions),
            temperature: temperature_in(temperature),
            share,
            tracking,
        },
        bus::KioskAction::ConfirmParcel {
            reservation,
            tracking,
        } => Request::ConfirmParcel {
            reservation: ReservationId(reservation),
            tracking,
        },
        bus::KioskAction::OpenReservation { reservation } => Request::OpenReservation {
            reservation: ReservationId(reservation),
        },
        bus::KioskAction::CancelDropOff { reservation } => Request::CancelDropOff {
            reservation: ReservationId(reservation),
        },
        bus::KioskAction::PickupByPin { bank, pin } => Request::PickupByPin { bank, pin },
        bus::KioskAction::PickupByQr { bank, token } => Request::PickupByQr { bank, token },
        bus::KioskAction::PickupByBadge { bank, badge } => Request::PickupByBadge { bank, badge },
    };
    Command {
        request_id,
        request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same name on both sides of the edge, for every variant the core has.
    fn same<C: serde::Serialize, B: serde::Serialize>(core: C, bus: B) {
        assert_eq!(
            serde_json::to_string(&core).expect("core json"),
            serde_json::to_string(&bus).expect("bus json")
        );
    }

    #[test]
    fn each_shared_name_is_spelled_as_the_core_spells_it() {
        for s in [
            Size::ExtraSmall,
            Size::Small,
            Size::Medium,
            Size::Large,
            Size::ExtraLarge,
            Size::Bulk,
        ] {
            same(s, size(s));
            assert_eq!(size_in(size(s)), s);
        }
        for t in [
            TempClass::Ambient,
            TempClass::Refrigerated,
            TempClass::Frozen,
        ] {
            same(t, temperature(t));
            assert_eq!(temperature_in(temperature(t)), t);
        }
        for s in [
            CompartmentStatus::Free,
            CompartmentStatus::Reserved,
            CompartmentStatus::Occupied,
            CompartmentStatus::Expired,
            CompartmentStatus::Disputed,
            CompartmentStatus::OutOfService,
            CompartmentStatus::Offline,
        ] {
            same(s, status(s));
        }
        for r in [
            ReleaseReason::Cancelled,
            ReleaseReason::ClosedEmpty,
            ReleaseReason::Expired,
            ReleaseReason::DoorFailed,
        ] {
            same(r, release_reason(r));
        }
        // Every reject code: the bus's list is parsed from the core's names.
        for name in [
            "invalid_input",
            "unknown_bank",
            "unknown_door",
            "unknown_resident",
            "unknown_carrier",
            "unknown_parcel",
            "unknown_reservation",
            "unknown_unlock",
            "unknown_alert",
            "bad_credential",
            "keypad_locked",
            "ambiguous_recipient",
            "ambiguous_code",
            "bank_offline",
            "nothing_to_collect",
            "not_allowed_now",
            "request_id_reused",
            "rate_limited",
            "storage_unavailable",
            "not_permitted",
            "already_exists",
        ] {
            let core: RejectCode =
                serde_json::from_value(serde_json::Value::String(name.into())).expect(name);
            same(core, reject_code(core));
        }
    }

    #[test]
    fn a_reply_and_an_update_read_as_the_core_wrote_them_before_the_edge_existed() {
        // The kiosk wire was the core's own serialization: the edge must not change a byte.
        let reply = Reply {
            request_id: RequestId("k1".into()),
            outcome: Outcome::Opening {
                bank: "A".into(),
                doors: vec![9],
                parcels: vec![locker_core::ParcelId("p-1".into())],
            },
        };
        same(&reply, kiosk_reply(&reply));
        let refused = Reply {
            request_id: RequestId("k2".into()),
            outcome: Outcome::Rejected(locker_core::Rejection {
                code: RejectCode::KeypadLocked,
                message: "wait".into(),
                until: Some(locker_core::Millis(5)),
            }),
        };
        same(&refused, kiosk_reply(&refused));
        let update = KioskUpdate::ReservationReleased {
            reason: ReleaseReason::ClosedEmpty,
        };
        assert_eq!(
            serde_json::to_value(kiosk_update(Some("r".into()), &update)).expect("json"),
            serde_json::json!({"reservation": "r", "update": update})
        );
    }
}

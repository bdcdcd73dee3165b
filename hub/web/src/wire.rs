//! The JSON API's response types (`docs/http-api.md`): what integrations read. They are
//! converted from the core's views here, so a refactor inside the core cannot change an answer;
//! the shared vocabulary (sizes, temperature classes, compartment states) is the bus schema's
//! (`locker_bus::hub`), converted by `locker_app::wire`. A unit test checks that each answer is
//! the same JSON the core's view would have been.

use locker_app::engine::{Pending, Queued};
use locker_app::wire;
use locker_bus::hub::{CompartmentStatus, RejectCode, Size, Temperature};
use locker_core::{
    Alert, BankView, CarrierView, CompartmentView, Location, NotifyKind, Outcome, ParcelView,
    Reply, ResidentView,
};
use serde::{Deserialize, Serialize};

/// One compartment in `GET /api/v1/compartments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompartmentJson {
    pub bank: String,
    pub door: u16,
    pub size: Size,
    pub temperature: Temperature,
    pub accessible: bool,
    pub status: CompartmentStatus,
    pub out_of_service: bool,
    pub door_open: bool,
    /// Whose parcels are inside (staff only: this answer needs a staff login).
    pub resident: Option<String>,
    pub parcels: Vec<String>,
    pub reservation: Option<String>,
    pub pending_unlock: Option<String>,
}

impl From<&CompartmentView> for CompartmentJson {
    fn from(c: &CompartmentView) -> Self {
        CompartmentJson {
            bank: c.bank.clone(),
            door: c.door,
            size: wire::size(c.size),
            temperature: wire::temperature(c.temperature),
            accessible: c.accessible,
            status: wire::status(c.status),
            out_of_service: c.out_of_service,
            door_open: c.door_open,
            resident: c.resident.as_ref().map(|r| r.to_string()),
            parcels: c.parcels.iter().map(|p| p.to_string()).collect(),
            reservation: c.reservation.as_ref().map(|r| r.to_string()),
            pending_unlock: c.pending_unlock.as_ref().map(|u| u.to_string()),
        }
    }
}

/// One bank in `GET /api/v1/banks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankJson {
    pub bank: String,
    pub online: bool,
    /// Unix ms until which the keypad refuses codes.
    pub keypad_locked_until: Option<u64>,
}

impl From<&BankView> for BankJson {
    fn from(b: &BankView) -> Self {
        BankJson {
            bank: b.bank.clone(),
            online: b.online,
            keypad_locked_until: b.keypad_locked_until.map(|t| t.0),
        }
    }
}

/// Where a parcel is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LocationJson {
    Compartment { bank: String, door: u16 },
    Desk,
    PickedUp,
    Returned,
    Missing,
    Disputed { bank: String, door: u16 },
}

impl From<&Location> for LocationJson {
    fn from(l: &Location) -> Self {
        match l {
            Location::Compartment { bank, door } => LocationJson::Compartment {
                bank: bank.clone(),
                door: *door,
            },
            Location::Desk => LocationJson::Desk,
            Location::PickedUp => LocationJson::PickedUp,
            Location::Returned => LocationJson::Returned,
            Location::Missing => LocationJson::Missing,
            Location::Disputed { bank, door } => LocationJson::Disputed {
                bank: bank.clone(),
                door: *door,
            },
        }
    }
}

/// Why a parcel is flagged after a temperature excursion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerishableJson {
    pub unit: String,
    pub since: u64,
}

/// One parcel in `GET /api/v1/parcels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelJson {
    pub id: String,
    pub resident: Option<String>,
    pub carrier: Option<String>,
    pub tracking: Option<String>,
    pub size: Option<Size>,
    pub temperature: Temperature,
    pub location: LocationJson,
    pub depositing: bool,
    pub delivered_at: u64,
    pub expires_at: Option<u64>,
    pub hold_until: Option<u64>,
    pub expired: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perishable: Option<PerishableJson>,
}

impl From<&ParcelView> for ParcelJson {
    fn from(p: &ParcelView) -> Self {
        ParcelJson {
            id: p.id.to_string(),
            resident: p.resident.as_ref().map(|r| r.to_string()),
            carrier: p.carrier.as_ref().map(|c| c.to_string()),
            tracking: p.tracking.clone(),
            size: p.size.map(wire::size),
            temperature: wire::temperature(p.temperature),
            location: (&p.location).into(),
            depositing: p.depositing,
            delivered_at: p.delivered_at.0,
            expires_at: p.expires_at.map(|t| t.0),
            hold_until: p.hold_until.map(|t| t.0),
            expired: p.expired,
            perishable: p.perishable.as_ref().map(|f| PerishableJson {
                unit: f.unit.clone(),
                since: f.since.0,
            }),
        }
    }
}

/// A refrigerated unit's alarm: its unit, sensor, and when the condition began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRefJson {
    pub unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
}

/// One open alert in `GET /api/v1/alerts` (and a unit's alarms in `GET /api/v1/units`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertJson {
    pub id: String,
    /// `door_ajar`, `forced_open`, ... (`docs/mqtt-api.md`, "Alerts").
    pub kind: String,
    pub bank: Option<String>,
    pub door: Option<u16>,
    pub parcel: Option<String>,
    pub message: String,
    pub raised_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitRefJson>,
}

impl From<&Alert> for AlertJson {
    fn from(a: &Alert) -> Self {
        AlertJson {
            id: a.id.to_string(),
            kind: wire::alert_kind(&a.kind),
            bank: a.bank.clone(),
            door: a.door,
            parcel: a.parcel.as_ref().map(|p| p.to_string()),
            message: a.message.clone(),
            raised_at: a.raised_at.0,
            unit: a.unit.as_ref().map(|u| UnitRefJson {
                unit: u.unit.clone(),
                sensor: u.sensor.clone(),
                since: u.since.map(|t| t.0),
            }),
        }
    }
}

/// One resident in `GET /api/v1/residents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidentJson {
    pub resident: String,
    pub unit: String,
    pub accessible: bool,
    /// False once deactivated (moved out).
    pub active: bool,
    pub hold_until: Option<u64>,
    /// How many badges are registered to them (never the badge ids).
    pub badges: usize,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub language: Option<String>,
    /// Which channels tell them: `both` (when `null`), `email`, `webhook`, `none`.
    #[serde(default)]
    pub notify: Option<String>,
    /// A second person told too.
    #[serde(default)]
    pub secondary_email: Option<String>,
    #[serde(default)]
    pub secondary_phone: Option<String>,
    /// Lease and tenancy dates (`YYYY-MM-DD`) as the rent roll gave them.
    #[serde(default, skip_serializing_if = "locker_core::Tenancy::is_empty")]
    pub tenancy: locker_core::Tenancy,
    /// The rent roll decides whether they live here.
    #[serde(default)]
    pub on_roll: bool,
    /// Missing from the roll since (Unix ms): moved out at an import after the grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_roll_since: Option<u64>,
}

impl From<&ResidentView> for ResidentJson {
    fn from(r: &ResidentView) -> Self {
        ResidentJson {
            resident: r.resident.to_string(),
            unit: r.unit.clone(),
            accessible: r.accessible,
            active: r.active,
            hold_until: r.hold_until.map(|t| t.0),
            badges: r.badges,
            name: r.name.clone(),
            email: r.email.clone(),
            phone: r.phone.clone(),
            language: r.language.clone(),
            notify: r.notify.clone(),
            secondary_email: r.secondary_email.clone(),
            secondary_phone: r.secondary_phone.clone(),
            tenancy: r.tenancy.clone(),
            on_roll: r.on_roll,
            off_roll_since: r.off_roll_since.map(|t| t.0),
        }
    }
}

/// A live carrier code, named by its reference (never the code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeJson {
    pub code_ref: String,
    pub issued_at: u64,
}

/// One carrier in `GET /api/v1/carriers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierJson {
    pub carrier: String,
    pub name: String,
    /// Deactivated: its codes no longer open anything.
    pub revoked: bool,
    /// Where codes sent to the carrier go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub codes: Vec<CodeJson>,
}

impl From<&CarrierView> for CarrierJson {
    fn from(c: &CarrierView) -> Self {
        CarrierJson {
            carrier: c.carrier.to_string(),
            name: c.name.clone(),
            revoked: c.revoked,
            email: c.email.clone(),
            codes: c
                .codes
                .iter()
                .map(|k| CodeJson {
                    code_ref: k.code_ref.clone(),
                    issued_at: k.issued_at.0,
                })
                .collect(),
        }
    }
}

/// What a state-changing call answers (`POST /api/v1/commands` and the typed routes): the
/// request id and what came of it, `type` naming it (`docs/http-api.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyJson {
    pub request_id: String,
    #[serde(flatten)]
    pub outcome: OutcomeJson,
}

/// What came of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutcomeJson {
    SizeSuggested {
        size: Size,
    },
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
    LockerFull {
        parcel: String,
    },
    Opening {
        bank: String,
        doors: Vec<u16>,
        parcels: Vec<String>,
    },
    CheckedIn {
        parcel: String,
    },
    Audit {
        compartments: Vec<CompartmentJson>,
    },
    /// A rent roll was imported (`PUT /api/v1/residents`, `POST /api/v1/roll`).
    RollImported {
        summary: locker_core::RollSummary,
    },
    Accepted,
    /// A new code is in the outbox for the carrier's email address; only its reference is said.
    CarrierCodeSent {
        carrier: String,
        code_ref: String,
    },
    Rejected {
        code: RejectCode,
        message: String,
        /// For `keypad_locked`: Unix ms when the keypad opens again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<u64>,
    },
}

impl From<&Reply> for ReplyJson {
    fn from(r: &Reply) -> Self {
        let ids = |v: &[locker_core::ParcelId]| v.iter().map(|p| p.to_string()).collect();
        let outcome = match &r.outcome {
            Outcome::SizeSuggested { size } => OutcomeJson::SizeSuggested {
                size: wire::size(*size),
            },
            Outcome::Reserved {
                reservation,
                bank,
                door,
                size,
            } => OutcomeJson::Reserved {
                reservation: reservation.to_string(),
                bank: bank.clone(),
                door: *door,
                size: wire::size(*size),
            },
            Outcome::ParcelConfirmed {
                reservation,
                parcel,
            } => OutcomeJson::ParcelConfirmed {
                reservation: reservation.to_string(),
                parcel: parcel.to_string(),
            },
            Outcome::DropOffCancelled { reservation } => OutcomeJson::DropOffCancelled {
                reservation: reservation.to_string(),
            },
            Outcome::LockerFull { parcel } => OutcomeJson::LockerFull {
                parcel: parcel.to_string(),
            },
            Outcome::Opening {
                bank,
                doors,
                parcels,
            } => OutcomeJson::Opening {
                bank: bank.clone(),
                doors: doors.clone(),
                parcels: ids(parcels),
            },
            Outcome::CheckedIn { parcel } => OutcomeJson::CheckedIn {
                parcel: parcel.to_string(),
            },
            Outcome::RollImported { summary } => OutcomeJson::RollImported {
                summary: summary.clone(),
            },
            Outcome::Audit { compartments } => OutcomeJson::Audit {
                compartments: list(compartments),
            },
            Outcome::Accepted => OutcomeJson::Accepted,
            Outcome::CarrierCodeSent { carrier, code_ref } => OutcomeJson::CarrierCodeSent {
                carrier: carrier.to_string(),
                code_ref: code_ref.clone(),
            },
            Outcome::Rejected(rejection) => OutcomeJson::Rejected {
                code: wire::reject_code(rejection.code),
                message: rejection.message.clone(),
                until: rejection.until.map(|t| t.0),
            },
        };
        ReplyJson {
            request_id: r.request_id.to_string(),
            outcome,
        }
    }
}

/// One item of `GET /api/v1/outbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItemJson {
    pub id: String,
    pub notification: OutboxNotificationJson,
    /// How the hub's own sender stands with it (`[notify]`); absent before its first try.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryJson>,
}

/// A notification's delivery record: `state` (`queued`, `retrying`, `failed`), `attempts`,
/// `next_at` (ms), `last_error`, and the channels that took it (`sent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryJson {
    pub state: DeliveryStateJson,
    pub attempts: u32,
    pub next_at: u64,
    pub last_error: Option<String>,
    pub sent: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStateJson {
    Queued,
    Retrying,
    Failed,
}

impl From<&locker_app::notify::Delivery> for DeliveryJson {
    fn from(d: &locker_app::notify::Delivery) -> Self {
        use locker_app::notify::DeliveryState as S;
        DeliveryJson {
            state: match d.state {
                S::Queued => DeliveryStateJson::Queued,
                S::Retrying => DeliveryStateJson::Retrying,
                S::Failed => DeliveryStateJson::Failed,
            },
            attempts: d.attempts,
            next_at: d.next_at_ms,
            last_error: d.last_error.clone(),
            sent: d.sent.clone(),
        }
    }
}

/// A notification waiting to be sent, with its plaintext code; or why it cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OutboxNotificationJson {
    Notify(NotifyJson),
    Undecodable { undecodable: String },
}

/// `{"type": "notify", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NotifyJson {
    Notify {
        resident: String,
        parcels: Vec<String>,
        pin: Option<String>,
        qr: Option<String>,
        kind: NotifyKindJson,
    },
    /// A carrier's new code, for the carrier's registered email address.
    CarrierCode {
        carrier: String,
        code: String,
        code_ref: String,
    },
}

/// What the notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKindJson {
    Delivered,
    Reminder,
    Expiring,
    Expired,
    AtDesk,
    Withdrawn,
    PickedUp,
}

impl From<(String, Pending)> for OutboxItemJson {
    fn from((id, pending): (String, Pending)) -> Self {
        let notification = match pending {
            Pending::Notification(Queued {
                resident,
                parcels,
                pin,
                qr,
                kind,
            }) => OutboxNotificationJson::Notify(NotifyJson::Notify {
                resident: resident.to_string(),
                parcels: parcels.iter().map(|p| p.to_string()).collect(),
                pin,
                qr,
                kind: match kind {
                    NotifyKind::Delivered => NotifyKindJson::Delivered,
                    NotifyKind::Reminder => NotifyKindJson::Reminder,
                    NotifyKind::Expiring => NotifyKindJson::Expiring,
                    NotifyKind::Expired => NotifyKindJson::Expired,
                    NotifyKind::AtDesk => NotifyKindJson::AtDesk,
                    NotifyKind::Withdrawn => NotifyKindJson::Withdrawn,
                    NotifyKind::PickedUp => NotifyKindJson::PickedUp,
                },
            }),
            Pending::CarrierCode(c) => OutboxNotificationJson::Notify(NotifyJson::CarrierCode {
                carrier: c.carrier.to_string(),
                code: c.code,
                code_ref: c.code_ref,
            }),
            Pending::Undecodable(why) => OutboxNotificationJson::Undecodable { undecodable: why },
        };
        OutboxItemJson {
            id,
            notification,
            delivery: None,
        }
    }
}

/// Convert a list of views.
pub fn list<'a, V: 'a, J: From<&'a V>>(views: &'a [V]) -> Vec<J> {
    views.iter().map(J::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use locker_core::{
        AlertId, AlertKind, CarrierCodeView, CarrierId, CompartmentStatus as CoreStatus, Millis,
        ParcelId, PerishableFlag, ResidentId, Size as CoreSize, TempClass, UnitRef,
    };

    /// The answer is the JSON the core's view was before these types existed.
    fn same<C: Serialize, J: Serialize>(core: &C, json: &J) {
        assert_eq!(
            serde_json::to_value(core).expect("core json"),
            serde_json::to_value(json).expect("http json")
        );
    }

    #[test]
    fn each_answer_is_the_json_the_core_view_was() {
        let c = CompartmentView {
            bank: "A".into(),
            door: 3,
            size: CoreSize::Large,
            temperature: TempClass::Frozen,
            accessible: true,
            status: CoreStatus::OutOfService,
            out_of_service: true,
            door_open: false,
            resident: Some(ResidentId("r-1".into())),
            parcels: vec![ParcelId("p-1".into())],
            reservation: None,
            pending_unlock: None,
        };
        same(&c, &CompartmentJson::from(&c));
        let b = BankView {
            bank: "A".into(),
            online: true,
            keypad_locked_until: Some(Millis(5)),
        };
        same(&b, &BankJson::from(&b));
        for location in [
            Location::Compartment {
                bank: "A".into(),
                door: 1,
            },
            Location::Desk,
            Location::PickedUp,
            Location::Returned,
            Location::Missing,
            Location::Disputed {
                bank: "A".into(),
                door: 2,
            },
        ] {
            let p = ParcelView {
                id: ParcelId("p-1".into()),
                resident: Some(ResidentId("r-1".into())),
                carrier: Some(CarrierId("acme".into())),
                tracking: Some("1Z".into()),
                size: Some(CoreSize::Small),
                temperature: TempClass::Refrigerated,
                location,
                depositing: false,
                delivered_at: Millis(1),
                expires_at: Some(Millis(2)),
                hold_until: None,
                expired: false,
                perishable: Some(PerishableFlag {
                    unit: "fridge".into(),
                    since: Millis(3),
                }),
            };
            same(&p, &ParcelJson::from(&p));
        }
        let a = Alert {
            id: AlertId("a-1".into()),
            kind: AlertKind::DoorAjar,
            bank: Some("A".into()),
            door: Some(1),
            parcel: None,
            message: "ajar".into(),
            raised_at: Millis(9),
            unit: Some(UnitRef {
                unit: "fridge".into(),
                sensor: Some("s1".into()),
                since: None,
            }),
        };
        same(&a, &AlertJson::from(&a));
        let r = ResidentView {
            resident: ResidentId("r-1".into()),
            unit: "101".into(),
            accessible: false,
            active: true,
            hold_until: Some(Millis(4)),
            badges: 2,
            name: Some("Ann Lee".into()),
            email: Some("ann@example.org".into()),
            phone: None,
            language: Some("es".into()),
            notify: Some("email".into()),
            secondary_email: Some("bo@example.org".into()),
            secondary_phone: None,
            tenancy: locker_core::Tenancy {
                move_in: Some("2025-03-01".into()),
                ..Default::default()
            },
            on_roll: true,
            off_roll_since: Some(Millis(9)),
        };
        same(&r, &ResidentJson::from(&r));
        let k = CarrierView {
            carrier: CarrierId("acme".into()),
            name: "Acme".into(),
            revoked: false,
            email: Some("codes@acme.example".into()),
            codes: vec![CarrierCodeView {
                code_ref: "ref".into(),
                issued_at: Millis(7),
            }],
        };
        same(&k, &CarrierJson::from(&k));

        use locker_core::{Effect, RejectCode as CoreCode, Rejection, RequestId, ReservationId};
        let rid = ReservationId("res-1".into());
        let parcel = ParcelId("p-1".into());
        for outcome in [
            Outcome::SizeSuggested {
                size: CoreSize::Medium,
            },
            Outcome::Reserved {
                reservation: rid.clone(),
                bank: "A".into(),
                door: 2,
                size: CoreSize::Small,
            },
            Outcome::ParcelConfirmed {
                reservation: rid.clone(),
                parcel: parcel.clone(),
            },
            Outcome::DropOffCancelled {
                reservation: rid.clone(),
            },
            Outcome::LockerFull {
                parcel: parcel.clone(),
            },
            Outcome::Opening {
                bank: "A".into(),
                doors: vec![1, 2],
                parcels: vec![parcel.clone()],
            },
            Outcome::CheckedIn {
                parcel: parcel.clone(),
            },
            Outcome::Audit {
                compartments: vec![c.clone()],
            },
            Outcome::Accepted,
            Outcome::Rejected(Rejection::new(CoreCode::BadCredential, "wrong code")),
            Outcome::Rejected(Rejection {
                code: CoreCode::KeypadLocked,
                message: "locked".into(),
                until: Some(Millis(77)),
            }),
        ] {
            let reply = Reply {
                request_id: RequestId("r-1".into()),
                outcome,
            };
            same(&reply, &ReplyJson::from(&reply));
        }

        for kind in [
            NotifyKind::Delivered,
            NotifyKind::Reminder,
            NotifyKind::Expired,
            NotifyKind::AtDesk,
            NotifyKind::Withdrawn,
            NotifyKind::PickedUp,
        ] {
            for (pin, qr) in [(Some("048202"), Some("LH1x")), (None, None)] {
                let effect = Effect::Notify {
                    resident: ResidentId("r-1".into()),
                    parcels: vec![parcel.clone()],
                    pin: pin.map(str::to_owned),
                    qr: qr.map(str::to_owned),
                    kind,
                    code: None,
                };
                let stored = serde_json::to_vec(&effect).expect("stored");
                let item = OutboxItemJson::from(("n-1".to_owned(), Pending::decode(&stored)));
                assert_eq!(
                    serde_json::to_value(&item.notification).expect("json"),
                    serde_json::to_value(&effect).expect("json"),
                    "the outbox item is the notify effect as stored"
                );
            }
        }
    }
}

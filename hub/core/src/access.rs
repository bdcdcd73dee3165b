//! Who may send which request: one rule, used for every way a request reaches the core (a kiosk
//! on a bank's MQTT topic, a kiosk tablet or staff on the web page, the JSON API).
//!
//! The shell authenticates the caller (a bank's MQTT login, a session, the API token) and says who
//! it is with a [`Caller`]; [`crate::Core::handle_from`] then refuses, with
//! [`RejectCode::NotPermitted`], anything that caller may not ask. The shell never decides it.

use serde::{Deserialize, Serialize};

use crate::fact::{Fact, FactKind};
use crate::input::Request;
use crate::reply::{RejectCode, Rejection};

/// A staff account's role on the web page and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Users, carriers, configuration views, and everything staff can do.
    Admin,
    /// Day-to-day operations: parcels, doors, alerts, residents, audit log.
    Staff,
    /// A tablet at a bank: only the kiosk page (carrier drop-off, resident pickup).
    Kiosk,
}

impl Role {
    /// Every role, for listings and error messages.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Staff, Role::Kiosk];

    pub fn parse(s: &str) -> Result<Role, Rejection> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Rejection::new(
                    RejectCode::InvalidInput,
                    format!("unknown role {s:?}: use admin, staff or kiosk"),
                )
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Kiosk => "kiosk",
        }
    }

    /// Staff pages and actions: admins and staff.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Admin | Role::Staff)
    }

    /// May this role do what needs `need`?
    pub fn meets(self, need: Need) -> bool {
        match need {
            Need::Kiosk => true,
            Need::Staff => self.is_staff(),
            Need::Admin => self == Role::Admin,
        }
    }
}

/// What a request (or a page) needs of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// What a carrier or a resident does at a bank: any signed-in caller, kiosks included.
    Kiosk,
    /// Admins and staff.
    Staff,
    /// Admins only: site-wide openings, carriers and their codes, accounts.
    Admin,
}

/// Who is asking, as the shell authenticated them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A kiosk on a bank's own MQTT topics: kiosk requests, and only for that bank.
    BankKiosk { bank: String },
    /// A signed-in web user or the API token, with its role.
    User(Role),
}

/// What `request` needs of its caller. Exhaustive on purpose: a new request does not compile
/// until someone decides who may send it.
pub fn need_for(request: &Request) -> Need {
    match request {
        Request::SuggestSize { .. }
        | Request::StartDropOff { .. }
        | Request::ConfirmParcel { .. }
        | Request::OpenReservation { .. }
        | Request::CancelDropOff { .. }
        | Request::PickupByPin { .. }
        | Request::PickupByQr { .. }
        | Request::PickupByBadge { .. } => Need::Kiosk,
        Request::StaffOpenBank { .. }
        | Request::RegisterCarrier { .. }
        | Request::IssueCarrierCode { .. }
        | Request::SendCarrierCode { .. }
        | Request::RevokeCarrierCode { .. }
        | Request::RevokeCarrierCodeRef { .. }
        | Request::RevokeCarrier { .. } => Need::Admin,
        Request::StaffOpenDoor { .. }
        | Request::SetOutOfService { .. }
        | Request::ReassignParcels { .. }
        | Request::DeskCheckIn { .. }
        | Request::DeskPickup { .. }
        | Request::RemoveParcels { .. }
        | Request::SendToDesk { .. }
        | Request::ResendCode { .. }
        | Request::SetVacationHold { .. }
        | Request::ClearVacationHold { .. }
        | Request::ResolveUnlock { .. }
        | Request::AcknowledgeAlert { .. }
        | Request::AuditList { .. }
        | Request::AuditRecord { .. }
        | Request::RegisterResident { .. }
        | Request::DeactivateResident { .. }
        | Request::ImportRoll { .. }
        | Request::ResolveRollReview { .. }
        | Request::RegisterBadge { .. }
        | Request::RevokeBadge { .. }
        | Request::PreAdvise { .. } => Need::Staff,
    }
}

/// The bank a kiosk request is made at, when the request names one.
fn bank_named(request: &Request) -> Option<&str> {
    match request {
        Request::StartDropOff { bank, .. }
        | Request::PickupByPin { bank, .. }
        | Request::PickupByQr { bank, .. }
        | Request::PickupByBadge { bank, .. } => Some(bank.as_str()),
        _ => None,
    }
}

/// May `caller` send `request`? `Err` says why not, in words the caller can be shown.
pub fn authorize(caller: &Caller, request: &Request) -> Result<(), Rejection> {
    let need = need_for(request);
    match caller {
        Caller::BankKiosk { bank } => {
            // Kiosks are public devices: they may only do what a carrier or a resident does at
            // a bank, and only at their own bank. Staff actions come through the web API.
            if need != Need::Kiosk {
                return Err(Rejection::new(
                    RejectCode::NotPermitted,
                    "this request is not allowed from a kiosk",
                ));
            }
            match bank_named(request) {
                Some(named) if named != bank => Err(Rejection::new(
                    RejectCode::NotPermitted,
                    format!(
                        "request names bank {named:?} but was sent on bank {bank:?}'s kiosk topic"
                    ),
                )),
                _ => Ok(()),
            }
        }
        Caller::User(role) if role.meets(need) => Ok(()),
        Caller::User(role) => Err(Rejection::new(
            RejectCode::NotPermitted,
            format!(
                "a {} account may not do this: it needs {}",
                role.as_str(),
                match need {
                    Need::Kiosk => "any account",
                    Need::Staff => "a staff or admin account",
                    Need::Admin => "an admin account",
                }
            ),
        )),
    }
}

/// The author id the cloud writes facts under: `<ms>-cloud-<seq>`. A hub's id never is `cloud`
/// (`check-config` refuses it), so a fact's author is its id's hub part.
pub const CLOUD_AUTHOR: &str = "cloud";

/// Which facts the cloud may write into a synced document. The cloud holds no site key and
/// drives no door, so it may write only directory facts that need neither: residents moving in
/// and out, vacation holds, pre-advised tracking numbers; and requests (`remote_requested`),
/// which the executing hub runs through its own command path (`remote.rs`), recording what it
/// did.
pub fn cloud_may_write(kind: &FactKind) -> bool {
    matches!(
        kind,
        FactKind::ResidentRegistered { .. }
            | FactKind::ResidentDeactivated { .. }
            | FactKind::VacationHoldSet { .. }
            | FactKind::VacationHoldCleared { .. }
            | FactKind::TrackingPreAdvised { .. }
            | FactKind::RemoteRequested { .. }
    )
}

/// Whether the core folds `fact`: every hub's facts, and the cloud's where [`cloud_may_write`].
/// A fact the cloud may not write stays in its document (facts are never deleted) but is never
/// folded, here or at any later start.
/// A remote request is the cloud's alone: one claiming a hub as author is not folded either.
pub fn folded(fact: &Fact) -> bool {
    if fact.id.hub == CLOUD_AUTHOR {
        cloud_may_write(&fact.kind)
    } else {
        !matches!(fact.kind, FactKind::RemoteRequested { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CarrierId, ParcelId};

    fn pin(bank: &str) -> Request {
        Request::PickupByPin {
            bank: bank.into(),
            pin: "123456".into(),
        }
    }

    fn open_bank() -> Request {
        Request::StaffOpenBank {
            by: crate::Operator::Staff {
                id: crate::StaffId("a".into()),
            },
            bank: "A".into(),
            reason: "drill".into(),
        }
    }

    #[test]
    fn a_kiosk_acts_only_at_its_own_bank_and_only_as_a_resident_or_carrier() {
        let kiosk = Caller::BankKiosk { bank: "A".into() };
        assert!(authorize(&kiosk, &pin("A")).is_ok());
        let other = authorize(&kiosk, &pin("B")).unwrap_err();
        assert_eq!(other.code, RejectCode::NotPermitted);
        let staff = authorize(&kiosk, &open_bank()).unwrap_err();
        assert_eq!(staff.code, RejectCode::NotPermitted);
        let confirm = Request::ConfirmParcel {
            reservation: crate::ReservationId("r".into()),
            tracking: None,
        };
        assert!(authorize(&kiosk, &confirm).is_ok());
    }

    #[test]
    fn roles_are_ordered_kiosk_staff_admin() {
        let desk = Request::DeskPickup {
            by: crate::Operator::Staff {
                id: crate::StaffId("s".into()),
            },
            parcels: vec![ParcelId("p".into())],
        };
        let carrier = Request::RevokeCarrier {
            by: crate::Operator::Staff {
                id: crate::StaffId("s".into()),
            },
            carrier: CarrierId("ups".into()),
        };
        for (role, desk_ok, carrier_ok) in [
            (Role::Kiosk, false, false),
            (Role::Staff, true, false),
            (Role::Admin, true, true),
        ] {
            assert_eq!(
                authorize(&Caller::User(role), &desk).is_ok(),
                desk_ok,
                "{role:?}"
            );
            assert_eq!(
                authorize(&Caller::User(role), &carrier).is_ok(),
                carrier_ok,
                "{role:?}"
            );
            assert!(authorize(&Caller::User(role), &pin("any")).is_ok());
        }
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
        assert_eq!(
            Role::parse("root").unwrap_err().code,
            RejectCode::InvalidInput
        );
    }
}

//! Read-only views for the web page, the audit walk and MQTT retained state.

use serde::{Deserialize, Serialize};

use crate::ids::{CarrierId, Millis, ParcelId, ReservationId, ResidentId, UnlockId};
use crate::layout::{Size, TempClass};
use crate::state::{Ctx, Location, Parcel, State};

/// What a compartment is doing, from a person's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// A carrier and the references of its live access codes (never the codes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierView {
    pub carrier: CarrierId,
    pub name: String,
    /// Deactivated: its codes no longer open anything.
    pub revoked: bool,
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

impl State {
    pub(crate) fn compartment_views(&self, ctx: &Ctx) -> Vec<CompartmentView> {
        ctx.site
            .doors()
            .map(|(bank, c)| {
                let comp = self.comps.get(&(bank.to_owned(), c.door));
                let held = self.parcels_at(bank, c.door);
                let all: Vec<ParcelId> = comp
                    .map(|x| x.parcels.iter().cloned().collect())
                    .unwrap_or_default();
                let disputed = all.len() > held.len();
                let oos = self.out_of_service(ctx, bank, c.door);
                let reservation = comp.and_then(|x| x.reservations.iter().next().cloned());
                let status = if disputed {
                    CompartmentStatus::Disputed
                } else if held.iter().any(|p| p.expired) {
                    CompartmentStatus::Expired
                } else if !held.is_empty() {
                    CompartmentStatus::Occupied
                } else if reservation.is_some() {
                    CompartmentStatus::Reserved
                } else if !self.bank_online(bank) || self.door_unreachable(bank, c.door) {
                    CompartmentStatus::Offline
                } else if oos {
                    CompartmentStatus::OutOfService
                } else {
                    CompartmentStatus::Free
                };
                CompartmentView {
                    bank: bank.to_owned(),
                    door: c.door,
                    size: c.size,
                    temperature: c.temperature,
                    accessible: c.accessible,
                    status,
                    out_of_service: oos,
                    door_open: comp.is_some_and(|x| x.door_open),
                    resident: held.first().and_then(|p| p.resident.clone()),
                    parcels: all,
                    reservation,
                    pending_unlock: comp.and_then(|x| x.active_unlock.clone()),
                }
            })
            .collect()
    }

    pub(crate) fn parcel_view(&self, ctx: &Ctx, p: &Parcel) -> ParcelView {
        let held = matches!(p.location, Location::Compartment { .. });
        ParcelView {
            id: p.id.clone(),
            resident: p.resident.clone(),
            carrier: p.carrier.clone(),
            tracking: p.tracking.clone(),
            size: p.size,
            temperature: p.temperature,
            location: p.location.clone(),
            depositing: p.depositing.is_some(),
            delivered_at: p.delivered_at,
            expires_at: (held && p.depositing.is_none()).then(|| self.expires_at(ctx, p)),
            hold_until: self.hold_until(p),
            expired: p.expired,
            perishable: p.perishable.as_ref().map(|(unit, since)| PerishableFlag {
                unit: unit.clone(),
                since: *since,
            }),
        }
    }

    pub(crate) fn resident_views(&self) -> Vec<ResidentView> {
        let mut badges: std::collections::BTreeMap<&ResidentId, usize> = Default::default();
        for r in self.badges.values() {
            *badges.entry(r).or_default() += 1;
        }
        self.residents
            .iter()
            .map(|(id, r)| ResidentView {
                resident: id.clone(),
                unit: r.unit.clone(),
                accessible: r.accessible,
                active: r.active,
                hold_until: r.hold_until,
                badges: badges.get(id).copied().unwrap_or(0),
            })
            .collect()
    }

    pub(crate) fn carrier_views(&self) -> Vec<CarrierView> {
        self.carriers
            .iter()
            .map(|(id, c)| CarrierView {
                carrier: id.clone(),
                name: c.name.clone(),
                revoked: c.revoked,
                codes: c
                    .codes
                    .iter()
                    .map(|(r, (_, at))| CarrierCodeView {
                        code_ref: r.clone(),
                        issued_at: *at,
                    })
                    .collect(),
            })
            .collect()
    }

    pub(crate) fn bank_views(&self, ctx: &Ctx, now: Millis) -> Vec<BankView> {
        ctx.site
            .banks
            .iter()
            .map(|b| BankView {
                bank: b.id.clone(),
                online: self.bank_online(&b.id),
                keypad_locked_until: self.keypad_locked_until(&b.id, now),
            })
            .collect()
    }
}

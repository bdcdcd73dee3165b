//! The state seen from outside: the views the shell shows (compartments, parcels, residents,
//! carriers, banks), computed from the folded state.

use crate::ids::{Millis, ParcelId, ResidentId};
use crate::state::{Ctx, Parcel, State};
use crate::view::{
    BankView, CarrierCodeView, CarrierView, CompartmentStatus, CompartmentView, Location,
    ParcelView, PerishableFlag, ResidentView,
};

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
                name: r.name.clone(),
                email: r.email.clone(),
                phone: r.phone.clone(),
                language: r.language.clone(),
                notify: r.notify.clone(),
                secondary_email: r.secondary_email.clone(),
                secondary_phone: r.secondary_phone.clone(),
                tenancy: r.tenancy.clone(),
                on_roll: r.on_roll,
                off_roll_since: r.off_roll_since,
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

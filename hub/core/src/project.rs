//! The state seen from outside: the views the shell shows (compartments, parcels, residents,
//! carriers, banks), computed from the folded state.

use crate::ids::{Millis, ResidentId};
use crate::layout::CompartmentLayout;
use crate::state::{Comp, Ctx, Parcel, State};
use crate::view::{
    BankView, CarrierCodeView, CarrierView, CompartmentStatus, CompartmentView, Location,
    ParcelView, PerishableFlag, ResidentView,
};

/// What one compartment's view is made of, borrowed from the state.
struct CompartmentParts<'a> {
    bank: &'a str,
    layout: &'a CompartmentLayout,
    comp: Option<&'a Comp>,
    status: CompartmentStatus,
    out_of_service: bool,
    /// The resident of the first parcel held here.
    resident: Option<&'a ResidentId>,
}

impl State {
    /// One view per compartment, in layout order.
    pub(crate) fn compartment_views(&self, ctx: &Ctx) -> Vec<CompartmentView> {
        let mut views = Vec::new();
        self.each_compartment(ctx, |c| {
            views.push(CompartmentView {
                bank: c.bank.to_owned(),
                door: c.layout.door,
                size: c.layout.size,
                temperature: c.layout.temperature,
                accessible: c.layout.accessible,
                status: c.status,
                out_of_service: c.out_of_service,
                door_open: c.comp.is_some_and(|x| x.door_open),
                resident: c.resident.cloned(),
                parcels: c
                    .comp
                    .map(|x| x.parcels.iter().cloned().collect())
                    .unwrap_or_default(),
                reservation: c.comp.and_then(|x| x.reservations.iter().next().cloned()),
                pending_unlock: c.comp.and_then(|x| x.active_unlock.clone()),
            })
        });
        views
    }

    /// One digest per compartment, in layout order, of everything its view shows: two states
    /// whose digests agree show the same compartments. A step compares digests before and
    /// after, which costs no allocation, where comparing views would build 2 × 300 of them.
    pub(crate) fn compartment_digests(&self, ctx: &Ctx) -> Vec<u64> {
        use std::hash::{Hash, Hasher};
        let mut digests = Vec::new();
        self.each_compartment(ctx, |c| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            c.bank.hash(&mut h);
            c.layout.door.hash(&mut h);
            c.layout.size.hash(&mut h);
            c.layout.temperature.hash(&mut h);
            c.layout.accessible.hash(&mut h);
            c.status.hash(&mut h);
            c.out_of_service.hash(&mut h);
            c.comp.is_some_and(|x| x.door_open).hash(&mut h);
            c.resident.hash(&mut h);
            if let Some(x) = c.comp {
                x.parcels.len().hash(&mut h);
                for p in &x.parcels {
                    p.hash(&mut h);
                }
                x.reservations.iter().next().hash(&mut h);
                x.active_unlock.hash(&mut h);
            } else {
                0usize.hash(&mut h);
            }
            digests.push(h.finish());
        });
        digests
    }

    /// Walks the compartments in layout order with what their views are made of; each
    /// compartment's state is looked up once, and nothing is allocated.
    fn each_compartment<'a>(&'a self, ctx: &'a Ctx, mut f: impl FnMut(CompartmentParts<'a>)) {
        let mut key = (String::new(), 0u16);
        for b in &ctx.site.banks {
            let bank = b.id.as_str();
            let bank_state = self.banks.get(bank);
            let online = bank_state.is_none_or(|s| s.online);
            key.0.clear();
            key.0.push_str(bank);
            for c in &b.compartments {
                key.1 = c.door;
                let comp = self.comps.get(&key);
                // Held here (not disputed): how many, whether any expired, and whose.
                let (mut held, mut expired, mut resident) = (0usize, false, None);
                let mut all = 0usize;
                if let Some(x) = comp {
                    all = x.parcels.len();
                    for p in x.parcels.iter().filter_map(|id| self.parcels.get(id)) {
                        if p.location.is_compartment(bank, c.door) {
                            if held == 0 {
                                resident = p.resident.as_ref();
                            }
                            held += 1;
                            expired |= p.expired;
                        }
                    }
                }
                // As `State::out_of_service`: staff's override, else the configuration.
                let oos = comp
                    .and_then(|x| x.oos_override)
                    .unwrap_or(c.out_of_service);
                let unreachable = bank_state.is_some_and(|s| s.unreachable.contains(&c.door));
                let reserved = comp.is_some_and(|x| !x.reservations.is_empty());
                let status = if all > held {
                    CompartmentStatus::Disputed
                } else if expired {
                    CompartmentStatus::Expired
                } else if held > 0 {
                    CompartmentStatus::Occupied
                } else if reserved {
                    CompartmentStatus::Reserved
                } else if !online || unreachable {
                    CompartmentStatus::Offline
                } else if oos {
                    CompartmentStatus::OutOfService
                } else {
                    CompartmentStatus::Free
                };
                f(CompartmentParts {
                    bank,
                    layout: c,
                    comp,
                    status,
                    out_of_service: oos,
                    resident,
                });
            }
        }
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
                email: c.email.clone(),
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

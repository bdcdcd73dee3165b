//! Carrier drop-off.
//!
//! Authenticate the carrier, resolve the recipient, reserve the smallest free compartment that
//! fits (temperature class, accessible reach), open it, let the carrier confirm each parcel, and
//! complete the delivery only when the door is reported closed. Closing with nothing confirmed,
//! cancelling, or not opening within the reservation timeout releases the reservation. When
//! nothing fits, the parcel is recorded at the front desk and staff are alerted.

use crate::codes::random_id;
use crate::core::{reject, Core, Result, Subject, Tx};
use crate::effect::{Effect, KioskUpdate, NotifyKind};
use crate::fact::{
    Actor, AlertKind, CredentialKind, DeskReason, FactKind, ReleaseReason, UnlockPurpose,
};
use crate::ids::{CarrierId, Millis, ParcelId, ReservationId, ResidentId};
use crate::input::{Recipient, Request};
use crate::layout::{Dimensions, Size, TempClass};
use crate::reply::{Outcome, RejectCode};

/// What a compartment must offer for a parcel.
#[derive(Clone, Debug)]
pub(crate) struct Need {
    pub bank: String,
    pub resident: ResidentId,
    pub carrier: CarrierId,
    pub size: Size,
    pub temperature: TempClass,
    pub share: bool,
    /// The tracking number the carrier gave when it asked for a door, if any.
    pub tracking: Option<String>,
}

impl Core {
    pub(crate) fn suggest_size(&self, dimensions: Dimensions) -> Result<Outcome> {
        match self.ctx.policies.suggest_size(dimensions) {
            Some(size) => Ok(Outcome::SizeSuggested { size }),
            None => reject(
                RejectCode::InvalidInput,
                format!(
                    "no compartment size takes a parcel of {}x{}x{} mm",
                    dimensions.length_mm, dimensions.width_mm, dimensions.height_mm
                ),
            ),
        }
    }

    pub(crate) fn start_drop_off(&mut self, tx: &mut Tx, request: &Request) -> Result<Outcome> {
        let Request::StartDropOff {
            bank,
            carrier_code,
            recipient,
            size,
            dimensions,
            temperature,
            share,
            tracking,
        } = request
        else {
            return reject(RejectCode::InvalidInput, "not a start_drop_off request");
        };
        if self.ctx.site.bank(bank).is_none() {
            return reject(RejectCode::UnknownBank, format!("unknown bank {bank:?}"));
        }
        self.check_keypad(bank, tx.now)?;
        let carrier = match self.authenticate_carrier(carrier_code) {
            Some(c) => c,
            None => {
                return Err(self.wrong_credential(
                    tx,
                    bank,
                    CredentialKind::CarrierCode,
                    "carrier code not recognised or revoked",
                ))
            }
        };
        self.check_carrier_limits(&carrier, tx.now)?;
        let resident = self.resolve_recipient(recipient)?;
        let size = match (size, dimensions) {
            (Some(s), _) => *s,
            (None, Some(d)) => match self.suggest_size(*d)? {
                Outcome::SizeSuggested { size } => size,
                _ => return reject(RejectCode::InvalidInput, "no size for these dimensions"),
            },
            (None, None) => {
                return reject(
                    RejectCode::InvalidInput,
                    "give a parcel size or its dimensions",
                )
            }
        };
        if !self.state.bank_online(bank) {
            self.alert_outage(tx, bank);
            return reject(
                RejectCode::BankOffline,
                format!("bank {bank} is offline; take the parcel to the front desk"),
            );
        }
        let need = Need {
            bank: bank.clone(),
            resident: resident.clone(),
            carrier: carrier.clone(),
            size,
            temperature: *temperature,
            share: *share,
            tracking: tracking.clone(),
        };
        let actor = Actor::Carrier {
            id: carrier.clone(),
        };
        let Some(door) = self.find_compartment(&need) else {
            let parcel = self.overflow_to_desk(tx, actor, &need, tracking.clone());
            return Ok(Outcome::LockerFull { parcel });
        };
        let reservation = ReservationId(random_id(tx.entropy, "r-"));
        self.reserve(tx, actor.clone(), &reservation, &need, door);
        self.send_unlock(
            tx,
            actor,
            bank,
            door,
            UnlockPurpose::Delivery {
                reservation: reservation.clone(),
            },
        );
        Ok(Outcome::Reserved {
            reservation,
            bank: bank.clone(),
            door,
            size,
        })
    }

    /// A carrier holds at most `carrier_open_reservations` open reservations and sends at most
    /// `carrier_overflows_per_hour` parcels to the desk as overflow: a flood of drop-off requests
    /// with one carrier code is refused before it reserves doors or creates desk parcels.
    /// Counted from the compartments' live reservations and the last hour's overflow facts, so
    /// the cost does not grow with history.
    fn check_carrier_limits(&self, carrier: &CarrierId, now: Millis) -> Result<()> {
        let p = &self.ctx.policies;
        let open = self
            .state
            .comps
            .values()
            .flat_map(|c| &c.reservations)
            .filter(|r| {
                self.state
                    .reservations
                    .get(*r)
                    .is_some_and(|r| r.active && &r.carrier == carrier)
            })
            .count();
        if open >= p.carrier_open_reservations as usize {
            return reject(
                RejectCode::RateLimited,
                format!(
                    "this carrier already has {open} drop-offs in progress; finish or cancel one first"
                ),
            );
        }
        let overflows = self.state.overflows.get(carrier).map_or(0, |times| {
            times
                .iter()
                .filter(|t| now.0.saturating_sub(t.0) < crate::state::OVERFLOW_WINDOW_MS)
                .count()
        });
        if overflows >= p.carrier_overflows_per_hour as usize {
            return reject(
                RejectCode::RateLimited,
                "the lockers are full for this carrier this hour; please hand the parcels in at the front desk",
            );
        }
        Ok(())
    }

    fn authenticate_carrier(&self, code: &str) -> Option<CarrierId> {
        let hash = self.keys.carrier_code_hash(code);
        let carrier = self.state.carrier_codes.get(&hash)?;
        let active = self.state.carriers.get(carrier).is_some_and(|c| !c.revoked);
        active.then(|| carrier.clone())
    }

    fn resolve_recipient(&self, recipient: &Recipient) -> Result<ResidentId> {
        match recipient {
            Recipient::Resident { resident } => {
                if self.state.resident_active(resident) {
                    Ok(resident.clone())
                } else {
                    reject(
                        RejectCode::UnknownResident,
                        format!("no active resident {resident} in the directory"),
                    )
                }
            }
            Recipient::Unit { unit } => {
                let wanted = unit.trim();
                let mut matches = self
                    .state
                    .residents
                    .iter()
                    .filter(|(_, r)| r.active && r.unit.trim().eq_ignore_ascii_case(wanted));
                match (matches.next(), matches.next()) {
                    (Some((id, _)), None) => Ok(id.clone()),
                    (None, _) => reject(
                        RejectCode::UnknownResident,
                        format!("no resident lives in unit {wanted:?}"),
                    ),
                    (Some(_), Some(_)) => reject(
                        RejectCode::AmbiguousRecipient,
                        format!("unit {wanted:?} has several residents; name the resident"),
                    ),
                }
            }
            Recipient::Tracking { tracking } => match self.state.preadvice.get(tracking.trim()) {
                Some(r) if self.state.resident_active(r) => Ok(r.clone()),
                Some(r) => reject(
                    RejectCode::UnknownResident,
                    format!("tracking number {tracking:?} was pre-advised for {r}, who moved out"),
                ),
                None => reject(
                    RejectCode::UnknownResident,
                    format!("tracking number {tracking:?} was not pre-advised; name the unit"),
                ),
            },
        }
    }

    /// The compartment for a parcel: with `share`, one already holding this resident's parcels
    /// from this carrier; otherwise (or if none) the smallest free one that fits, lowest door
    /// first on ties.
    pub(crate) fn find_compartment(&self, need: &Need) -> Option<u16> {
        let bank = self.ctx.site.bank(&need.bank)?;
        if !self.state.bank_online(&need.bank) {
            return None;
        }
        let accessible_only = self
            .state
            .residents
            .get(&need.resident)
            .is_some_and(|r| r.accessible);
        let fits = |c: &&crate::layout::CompartmentLayout| {
            c.size >= need.size
                && c.temperature == need.temperature
                && (!accessible_only || c.accessible)
                && !self.state.out_of_service(&self.ctx, &need.bank, c.door)
                && !self.state.door_unreachable(&need.bank, c.door)
        };
        let by_size = |c: &&crate::layout::CompartmentLayout| (c.size, c.door);
        if need.share {
            let shared = bank
                .compartments
                .iter()
                .filter(fits)
                .filter(|c| self.shareable(need, c.door))
                .min_by_key(by_size);
            if let Some(c) = shared {
                return Some(c.door);
            }
        }
        bank.compartments
            .iter()
            .filter(fits)
            .filter(|c| self.state.is_free(&self.ctx, &need.bank, c.door))
            .min_by_key(by_size)
            .map(|c| c.door)
    }

    fn shareable(&self, need: &Need, door: u16) -> bool {
        let Some(comp) = self.state.comps.get(&(need.bank.clone(), door)) else {
            return false;
        };
        let held = self.state.parcels_at(&need.bank, door);
        !held.is_empty()
            && held.len() == comp.parcels.len()
            && !comp.door_open
            && comp.active_unlock.is_none()
            && comp.reservations.is_empty()
            && held.iter().all(|p| {
                p.resident.as_ref() == Some(&need.resident)
                    && p.carrier.as_ref() == Some(&need.carrier)
                    && self.state.parcel_collectable(p)
            })
    }

    fn reserve(
        &mut self,
        tx: &mut Tx,
        actor: Actor,
        reservation: &ReservationId,
        need: &Need,
        door: u16,
    ) {
        self.record(
            tx,
            actor,
            Subject::door(&need.bank, door),
            FactKind::CompartmentReserved {
                reservation: reservation.clone(),
                carrier: need.carrier.clone(),
                resident: need.resident.clone(),
                size: need.size,
                temperature: need.temperature,
                share: need.share,
                tracking: need
                    .tracking
                    .as_deref()
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
            },
        );
    }

    /// Locker full: the parcel is held at the front desk, the resident told, staff alerted.
    fn overflow_to_desk(
        &mut self,
        tx: &mut Tx,
        actor: Actor,
        need: &Need,
        tracking: Option<String>,
    ) -> ParcelId {
        let parcel = ParcelId(random_id(tx.entropy, "p-"));
        self.record(
            tx,
            actor,
            Subject::bank(&need.bank).parcel(&parcel),
            FactKind::ParcelAtDesk {
                resident: need.resident.clone(),
                carrier: Some(need.carrier.clone()),
                tracking,
                size: Some(need.size),
                temperature: need.temperature,
                reason: DeskReason::Overflow,
            },
        );
        if self
            .open_alerts(AlertKind::LockerFull, &need.bank, None)
            .is_empty()
        {
            self.raise_alert(
                tx,
                AlertKind::LockerFull,
                Subject::bank(&need.bank).parcel(&parcel),
                format!(
                    "bank {} had no free {:?} {:?} compartment; parcel {parcel} goes to the front desk",
                    need.bank, need.size, need.temperature
                ),
            );
        }
        tx.effects.push(Effect::Notify {
            resident: need.resident.clone(),
            parcels: vec![parcel.clone()],
            pin: None,
            qr: None,
            kind: NotifyKind::AtDesk,
            code: None,
        });
        parcel
    }

    fn active_reservation(&self, id: &ReservationId) -> Result<crate::state::Reservation> {
        match self.state.reservations.get(id) {
            Some(r) if r.active => Ok(r.clone()),
            Some(_) => reject(
                RejectCode::NotAllowedNow,
                format!("reservation {id} has already ended"),
            ),
            None => reject(
                RejectCode::UnknownReservation,
                format!("no reservation {id}"),
            ),
        }
    }

    pub(crate) fn confirm_parcel(
        &mut self,
        tx: &mut Tx,
        reservation: &ReservationId,
        tracking: Option<String>,
    ) -> Result<Outcome> {
        let r = self.active_reservation(reservation)?;
        let open = self
            .state
            .comps
            .get(&(r.bank.clone(), r.door))
            .is_some_and(|c| c.door_open);
        if !r.door_opened || !open {
            return reject(
                RejectCode::NotAllowedNow,
                format!(
                    "{} door {} is not open yet; wait for it to open, then place the parcel",
                    r.bank, r.door
                ),
            );
        }
        let parcel = ParcelId(random_id(tx.entropy, "p-"));
        self.record(
            tx,
            Actor::Carrier {
                id: r.carrier.clone(),
            },
            Subject::door(&r.bank, r.door).parcel(&parcel),
            FactKind::ParcelPlaced {
                reservation: reservation.clone(),
                // What the carrier scans at the door, or else what it gave when it asked.
                tracking: tracking.or_else(|| r.tracking.clone()),
            },
        );
        Ok(Outcome::ParcelConfirmed {
            reservation: reservation.clone(),
            parcel,
        })
    }

    pub(crate) fn open_reservation(
        &mut self,
        tx: &mut Tx,
        reservation: &ReservationId,
    ) -> Result<Outcome> {
        let r = self.active_reservation(reservation)?;
        if r.door_opened || r.unlock.is_some() {
            return reject(
                RejectCode::NotAllowedNow,
                format!("{} door {} is already being opened", r.bank, r.door),
            );
        }
        if !self.state.bank_online(&r.bank) {
            return reject(
                RejectCode::BankOffline,
                format!("bank {} is offline", r.bank),
            );
        }
        // Another unlock of this door is under way: a second hub's, for a reservation made
        // concurrently with this one (the conflict rules settle which stands). Never a second
        // pulse while one is in flight.
        if let Some(u) = self
            .state
            .comps
            .get(&(r.bank.clone(), r.door))
            .and_then(|c| c.active_unlock.as_ref())
        {
            return reject(
                RejectCode::NotAllowedNow,
                format!("{} door {} has unlock {u} in progress", r.bank, r.door),
            );
        }
        self.send_unlock(
            tx,
            Actor::Carrier {
                id: r.carrier.clone(),
            },
            &r.bank,
            r.door,
            UnlockPurpose::Delivery {
                reservation: reservation.clone(),
            },
        );
        Ok(Outcome::Reserved {
            reservation: reservation.clone(),
            bank: r.bank,
            door: r.door,
            size: r.size,
        })
    }

    pub(crate) fn cancel_drop_off(
        &mut self,
        tx: &mut Tx,
        reservation: &ReservationId,
    ) -> Result<Outcome> {
        let r = self.active_reservation(reservation)?;
        self.record(
            tx,
            Actor::Carrier { id: r.carrier },
            Subject::door(&r.bank, r.door),
            FactKind::ReservationReleased {
                reservation: reservation.clone(),
                reason: ReleaseReason::Cancelled,
            },
        );
        Ok(Outcome::DropOffCancelled {
            reservation: reservation.clone(),
        })
    }

    /// The door of a compartment closed: a delivery whose door had opened completes if parcels
    /// were confirmed, and is released if not.
    pub(crate) fn delivery_door_closed(&mut self, tx: &mut Tx, bank: &str, door: u16) {
        let ids: Vec<ReservationId> = self
            .state
            .comps
            .get(&(bank.to_owned(), door))
            .map(|c| c.reservations.iter().cloned().collect())
            .unwrap_or_default();
        for id in ids {
            let Some(r) = self.state.reservations.get(&id).cloned() else {
                continue;
            };
            if !r.active || !r.door_opened {
                continue;
            }
            let placed: Vec<ParcelId> = r
                .placed
                .iter()
                .filter(|p| {
                    self.state
                        .parcels
                        .get(*p)
                        .is_some_and(|p| p.depositing.is_some())
                })
                .cloned()
                .collect();
            let actor = Actor::Carrier {
                id: r.carrier.clone(),
            };
            if placed.is_empty() {
                self.record(
                    tx,
                    actor,
                    Subject::door(bank, door),
                    FactKind::ReservationReleased {
                        reservation: id.clone(),
                        reason: ReleaseReason::ClosedEmpty,
                    },
                );
                tx.effects.push(Effect::Kiosk {
                    bank: bank.to_owned(),
                    reservation: Some(id),
                    update: KioskUpdate::ReservationReleased {
                        reason: ReleaseReason::ClosedEmpty,
                    },
                });
                continue;
            }
            self.record(
                tx,
                actor.clone(),
                Subject::door(bank, door),
                FactKind::DeliveryCompleted {
                    reservation: id.clone(),
                    resident: r.resident.clone(),
                    parcels: placed.clone(),
                },
            );
            // Only parcels that the fold accepted into the compartment get a code.
            let held: Vec<ParcelId> = placed
                .iter()
                .filter(|p| {
                    self.state
                        .parcels
                        .get(*p)
                        .is_some_and(|p| p.location.is_compartment(bank, door))
                })
                .cloned()
                .collect();
            if !held.is_empty() {
                self.issue_code(tx, actor, &r.resident, &held);
            }
            tx.effects.push(Effect::Kiosk {
                bank: bank.to_owned(),
                reservation: Some(id),
                update: KioskUpdate::DeliveryCompleted { parcels: placed },
            });
        }
    }

    /// Own reservations waiting for their door to be opened: `(deadline, id)`.
    fn waiting_reservations(&self) -> Vec<(Millis, ReservationId)> {
        // Active reservations are the ones the compartments list (`Comp::reservations`).
        let mut waiting: Vec<(Millis, ReservationId)> = self
            .state
            .comps
            .values()
            .flat_map(|c| c.reservations.iter())
            .filter_map(|id| self.state.reservations.get(id).map(|r| (id, r)))
            .filter(|(_, r)| {
                r.origin == self.hub && r.active && !r.door_opened && r.unlock.is_none()
            })
            .map(|(id, r)| {
                (
                    r.reserved_at.plus(self.ctx.policies.reservation_timeout_ms),
                    id.clone(),
                )
            })
            .collect();
        // In id order, as a walk over every reservation would give them.
        waiting.sort_by(|a, b| a.1.cmp(&b.1));
        waiting.dedup_by(|a, b| a.1 == b.1);
        waiting
    }

    pub(crate) fn reservation_deadlines(&self) -> Vec<Millis> {
        self.waiting_reservations()
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    pub(crate) fn reservation_timers(&mut self, tx: &mut Tx) {
        for (deadline, id) in self.waiting_reservations() {
            if deadline > tx.now {
                continue;
            }
            let Some(r) = self.state.reservations.get(&id).cloned() else {
                continue;
            };
            self.record(
                tx,
                Actor::System,
                Subject::door(&r.bank, r.door),
                FactKind::ReservationReleased {
                    reservation: id.clone(),
                    reason: ReleaseReason::Expired,
                },
            );
            tx.effects.push(Effect::Kiosk {
                bank: r.bank.clone(),
                reservation: Some(id),
                update: KioskUpdate::ReservationReleased {
                    reason: ReleaseReason::Expired,
                },
            });
        }
    }

    /// A reserved door failed to unlock: move the reservation to another compartment that fits
    /// and offer it to the carrier, or, if none fits, send the parcel to the desk.
    pub(crate) fn offer_other_compartment(
        &mut self,
        tx: &mut Tx,
        reservation: &ReservationId,
        bank: &str,
        failed_door: u16,
    ) {
        let Some(r) = self.state.reservations.get(reservation).cloned() else {
            return;
        };
        if !r.active {
            return;
        }
        let need = Need {
            bank: r.bank.clone(),
            resident: r.resident.clone(),
            carrier: r.carrier.clone(),
            size: r.size,
            temperature: r.temperature,
            share: false,
            tracking: r.tracking.clone(),
        };
        match self.find_compartment(&need) {
            Some(door) => {
                self.reserve(tx, Actor::System, reservation, &need, door);
                tx.effects.push(Effect::Kiosk {
                    bank: bank.to_owned(),
                    reservation: Some(reservation.clone()),
                    update: KioskUpdate::DoorOffered { failed_door, door },
                });
            }
            None => {
                self.record(
                    tx,
                    Actor::System,
                    Subject::door(bank, failed_door),
                    FactKind::ReservationReleased {
                        reservation: reservation.clone(),
                        reason: ReleaseReason::DoorFailed,
                    },
                );
                let parcel = self.overflow_to_desk(tx, Actor::System, &need, None);
                tx.effects.push(Effect::Kiosk {
                    bank: bank.to_owned(),
                    reservation: Some(reservation.clone()),
                    update: KioskUpdate::Overflow { parcel },
                });
            }
        }
    }
}

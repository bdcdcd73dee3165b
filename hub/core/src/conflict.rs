//! Conflict rules for concurrent facts from two replicas.
//!
//! One principle: **what physically happened wins over what someone intended.** A door that opened
//! with a valid code, or closed with a parcel inside, is a fact about the world; a reservation or a
//! reassignment is an intention. When the fold (in `FactId` order) meets an intention that a
//! physical fact contradicts, the intention is voided and a `Conflict` alert with the id
//! `conflict-<fact id>/<n>` records it. The id depends only on the facts, so every replica derives
//! the same alert.
//!
//! The rules, each with a named test in `tests/conflicts.rs`:
//! 1. Pickup beats reassignment (`pickup_beats_concurrent_reassignment`, both orders): parcels
//!    collected with the old resident's code stay collected by that resident; the reassignment is
//!    voided and the new resident's code is dead because its parcels are gone.
//! 2. Reassignment of a parcel that is no longer held (collected, returned, missing) is voided
//!    (`reassignment_of_collected_parcel_is_voided`).
//! 3. Two reservations of one compartment: the one whose door closed with a parcel wins; the
//!    other is released (`two_hubs_reserving_one_compartment_delivery_wins`). If both closed with
//!    parcels for different residents, the later delivery's parcels are `Disputed` (never two
//!    residents' parcels held in one compartment) and staff sort it out
//!    (`two_deliveries_into_one_compartment_are_disputed`).
//! 4. A reassignment that would leave a compartment holding two residents' parcels (a concurrent
//!    delivery added some) is voided (`reassignment_that_would_split_a_compartment_is_voided`).
//! 5. A parcel recorded by an audit walk into a compartment that a concurrent delivery gave to
//!    another resident is disputed (covered by the two-replica property test).

use crate::fact::Fact;
use crate::ids::{ParcelId, ReservationId, ResidentId};
use crate::state::{Location, Parcel, State};

impl State {
    /// Rule 3, other order: a reservation folded after another resident's delivery into the same
    /// compartment was made without knowing of it, and is released at once.
    pub(crate) fn reservation_meets_delivery(
        &mut self,
        f: &Fact,
        reservation: &ReservationId,
        resident: &ResidentId,
        bank: &str,
        door: u16,
    ) {
        let taken = self
            .parcels_at(bank, door)
            .iter()
            .any(|p| p.resident.as_ref() != Some(resident));
        if !taken {
            return;
        }
        if let Some(r) = self.reservations.get_mut(reservation) {
            r.active = false;
        }
        self.comp(&(bank.to_owned(), door))
            .reservations
            .remove(reservation);
        self.conflict(
            f,
            None,
            format!(
                "reservation {reservation} of {bank} door {door} released: another delivery \
                 closed there first"
            ),
        );
    }

    pub(crate) fn apply_parcel_placed(
        &mut self,
        f: &Fact,
        reservation: &ReservationId,
        tracking: &Option<String>,
    ) {
        let (Some(id), Some(r)) = (&f.parcel, self.reservations.get_mut(reservation)) else {
            return;
        };
        r.placed.push(id.clone());
        let (bank, door, active) = (r.bank.clone(), r.door, r.active);
        let mut p = Parcel::new(id.clone(), Some(r.resident.clone()), f.at, Location::Desk);
        p.carrier = Some(r.carrier.clone());
        p.size = Some(r.size);
        p.temperature = r.temperature;
        p.tracking = tracking.clone();
        p.depositing = Some(reservation.clone());
        let resident = p.resident.clone();
        self.parcels.insert(id.clone(), p);
        let mixed = self
            .parcels_at(&bank, door)
            .iter()
            .any(|other| other.resident != resident);
        if active && mixed {
            // A concurrent reassignment gave the compartment's parcels to someone else.
            self.move_parcel(id, Location::Disputed { bank, door });
            self.conflict(
                f,
                Some(id),
                format!("parcel {id} placed beside another resident's parcels"),
            );
        } else if active {
            self.move_parcel(id, Location::Compartment { bank, door });
        } else {
            // Placed under a reservation another replica already superseded.
            self.move_parcel(id, Location::Disputed { bank, door });
            self.conflict(
                f,
                Some(id),
                format!("parcel {id} placed under reservation {reservation}, which was superseded"),
            );
        }
    }

    /// Rule 3: the delivery whose door closed with parcels takes the compartment.
    pub(crate) fn apply_delivery_completed(
        &mut self,
        f: &Fact,
        reservation: &ReservationId,
        resident: &ResidentId,
        parcels: &[ParcelId],
    ) {
        let Some(r) = self.reservations.get_mut(reservation) else {
            return;
        };
        let was_active = r.active;
        r.active = false;
        let key = (r.bank.clone(), r.door);
        self.comp(&key).reservations.remove(reservation);

        let other_resident_here = self
            .parcels_at(&key.0, key.1)
            .iter()
            .any(|p| p.resident.as_ref() != Some(resident) && !parcels.contains(&p.id));
        let disputed = !was_active || other_resident_here;
        for id in parcels {
            let Some(p) = self.parcels.get_mut(id) else {
                continue;
            };
            p.depositing = None;
            p.delivered_at = f.at;
            if disputed && p.location.is_at(&key.0, key.1) {
                self.move_parcel(
                    id,
                    Location::Disputed {
                        bank: key.0.clone(),
                        door: key.1,
                    },
                );
            }
        }
        if disputed {
            self.conflict(
                f,
                parcels.first(),
                format!(
                    "delivery {reservation} closed into {} door {} which holds another delivery; \
                     its parcels are disputed until staff check the compartment",
                    key.0, key.1
                ),
            );
            return;
        }

        // Adding parcels restarts the hold clock of everything in the compartment.
        let here: Vec<ParcelId> = self
            .parcels_at(&key.0, key.1)
            .iter()
            .map(|p| p.id.clone())
            .collect();
        for id in here {
            if let Some(p) = self.parcels.get_mut(&id) {
                p.hold_base = f.at;
                p.reminders_sent = 0;
            }
        }

        // Any other reservation of this compartment came from a concurrent replica: it loses.
        let others: Vec<ReservationId> = self
            .comp(&key)
            .reservations
            .iter()
            .filter(|r| *r != reservation)
            .cloned()
            .collect();
        for other in others {
            let placed = match self.reservations.get_mut(&other) {
                Some(o) => {
                    o.active = false;
                    o.placed.clone()
                }
                None => continue,
            };
            self.comp(&key).reservations.remove(&other);
            for id in placed {
                if self
                    .parcels
                    .get(&id)
                    .is_some_and(|p| p.depositing.is_some())
                {
                    self.move_parcel(
                        &id,
                        Location::Disputed {
                            bank: key.0.clone(),
                            door: key.1,
                        },
                    );
                }
            }
            self.conflict(
                f,
                None,
                format!(
                    "reservation {other} of {} door {} released: delivery {reservation} closed \
                     there first",
                    key.0, key.1
                ),
            );
        }
    }

    /// Rule 1: the door opened for a pickup, so the parcels were collected by that resident,
    /// whatever a concurrent reassignment said.
    pub(crate) fn apply_pickup_opened(
        &mut self,
        f: &Fact,
        key: &(String, u16),
        resident: &ResidentId,
        parcels: &[ParcelId],
    ) {
        for id in parcels {
            let Some(p) = self.parcels.get_mut(id) else {
                continue;
            };
            if !p.location.is_compartment(&key.0, key.1) {
                continue;
            }
            p.pending_unlock = None;
            let reassigned_to = p.resident.clone().filter(|r| r != resident);
            p.resident = Some(resident.clone());
            self.move_parcel(id, Location::PickedUp);
            if let Some(other) = reassigned_to {
                self.conflict(
                    f,
                    Some(id),
                    format!(
                        "reassignment of parcel {id} to {other} voided: {resident} collected it \
                         from {} door {}",
                        key.0, key.1
                    ),
                );
            }
        }
    }

    /// Rules 2 and 4: only parcels still held can be reassigned, and never so that a compartment
    /// would hold two residents' parcels (a concurrent delivery may have added some).
    pub(crate) fn apply_reassigned(&mut self, f: &Fact, parcels: &[ParcelId], to: &ResidentId) {
        for id in parcels {
            let Some(p) = self.parcels.get(id) else {
                continue;
            };
            match p.location.clone() {
                Location::Desk => {
                    if let Some(p) = self.parcels.get_mut(id) {
                        p.resident = Some(to.clone());
                    }
                }
                Location::Compartment { bank, door } => {
                    let split = self.parcels_at(&bank, door).iter().any(|other| {
                        !parcels.contains(&other.id) && other.resident.as_ref() != Some(to)
                    });
                    if split {
                        self.conflict(
                            f,
                            Some(id),
                            format!(
                                "reassignment of parcel {id} to {to} voided: {bank} door {door} \
                                 also holds another resident's parcels delivered concurrently"
                            ),
                        );
                    } else if let Some(p) = self.parcels.get_mut(id) {
                        p.resident = Some(to.clone());
                    }
                }
                other => {
                    let msg = format!(
                        "reassignment of parcel {id} to {to} voided: the parcel is {}",
                        match other {
                            Location::PickedUp => "already picked up",
                            Location::Returned => "returned",
                            Location::Missing => "missing",
                            _ => "disputed",
                        }
                    );
                    self.conflict(f, Some(id), msg);
                }
            }
        }
    }

    /// Rule 5: a parcel found in an audit walk goes into the compartment only if that keeps it
    /// to one resident; otherwise it is disputed.
    pub(crate) fn place_found_parcel(&mut self, f: &Fact, id: &ParcelId, bank: &str, door: u16) {
        let resident = self.parcels.get(id).and_then(|p| p.resident.clone());
        let mixed = self
            .parcels_at(bank, door)
            .iter()
            .any(|p| p.id != *id && p.resident != resident);
        let (bank, door) = (bank.to_owned(), door);
        if mixed {
            self.move_parcel(id, Location::Disputed { bank, door });
            self.conflict(
                f,
                Some(id),
                format!("found parcel {id} shares a compartment with another resident's parcels"),
            );
        } else {
            self.move_parcel(id, Location::Compartment { bank, door });
        }
    }
}

//! Derived state: the fold of all facts in `FactId` order.
//!
//! `State::apply` is the only code that changes derived state, and it is a pure function of the
//! state so far and one fact. The core applies each new fact with it as soon as the fact is
//! recorded, and `Core::new`/`Core::merge` fold every fact from scratch with it, so two replicas
//! holding the same facts derive the same state. `apply` never rejects a fact: facts are what
//! happened; where two concurrent facts contradict each other, `conflict.rs` decides and an alert
//! records it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::fact::{AlertKind, DeskReason, Fact, FactKind, UnitRef, UnlockPurpose};
use crate::ids::{
    AlertId, CarrierId, CodeId, FactId, Millis, ParcelId, RequestId, ReservationId, ResidentId,
    UnlockId,
};
use crate::input::HoldTarget;
use crate::layout::{Policies, SiteLayout, Size, TempClass};
use crate::reply::Reply;
pub use crate::view::Location;

/// The window of the per-carrier overflow limit (`Policies::carrier_overflows_per_hour`).
pub(crate) const OVERFLOW_WINDOW_MS: u64 = 3_600_000;

/// Site layout and policies: fixed inputs the fold and the workflows consult.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub site: SiteLayout,
    pub policies: Policies,
}

/// An open alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: AlertId,
    pub kind: AlertKind,
    pub bank: Option<String>,
    pub door: Option<u16>,
    pub parcel: Option<ParcelId>,
    pub message: String,
    pub raised_at: Millis,
    /// For alarms of a refrigerated unit: the unit and sensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitRef>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resident {
    pub unit: String,
    pub accessible: bool,
    pub hold_until: Option<Millis>,
    /// False once deactivated (moved out), until registered again.
    pub active: bool,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub language: Option<String>,
    pub notify: Option<String>,
    pub secondary_email: Option<String>,
    pub secondary_phone: Option<String>,
    pub tenancy: crate::input::Tenancy,
    /// The rent roll decides whether they live here (a roll import registered them).
    pub on_roll: bool,
    /// Missing from the roll since then (the move-out grace period runs).
    pub off_roll_since: Option<Millis>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Carrier {
    pub name: String,
    pub revoked: bool,
    /// Where codes sent to the carrier go (`Request::SendCarrierCode`).
    pub email: Option<String>,
    /// Live access codes: reference (the id of the fact that issued it) → (keyed hash, issued at).
    pub codes: BTreeMap<String, (String, Millis)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parcel {
    pub id: ParcelId,
    pub resident: Option<ResidentId>,
    pub carrier: Option<CarrierId>,
    pub tracking: Option<String>,
    pub size: Option<Size>,
    pub temperature: TempClass,
    pub location: Location,
    /// Placed by a carrier whose delivery has not completed yet.
    pub depositing: Option<ReservationId>,
    /// An unlock (pickup or removal) is under way for it.
    pub pending_unlock: Option<UnlockId>,
    pub delivered_at: Millis,
    /// Start of the hold clock; restarts when another parcel joins the compartment.
    pub hold_base: Millis,
    pub hold_until: Option<Millis>,
    pub expired: bool,
    pub reminders_sent: u32,
    /// The "hold ends soon" notice went out.
    pub expiry_warned: bool,
    /// Flagged after a temperature excursion: (unit, excursion start).
    pub perishable: Option<(String, Millis)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Code {
    pub resident: ResidentId,
    pub parcels: Vec<ParcelId>,
    pub qr_expires: Millis,
    pub void: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub carrier: CarrierId,
    pub resident: ResidentId,
    pub bank: String,
    pub door: u16,
    pub size: Size,
    pub temperature: TempClass,
    pub share: bool,
    pub reserved_at: Millis,
    /// The tracking number given when the door was asked for.
    pub tracking: Option<String>,
    /// Hub that made the reservation; only it runs the reservation's timers.
    pub origin: String,
    pub placed: Vec<ParcelId>,
    pub door_opened: bool,
    pub unlock: Option<UnlockId>,
    pub active: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnlockState {
    Pending,
    Opened,
    Lapsed,
    Failed,
    Unknown,
    Resolved,
    /// Never went on the wire.
    NotSent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unlock {
    pub bank: String,
    pub door: u16,
    pub purpose: UnlockPurpose,
    pub attempts: u8,
    pub sent_at: Millis,
    pub acked_at: Option<Millis>,
    pub state: UnlockState,
    /// Hub that sent it; only that hub runs its timers.
    pub origin: String,
    /// When its outcome became unknown.
    pub unknown_at: Option<Millis>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Comp {
    pub door_open: bool,
    pub opened_at: Option<Millis>,
    /// When the door last closed (a refrigerated unit's door grace runs from it).
    pub closed_at: Option<Millis>,
    pub oos_override: Option<bool>,
    pub active_unlock: Option<UnlockId>,
    /// The latest unlock sent for this door, whatever became of it: a door seen open soon
    /// after it is that unlock's doing, not tamper.
    pub last_unlock: Option<UnlockId>,
    pub reservations: BTreeSet<ReservationId>,
    /// Parcels whose location is this compartment (`Compartment` or `Disputed`).
    pub parcels: BTreeSet<ParcelId>,
}

/// Per-bank state. The wrong-code counters are derived from `CodeRejected` facts, so a restart
/// does not reset a lockout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BankState {
    pub online: bool,
    pub failures: Vec<Millis>,
    pub last_failure: Option<Millis>,
    pub lockout_level: u32,
    pub locked_until: Option<Millis>,
    /// Doors whose board does not answer: no deliveries, shown offline.
    pub unreachable: BTreeSet<u16>,
    /// Offline since (the start of this outage).
    pub offline_since: Option<Millis>,
    /// Some doors unreachable since (the set went from empty to not).
    pub unreachable_since: Option<Millis>,
    /// Latest "bank offline" and "doors unreachable" alerts raised, so an outage is alerted
    /// once even after staff acknowledge it.
    pub offline_alerted: Option<Millis>,
    pub unreachable_alerted: Option<Millis>,
}

impl Default for BankState {
    fn default() -> Self {
        // Banks start online: a bank that never said otherwise is assumed reachable, and its first
        // "offline" report takes it out of service for deliveries.
        BankState {
            online: true,
            failures: Vec::new(),
            last_failure: None,
            lockout_level: 0,
            locked_until: None,
            unreachable: BTreeSet::new(),
            offline_since: None,
            unreachable_since: None,
            offline_alerted: None,
            unreachable_alerted: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct State {
    pub residents: BTreeMap<ResidentId, Resident>,
    pub badges: BTreeMap<String, ResidentId>,
    pub carriers: BTreeMap<CarrierId, Carrier>,
    pub carrier_codes: BTreeMap<String, CarrierId>,
    pub preadvice: BTreeMap<String, ResidentId>,
    pub comps: BTreeMap<(String, u16), Comp>,
    pub banks: BTreeMap<String, BankState>,
    pub parcels: BTreeMap<ParcelId, Parcel>,
    pub codes: BTreeMap<CodeId, Code>,
    pub pin_index: BTreeMap<String, BTreeSet<CodeId>>,
    /// Each resident's codes, so that finding a resident's live codes never walks every code
    /// of history.
    pub codes_of: BTreeMap<ResidentId, BTreeSet<CodeId>>,
    pub reservations: BTreeMap<ReservationId, Reservation>,
    /// Per carrier, when its parcels went to the desk because no compartment fitted, within
    /// the last hour of facts (the per-carrier overflow limit).
    pub overflows: BTreeMap<CarrierId, Vec<Millis>>,
    pub unlocks: BTreeMap<UnlockId, Unlock>,
    /// The unlocks still `Pending` or `Unknown`: the ones with a timer or an alert to come.
    /// An index kept with `unlocks`, so that the timers never walk every unlock of history.
    pub open_unlocks: BTreeSet<UnlockId>,
    pub alerts: BTreeMap<AlertId, Alert>,
    pub answered: BTreeMap<RequestId, (String, Reply)>,
    /// Requests from the cloud not answered yet, by their fact id: (asked at, request).
    pub remote_pending: BTreeMap<FactId, (Millis, crate::input::Request)>,
    /// When remote opens were carried out (the last hour's matter: the per-hour limit).
    pub remote_opens: Vec<Millis>,
    /// End of the last temperature summary per (bank, unit, sensor).
    pub summarized: BTreeMap<(String, String, String), Millis>,
    /// Roll ids staff matched to a resident of another id (`RollLinked`).
    pub roll_links: BTreeMap<String, ResidentId>,
    /// Rows of the last roll import waiting for staff, by the id of the fact that queued them.
    pub roll_reviews: BTreeMap<FactId, RollReview>,
    /// The last roll import: when, and its fact.
    pub last_import: Option<Fact>,
    pub last: Option<FactId>,
}

/// A row of the last import that partly matched a resident.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RollReview {
    pub at: Millis,
    pub row: crate::input::RollRow,
    pub key: String,
    pub candidate: ResidentId,
    pub reason: String,
}

impl State {
    /// A resident registered (created, changed, reactivated): fields given replace what was
    /// known (empty: cleared), fields left out are kept.
    fn register(
        &mut self,
        resident: &ResidentId,
        unit: &str,
        accessible: bool,
        contact: &crate::input::Contact,
        tenancy: &crate::input::Tenancy,
        roll: bool,
    ) {
        let r = self.residents.entry(resident.clone()).or_insert(Resident {
            unit: String::new(),
            accessible: false,
            hold_until: None,
            active: true,
            name: None,
            email: None,
            phone: None,
            language: None,
            notify: None,
            secondary_email: None,
            secondary_phone: None,
            tenancy: Default::default(),
            on_roll: false,
            off_roll_since: None,
        });
        r.unit = unit.to_owned();
        r.accessible = accessible;
        r.active = true;
        r.on_roll |= roll;
        r.off_roll_since = None;
        let set = |field: &mut Option<String>, given: &Option<String>| {
            if let Some(v) = given {
                *field = (!v.is_empty()).then(|| v.clone());
            }
        };
        set(&mut r.email, &contact.email);
        set(&mut r.phone, &contact.phone);
        set(&mut r.language, &contact.language);
        set(&mut r.name, &contact.name);
        set(&mut r.notify, &contact.notify);
        set(&mut r.secondary_email, &contact.secondary_email);
        set(&mut r.secondary_phone, &contact.secondary_phone);
        set(&mut r.tenancy.lease_start, &tenancy.lease_start);
        set(&mut r.tenancy.lease_end, &tenancy.lease_end);
        set(&mut r.tenancy.move_in, &tenancy.move_in);
        set(&mut r.tenancy.move_out, &tenancy.move_out);
    }

    /// Fold one fact. Facts that refer to things this replica does not know are kept in the
    /// record but change nothing here.
    pub(crate) fn apply(&mut self, ctx: &Ctx, f: &Fact) {
        let bank = f.bank.clone().unwrap_or_default();
        let door = f.door.unwrap_or_default();
        match &f.kind {
            FactKind::ResidentRegistered {
                resident,
                unit,
                accessible,
                contact,
                tenancy,
                roll,
            } => {
                // Only a hub's import puts a resident under the roll: the cloud registers
                // residents, it does not decide who the roll moves out.
                let roll = *roll && f.id.hub != crate::access::CLOUD_AUTHOR;
                self.register(resident, unit, *accessible, contact, tenancy, roll)
            }
            FactKind::ResidentsRegistered { residents } => {
                for r in residents {
                    self.register(
                        &r.resident,
                        &r.unit,
                        r.accessible,
                        &r.contact,
                        &r.tenancy,
                        true,
                    );
                }
            }
            FactKind::ResidentDeactivated { resident } => {
                if let Some(r) = self.residents.get_mut(resident) {
                    r.active = false;
                    r.off_roll_since = None;
                }
            }
            FactKind::ResidentOffRoll { resident } => {
                if let Some(r) = self.residents.get_mut(resident) {
                    r.off_roll_since.get_or_insert(f.at);
                }
            }
            FactKind::RollImported { .. } => {
                // Facts fold in id order, so a concurrent import on another replica cannot
                // wipe reviews queued after this one.
                self.roll_reviews.retain(|id, _| *id > f.id);
                self.last_import = Some(f.clone());
            }
            FactKind::RollReviewQueued {
                row,
                key,
                candidate,
                reason,
            } => {
                self.roll_reviews.insert(
                    f.id.clone(),
                    RollReview {
                        at: f.at,
                        row: row.clone(),
                        key: key.clone(),
                        candidate: candidate.clone(),
                        reason: reason.clone(),
                    },
                );
            }
            FactKind::RollReviewResolved { review, .. } => {
                if let Ok(id) = review.parse::<FactId>() {
                    self.roll_reviews.remove(&id);
                }
            }
            FactKind::RollLinked { key, resident } => {
                self.roll_links.insert(key.clone(), resident.clone());
            }
            FactKind::BadgeRegistered {
                resident,
                badge_hash,
            } => {
                self.badges.insert(badge_hash.clone(), resident.clone());
            }
            FactKind::BadgeRevoked { badge_hash } => {
                self.badges.remove(badge_hash);
            }
            FactKind::CarrierRegistered {
                carrier,
                name,
                email,
            } => {
                // Registering again renames and reinstates; the carrier's live codes stay.
                let c = self.carriers.entry(carrier.clone()).or_insert(Carrier {
                    name: String::new(),
                    revoked: false,
                    email: None,
                    codes: BTreeMap::new(),
                });
                c.name = name.clone();
                c.revoked = false;
                if let Some(email) = email {
                    c.email = Some(email.clone()).filter(|e| !e.is_empty());
                }
            }
            FactKind::CarrierCodeIssued { carrier, code_hash } => {
                if let Some(old) = self
                    .carrier_codes
                    .insert(code_hash.clone(), carrier.clone())
                {
                    // Two replicas issued the same code concurrently: the later issue owns it.
                    if let Some(c) = self.carriers.get_mut(&old) {
                        c.codes.retain(|_, (h, _)| h != code_hash);
                    }
                }
                if let Some(c) = self.carriers.get_mut(carrier) {
                    c.codes.insert(f.id.to_string(), (code_hash.clone(), f.at));
                }
            }
            FactKind::CarrierCodeRevoked { code_hash } => {
                if let Some(carrier) = self.carrier_codes.remove(code_hash) {
                    if let Some(c) = self.carriers.get_mut(&carrier) {
                        c.codes.retain(|_, (h, _)| h != code_hash);
                    }
                }
            }
            FactKind::CarrierRevoked { carrier } => {
                if let Some(c) = self.carriers.get_mut(carrier) {
                    c.revoked = true;
                }
            }
            FactKind::TrackingPreAdvised { tracking, resident } => {
                self.preadvice.insert(tracking.clone(), resident.clone());
            }
            FactKind::VacationHoldSet { target, until } => self.set_hold(target, Some(*until)),
            FactKind::VacationHoldCleared { target } => self.set_hold(target, None),

            FactKind::CompartmentReserved {
                reservation,
                carrier,
                resident,
                size,
                temperature,
                share,
                tracking,
            } => {
                if let Some(old) = self.reservations.get(reservation) {
                    // A reservation moved to another compartment after a door fault.
                    let key = (old.bank.clone(), old.door);
                    self.comp(&key).reservations.remove(reservation);
                }
                self.reservations.insert(
                    reservation.clone(),
                    Reservation {
                        carrier: carrier.clone(),
                        resident: resident.clone(),
                        bank: bank.clone(),
                        door,
                        size: *size,
                        temperature: *temperature,
                        share: *share,
                        reserved_at: f.at,
                        tracking: tracking.clone(),
                        origin: f.id.hub.clone(),
                        placed: Vec::new(),
                        door_opened: false,
                        unlock: None,
                        active: true,
                    },
                );
                self.comp(&(bank.clone(), door))
                    .reservations
                    .insert(reservation.clone());
                self.reservation_meets_delivery(f, reservation, resident, &bank, door);
            }
            FactKind::ParcelPlaced {
                reservation,
                tracking,
            } => self.apply_parcel_placed(f, reservation, tracking),
            FactKind::DeliveryCompleted {
                reservation,
                resident,
                parcels,
            } => self.apply_delivery_completed(f, reservation, resident, parcels),
            FactKind::ReservationReleased { reservation, .. } => {
                self.release_reservation(reservation);
            }
            FactKind::ParcelAtDesk {
                resident,
                carrier,
                tracking,
                size,
                temperature,
                reason,
            } => {
                if let (DeskReason::Overflow, Some(c)) = (reason, carrier) {
                    let times = self.overflows.entry(c.clone()).or_default();
                    times.retain(|t| f.at.0.saturating_sub(t.0) < OVERFLOW_WINDOW_MS);
                    times.push(f.at);
                }
                if let Some(id) = &f.parcel {
                    let mut p =
                        Parcel::new(id.clone(), Some(resident.clone()), f.at, Location::Desk);
                    p.carrier = carrier.clone();
                    p.tracking = tracking.clone();
                    p.size = *size;
                    p.temperature = *temperature;
                    self.parcels.insert(id.clone(), p);
                }
            }
            FactKind::CodeIssued {
                code,
                resident,
                parcels,
                pin_hash,
                qr_expires,
            } => {
                self.codes.insert(
                    code.clone(),
                    Code {
                        resident: resident.clone(),
                        parcels: parcels.clone(),
                        qr_expires: *qr_expires,
                        void: false,
                    },
                );
                self.pin_index
                    .entry(pin_hash.clone())
                    .or_default()
                    .insert(code.clone());
                self.codes_of
                    .entry(resident.clone())
                    .or_default()
                    .insert(code.clone());
            }
            FactKind::CodeVoided { code, .. } => {
                if let Some(c) = self.codes.get_mut(code) {
                    c.void = true;
                }
            }
            // An audit record: the code is what it was.
            FactKind::CodeResent { .. } => {}

            FactKind::UnlockSent {
                unlock,
                purpose,
                attempt,
            } => self.apply_unlock_sent(f, unlock, purpose, *attempt),
            FactKind::UnlockAcked { unlock } => {
                if let Some(u) = self.unlocks.get_mut(unlock) {
                    u.acked_at.get_or_insert(f.at);
                }
            }
            FactKind::DoorOpened { unlock } => {
                let c = self.comp(&(bank, door));
                c.door_open = true;
                c.opened_at = Some(f.at);
                if let Some(u) = unlock {
                    self.unlock_opened(f, u, UnlockState::Opened);
                }
            }
            FactKind::DoorClosed => {
                let c = self.comp(&(bank, door));
                c.door_open = false;
                c.opened_at = None;
                c.closed_at = Some(f.at);
            }
            FactKind::UnlockLapsed { unlock } => self.unlock_ended(unlock, UnlockState::Lapsed),
            FactKind::UnlockFailed { unlock } => self.unlock_ended(unlock, UnlockState::Failed),
            FactKind::UnlockOutcomeUnknown { unlock } => {
                if let Some(u) = self.unlocks.get_mut(unlock) {
                    if u.state == UnlockState::Pending {
                        u.state = UnlockState::Unknown;
                        u.unknown_at = Some(f.at);
                    }
                }
            }
            FactKind::UnlockNotSent { unlock } => self.unlock_ended(unlock, UnlockState::NotSent),
            FactKind::UnlockResolved { unlock, opened } => {
                if *opened {
                    self.unlock_opened(f, unlock, UnlockState::Resolved);
                } else {
                    self.unlock_ended(unlock, UnlockState::Resolved);
                }
            }
            FactKind::BankOffline => {
                let b = self.banks.entry(bank).or_default();
                if b.online || b.offline_since.is_none() {
                    b.offline_since = Some(f.at);
                }
                b.online = false;
            }
            FactKind::BankOnline => {
                let b = self.banks.entry(bank).or_default();
                b.online = true;
                b.offline_since = None;
            }
            FactKind::DoorsUnreachable { doors } => {
                let b = self.banks.entry(bank).or_default();
                if doors.is_empty() {
                    b.unreachable_since = None;
                } else if b.unreachable.is_empty() || b.unreachable_since.is_none() {
                    b.unreachable_since = Some(f.at);
                }
                b.unreachable = doors.iter().copied().collect();
            }
            FactKind::ServiceChanged { out_of_service, .. } => {
                self.comp(&(bank, door)).oos_override = Some(*out_of_service);
            }

            FactKind::CodeRejected { .. } => {
                let p = &ctx.policies;
                let b = self.banks.entry(bank).or_default();
                if let Some(last) = b.last_failure {
                    if f.at.0.saturating_sub(last.0) >= p.lockout_reset_ms {
                        b.lockout_level = 0;
                    }
                }
                b.last_failure = Some(f.at);
                b.failures
                    .retain(|t| f.at.0.saturating_sub(t.0) < p.wrong_code_window_ms);
                b.failures.push(f.at);
                if b.failures.len() as u64 >= u64::from(p.wrong_code_limit.max(1)) {
                    b.lockout_level += 1;
                    b.locked_until = Some(f.at.plus(p.lockout_ms(b.lockout_level)));
                    b.failures.clear();
                }
            }
            FactKind::ParcelsPickedUpAtDesk { parcels } => {
                for id in parcels {
                    if self.parcels.get(id).map(|p| &p.location) == Some(&Location::Desk) {
                        self.move_parcel(id, Location::PickedUp);
                    }
                }
            }

            FactKind::ReminderSent { parcels, index } => {
                for id in parcels {
                    if let Some(p) = self.parcels.get_mut(id) {
                        p.reminders_sent = p.reminders_sent.max(index + 1);
                    }
                }
            }
            FactKind::ExpiryWarned { parcels } => {
                for id in parcels {
                    if let Some(p) = self.parcels.get_mut(id) {
                        p.expiry_warned = true;
                    }
                }
            }
            FactKind::HoldExpired => {
                if let Some(p) = f.parcel.as_ref().and_then(|id| self.parcels.get_mut(id)) {
                    if matches!(p.location, Location::Compartment { .. }) {
                        p.expired = true;
                    }
                }
            }
            FactKind::ParcelsReassigned { parcels, to } => self.apply_reassigned(f, parcels, to),

            FactKind::AuditConfirmed { .. } => {}
            FactKind::AuditFoundEmpty { missing } => {
                for id in missing {
                    let here = self
                        .parcels
                        .get(id)
                        .is_some_and(|p| p.location.is_at(&bank, door));
                    if here {
                        self.move_parcel(id, Location::Missing);
                        if let Some(p) = self.parcels.get_mut(id) {
                            p.pending_unlock = None;
                            p.depositing = None;
                        }
                    }
                }
            }
            FactKind::AuditFoundParcel {
                resident,
                tracking,
                to_desk,
            } => {
                if let Some(id) = &f.parcel {
                    let mut p = Parcel::new(id.clone(), resident.clone(), f.at, Location::Desk);
                    p.tracking = tracking.clone();
                    self.parcels.insert(id.clone(), p);
                    if !to_desk {
                        self.place_found_parcel(f, id, &bank, door);
                    }
                }
            }

            FactKind::AlertRaised {
                alert,
                message,
                unit,
            } => {
                let id = AlertId(f.id.to_string());
                if let Some(b) = f.bank.as_ref().filter(|_| f.door.is_none()) {
                    let seen = match alert {
                        AlertKind::BankOffline => {
                            Some(&mut self.banks.entry(b.clone()).or_default().offline_alerted)
                        }
                        AlertKind::DoorsUnreachable => {
                            Some(&mut self.banks.entry(b.clone()).or_default().unreachable_alerted)
                        }
                        _ => None,
                    };
                    if let Some(seen) = seen {
                        *seen = (*seen).max(Some(f.at));
                    }
                }
                self.alerts.insert(
                    id.clone(),
                    Alert {
                        id,
                        kind: *alert,
                        bank: f.bank.clone(),
                        door: f.door,
                        parcel: f.parcel.clone(),
                        message: message.clone(),
                        raised_at: f.at,
                        unit: unit.clone(),
                    },
                );
            }
            FactKind::PerishableFlagged { unit, since } => {
                if let Some(p) = f.parcel.as_ref().and_then(|id| self.parcels.get_mut(id)) {
                    // The latest excursion wins, whatever order replicas fold in.
                    if p.perishable.as_ref().is_none_or(|(_, s)| s <= since) {
                        p.perishable = Some((unit.clone(), *since));
                    }
                }
            }
            FactKind::TemperatureSummary {
                unit, sensor, to, ..
            } => {
                let last = self
                    .summarized
                    .entry((bank, unit.clone(), sensor.clone()))
                    .or_default();
                *last = (*last).max(*to);
            }
            FactKind::AlertCleared { alert, .. } => {
                self.alerts.remove(alert);
            }
            FactKind::Answered {
                request,
                fingerprint,
                reply,
            } => {
                self.answered
                    .insert(request.clone(), (fingerprint.clone(), reply.clone()));
                let remote = request
                    .0
                    .strip_prefix("remote-")
                    .and_then(|id| id.parse::<FactId>().ok());
                if let Some(id) = remote {
                    let done = self.remote_pending.remove(&id);
                    let opened =
                        matches!(done, Some((_, crate::input::Request::StaffOpenDoor { .. })))
                            && !matches!(reply.outcome, crate::reply::Outcome::Rejected(_));
                    if opened {
                        self.remote_opens
                            .retain(|t| f.at.0.saturating_sub(t.0) < 3_600_000);
                        self.remote_opens.push(f.at);
                    }
                }
            }
            FactKind::RemoteRequested { request } => {
                let answered = self
                    .answered
                    .contains_key(&crate::ids::remote_request_id(&f.id));
                if !answered {
                    self.remote_pending
                        .insert(f.id.clone(), (f.at, request.clone()));
                }
            }
        }
        if self.last.as_ref().is_none_or(|l| *l < f.id) {
            self.last = Some(f.id.clone());
        }
    }

    pub(crate) fn comp(&mut self, key: &(String, u16)) -> &mut Comp {
        self.comps.entry(key.clone()).or_default()
    }

    fn set_hold(&mut self, target: &HoldTarget, until: Option<Millis>) {
        match target {
            HoldTarget::Parcel { parcel } => {
                if let Some(p) = self.parcels.get_mut(parcel) {
                    p.hold_until = until;
                }
            }
            HoldTarget::Resident { resident } => {
                if let Some(r) = self.residents.get_mut(resident) {
                    r.hold_until = until;
                }
            }
        }
    }

    /// Change a parcel's location, keeping the per-compartment index in step.
    /// The parcels in a compartment (or disputed there), in parcel id order: from the
    /// compartments' index, not from every parcel of history.
    pub(crate) fn parcels_in_compartments(&self) -> impl Iterator<Item = &Parcel> + '_ {
        let mut ids: Vec<&ParcelId> = self.comps.values().flat_map(|c| c.parcels.iter()).collect();
        ids.sort();
        ids.dedup();
        ids.into_iter().filter_map(|id| self.parcels.get(id))
    }

    /// The indexes kept beside the maps (`open_unlocks`, `Comp::reservations`,
    /// `Comp::parcels`, `codes_of`) against a walk over everything: what they must always be.
    pub(crate) fn check_indexes(&self) -> Result<(), String> {
        let open: BTreeSet<&UnlockId> = self
            .unlocks
            .iter()
            .filter(|(_, u)| matches!(u.state, UnlockState::Pending | UnlockState::Unknown))
            .map(|(id, _)| id)
            .collect();
        if open != self.open_unlocks.iter().collect() {
            return Err(format!(
                "open unlocks {:?}, index {:?}",
                open, self.open_unlocks
            ));
        }
        let active: BTreeSet<&ReservationId> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.active)
            .map(|(id, _)| id)
            .collect();
        let indexed: BTreeSet<&ReservationId> = self
            .comps
            .values()
            .flat_map(|c| c.reservations.iter())
            .collect();
        if active != indexed {
            return Err(format!(
                "active reservations {active:?}, compartments list {indexed:?}"
            ));
        }
        let held: BTreeSet<&ParcelId> = self
            .parcels
            .values()
            .filter(|p| p.location.compartment().is_some())
            .map(|p| &p.id)
            .collect();
        let indexed: BTreeSet<&ParcelId> = self.parcels_in_compartments().map(|p| &p.id).collect();
        if held != indexed {
            return Err(format!(
                "parcels in compartments {held:?}, compartments list {indexed:?}"
            ));
        }
        for (id, c) in &self.codes {
            if !self
                .codes_of
                .get(&c.resident)
                .is_some_and(|s| s.contains(id))
            {
                return Err(format!("code {id} missing from its resident's list"));
            }
        }
        Ok(())
    }

    pub(crate) fn move_parcel(&mut self, id: &ParcelId, to: Location) {
        let Some(p) = self.parcels.get_mut(id) else {
            return;
        };
        if let Some(key) = p.location.compartment() {
            if let Some(c) = self.comps.get_mut(&key) {
                c.parcels.remove(id);
            }
        }
        p.location = to;
        if let Some(key) = p.location.compartment() {
            self.comps
                .entry(key)
                .or_default()
                .parcels
                .insert(id.clone());
        }
    }

    fn release_reservation(&mut self, id: &ReservationId) {
        let Some(r) = self.reservations.get_mut(id) else {
            return;
        };
        r.active = false;
        let key = (r.bank.clone(), r.door);
        let placed = r.placed.clone();
        self.comp(&key).reservations.remove(id);
        // Parcels placed but not delivered went back with the carrier.
        for p in placed {
            if self.parcels.get(&p).is_some_and(|x| x.depositing.is_some()) {
                self.move_parcel(&p, Location::Returned);
                if let Some(x) = self.parcels.get_mut(&p) {
                    x.depositing = None;
                }
            }
        }
    }

    fn apply_unlock_sent(&mut self, f: &Fact, id: &UnlockId, purpose: &UnlockPurpose, attempt: u8) {
        if let Some(u) = self.unlocks.get_mut(id) {
            u.attempts = u.attempts.max(attempt);
            u.sent_at = f.at;
            return;
        }
        let bank = f.bank.clone().unwrap_or_default();
        let door = f.door.unwrap_or_default();
        self.unlocks.insert(
            id.clone(),
            Unlock {
                bank: bank.clone(),
                door,
                purpose: purpose.clone(),
                attempts: attempt,
                sent_at: f.at,
                acked_at: None,
                state: UnlockState::Pending,
                origin: f.id.hub.clone(),
                unknown_at: None,
            },
        );
        self.open_unlocks.insert(id.clone());
        let c = self.comp(&(bank.clone(), door));
        c.active_unlock = Some(id.clone());
        c.last_unlock = Some(id.clone());
        match purpose {
            UnlockPurpose::Delivery { reservation } => {
                if let Some(r) = self.reservations.get_mut(reservation) {
                    r.unlock = Some(id.clone());
                }
            }
            UnlockPurpose::Pickup { parcels, .. } | UnlockPurpose::Removal { parcels, .. } => {
                for p in parcels {
                    if let Some(p) = self.parcels.get_mut(p) {
                        p.pending_unlock = Some(id.clone());
                    }
                }
                if matches!(purpose, UnlockPurpose::Pickup { .. }) {
                    // A valid credential at this bank restarts its wrong-code window.
                    self.banks.entry(bank).or_default().failures.clear();
                }
            }
            UnlockPurpose::StaffOpen { .. } => {}
        }
    }

    /// The door of an unlock was opened (seen, or decided by a person): what that means depends
    /// on why it was unlocked.
    fn unlock_opened(&mut self, f: &Fact, id: &UnlockId, state: UnlockState) {
        let Some(u) = self.unlocks.get_mut(id) else {
            return;
        };
        // A door seen open settles an unlock whatever was said of it before (failed, not
        // sent, unknown): the door is the truth.
        if matches!(u.state, UnlockState::Opened | UnlockState::Resolved) {
            return;
        }
        u.state = state;
        self.open_unlocks.remove(id);
        let (key, purpose) = ((u.bank.clone(), u.door), u.purpose.clone());
        let c = self.comp(&key);
        if c.active_unlock.as_ref() == Some(id) {
            c.active_unlock = None;
        }
        match purpose {
            UnlockPurpose::Delivery { reservation } => {
                // Not when the reservation has moved on to another door since.
                if let Some(r) = self
                    .reservations
                    .get_mut(&reservation)
                    .filter(|r| r.bank == key.0 && r.door == key.1)
                {
                    r.door_opened = true;
                    if r.unlock.as_ref() == Some(id) {
                        r.unlock = None;
                    }
                }
            }
            UnlockPurpose::Pickup {
                resident, parcels, ..
            } => self.apply_pickup_opened(f, &key, &resident, &parcels),
            UnlockPurpose::Removal {
                parcels,
                disposition,
                ..
            } => {
                let to = match disposition {
                    crate::input::Disposition::ReturnToSender => Location::Returned,
                    crate::input::Disposition::PackageRoom => Location::Desk,
                };
                for p in &parcels {
                    let here = self.parcels.get(p).is_some_and(|x| {
                        x.location.is_at(&key.0, key.1) && x.pending_unlock.as_ref() == Some(id)
                    });
                    if here {
                        self.move_parcel(p, to.clone());
                        if let Some(x) = self.parcels.get_mut(p) {
                            x.pending_unlock = None;
                            x.depositing = None;
                        }
                    }
                }
            }
            UnlockPurpose::StaffOpen { .. } => {}
        }
    }

    /// An unlock ended without the door opening: whatever waited on it is free again.
    fn unlock_ended(&mut self, id: &UnlockId, state: UnlockState) {
        let Some(u) = self.unlocks.get_mut(id) else {
            return;
        };
        if matches!(
            u.state,
            UnlockState::Opened
                | UnlockState::Resolved
                | UnlockState::Failed
                | UnlockState::Lapsed
                | UnlockState::NotSent
        ) {
            return;
        }
        u.state = state;
        self.open_unlocks.remove(id);
        let key = (u.bank.clone(), u.door);
        let purpose = u.purpose.clone();
        let c = self.comp(&key);
        if c.active_unlock.as_ref() == Some(id) {
            c.active_unlock = None;
        }
        match purpose {
            UnlockPurpose::Delivery { reservation } => {
                if let Some(r) = self.reservations.get_mut(&reservation) {
                    if r.unlock.as_ref() == Some(id) {
                        r.unlock = None;
                    }
                }
            }
            UnlockPurpose::Pickup { parcels, .. } | UnlockPurpose::Removal { parcels, .. } => {
                for p in parcels {
                    if let Some(p) = self.parcels.get_mut(&p) {
                        if p.pending_unlock.as_ref() == Some(id) {
                            p.pending_unlock = None;
                        }
                    }
                }
            }
            UnlockPurpose::StaffOpen { .. } => {}
        }
    }

    /// Record a conflict found while folding, under an id every replica derives the same way.
    pub(crate) fn conflict(&mut self, f: &Fact, parcel: Option<&ParcelId>, message: String) {
        let n = self
            .alerts
            .range(AlertId(format!("conflict-{}", f.id))..)
            .take_while(|(k, _)| k.0.starts_with(&format!("conflict-{}", f.id)))
            .count();
        let id = AlertId(format!("conflict-{}/{n}", f.id));
        self.alerts.insert(
            id.clone(),
            Alert {
                id,
                kind: AlertKind::Conflict,
                bank: f.bank.clone(),
                door: f.door,
                parcel: parcel.cloned(),
                message,
                raised_at: f.at,
                unit: None,
            },
        );
    }

    // --- queries used by the workflows and the views ---

    pub(crate) fn bank(&self, bank: &str) -> BankState {
        self.banks.get(bank).cloned().unwrap_or_default()
    }

    /// Registered and not deactivated: may receive new parcels.
    pub(crate) fn resident_active(&self, resident: &ResidentId) -> bool {
        self.residents.get(resident).is_some_and(|r| r.active)
    }

    pub(crate) fn bank_online(&self, bank: &str) -> bool {
        self.banks.get(bank).is_none_or(|b| b.online)
    }

    /// The bank is online but this door's board does not answer.
    pub(crate) fn door_unreachable(&self, bank: &str, door: u16) -> bool {
        self.banks
            .get(bank)
            .is_some_and(|b| b.unreachable.contains(&door))
    }

    pub(crate) fn keypad_locked_until(&self, bank: &str, now: Millis) -> Option<Millis> {
        self.banks
            .get(bank)
            .and_then(|b| b.locked_until)
            .filter(|u| *u > now)
    }

    pub(crate) fn out_of_service(&self, ctx: &Ctx, bank: &str, door: u16) -> bool {
        let configured = ctx
            .site
            .compartment(bank, door)
            .is_none_or(|c| c.out_of_service);
        self.comps
            .get(&(bank.to_owned(), door))
            .and_then(|c| c.oos_override)
            .unwrap_or(configured)
    }

    /// Parcels held in a compartment (not disputed ones).
    pub(crate) fn parcels_at(&self, bank: &str, door: u16) -> Vec<&Parcel> {
        self.comps
            .get(&(bank.to_owned(), door))
            .map(|c| {
                c.parcels
                    .iter()
                    .filter_map(|id| self.parcels.get(id))
                    .filter(|p| p.location.is_compartment(bank, door))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Can a new delivery use this compartment right now?
    pub(crate) fn is_free(&self, ctx: &Ctx, bank: &str, door: u16) -> bool {
        if ctx.site.compartment(bank, door).is_none()
            || !self.bank_online(bank)
            || self.door_unreachable(bank, door)
            || self.out_of_service(ctx, bank, door)
        {
            return false;
        }
        match self.comps.get(&(bank.to_owned(), door)) {
            None => true,
            Some(c) => {
                !c.door_open
                    && c.active_unlock.is_none()
                    && c.reservations.is_empty()
                    && c.parcels.is_empty()
            }
        }
    }

    /// A parcel a resident could collect now.
    pub(crate) fn parcel_collectable(&self, p: &Parcel) -> bool {
        matches!(p.location, Location::Compartment { .. })
            && !p.expired
            && p.depositing.is_none()
            && p.pending_unlock.is_none()
    }

    /// A code works while it is not void and at least one of its parcels is still collectable
    /// and still belongs to the code's resident.
    pub(crate) fn code_live(&self, code: &Code) -> bool {
        !code.void
            && code.parcels.iter().any(|id| {
                self.parcels.get(id).is_some_and(|p| {
                    self.parcel_collectable(p) && p.resident.as_ref() == Some(&code.resident)
                })
            })
    }

    /// The vacation hold in force for a parcel (its own or its resident's, whichever is later).
    pub(crate) fn hold_until(&self, p: &Parcel) -> Option<Millis> {
        let resident = p
            .resident
            .as_ref()
            .and_then(|r| self.residents.get(r))
            .and_then(|r| r.hold_until);
        p.hold_until.max(resident)
    }

    /// When a parcel in a compartment expires: its hold clock plus the hold time for its class,
    /// pushed back to the end of any vacation hold.
    pub(crate) fn expires_at(&self, ctx: &Ctx, p: &Parcel) -> Millis {
        let base = p.hold_base.plus(ctx.policies.hold_ms(p.temperature));
        base.max(self.hold_until(p).unwrap_or_default())
    }
}

impl Parcel {
    pub(crate) fn new(
        id: ParcelId,
        resident: Option<ResidentId>,
        at: Millis,
        location: Location,
    ) -> Parcel {
        Parcel {
            id,
            resident,
            carrier: None,
            tracking: None,
            size: None,
            temperature: TempClass::Ambient,
            location,
            depositing: None,
            pending_unlock: None,
            delivered_at: at,
            hold_base: at,
            hold_until: None,
            expired: false,
            reminders_sent: 0,
            expiry_warned: false,
            perishable: None,
        }
    }
}

impl Location {
    pub(crate) fn compartment(&self) -> Option<(String, u16)> {
        match self {
            Location::Compartment { bank, door } | Location::Disputed { bank, door } => {
                Some((bank.clone(), *door))
            }
            _ => None,
        }
    }

    /// In this compartment, held or disputed.
    pub(crate) fn is_at(&self, bank: &str, door: u16) -> bool {
        self.compartment()
            .is_some_and(|(b, d)| b == bank && d == door)
    }

    /// Held (not disputed) in this compartment.
    pub(crate) fn is_compartment(&self, bank: &str, door: u16) -> bool {
        matches!(self, Location::Compartment { bank: b, door: d } if b == bank && *d == door)
    }
}

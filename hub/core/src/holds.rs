//! Holds, reminders, expiry, vacation holds and staff removal.
//!
//! A parcel in a compartment is held for the hold time of its temperature class from its hold
//! clock (the delivery, restarted when another parcel joins the compartment). Reminders go out at
//! the configured offsets. A vacation hold (on a parcel or a whole resident, at most
//! `max_vacation_hold_ms` ahead) defers reminders and expiry until it ends. An expired parcel's
//! codes stop working; staff are alerted and remove it with an audited override (return to
//! sender, or move to the package room).

use std::collections::BTreeMap;

use crate::core::{reject, Core, Result, Subject, Tx};
use crate::effect::{Effect, NotifyKind};
use crate::fact::{Actor, AlertKind, FactKind, UnlockPurpose};
use crate::ids::{Millis, ParcelId, ResidentId};
use crate::input::{Disposition, HoldTarget, Operator};
use crate::reply::{Outcome, RejectCode};
use crate::state::{Location, Parcel};

/// What the hold clock of one parcel asks for next.
enum HoldEvent {
    Expire,
    /// The hold ends soon.
    Warn,
    Remind(u32),
}

impl Core {
    pub(crate) fn set_vacation_hold(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        target: &HoldTarget,
        until: Millis,
    ) -> Result<Outcome> {
        self.check_hold_target(target)?;
        if until <= tx.now {
            return reject(
                RejectCode::InvalidInput,
                format!("hold end {until} is not in the future"),
            );
        }
        let max = tx.now.plus(self.ctx.policies.max_vacation_hold_ms);
        if until > max {
            return reject(
                RejectCode::InvalidInput,
                format!(
                    "hold end {until} is later than the property maximum ({max}, {} days from now)",
                    self.ctx.policies.max_vacation_hold_ms / 86_400_000
                ),
            );
        }
        self.record(
            tx,
            by.into(),
            self.hold_subject(target),
            FactKind::VacationHoldSet {
                target: target.clone(),
                until,
            },
        );
        Ok(Outcome::Accepted)
    }

    /// A request to take a parcel to the desk: a task for staff (a `desk_requested` alert on the
    /// parcel's door), cleared when the parcel leaves the compartment by any way (`door_opened`
    /// for a pickup or a removal). Staff carry it out with `remove_parcels` to the package room,
    /// which tells the resident it is at the desk.
    pub(crate) fn send_to_desk(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        parcel: &ParcelId,
        reason: &str,
    ) -> Result<Outcome> {
        let Some(reason) = crate::staff::alert_note(Some(reason))? else {
            return reject(
                RejectCode::InvalidInput,
                "say why the parcel goes to the desk",
            );
        };
        let Some(p) = self.state.parcels.get(parcel) else {
            return reject(RejectCode::UnknownParcel, format!("no parcel {parcel}"));
        };
        let Some((bank, door)) = p.location.compartment() else {
            return reject(
                RejectCode::NotAllowedNow,
                format!("parcel {parcel} is not held in a locker"),
            );
        };
        let asked = self
            .state
            .alerts
            .values()
            .any(|a| a.kind == AlertKind::DeskRequested && a.parcel.as_ref() == Some(parcel));
        if asked {
            return reject(
                RejectCode::NotAllowedNow,
                format!("parcel {parcel} is already waiting to be taken to the desk"),
            );
        }
        let who = match by {
            Operator::Cloud => "the cloud".to_owned(),
            Operator::Staff { id } => format!("staff {id}"),
        };
        self.raise_alert(
            tx,
            AlertKind::DeskRequested,
            Subject::door(&bank, door).parcel(parcel),
            format!("take parcel {parcel} from {bank} door {door} to the desk (asked by {who}: {reason})"),
        );
        Ok(Outcome::Accepted)
    }

    pub(crate) fn clear_vacation_hold(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        target: &HoldTarget,
    ) -> Result<Outcome> {
        self.check_hold_target(target)?;
        self.record(
            tx,
            by.into(),
            self.hold_subject(target),
            FactKind::VacationHoldCleared {
                target: target.clone(),
            },
        );
        Ok(Outcome::Accepted)
    }

    fn check_hold_target(&self, target: &HoldTarget) -> Result<()> {
        match target {
            HoldTarget::Parcel { parcel } => match self.state.parcels.get(parcel) {
                None => reject(RejectCode::UnknownParcel, format!("no parcel {parcel}")),
                Some(p) if !matches!(p.location, Location::Compartment { .. }) => reject(
                    RejectCode::NotAllowedNow,
                    format!("parcel {parcel} is not held in a locker"),
                ),
                Some(p) if p.expired => reject(
                    RejectCode::NotAllowedNow,
                    format!("parcel {parcel} has already expired"),
                ),
                Some(_) => Ok(()),
            },
            HoldTarget::Resident { resident } => {
                if self.state.residents.contains_key(resident) {
                    Ok(())
                } else {
                    reject(
                        RejectCode::UnknownResident,
                        format!("no resident {resident} in the directory"),
                    )
                }
            }
        }
    }

    fn hold_subject(&self, target: &HoldTarget) -> Subject {
        match target {
            HoldTarget::Parcel { parcel } => Subject::none().parcel(parcel),
            HoldTarget::Resident { .. } => Subject::none(),
        }
    }

    /// The hold event of a parcel due at `now`, or else its next one, with its time. After a
    /// long gap (the hub was off) an overdue expiry wins over stale reminders, and of several
    /// overdue reminders only the latest goes out.
    fn hold_event(&self, p: &Parcel, now: Millis) -> Option<(Millis, HoldEvent)> {
        if !matches!(p.location, Location::Compartment { .. })
            || p.expired
            || p.depositing.is_some()
            || p.pending_unlock.is_some()
        {
            return None;
        }
        let expires = self.state.expires_at(&self.ctx, p);
        if expires <= now {
            return Some((expires, HoldEvent::Expire));
        }
        // "Ends soon", once, when the hold is longer than the notice.
        let notice = self.ctx.policies.expiring_notice_ms;
        let warn = (notice > 0 && !p.expiry_warned)
            .then(|| Millis(expires.0.saturating_sub(notice)))
            .filter(|at| *at > p.hold_base);
        if let Some(at) = warn.filter(|at| *at <= now) {
            return Some((at, HoldEvent::Warn));
        }
        // A reminder due during a vacation hold waits for the hold to end; none comes after the
        // "ends soon" notice.
        let hold = self.state.hold_until(p).unwrap_or_default();
        let last = warn.unwrap_or(expires);
        let reminders: Vec<(u32, Millis)> = self
            .ctx
            .policies
            .reminder_offsets_ms
            .iter()
            .enumerate()
            .skip(p.reminders_sent as usize)
            .map(|(i, off)| (i as u32, p.hold_base.plus(*off).max(hold)))
            .filter(|(_, due)| *due < last)
            .collect();
        if let Some((i, due)) = reminders.iter().rev().find(|(_, due)| *due <= now) {
            return Some((*due, HoldEvent::Remind(*i)));
        }
        [
            reminders
                .first()
                .map(|(i, due)| (*due, HoldEvent::Remind(*i))),
            warn.map(|at| (at, HoldEvent::Warn)),
            Some((expires, HoldEvent::Expire)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(at, _)| *at)
    }

    pub(crate) fn hold_deadlines(&self) -> Vec<Millis> {
        self.state
            .parcels_in_compartments()
            .filter_map(|p| self.hold_event(p, Millis(0)).map(|(t, _)| t))
            .collect()
    }

    /// Tells `resident` about `parcels`, each group with the live code that opens it (the QR
    /// token signed again; the shell adds the PIN it kept).
    fn notify_with_codes(
        &mut self,
        tx: &mut Tx,
        resident: ResidentId,
        parcels: Vec<ParcelId>,
        kind: NotifyKind,
    ) {
        let mut uncovered = parcels.clone();
        for (code, covered) in self.live_codes_for(&resident, &parcels) {
            uncovered.retain(|p| !covered.contains(p));
            tx.effects.push(Effect::Notify {
                resident: resident.clone(),
                parcels: covered,
                pin: None,
                qr: self.qr_of(&code),
                kind,
                code: Some(code),
            });
        }
        if !uncovered.is_empty() {
            tx.effects.push(Effect::Notify {
                resident,
                parcels: uncovered,
                pin: None,
                qr: None,
                kind,
                code: None,
            });
        }
    }

    pub(crate) fn hold_timers(&mut self, tx: &mut Tx) {
        let mut reminders: BTreeMap<(ResidentId, u32), Vec<ParcelId>> = BTreeMap::new();
        let mut warned: BTreeMap<ResidentId, Vec<ParcelId>> = BTreeMap::new();
        let mut expired: BTreeMap<ResidentId, Vec<(ParcelId, String, u16)>> = BTreeMap::new();
        for p in self.state.parcels_in_compartments() {
            let Some((due, event)) = self.hold_event(p, tx.now) else {
                continue;
            };
            let (Some(resident), Some((bank, door))) =
                (p.resident.clone(), p.location.compartment())
            else {
                continue;
            };
            if due > tx.now {
                continue;
            }
            match event {
                HoldEvent::Remind(i) => reminders
                    .entry((resident, i))
                    .or_default()
                    .push(p.id.clone()),
                HoldEvent::Warn => warned.entry(resident).or_default().push(p.id.clone()),
                HoldEvent::Expire => {
                    expired
                        .entry(resident)
                        .or_default()
                        .push((p.id.clone(), bank, door))
                }
            }
        }
        for ((resident, index), parcels) in reminders {
            self.record(
                tx,
                Actor::System,
                Subject::none(),
                FactKind::ReminderSent {
                    parcels: parcels.clone(),
                    index,
                },
            );
            self.notify_with_codes(tx, resident, parcels, NotifyKind::Reminder);
        }
        for (resident, parcels) in warned {
            self.record(
                tx,
                Actor::System,
                Subject::none(),
                FactKind::ExpiryWarned {
                    parcels: parcels.clone(),
                },
            );
            self.notify_with_codes(tx, resident, parcels, NotifyKind::Expiring);
        }
        for (resident, parcels) in expired {
            for (id, bank, door) in &parcels {
                let at = Subject::door(bank, *door).parcel(id);
                self.record(tx, Actor::System, at.clone(), FactKind::HoldExpired);
                self.raise_alert(
                    tx,
                    AlertKind::ParcelExpired,
                    at,
                    format!("parcel {id} in {bank} door {door} expired; remove it (return or package room)"),
                );
            }
            tx.effects.push(Effect::Notify {
                resident,
                parcels: parcels.into_iter().map(|(id, _, _)| id).collect(),
                pin: None,
                qr: None,
                kind: NotifyKind::Expired,
                code: None,
            });
        }
    }

    /// Staff override: open a compartment and take out everything in it (held or disputed).
    pub(crate) fn remove_parcels(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        bank: &str,
        door: u16,
        disposition: Disposition,
        reason: &str,
    ) -> Result<Outcome> {
        self.staff_door_check(bank, door)?;
        let parcels: Vec<ParcelId> = self
            .state
            .comps
            .get(&(bank.to_owned(), door))
            .map(|c| c.parcels.iter().cloned().collect())
            .unwrap_or_default();
        if parcels.is_empty() {
            return reject(
                RejectCode::NothingToCollect,
                format!("{bank} door {door} holds no recorded parcel"),
            );
        }
        self.send_unlock(
            tx,
            by.into(),
            bank,
            door,
            UnlockPurpose::Removal {
                parcels: parcels.clone(),
                disposition,
                reason: reason.to_owned(),
            },
        );
        Ok(Outcome::Opening {
            bank: bank.to_owned(),
            doors: vec![door],
            parcels,
        })
    }
}

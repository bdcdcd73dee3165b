//! Staff actions: opening doors, service state, reassignment, the desk, alerts, unknown unlocks
//! and the audit walk. Each is recorded with the staff user (or the cloud) as actor.

use std::collections::BTreeSet;

use crate::codes::random_id;
use crate::core::{reject, Core, Result, Subject, Tx};
use crate::effect::{Effect, NotifyKind};
use crate::fact::{Actor, AlertKind, DeskReason, FactKind, UnlockPurpose, VoidReason};
use crate::ids::{AlertId, CarrierId, CodeId, ParcelId, ResidentId, UnlockId};
use crate::input::{AuditFinding, Operator};
use crate::reply::{Outcome, RejectCode};
use crate::state::{Location, UnlockState};

/// The longest note a person may leave when acknowledging an alert, in characters: enough for
/// what they found and did, short enough that the alert history stays readable.
pub const ALERT_NOTE_MAX: usize = 500;

/// A trimmed note, `None` when blank; refused when too long or holding control characters
/// (other than line breaks and tabs), which would garble the audit log.
pub(crate) fn alert_note(note: Option<&str>) -> Result<Option<String>> {
    let Some(n) = note.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let len = n.chars().count();
    if len > ALERT_NOTE_MAX {
        return reject(
            RejectCode::InvalidInput,
            format!("the note has {len} characters; at most {ALERT_NOTE_MAX} are allowed"),
        );
    }
    if n.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return reject(
            RejectCode::InvalidInput,
            "the note contains control characters",
        );
    }
    Ok(Some(n.to_owned()))
}

impl Core {
    /// A door staff may unlock now.
    pub(crate) fn staff_door_check(&self, bank: &str, door: u16) -> Result<()> {
        if self.ctx.site.bank(bank).is_none() {
            return reject(RejectCode::UnknownBank, format!("unknown bank {bank:?}"));
        }
        if self.ctx.site.compartment(bank, door).is_none() {
            return reject(
                RejectCode::UnknownDoor,
                format!("bank {bank} has no door {door}"),
            );
        }
        if !self.state.bank_online(bank) {
            return reject(RejectCode::BankOffline, format!("bank {bank} is offline"));
        }
        if let Some(u) = self
            .state
            .comps
            .get(&(bank.to_owned(), door))
            .and_then(|c| c.active_unlock.as_ref())
        {
            return reject(
                RejectCode::NotAllowedNow,
                format!("{bank} door {door} has unlock {u} in progress"),
            );
        }
        Ok(())
    }

    pub(crate) fn staff_open_door(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        bank: &str,
        door: u16,
        reason: &str,
    ) -> Result<Outcome> {
        if reason.trim().is_empty() {
            return reject(
                RejectCode::InvalidInput,
                "give a reason for opening the door",
            );
        }
        self.staff_door_check(bank, door)?;
        self.send_unlock(
            tx,
            by.into(),
            bank,
            door,
            UnlockPurpose::StaffOpen {
                reason: reason.to_owned(),
            },
        );
        Ok(Outcome::Opening {
            bank: bank.to_owned(),
            doors: vec![door],
            parcels: Vec::new(),
        })
    }

    /// Maintenance: open every door of a bank that is not busy with another unlock.
    pub(crate) fn staff_open_bank(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        bank: &str,
        reason: &str,
    ) -> Result<Outcome> {
        if reason.trim().is_empty() {
            return reject(
                RejectCode::InvalidInput,
                "give a reason for opening the bank",
            );
        }
        let Some(layout) = self.ctx.site.bank(bank) else {
            return reject(RejectCode::UnknownBank, format!("unknown bank {bank:?}"));
        };
        let doors: Vec<u16> = layout.compartments.iter().map(|c| c.door).collect();
        if !self.state.bank_online(bank) {
            return reject(RejectCode::BankOffline, format!("bank {bank} is offline"));
        }
        let mut opened = Vec::new();
        for door in doors {
            if self.staff_door_check(bank, door).is_ok() {
                self.send_unlock(
                    tx,
                    by.into(),
                    bank,
                    door,
                    UnlockPurpose::StaffOpen {
                        reason: reason.to_owned(),
                    },
                );
                opened.push(door);
            }
        }
        Ok(Outcome::Opening {
            bank: bank.to_owned(),
            doors: opened,
            parcels: Vec::new(),
        })
    }

    pub(crate) fn set_out_of_service(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        bank: &str,
        door: u16,
        out_of_service: bool,
        reason: &str,
    ) -> Result<Outcome> {
        if self.ctx.site.compartment(bank, door).is_none() {
            return reject(
                RejectCode::UnknownDoor,
                format!("bank {bank:?} has no door {door}"),
            );
        }
        self.record(
            tx,
            by.into(),
            Subject::door(bank, door),
            FactKind::ServiceChanged {
                out_of_service,
                reason: reason.to_owned(),
            },
        );
        if !out_of_service {
            // Back in service means someone fixed the lock.
            self.clear_alerts(tx, by.into(), AlertKind::UnlockFailed, bank, Some(door));
        }
        Ok(Outcome::Accepted)
    }

    /// Give held parcels to another resident: their codes are voided, a new code goes to the new
    /// resident. A compartment never holds two residents' parcels, so parcels in a compartment
    /// move together: name all of them.
    pub(crate) fn reassign(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        parcels: &[ParcelId],
        to: &ResidentId,
    ) -> Result<Outcome> {
        if parcels.is_empty() {
            return reject(RejectCode::InvalidInput, "name at least one parcel");
        }
        if !self.state.resident_active(to) {
            return reject(
                RejectCode::UnknownResident,
                format!("no active resident {to} in the directory"),
            );
        }
        let mut places = BTreeSet::new();
        let mut previous = BTreeSet::new();
        for id in parcels {
            let Some(p) = self.state.parcels.get(id) else {
                return reject(RejectCode::UnknownParcel, format!("no parcel {id}"));
            };
            let held = matches!(p.location, Location::Compartment { .. } | Location::Desk);
            if !held || p.depositing.is_some() || p.pending_unlock.is_some() {
                return reject(
                    RejectCode::NotAllowedNow,
                    format!("parcel {id} is not held right now ({:?})", p.location),
                );
            }
            places.insert(p.location.clone());
            if let Some(r) = &p.resident {
                previous.insert(r.clone());
            }
        }
        if places.len() > 1 {
            return reject(
                RejectCode::InvalidInput,
                "reassign parcels from one place (one compartment, or the desk) at a time",
            );
        }
        let place = places.into_iter().next().unwrap_or(Location::Desk);
        if let Location::Compartment { bank, door } = &place {
            let busy = self
                .state
                .comps
                .get(&(bank.clone(), *door))
                .is_some_and(|c| {
                    c.door_open || c.active_unlock.is_some() || !c.reservations.is_empty()
                });
            if busy {
                return reject(
                    RejectCode::NotAllowedNow,
                    format!("{bank} door {door} is in use (open or reserved); try again when it is closed"),
                );
            }
            let named: BTreeSet<&ParcelId> = parcels.iter().collect();
            let inside: Vec<ParcelId> = self
                .state
                .parcels_at(bank, *door)
                .iter()
                .map(|p| p.id.clone())
                .filter(|p| !named.contains(p))
                .collect();
            if !inside.is_empty() {
                let list: Vec<String> = inside.iter().map(|p| p.to_string()).collect();
                return reject(
                    RejectCode::InvalidInput,
                    format!(
                        "{bank} door {door} also holds {}; reassign all its parcels together",
                        list.join(", ")
                    ),
                );
            }
        }

        let actor: Actor = by.into();
        self.record(
            tx,
            actor.clone(),
            Subject::none(),
            FactKind::ParcelsReassigned {
                parcels: parcels.to_vec(),
                to: to.clone(),
            },
        );
        let voided: Vec<CodeId> = self
            .state
            .codes
            .iter()
            .filter(|(_, c)| !c.void && c.parcels.iter().any(|p| parcels.contains(p)))
            .map(|(id, _)| id.clone())
            .collect();
        for code in voided {
            self.record(
                tx,
                actor.clone(),
                Subject::none(),
                FactKind::CodeVoided {
                    code,
                    reason: VoidReason::Reassigned,
                },
            );
        }
        for old in previous.into_iter().filter(|r| r != to) {
            tx.effects.push(Effect::Notify {
                resident: old,
                parcels: parcels.to_vec(),
                pin: None,
                qr: None,
                kind: NotifyKind::Withdrawn,
                code: None,
            });
        }
        match place {
            Location::Compartment { .. } => self.issue_code(tx, actor, to, parcels),
            _ => tx.effects.push(Effect::Notify {
                resident: to.clone(),
                parcels: parcels.to_vec(),
                pin: None,
                qr: None,
                kind: NotifyKind::AtDesk,
                code: None,
            }),
        }
        Ok(Outcome::Accepted)
    }

    pub(crate) fn desk_check_in(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        resident: &ResidentId,
        tracking: Option<String>,
        carrier: Option<CarrierId>,
    ) -> Result<Outcome> {
        if !self.state.resident_active(resident) {
            return reject(
                RejectCode::UnknownResident,
                format!("no active resident {resident} in the directory"),
            );
        }
        let parcel = ParcelId(random_id(tx.entropy, "p-"));
        self.record(
            tx,
            by.into(),
            Subject::none().parcel(&parcel),
            FactKind::ParcelAtDesk {
                resident: resident.clone(),
                carrier,
                tracking,
                size: None,
                temperature: Default::default(),
                reason: DeskReason::CheckIn,
            },
        );
        tx.effects.push(Effect::Notify {
            resident: resident.clone(),
            parcels: vec![parcel.clone()],
            pin: None,
            qr: None,
            kind: NotifyKind::AtDesk,
            code: None,
        });
        Ok(Outcome::CheckedIn { parcel })
    }

    pub(crate) fn acknowledge_alert(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        alert: &AlertId,
        note: Option<&str>,
    ) -> Result<Outcome> {
        let note = alert_note(note)?;
        let Some(a) = self.state.alerts.get(alert) else {
            return reject(RejectCode::UnknownAlert, format!("no open alert {alert}"));
        };
        let subject = Subject {
            bank: a.bank.clone(),
            door: a.door,
            parcel: a.parcel.clone(),
        };
        self.record(
            tx,
            by.into(),
            subject,
            FactKind::AlertCleared {
                alert: alert.clone(),
                note,
            },
        );
        Ok(Outcome::Accepted)
    }

    /// A person says whether an unlock that was in flight at restart opened its door.
    pub(crate) fn resolve_unlock(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        unlock: &UnlockId,
        opened: bool,
    ) -> Result<Outcome> {
        let Some(u) = self.state.unlocks.get(unlock) else {
            return reject(RejectCode::UnknownUnlock, format!("no unlock {unlock}"));
        };
        if u.state != UnlockState::Unknown {
            return reject(
                RejectCode::NotAllowedNow,
                format!("unlock {unlock} has a known outcome; nothing to resolve"),
            );
        }
        let (bank, door) = (u.bank.clone(), u.door);
        self.record(
            tx,
            by.into(),
            Subject::door(&bank, door),
            FactKind::UnlockResolved {
                unlock: unlock.clone(),
                opened,
            },
        );
        self.clear_alerts(
            tx,
            by.into(),
            AlertKind::UnlockOutcomeUnknown,
            &bank,
            Some(door),
        );
        Ok(Outcome::Accepted)
    }

    /// Record what staff found at one compartment during an audit walk.
    pub(crate) fn audit_record(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        bank: &str,
        door: u16,
        finding: &AuditFinding,
    ) -> Result<Outcome> {
        if self.ctx.site.compartment(bank, door).is_none() {
            return reject(
                RejectCode::UnknownDoor,
                format!("bank {bank:?} has no door {door}"),
            );
        }
        let recorded: Vec<ParcelId> = self
            .state
            .comps
            .get(&(bank.to_owned(), door))
            .map(|c| c.parcels.iter().cloned().collect())
            .unwrap_or_default();
        let actor: Actor = by.into();
        let at = Subject::door(bank, door);
        match finding {
            AuditFinding::AsRecorded => {
                self.record(
                    tx,
                    actor.clone(),
                    at,
                    FactKind::AuditConfirmed { parcels: recorded },
                );
            }
            AuditFinding::FoundEmpty => {
                self.record(
                    tx,
                    actor.clone(),
                    at,
                    FactKind::AuditFoundEmpty { missing: recorded },
                );
            }
            AuditFinding::FoundParcel {
                resident,
                tracking,
                to_desk,
            } => {
                if let Some(r) = resident {
                    if !self.state.residents.contains_key(r) {
                        return reject(
                            RejectCode::UnknownResident,
                            format!("no resident {r} in the directory"),
                        );
                    }
                }
                if !to_desk {
                    let Some(r) = resident else {
                        return reject(
                            RejectCode::InvalidInput,
                            "a parcel with no known resident must be taken to the desk",
                        );
                    };
                    let other = self
                        .state
                        .parcels_at(bank, door)
                        .iter()
                        .any(|p| p.resident.as_ref() != Some(r));
                    if other || recorded.len() > self.state.parcels_at(bank, door).len() {
                        return reject(
                            RejectCode::InvalidInput,
                            format!(
                                "{bank} door {door} holds another resident's parcels; take the \
                                 found parcel to the desk"
                            ),
                        );
                    }
                }
                let parcel = ParcelId(random_id(tx.entropy, "p-"));
                self.record(
                    tx,
                    actor.clone(),
                    at.parcel(&parcel),
                    FactKind::AuditFoundParcel {
                        resident: resident.clone(),
                        tracking: tracking.clone(),
                        to_desk: *to_desk,
                    },
                );
                if let Some(r) = resident {
                    if *to_desk {
                        tx.effects.push(Effect::Notify {
                            resident: r.clone(),
                            parcels: vec![parcel],
                            pin: None,
                            qr: None,
                            kind: NotifyKind::AtDesk,
                            code: None,
                        });
                    } else {
                        self.issue_code(tx, actor.clone(), r, &[parcel]);
                    }
                }
            }
        }
        self.clear_alerts(tx, actor, AlertKind::Inconsistency, bank, Some(door));
        Ok(Outcome::Accepted)
    }
}

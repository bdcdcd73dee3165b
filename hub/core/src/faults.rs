//! Doors, locks and controllers: observations, the outcome of every unlock, and the faults
//! around them.
//!
//! "Unlock sent", "lock acknowledged" and "door seen open" are separate facts. Every unlock
//! carries a deadline (`unlock_deadline_ms` after it was decided) past which nobody may put it on
//! the wire, and ends in exactly one of:
//! - **confirmed** (`UnlockAcked`): the controller pulsed the lock;
//! - **failed** (`UnlockFailed`): the controller said it could not pulse; the compartment goes
//!   out of service, staff are alerted, a carrier is offered another compartment;
//! - **not sent** (`UnlockNotSent`): it never went on the wire; the door did not move and the
//!   person is told to try again;
//! - **outcome unknown** (`UnlockOutcomeUnknown`): the frame may have left and nobody said
//!   (the controller says so, or says nothing by `unlock_ack_timeout_ms` after the deadline, or
//!   the hub restarted with it in flight). It is never re-sent and never turned into "failed";
//!   the person is told the door may be open, the door is asked about, and staff are alerted if
//!   it is still unknown after the grace period.
//!
//! A door seen open while an unlock for it is pending or unknown, or within `open_window_ms` of
//! its last unlock whatever was said of it, is that unlock's doing (a pickup completes); a door
//! seen open with no unlock behind it is a forced open. What a controller reports about
//! occupancy never overwrites what the hub believes: a mismatch raises an alert.
//!
//! Outages do not churn alerts: a bank offline or doors unreachable are facts at once (no
//! deliveries go there), but their staff alert is raised only once they have lasted
//! `alert_grace_ms`, or at once when a person at the lockers is turned away because of them.

use crate::codes::random_id;
use crate::core::{Core, Subject, Tx};
use crate::effect::{Effect, KioskUpdate, NotifyKind};
use crate::fact::{Actor, AlertKind, FactKind, UnlockPurpose};
use crate::ids::{Millis, UnlockId};
use crate::input::{Disposition, Observation, UnlockReport};
use crate::state::{Unlock, UnlockState};

impl Core {
    /// Decide an unlock: record it, then ask the shell to send it (QoS 1).
    pub(crate) fn send_unlock(
        &mut self,
        tx: &mut Tx,
        actor: Actor,
        bank: &str,
        door: u16,
        purpose: UnlockPurpose,
    ) -> UnlockId {
        let unlock = UnlockId(random_id(tx.entropy, "u-"));
        self.record(
            tx,
            actor,
            Subject::door(bank, door),
            FactKind::UnlockSent {
                unlock: unlock.clone(),
                purpose,
                attempt: 1,
            },
        );
        tx.effects.push(Effect::Unlock {
            bank: bank.to_owned(),
            door,
            unlock_id: unlock.clone(),
            deadline: tx.now.plus(self.ctx.policies.unlock_deadline_ms),
        });
        unlock
    }

    pub(crate) fn observe(&mut self, tx: &mut Tx, obs: Observation) {
        match obs {
            Observation::LockAcknowledged { bank, door, unlock } => {
                let key = (bank.clone(), door);
                let id = unlock.or_else(|| {
                    self.state
                        .comps
                        .get(&key)
                        .and_then(|c| c.active_unlock.clone())
                });
                let Some(id) = id else { return };
                let awaiting = self.state.unlocks.get(&id).is_some_and(|u| {
                    u.bank == bank
                        && u.door == door
                        && u.acked_at.is_none()
                        && matches!(u.state, UnlockState::Pending | UnlockState::Unknown)
                });
                if awaiting {
                    self.record(
                        tx,
                        Actor::Controller,
                        Subject::door(&bank, door),
                        FactKind::UnlockAcked { unlock: id },
                    );
                }
            }
            Observation::UnlockNotPulsed {
                bank,
                door,
                unlock,
                report,
                reason,
            } => {
                let Some(u) = self.state.unlocks.get(&unlock).cloned() else {
                    return;
                };
                if u.bank != bank || u.door != door || u.acked_at.is_some() {
                    return;
                }
                match (u.state, report) {
                    (UnlockState::Pending, UnlockReport::Unknown) => {
                        self.unlock_unknown(tx, &unlock, &u)
                    }
                    // The controller's answer settles an unknown the hub declared for lack of
                    // one: the door did not move.
                    (UnlockState::Pending | UnlockState::Unknown, UnlockReport::NotSent) => {
                        self.unlock_not_sent(tx, &unlock, &u)
                    }
                    (UnlockState::Pending | UnlockState::Unknown, UnlockReport::Failed) => {
                        self.unlock_failed(tx, &unlock, &u, &reason)
                    }
                    _ => {}
                }
            }
            Observation::DoorOpened { bank, door } => self.door_opened(tx, &bank, door),
            Observation::DoorClosed { bank, door } => self.door_closed(tx, &bank, door),
            Observation::DoorState {
                bank,
                door,
                open,
                occupied,
            } => self.door_state(tx, &bank, door, open, occupied),
            Observation::ControllerOnline { bank } => {
                if self.ctx.site.bank(&bank).is_none() {
                    return;
                }
                self.mark_online(tx, &bank);
                // Reconcile on every (re)connect: doors may have moved while either side was
                // away, including while the hub itself was down.
                let doors = self.doors_of(&bank);
                self.query_doors(tx, &bank, doors);
            }
            Observation::DoorsUnreachable { bank, doors } => {
                if self.ctx.site.bank(&bank).is_none() {
                    return;
                }
                let mut doors: Vec<u16> = doors
                    .into_iter()
                    .filter(|d| self.ctx.site.compartment(&bank, *d).is_some())
                    .collect();
                doors.sort_unstable();
                doors.dedup();
                let before = self.state.bank(&bank);
                let was: Vec<u16> = before.unreachable.iter().copied().collect();
                // The same status again is a (re)connect of either side: reconcile every door
                // that answers. A changed set is a board going or coming back: only the doors
                // that came back need a look, and queries to a silent board would only hold up
                // the bus for the unlocks that matter.
                let query: Vec<u16> = if !before.online || was == doors {
                    self.doors_of(&bank)
                        .into_iter()
                        .filter(|d| !doors.contains(d))
                        .collect()
                } else {
                    was.into_iter().filter(|d| !doors.contains(d)).collect()
                };
                self.mark_online(tx, &bank);
                self.set_unreachable(tx, &bank, doors);
                self.query_doors(tx, &bank, query);
            }
            Observation::ControllerOffline { bank } => {
                if self.ctx.site.bank(&bank).is_none() || !self.state.bank_online(&bank) {
                    return;
                }
                self.record(
                    tx,
                    Actor::Controller,
                    Subject::bank(&bank),
                    FactKind::BankOffline,
                );
                // The whole bank is out now: BankOffline says it for every door. Its alert waits
                // for the grace period (`alert_timers`).
                self.set_unreachable(tx, &bank, Vec::new());
            }
            Observation::UnitReading {
                bank,
                unit,
                sensor,
                decicelsius,
                door_open,
                device_alarms,
            } => self.unit_reading(
                tx,
                &bank,
                &unit,
                &sensor,
                decicelsius,
                door_open,
                device_alarms,
            ),
        }
    }

    /// Raise the alert of an outage that has lasted the grace period (or `now`, when a person
    /// at the lockers was just turned away by it), once per outage.
    pub(crate) fn alert_outage(&mut self, tx: &mut Tx, bank: &str) {
        let b = self.state.bank(bank);
        if !b.online
            && b.offline_since
                .is_some_and(|since| b.offline_alerted.is_none_or(|a| a < since))
        {
            self.raise_alert(
                tx,
                AlertKind::BankOffline,
                Subject::bank(bank),
                format!(
                    "controller of bank {bank} is offline; its compartments take no deliveries"
                ),
            );
            return;
        }
        let b = self.state.bank(bank);
        let doors: Vec<u16> = b.unreachable.iter().copied().collect();
        if b.online
            && !doors.is_empty()
            && b.unreachable_since
                .is_some_and(|since| b.unreachable_alerted.is_none_or(|a| a < since))
            && self
                .open_alerts(AlertKind::DoorsUnreachable, bank, None)
                .is_empty()
        {
            self.raise_alert(
                tx,
                AlertKind::DoorsUnreachable,
                Subject::bank(bank),
                unreachable_message(bank, &doors),
            );
        }
    }

    /// Outages and unknown unlocks whose alert is due: `(due, bank or unlock)`.
    fn due_alerts(&self) -> Vec<(Millis, DueAlert)> {
        let grace = self.ctx.policies.alert_grace_ms;
        let mut due = Vec::new();
        for (name, b) in &self.state.banks {
            let since = if !b.online {
                b.offline_since
                    .filter(|s| b.offline_alerted.is_none_or(|a| a < *s))
            } else if !b.unreachable.is_empty() {
                b.unreachable_since
                    .filter(|s| b.unreachable_alerted.is_none_or(|a| a < *s))
            } else {
                None
            };
            if let Some(since) = since {
                due.push((since.plus(grace), DueAlert::Outage(name.clone())));
            }
        }
        let open = self.state.open_unlocks.iter();
        for (id, u) in open.filter_map(|id| self.state.unlocks.get(id).map(|u| (id, u))) {
            if u.origin == self.hub && u.state == UnlockState::Unknown {
                if let Some(at) = u.unknown_at {
                    let alerted = !self
                        .open_alerts(AlertKind::UnlockOutcomeUnknown, &u.bank, Some(u.door))
                        .is_empty();
                    if !alerted {
                        due.push((at.plus(grace), DueAlert::Unknown(id.clone())));
                    }
                }
            }
        }
        due
    }

    pub(crate) fn alert_deadlines(&self) -> Vec<Millis> {
        self.due_alerts().into_iter().map(|(t, _)| t).collect()
    }

    pub(crate) fn alert_timers(&mut self, tx: &mut Tx) {
        for (at, what) in self.due_alerts() {
            if at > tx.now {
                continue;
            }
            match what {
                DueAlert::Outage(bank) => self.alert_outage(tx, &bank),
                DueAlert::Unknown(id) => {
                    let Some(u) = self.state.unlocks.get(&id).cloned() else {
                        continue;
                    };
                    self.raise_alert(
                        tx,
                        AlertKind::UnlockOutcomeUnknown,
                        Subject::door(&u.bank, u.door),
                        format!(
                            "nobody could confirm unlock {id} of {} door {}: the door may have \
                             opened, and the unlock will not be re-sent. Check the door and \
                             resolve it",
                            u.bank, u.door
                        ),
                    );
                }
            }
        }
    }

    fn mark_online(&mut self, tx: &mut Tx, bank: &str) {
        if !self.state.bank_online(bank) {
            self.record(
                tx,
                Actor::Controller,
                Subject::bank(bank),
                FactKind::BankOnline,
            );
            self.clear_alerts(tx, Actor::System, AlertKind::BankOffline, bank, None);
        }
    }

    fn doors_of(&self, bank: &str) -> Vec<u16> {
        self.ctx
            .site
            .bank(bank)
            .map(|b| b.compartments.iter().map(|c| c.door).collect())
            .unwrap_or_default()
    }

    fn query_doors(&self, tx: &mut Tx, bank: &str, doors: Vec<u16>) {
        if !doors.is_empty() {
            tx.effects.push(Effect::QueryDoors {
                bank: bank.to_owned(),
                doors,
            });
        }
    }

    /// Record the controller's set of unreachable doors when it changed, with one alert while
    /// it is not empty (a changed set replaces the alert, so its message stays true). `doors`:
    /// ascending, doors of the bank only.
    fn set_unreachable(&mut self, tx: &mut Tx, bank: &str, doors: Vec<u16>) {
        let known: Vec<u16> = self.state.bank(bank).unreachable.iter().copied().collect();
        if known == doors {
            return;
        }
        self.record(
            tx,
            Actor::Controller,
            Subject::bank(bank),
            FactKind::DoorsUnreachable {
                doors: doors.clone(),
            },
        );
        // An alert already raised is replaced, so its message stays true; a new outage waits
        // for the grace period (`alert_timers`).
        let raised = !self
            .open_alerts(AlertKind::DoorsUnreachable, bank, None)
            .is_empty();
        self.clear_alerts(tx, Actor::System, AlertKind::DoorsUnreachable, bank, None);
        if raised && !doors.is_empty() {
            self.raise_alert(
                tx,
                AlertKind::DoorsUnreachable,
                Subject::bank(bank),
                unreachable_message(bank, &doors),
            );
        }
    }

    fn door_opened(&mut self, tx: &mut Tx, bank: &str, door: u16) {
        if self.ctx.site.compartment(bank, door).is_none() {
            return;
        }
        let key = (bank.to_owned(), door);
        let comp = self.state.comps.get(&key);
        if comp.is_some_and(|c| c.door_open) {
            return; // repeated report
        }
        let window = self.ctx.policies.open_window_ms;
        let active =
            comp.and_then(|c| c.active_unlock.clone())
                .filter(|u| {
                    self.state.unlocks.get(u).is_some_and(|u| {
                        matches!(u.state, UnlockState::Pending | UnlockState::Unknown)
                    })
                })
                // Recently sent and said to have failed, or not to have been sent: the door
                // opening says otherwise, and it is that unlock's doing, not tamper.
                .or_else(|| {
                    comp.and_then(|c| c.last_unlock.clone()).filter(|u| {
                        self.state.unlocks.get(u).is_some_and(|u| {
                            matches!(
                                u.state,
                                UnlockState::Failed | UnlockState::NotSent | UnlockState::Unknown
                            ) && u.sent_at.plus(window) >= tx.now
                        })
                    })
                });
        let Some(unlock) = active else {
            self.record(
                tx,
                Actor::Controller,
                Subject::door(bank, door),
                FactKind::DoorOpened { unlock: None },
            );
            self.raise_alert(
                tx,
                AlertKind::ForcedOpen,
                Subject::door(bank, door),
                format!("{bank} door {door} opened with no unlock command (forced open / tamper)"),
            );
            return;
        };
        let was_unknown = self
            .state
            .unlocks
            .get(&unlock)
            .is_some_and(|u| u.state == UnlockState::Unknown);
        let purpose = self.state.unlocks.get(&unlock).map(|u| u.purpose.clone());
        self.record(
            tx,
            Actor::Controller,
            Subject::door(bank, door),
            FactKind::DoorOpened {
                unlock: Some(unlock),
            },
        );
        if was_unknown {
            // The door answered the question a person was asked.
            self.clear_unknown_alert(tx, bank, door);
        }
        // Collected with their code: the resident hears of it at once.
        if let Some(UnlockPurpose::Pickup {
            resident, parcels, ..
        }) = &purpose
        {
            tx.effects.push(Effect::Notify {
                resident: resident.clone(),
                parcels: parcels.clone(),
                pin: None,
                qr: None,
                kind: NotifyKind::PickedUp,
                code: None,
            });
        }
        // The parcels left the compartment: their expiry (after a removal) and any request to
        // take them to the desk are settled.
        if let Some(UnlockPurpose::Removal {
            parcels,
            disposition: Disposition::PackageRoom,
            ..
        }) = &purpose
        {
            // Moved to the package room: each resident hears where the parcels are now.
            self.tell_each_resident(tx, parcels, NotifyKind::AtDesk);
        }
        let (left, expired_too) = match purpose {
            Some(UnlockPurpose::Removal { parcels, .. }) => (parcels, true),
            Some(UnlockPurpose::Pickup { parcels, .. }) => (parcels, false),
            _ => (Vec::new(), false),
        };
        if !left.is_empty() {
            let mut kinds = vec![AlertKind::DeskRequested, AlertKind::MovedOutWithParcel];
            if expired_too {
                kinds.push(AlertKind::ParcelExpired);
            }
            self.clear_parcel_alerts(tx, Subject::door(bank, door), &left, &kinds);
        }
    }

    fn door_closed(&mut self, tx: &mut Tx, bank: &str, door: u16) {
        let key = (bank.to_owned(), door);
        if !self.state.comps.get(&key).is_some_and(|c| c.door_open) {
            return; // repeated report, or closed all along
        }
        self.record(
            tx,
            Actor::Controller,
            Subject::door(bank, door),
            FactKind::DoorClosed,
        );
        self.clear_alerts(tx, Actor::System, AlertKind::DoorAjar, bank, Some(door));
        self.delivery_door_closed(tx, bank, door);
    }

    /// A controller's report of a door's state (answer to `QueryDoors`). The door position is a
    /// physical fact and is taken as an open/close event; occupancy is only compared.
    fn door_state(
        &mut self,
        tx: &mut Tx,
        bank: &str,
        door: u16,
        open: bool,
        occupied: Option<bool>,
    ) {
        if self.ctx.site.compartment(bank, door).is_none() {
            return;
        }
        let believed_open = self
            .state
            .comps
            .get(&(bank.to_owned(), door))
            .is_some_and(|c| c.door_open);
        if open && !believed_open {
            self.door_opened(tx, bank, door);
        } else if !open && believed_open {
            self.door_closed(tx, bank, door);
        }
        let Some(occupied) = occupied else { return };
        let comp = self.state.comps.get(&(bank.to_owned(), door));
        let believed = comp.is_some_and(|c| {
            !c.parcels.is_empty()
                || c.reservations.iter().any(|r| {
                    self.state
                        .reservations
                        .get(r)
                        .is_some_and(|r| !r.placed.is_empty())
                })
        });
        if occupied != believed
            && self
                .open_alerts(AlertKind::Inconsistency, bank, Some(door))
                .is_empty()
        {
            let (said, think) = if occupied {
                ("occupied", "empty")
            } else {
                ("empty", "holding parcels")
            };
            self.raise_alert(
                tx,
                AlertKind::Inconsistency,
                Subject::door(bank, door),
                format!(
                    "controller reports {bank} door {door} {said}, but the hub records it as \
                     {think}; check it in an audit walk"
                ),
            );
        }
    }

    /// Own unlocks in flight when this process started: ask the door, alert a person, never
    /// re-send.
    pub(crate) fn unknown_unlocks_at_start(&mut self, tx: &mut Tx) {
        let ids = std::mem::take(&mut self.unknown_at_start);
        for id in ids {
            let Some(u) = self.state.unlocks.get(&id) else {
                continue;
            };
            if u.state != UnlockState::Pending {
                continue;
            }
            let (bank, door) = (u.bank.clone(), u.door);
            self.record(
                tx,
                Actor::System,
                Subject::door(&bank, door),
                FactKind::UnlockOutcomeUnknown { unlock: id.clone() },
            );
            tx.effects.push(Effect::QueryDoors {
                bank: bank.clone(),
                doors: vec![door],
            });
            self.raise_alert(
                tx,
                AlertKind::UnlockOutcomeUnknown,
                Subject::door(&bank, door),
                format!(
                    "unlock {id} of {bank} door {door} was in flight when the hub restarted; it \
                     will not be re-sent. Check the door and resolve it"
                ),
            );
        }
    }

    /// Own unlocks still waiting: `(deadline, id, acked)`. Unacknowledged ones wait for the
    /// controller's answer until `unlock_ack_timeout_ms` after their own deadline.
    fn waiting_unlocks(&self) -> Vec<(Millis, UnlockId, bool)> {
        let p = &self.ctx.policies;
        self.state
            .open_unlocks
            .iter()
            .filter_map(|id| self.state.unlocks.get(id).map(|u| (id, u)))
            .filter(|(id, u)| {
                u.origin == self.hub
                    && u.state == UnlockState::Pending
                    && !self.unknown_at_start.contains(*id)
            })
            .map(|(id, u)| match u.acked_at {
                None => (
                    u.sent_at
                        .plus(p.unlock_deadline_ms)
                        .plus(p.unlock_ack_timeout_ms),
                    id.clone(),
                    false,
                ),
                Some(a) => (a.plus(p.open_window_ms), id.clone(), true),
            })
            .collect()
    }

    pub(crate) fn unlock_deadlines(&self) -> Vec<Millis> {
        self.waiting_unlocks()
            .into_iter()
            .map(|(t, _, _)| t)
            .collect()
    }

    pub(crate) fn unlock_timers(&mut self, tx: &mut Tx) {
        for (deadline, id, acked) in self.waiting_unlocks() {
            if deadline > tx.now {
                continue;
            }
            let Some(u) = self.state.unlocks.get(&id).cloned() else {
                continue;
            };
            if acked {
                self.record(
                    tx,
                    Actor::System,
                    Subject::door(&u.bank, u.door),
                    FactKind::UnlockLapsed { unlock: id },
                );
            } else {
                // Silence is not failure: the command may have been carried out and its
                // answer lost. Never re-sent.
                self.unlock_unknown(tx, &id, &u);
            }
        }
    }

    /// Nobody knows whether `id` pulsed its lock: record it, ask the door, tell the person to
    /// check it. Staff are alerted if it is still unknown after the grace period.
    fn unlock_unknown(&mut self, tx: &mut Tx, id: &UnlockId, u: &Unlock) {
        let (bank, door) = (u.bank.as_str(), u.door);
        self.record(
            tx,
            Actor::System,
            Subject::door(bank, door),
            FactKind::UnlockOutcomeUnknown { unlock: id.clone() },
        );
        tx.effects.push(Effect::QueryDoors {
            bank: bank.to_owned(),
            doors: vec![door],
        });
        self.tell_kiosk(tx, u, KioskUpdate::DoorMayBeOpen { door });
    }

    /// `id` never went on the wire: the door did not move. The person may try again; nothing
    /// is wrong with the compartment.
    fn unlock_not_sent(&mut self, tx: &mut Tx, id: &UnlockId, u: &Unlock) {
        let (bank, door) = (u.bank.as_str(), u.door);
        let was_unknown = u.state == UnlockState::Unknown;
        self.record(
            tx,
            Actor::Controller,
            Subject::door(bank, door),
            FactKind::UnlockNotSent { unlock: id.clone() },
        );
        if was_unknown {
            self.clear_unknown_alert(tx, bank, door);
        }
        self.tell_kiosk(tx, u, KioskUpdate::DoorNotOpened { door });
    }

    /// An unlock the hub had called unknown is settled (by its controller or its door): staff
    /// need not look.
    fn clear_unknown_alert(&mut self, tx: &mut Tx, bank: &str, door: u16) {
        self.clear_alerts(
            tx,
            Actor::System,
            AlertKind::UnlockOutcomeUnknown,
            bank,
            Some(door),
        );
    }

    /// News about an unlock for whoever asked for it at the lockers.
    fn tell_kiosk(&self, tx: &mut Tx, u: &Unlock, update: KioskUpdate) {
        let reservation = match &u.purpose {
            UnlockPurpose::Delivery { reservation } => Some(reservation.clone()),
            UnlockPurpose::Pickup { .. } => None,
            // Staff at the desk see the unlock's state on the page.
            UnlockPurpose::Removal { .. } | UnlockPurpose::StaffOpen { .. } => return,
        };
        tx.effects.push(Effect::Kiosk {
            bank: u.bank.clone(),
            reservation,
            update,
        });
    }

    /// The controller said it could not pulse `id`.
    fn unlock_failed(&mut self, tx: &mut Tx, id: &UnlockId, u: &Unlock, why: &str) {
        let (bank, door) = (u.bank.as_str(), u.door);
        let was_unknown = u.state == UnlockState::Unknown;
        let at = Subject::door(bank, door);
        self.record(
            tx,
            Actor::Controller,
            at.clone(),
            FactKind::UnlockFailed { unlock: id.clone() },
        );
        if was_unknown {
            self.clear_unknown_alert(tx, bank, door);
        }
        self.record(
            tx,
            Actor::System,
            at.clone(),
            FactKind::ServiceChanged {
                out_of_service: true,
                reason: format!("the controller could not pulse unlock {id}: {why}"),
            },
        );
        self.raise_alert(
            tx,
            AlertKind::UnlockFailed,
            at,
            format!("{bank} door {door} could not be unlocked ({why}); it is out of service"),
        );
        match &u.purpose {
            UnlockPurpose::Delivery { reservation } => {
                self.offer_other_compartment(tx, reservation, bank, door)
            }
            UnlockPurpose::Pickup { .. } => tx.effects.push(Effect::Kiosk {
                bank: bank.to_owned(),
                reservation: None,
                update: KioskUpdate::PickupDoorFailed { door },
            }),
            UnlockPurpose::Removal { .. } | UnlockPurpose::StaffOpen { .. } => {}
        }
    }

    fn open_doors_since(&self) -> Vec<(Millis, String, u16)> {
        self.state
            .comps
            .iter()
            .filter(|(_, c)| c.door_open)
            .filter_map(|((b, d), c)| {
                c.opened_at
                    .map(|t| (t.plus(self.ctx.policies.door_ajar_ms), b.clone(), *d))
            })
            .filter(|(_, b, d)| {
                self.open_alerts(AlertKind::DoorAjar, b, Some(*d))
                    .is_empty()
            })
            .collect()
    }

    pub(crate) fn ajar_deadlines(&self) -> Vec<Millis> {
        self.open_doors_since()
            .into_iter()
            .map(|(t, _, _)| t)
            .collect()
    }

    pub(crate) fn ajar_timers(&mut self, tx: &mut Tx) {
        for (deadline, bank, door) in self.open_doors_since() {
            if deadline <= tx.now {
                self.raise_alert(
                    tx,
                    AlertKind::DoorAjar,
                    Subject::door(&bank, door),
                    format!("{bank} door {door} has been open too long (door ajar)"),
                );
            }
        }
    }
}

/// An alert that falls due after the grace period.
enum DueAlert {
    Outage(String),
    Unknown(UnlockId),
}

fn unreachable_message(bank: &str, doors: &[u16]) -> String {
    let plural = if doors.len() == 1 { "door" } else { "doors" };
    format!(
        "board of bank {bank} silent: {plural} {} cannot be opened",
        door_ranges(doors)
    )
}

/// "1–4, 9" for doors 1, 2, 3, 4 and 9 (`doors` ascending).
fn door_ranges(doors: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < doors.len() {
        let mut j = i;
        while j + 1 < doors.len() && doors[j + 1] == doors[j] + 1 {
            j += 1;
        }
        parts.push(if j == i {
            doors[i].to_string()
        } else {
            format!("{}–{}", doors[i], doors[j])
        });
        i = j + 1;
    }
    parts.join(", ")
}

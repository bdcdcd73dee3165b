//! Doors, locks and controllers: observations, unlock retries, and the faults around them.
//!
//! "Unlock sent", "lock acknowledged" and "door seen open" are separate facts. An unlock is
//! retried (as `tick` deadlines) until acknowledged, at most `unlock_max_attempts` sends; then the
//! compartment goes out of service, staff are alerted and a carrier is offered another
//! compartment. A door seen open with no unlock behind it is a forced open. What a controller
//! reports about occupancy never overwrites what the hub believes: a mismatch raises an alert.

use crate::codes::random_id;
use crate::core::{Core, Subject, Tx};
use crate::effect::{Effect, KioskUpdate};
use crate::fact::{Actor, AlertKind, FactKind, UnlockPurpose};
use crate::ids::{Millis, UnlockId};
use crate::input::Observation;
use crate::state::UnlockState;

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
                // The whole bank is out now: BankOffline says it for every door.
                self.set_unreachable(tx, &bank, Vec::new());
                self.raise_alert(
                    tx,
                    AlertKind::BankOffline,
                    Subject::bank(&bank),
                    format!(
                        "controller of bank {bank} is offline; its compartments take no deliveries"
                    ),
                );
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
        for door in doors {
            tx.effects.push(Effect::QueryDoor {
                bank: bank.to_owned(),
                door,
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
        self.clear_alerts(tx, Actor::System, AlertKind::DoorsUnreachable, bank, None);
        if !doors.is_empty() {
            let plural = if doors.len() == 1 { "door" } else { "doors" };
            self.raise_alert(
                tx,
                AlertKind::DoorsUnreachable,
                Subject::bank(bank),
                format!(
                    "board of bank {bank} silent: {plural} {} cannot be opened",
                    door_ranges(&doors)
                ),
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
        let active = comp.and_then(|c| c.active_unlock.clone()).filter(|u| {
            self.state
                .unlocks
                .get(u)
                .is_some_and(|u| matches!(u.state, UnlockState::Pending | UnlockState::Unknown))
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
            self.clear_alerts(
                tx,
                Actor::System,
                AlertKind::UnlockOutcomeUnknown,
                bank,
                Some(door),
            );
        }
        if let Some(UnlockPurpose::Removal { parcels, .. }) = purpose {
            let expired: Vec<_> = self
                .state
                .alerts
                .values()
                .filter(|a| {
                    a.kind == AlertKind::ParcelExpired
                        && a.parcel.as_ref().is_some_and(|p| parcels.contains(p))
                })
                .map(|a| a.id.clone())
                .collect();
            for alert in expired {
                self.record(
                    tx,
                    Actor::System,
                    Subject::door(bank, door),
                    FactKind::AlertCleared { alert, note: None },
                );
            }
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

    /// A controller's report of a door's state (answer to `QueryDoor`). The door position is a
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
            tx.effects.push(Effect::QueryDoor {
                bank: bank.clone(),
                door,
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

    /// Own unlocks still waiting: `(deadline, id, acked)`.
    fn waiting_unlocks(&self) -> Vec<(Millis, UnlockId, bool)> {
        let p = &self.ctx.policies;
        self.state
            .unlocks
            .iter()
            .filter(|(id, u)| {
                u.origin == self.hub
                    && u.state == UnlockState::Pending
                    && !self.unknown_at_start.contains(*id)
            })
            .map(|(id, u)| match u.acked_at {
                None => (u.sent_at.plus(p.unlock_ack_timeout_ms), id.clone(), false),
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
            } else if u.attempts < self.ctx.policies.unlock_max_attempts.max(1) {
                self.record(
                    tx,
                    Actor::System,
                    Subject::door(&u.bank, u.door),
                    FactKind::UnlockSent {
                        unlock: id.clone(),
                        purpose: u.purpose.clone(),
                        attempt: u.attempts + 1,
                    },
                );
                tx.effects.push(Effect::Unlock {
                    bank: u.bank.clone(),
                    door: u.door,
                    unlock_id: id,
                });
            } else {
                self.unlock_failed(tx, &id, &u.bank, u.door, &u.purpose);
            }
        }
    }

    fn unlock_failed(
        &mut self,
        tx: &mut Tx,
        id: &UnlockId,
        bank: &str,
        door: u16,
        purpose: &UnlockPurpose,
    ) {
        let at = Subject::door(bank, door);
        self.record(
            tx,
            Actor::System,
            at.clone(),
            FactKind::UnlockFailed { unlock: id.clone() },
        );
        self.record(
            tx,
            Actor::System,
            at.clone(),
            FactKind::ServiceChanged {
                out_of_service: true,
                reason: format!("controller did not acknowledge unlock {id}"),
            },
        );
        self.raise_alert(
            tx,
            AlertKind::UnlockFailed,
            at,
            format!(
                "{bank} door {door} did not acknowledge unlock {id} after {} attempts; it is out \
                 of service",
                self.ctx.policies.unlock_max_attempts.max(1)
            ),
        );
        match purpose {
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

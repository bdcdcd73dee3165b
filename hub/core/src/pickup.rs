//! Resident pickup by PIN, QR token or RFID badge, code issuance, and the per-bank keypad lockout.
//!
//! A valid credential opens every compartment at that bank holding the resident's collectable
//! parcels; the door opening records the pickup and the door closing frees the compartment. A
//! code works only while at least one of its own parcels is still held for its resident, so a
//! used, expired, returned or reassigned code opens nothing. Wrong credentials are counted per
//! bank (derived from `CodeRejected` facts, so a restart does not reset them): after
//! `wrong_code_limit` within the window the keypad locks, each lockout twice as long as the last
//! up to the maximum, and staff are alerted.
//!
//! A lockout stops guessing, not residents. While a keypad is locked, a credential is checked
//! only once `lockout_check_ms` (times the lockout level, at most four times) has passed since the
//! last wrong one; earlier attempts are refused as `keypad_locked` with the time of the next
//! check, unchecked and uncounted. A checked credential that is right opens as usual; a wrong one
//! counts and can lengthen the lockout. So a guesser gets a handful of tries a minute at most,
//! while a resident with the right code waits seconds, not the whole lockout.

use std::collections::{BTreeMap, BTreeSet};

use crate::codes::{random_id, random_pin, QrError, QrToken};
use crate::core::{reject, Core, Result, Subject, Tx};
use crate::effect::{Effect, NotifyKind};
use crate::fact::{Actor, AlertKind, CredentialKind, FactKind, UnlockPurpose};
use crate::ids::{CodeId, Millis, ParcelId, ResidentId};
use crate::input::Operator;
use crate::reply::{Outcome, RejectCode, Rejection};
use crate::state::UnlockState;

/// Tries to find a PIN not live at the site before lengthening it; with a million 6-digit PINs
/// and a few hundred live codes a collision is rare, so this is never reached in practice.
const PIN_TRIES: usize = 64;

impl Core {
    pub(crate) fn check_keypad(&self, bank: &str, now: Millis) -> Result<()> {
        if self.state.keypad_locked_until(bank, now).is_none() {
            return Ok(());
        }
        let b = self.state.bank(bank);
        let p = &self.ctx.policies;
        let every = p.lockout_check_ms * u64::from(b.lockout_level.clamp(1, 4));
        match b
            .last_failure
            .map(|t| t.plus(every))
            .filter(|next| *next > now)
        {
            Some(next) => Err(Rejection {
                until: Some(next),
                ..Rejection::new(
                    RejectCode::KeypadLocked,
                    format!(
                        "the keypad of bank {bank} is slowed after too many wrong codes; \
                         try again in {} s",
                        next.0.saturating_sub(now.0).div_ceil(1000)
                    ),
                )
            }),
            None => Ok(()),
        }
    }

    /// Record a wrong credential at a bank and lock the keypad when the limit is reached.
    pub(crate) fn wrong_credential(
        &mut self,
        tx: &mut Tx,
        bank: &str,
        method: CredentialKind,
        message: &str,
    ) -> Rejection {
        let level_before = self.state.bank(bank).lockout_level;
        self.record(
            tx,
            Actor::System,
            Subject::bank(bank),
            FactKind::CodeRejected { method },
        );
        let after = self.state.bank(bank);
        if after.lockout_level > level_before {
            // A duration, not a clock time: the core has no time zone, and staff read the
            // alert's own timestamp in the site's local time next to it.
            let minutes = after
                .locked_until
                .map_or(0, |until| until.0.saturating_sub(tx.now.0).div_ceil(60_000));
            self.raise_alert(
                tx,
                AlertKind::KeypadLockout,
                Subject::bank(bank),
                format!(
                    "{} wrong codes at bank {bank}; keypad locked for {minutes} min (lockout {})",
                    self.ctx.policies.wrong_code_limit, after.lockout_level
                ),
            );
        }
        Rejection::new(RejectCode::BadCredential, message)
    }

    fn known_bank(&self, bank: &str) -> Result<()> {
        if self.ctx.site.bank(bank).is_none() {
            return reject(RejectCode::UnknownBank, format!("unknown bank {bank:?}"));
        }
        Ok(())
    }

    pub(crate) fn pickup_by_pin(&mut self, tx: &mut Tx, bank: &str, pin: &str) -> Result<Outcome> {
        self.known_bank(bank)?;
        self.check_keypad(bank, tx.now)?;
        let pin = pin.trim();
        if pin.is_empty() || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return reject(RejectCode::InvalidInput, "a PIN is digits only");
        }
        let hash = self.keys.pin_hash(pin);
        let live: Vec<(CodeId, ResidentId)> = self
            .state
            .pin_index
            .get(&hash)
            .into_iter()
            .flatten()
            .filter_map(|id| {
                let c = self.state.codes.get(id)?;
                self.state
                    .code_live(c)
                    .then(|| (id.clone(), c.resident.clone()))
            })
            .collect();
        let residents: BTreeSet<&ResidentId> = live.iter().map(|(_, r)| r).collect();
        match residents.len() {
            0 => Err(self.wrong_credential(
                tx,
                bank,
                CredentialKind::Pin,
                "this code is not valid (wrong, already used or expired)",
            )),
            1 => {
                let (code, resident) = live[0].clone();
                self.authorize_pickup(tx, bank, &resident, CredentialKind::Pin, Some(code))
            }
            _ => {
                if self
                    .open_alerts(AlertKind::AmbiguousCode, bank, None)
                    .is_empty()
                {
                    self.raise_alert(
                        tx,
                        AlertKind::AmbiguousCode,
                        Subject::bank(bank),
                        format!(
                            "a PIN entered at bank {bank} is live for {} residents (issued \
                             concurrently by two replicas); reassign or reissue at the desk",
                            residents.len()
                        ),
                    );
                }
                reject(
                    RejectCode::AmbiguousCode,
                    "this code cannot be used here; please ask at the front desk",
                )
            }
        }
    }

    pub(crate) fn pickup_by_qr(&mut self, tx: &mut Tx, bank: &str, token: &str) -> Result<Outcome> {
        self.known_bank(bank)?;
        self.check_keypad(bank, tx.now)?;
        let t: QrToken = match self.keys.verify_qr(token) {
            Ok(t) => t,
            Err(QrError::Malformed) | Err(QrError::BadSignature) => {
                return Err(self.wrong_credential(
                    tx,
                    bank,
                    CredentialKind::Qr,
                    "this QR code is not a valid pickup code",
                ))
            }
        };
        if t.expires <= tx.now {
            return reject(RejectCode::BadCredential, "this QR code has expired");
        }
        let live = self
            .state
            .codes
            .get(&t.code)
            .is_some_and(|c| c.resident == t.resident && self.state.code_live(c));
        if !live {
            return reject(
                RejectCode::BadCredential,
                "this QR code was already used or is no longer valid",
            );
        }
        self.authorize_pickup(tx, bank, &t.resident, CredentialKind::Qr, Some(t.code))
    }

    pub(crate) fn pickup_by_badge(
        &mut self,
        tx: &mut Tx,
        bank: &str,
        badge: &str,
    ) -> Result<Outcome> {
        self.known_bank(bank)?;
        self.check_keypad(bank, tx.now)?;
        let hash = self.keys.badge_hash(badge);
        let Some(resident) = self.state.badges.get(&hash).cloned() else {
            return Err(self.wrong_credential(
                tx,
                bank,
                CredentialKind::Badge,
                "this badge is not registered",
            ));
        };
        self.authorize_pickup(tx, bank, &resident, CredentialKind::Badge, None)
    }

    /// Open every compartment at `bank` holding the resident's collectable parcels.
    fn authorize_pickup(
        &mut self,
        tx: &mut Tx,
        bank: &str,
        resident: &ResidentId,
        method: CredentialKind,
        code: Option<CodeId>,
    ) -> Result<Outcome> {
        if !self.state.bank_online(bank) {
            // Someone is turned away by the outage: staff hear of it now, not after the grace.
            self.alert_outage(tx, bank);
            return reject(
                RejectCode::BankOffline,
                format!("bank {bank} is offline; please ask at the front desk"),
            );
        }
        let mut by_door: BTreeMap<u16, Vec<ParcelId>> = BTreeMap::new();
        let mut elsewhere: BTreeSet<String> = BTreeSet::new();
        for p in self.state.parcels_in_compartments() {
            if p.resident.as_ref() != Some(resident) || !self.state.parcel_collectable(p) {
                continue;
            }
            if let crate::state::Location::Compartment { bank: b, door } = &p.location {
                if b == bank {
                    by_door.entry(*door).or_default().push(p.id.clone());
                } else {
                    elsewhere.insert(b.clone());
                }
            }
        }
        // Doors busy with another unlock cannot be opened for this pickup right now. An unlock
        // whose outcome is unknown does not hold the door: the resident standing at the closed
        // door asking again is the answer (the hub never re-sends it by itself).
        by_door.retain(|door, _| {
            self.state
                .comps
                .get(&(bank.to_owned(), *door))
                .is_none_or(|c| {
                    !c.door_open
                        && c.active_unlock.as_ref().is_none_or(|u| {
                            self.state
                                .unlocks
                                .get(u)
                                .is_none_or(|u| u.state == UnlockState::Unknown)
                        })
                })
        });
        if by_door.is_empty() {
            let msg = if elsewhere.is_empty() {
                format!("nothing to collect at bank {bank}")
            } else {
                let banks: Vec<String> = elsewhere.into_iter().collect();
                format!(
                    "nothing to collect at bank {bank}; your parcels are at bank {}",
                    banks.join(", ")
                )
            };
            return reject(RejectCode::NothingToCollect, msg);
        }
        // Every door behind a silent board: say so now rather than after the unlock fails. The
        // code stays live for when the board answers again.
        if by_door
            .keys()
            .all(|door| self.state.door_unreachable(bank, *door))
        {
            self.alert_outage(tx, bank);
            return reject(
                RejectCode::BankOffline,
                "your compartment cannot be opened right now; please ask at the front desk",
            );
        }
        let actor = Actor::Resident {
            id: resident.clone(),
        };
        let mut doors = Vec::new();
        let mut all = Vec::new();
        for (door, parcels) in by_door {
            all.extend(parcels.iter().cloned());
            self.send_unlock(
                tx,
                actor.clone(),
                bank,
                door,
                UnlockPurpose::Pickup {
                    resident: resident.clone(),
                    parcels,
                    method,
                    code: code.clone(),
                },
            );
            doors.push(door);
        }
        Ok(Outcome::Opening {
            bank: bank.to_owned(),
            doors,
            parcels: all,
        })
    }

    /// The live codes of `resident` that cover any of `parcels`, each with those of `parcels`
    /// it covers, in code order.
    pub(crate) fn live_codes_for(
        &self,
        resident: &ResidentId,
        parcels: &[ParcelId],
    ) -> Vec<(CodeId, Vec<ParcelId>)> {
        self.state
            .codes_of
            .get(resident)
            .into_iter()
            .flatten()
            .filter_map(|id| self.state.codes.get(id).map(|c| (id, c)))
            .filter(|(_, c)| &c.resident == resident && self.state.code_live(c))
            .filter_map(|(id, c)| {
                let covered: Vec<ParcelId> = parcels
                    .iter()
                    .filter(|p| c.parcels.contains(p))
                    .cloned()
                    .collect();
                (!covered.is_empty()).then(|| (id.clone(), covered))
            })
            .collect()
    }

    /// The QR token of a code, signed again: the same token the resident was first sent.
    pub(crate) fn qr_of(&self, code: &CodeId) -> Option<String> {
        let c = self.state.codes.get(code)?;
        Some(self.keys.sign_qr(&QrToken {
            code: code.clone(),
            resident: c.resident.clone(),
            parcels: c.parcels.clone(),
            expires: c.qr_expires,
        }))
    }

    /// Whether a pickup code still opens anything (the shell keeps a live code's PIN, and
    /// forgets it once this is false).
    pub fn code_is_live(&self, code: &CodeId) -> bool {
        self.state
            .codes
            .get(code)
            .is_some_and(|c| self.state.code_live(c))
    }

    /// `resend_code`: the parcel's live code, to its resident again, as a delivery notice.
    pub(crate) fn resend_code(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        parcel: &ParcelId,
    ) -> Result<Outcome> {
        let Some(p) = self.state.parcels.get(parcel) else {
            return reject(RejectCode::UnknownParcel, format!("no parcel {parcel}"));
        };
        let (resident, location) = (p.resident.clone(), p.location.compartment());
        let (Some(resident), Some((bank, door))) = (resident, location) else {
            return reject(
                RejectCode::NotAllowedNow,
                format!("parcel {parcel} is not waiting in a locker for a resident"),
            );
        };
        let Some((code, _)) = self
            .live_codes_for(&resident, std::slice::from_ref(parcel))
            .into_iter()
            .next()
        else {
            return reject(
                RejectCode::NotAllowedNow,
                format!("parcel {parcel} has no live code (expired, or being delivered)"),
            );
        };
        let parcels = self
            .state
            .codes
            .get(&code)
            .map(|c| c.parcels.clone())
            .unwrap_or_default();
        self.record(
            tx,
            by.into(),
            Subject::door(&bank, door).parcel(parcel),
            FactKind::CodeResent {
                code: code.clone(),
                parcels: parcels.clone(),
            },
        );
        tx.effects.push(Effect::Notify {
            resident,
            parcels,
            pin: None,
            qr: self.qr_of(&code),
            kind: NotifyKind::Delivered,
            code: Some(code),
        });
        Ok(Outcome::Accepted)
    }

    /// Issue a PIN and QR token for parcels now held for a resident and notify them. The PIN is
    /// unique among live codes at the site; only its keyed hash is recorded.
    pub(crate) fn issue_code(
        &mut self,
        tx: &mut Tx,
        actor: Actor,
        resident: &ResidentId,
        parcels: &[ParcelId],
    ) {
        let digits = self.ctx.policies.pin_digits();
        let mut attempt = 0;
        let (pin, pin_hash) = loop {
            // Lengthen the PIN only if the space is practically exhausted.
            let len = if attempt < PIN_TRIES {
                digits
            } else {
                digits + 2
            };
            let pin = random_pin(tx.entropy, len);
            let hash = self.keys.pin_hash(&pin);
            let taken = self
                .state
                .pin_index
                .get(&hash)
                .into_iter()
                .flatten()
                .filter_map(|id| self.state.codes.get(id))
                .any(|c| self.state.code_live(c));
            if !taken {
                break (pin, hash);
            }
            attempt += 1;
        };
        let code = CodeId(random_id(tx.entropy, "c-"));
        let longest_hold = parcels
            .iter()
            .filter_map(|p| self.state.parcels.get(p))
            .map(|p| self.ctx.policies.hold_ms(p.temperature))
            .max()
            .unwrap_or(self.ctx.policies.hold_ambient_ms);
        // Upper bound on the token's life; the parcel's own hold is checked at pickup too.
        let qr_expires = tx
            .now
            .plus(longest_hold)
            .plus(self.ctx.policies.max_vacation_hold_ms);
        self.record(
            tx,
            actor,
            Subject::none(),
            FactKind::CodeIssued {
                code: code.clone(),
                resident: resident.clone(),
                parcels: parcels.to_vec(),
                pin_hash,
                qr_expires,
            },
        );
        let qr = self.keys.sign_qr(&QrToken {
            code: code.clone(),
            resident: resident.clone(),
            parcels: parcels.to_vec(),
            expires: qr_expires,
        });
        tx.effects.push(Effect::Notify {
            resident: resident.clone(),
            parcels: parcels.to_vec(),
            pin: Some(pin),
            qr: Some(qr),
            kind: NotifyKind::Delivered,
            code: Some(code.clone()),
        });
    }

    pub(crate) fn desk_pickup(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        parcels: &[ParcelId],
    ) -> Result<Outcome> {
        if parcels.is_empty() {
            return reject(RejectCode::InvalidInput, "name at least one parcel");
        }
        for id in parcels {
            match self.state.parcels.get(id) {
                None => return reject(RejectCode::UnknownParcel, format!("no parcel {id}")),
                Some(p) if p.location != crate::state::Location::Desk => {
                    return reject(
                        RejectCode::NotAllowedNow,
                        format!("parcel {id} is not at the desk"),
                    )
                }
                Some(_) => {}
            }
        }
        self.record(
            tx,
            by.into(),
            Subject::none(),
            FactKind::ParcelsPickedUpAtDesk {
                parcels: parcels.to_vec(),
            },
        );
        self.parcels_left(tx, parcels);
        // Each resident hears that their parcels were handed over.
        self.tell_each_resident(tx, parcels, NotifyKind::PickedUp);
        Ok(Outcome::Accepted)
    }
}

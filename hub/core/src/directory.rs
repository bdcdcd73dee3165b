//! The directory: residents (unit, accessible reach, badges), carriers and their access codes,
//! and pre-advised tracking numbers. All of it is facts, written by staff or the cloud. Badge ids
//! and carrier codes are credentials, so only their keyed hashes are recorded.

use crate::core::{reject, Core, Result, Subject, Tx};
use crate::effect::{Outcome, RejectCode};
use crate::fact::FactKind;
use crate::input::Request;

/// Carrier codes are typed on a keypad; shorter ones are too easy to guess.
pub const MIN_CARRIER_CODE: usize = 6;

impl Core {
    pub(crate) fn directory(&mut self, tx: &mut Tx, request: &Request) -> Result<Outcome> {
        let (by, kind) = match request {
            Request::RegisterResident {
                by,
                resident,
                unit,
                accessible,
            } => {
                if resident.as_str().trim().is_empty() || unit.trim().is_empty() {
                    return reject(
                        RejectCode::InvalidInput,
                        "resident id and unit are required",
                    );
                }
                (
                    by,
                    FactKind::ResidentRegistered {
                        resident: resident.clone(),
                        unit: unit.trim().to_owned(),
                        accessible: *accessible,
                    },
                )
            }
            Request::DeactivateResident { by, resident } => {
                match self.state.residents.get(resident) {
                    None => {
                        return reject(
                            RejectCode::UnknownResident,
                            format!("no resident {resident} in the directory"),
                        )
                    }
                    Some(r) if !r.active => {
                        return reject(
                            RejectCode::NotAllowedNow,
                            format!("resident {resident} is already deactivated"),
                        )
                    }
                    Some(_) => {}
                }
                (
                    by,
                    FactKind::ResidentDeactivated {
                        resident: resident.clone(),
                    },
                )
            }
            Request::RegisterBadge {
                by,
                resident,
                badge,
            } => {
                if !self.state.resident_active(resident) {
                    return reject(
                        RejectCode::UnknownResident,
                        format!("no active resident {resident} in the directory"),
                    );
                }
                if badge.trim().is_empty() {
                    return reject(RejectCode::InvalidInput, "badge id is empty");
                }
                let badge_hash = self.keys.badge_hash(badge);
                if let Some(owner) = self.state.badges.get(&badge_hash) {
                    if owner != resident {
                        return reject(
                            RejectCode::NotAllowedNow,
                            format!("this badge is registered to {owner}; revoke it first"),
                        );
                    }
                }
                (
                    by,
                    FactKind::BadgeRegistered {
                        resident: resident.clone(),
                        badge_hash,
                    },
                )
            }
            Request::RevokeBadge { by, badge } => {
                let badge_hash = self.keys.badge_hash(badge);
                if !self.state.badges.contains_key(&badge_hash) {
                    return reject(RejectCode::InvalidInput, "this badge is not registered");
                }
                (by, FactKind::BadgeRevoked { badge_hash })
            }
            Request::RegisterCarrier { by, carrier, name } => {
                if carrier.as_str().trim().is_empty() {
                    return reject(RejectCode::InvalidInput, "carrier id is required");
                }
                (
                    by,
                    FactKind::CarrierRegistered {
                        carrier: carrier.clone(),
                        name: name.clone(),
                    },
                )
            }
            Request::IssueCarrierCode { by, carrier, code } => {
                match self.state.carriers.get(carrier) {
                    None => {
                        return reject(
                            RejectCode::UnknownCarrier,
                            format!("no carrier {carrier} in the directory"),
                        )
                    }
                    Some(c) if c.revoked => {
                        return reject(
                            RejectCode::NotAllowedNow,
                            format!("carrier {carrier} is deactivated; register it again first"),
                        )
                    }
                    Some(_) => {}
                }
                if code.trim().chars().count() < MIN_CARRIER_CODE {
                    return reject(
                        RejectCode::InvalidInput,
                        format!("a carrier code needs at least {MIN_CARRIER_CODE} characters"),
                    );
                }
                let code_hash = self.keys.carrier_code_hash(code);
                if self.state.carrier_codes.contains_key(&code_hash) {
                    return reject(
                        RejectCode::NotAllowedNow,
                        "this code is already in use; choose another",
                    );
                }
                (
                    by,
                    FactKind::CarrierCodeIssued {
                        carrier: carrier.clone(),
                        code_hash,
                    },
                )
            }
            Request::RevokeCarrierCode { by, code } => {
                let code_hash = self.keys.carrier_code_hash(code);
                if !self.state.carrier_codes.contains_key(&code_hash) {
                    return reject(RejectCode::InvalidInput, "no such carrier code");
                }
                (by, FactKind::CarrierCodeRevoked { code_hash })
            }
            Request::RevokeCarrierCodeRef {
                by,
                carrier,
                code_ref,
            } => {
                let Some(c) = self.state.carriers.get(carrier) else {
                    return reject(
                        RejectCode::UnknownCarrier,
                        format!("no carrier {carrier} in the directory"),
                    );
                };
                let Some((code_hash, _)) = c.codes.get(code_ref.trim()) else {
                    return reject(
                        RejectCode::InvalidInput,
                        format!("carrier {carrier} has no live code {code_ref}"),
                    );
                };
                (
                    by,
                    FactKind::CarrierCodeRevoked {
                        code_hash: code_hash.clone(),
                    },
                )
            }
            Request::RevokeCarrier { by, carrier } => {
                if !self.state.carriers.contains_key(carrier) {
                    return reject(
                        RejectCode::UnknownCarrier,
                        format!("no carrier {carrier} in the directory"),
                    );
                }
                (
                    by,
                    FactKind::CarrierRevoked {
                        carrier: carrier.clone(),
                    },
                )
            }
            Request::PreAdvise {
                by,
                tracking,
                resident,
            } => {
                if !self.state.resident_active(resident) {
                    return reject(
                        RejectCode::UnknownResident,
                        format!("no active resident {resident} in the directory"),
                    );
                }
                if tracking.trim().is_empty() {
                    return reject(RejectCode::InvalidInput, "tracking number is empty");
                }
                (
                    by,
                    FactKind::TrackingPreAdvised {
                        tracking: tracking.trim().to_owned(),
                        resident: resident.clone(),
                    },
                )
            }
            _ => return reject(RejectCode::InvalidInput, "not a directory request"),
        };
        self.record(tx, by.into(), Subject::none(), kind);
        Ok(Outcome::Accepted)
    }
}

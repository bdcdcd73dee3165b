//! The directory: residents (unit, accessible reach, badges), carriers and their access codes,
//! and pre-advised tracking numbers. All of it is facts, written by staff or the cloud. Badge ids
//! and carrier codes are credentials, so only their keyed hashes are recorded.

use crate::codes::random_pin;
use crate::core::{reject, Core, Result, Subject, Tx};
use crate::effect::Effect;
use crate::fact::FactKind;
use crate::ids::CarrierId;
use crate::input::{Operator, RegisterMode, Request};
use crate::reply::{Outcome, RejectCode, Rejection};

/// Carrier codes are typed on a keypad; shorter ones are too easy to guess.
pub const MIN_CARRIER_CODE: usize = 6;
/// The longest carrier code: still quick on a keypad.
pub const MAX_CARRIER_CODE: usize = 16;
/// The length of a code the core draws for a carrier (`Request::SendCarrierCode`).
pub const SENT_CARRIER_CODE_DIGITS: usize = 8;

fn invalid(message: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::InvalidInput, message)
}

/// An id as the directory keeps it (residents, carriers): what kiosks and integrations send, so
/// 1 to 64 characters and no spaces.
fn check_id(what: &str, id: &str) -> std::result::Result<(), Rejection> {
    if id.is_empty() || id.chars().count() > 64 {
        return Err(invalid(format!("a {what} id has 1 to 64 characters")));
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(format!("{what} id {id:?} must not contain spaces")));
    }
    Ok(())
}

/// A resident id: 1 to 64 characters, no spaces.
pub fn check_resident_id(id: &str) -> std::result::Result<(), Rejection> {
    check_id("resident", id)
}

/// A carrier id: 1 to 64 characters, no spaces.
pub fn check_carrier_id(id: &str) -> std::result::Result<(), Rejection> {
    check_id("carrier", id)
}

/// The longest name kept.
const MAX_NAME: usize = 100;

/// A name as the directory keeps it: 1 to 100 characters, no control characters.
pub(crate) fn check_name(name: &str) -> std::result::Result<(), Rejection> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME
        || name.chars().any(char::is_control)
    {
        return Err(Rejection::new(
            RejectCode::InvalidInput,
            format!("a name has 1 to {MAX_NAME} characters and no control characters"),
        ));
    }
    Ok(())
}

/// The languages residents' messages are written in.
pub const LANGUAGES: [&str; 2] = ["en", "es"];

/// A resident's contact details: a name (1 to 100 characters, no control characters), an email address (and a second one) (one `@`, something on each side, a dot in
/// the domain, at most 254 characters, no spaces or control characters), a phone number in
/// international form (`+` and 7 to 15 digits), a language of [`LANGUAGES`]. An empty string
/// (clear the field) is always accepted.
pub fn check_contact(contact: &crate::input::Contact) -> std::result::Result<(), Rejection> {
    if let Some(name) = contact.name.as_deref().filter(|n| !n.is_empty()) {
        check_name(name)?;
    }
    for email in [&contact.email, &contact.secondary_email] {
        if let Some(email) = email.as_deref().filter(|e| !e.is_empty()) {
            check_email(email)?;
        }
    }
    for phone in [&contact.phone, &contact.secondary_phone] {
        if let Some(phone) = phone.as_deref().filter(|p| !p.is_empty()) {
            check_phone(phone)?;
        }
    }
    if let Some(language) = contact.language.as_deref().filter(|l| !l.is_empty()) {
        if !LANGUAGES.contains(&language) {
            return Err(invalid(format!(
                "messages are written in {}; not in {language:?}",
                LANGUAGES.join(", ")
            )));
        }
    }
    if let Some(notify) = contact.notify.as_deref().filter(|n| !n.is_empty()) {
        if !crate::input::NOTIFY_CHOICES.contains(&notify) {
            return Err(invalid(format!(
                "notify is one of {}; not {notify:?}",
                crate::input::NOTIFY_CHOICES.join(", ")
            )));
        }
    }
    Ok(())
}

/// An email address: one `@`, something on each side, a dot in the domain, at most 254
/// characters, no spaces or control characters.
fn check_email(email: &str) -> std::result::Result<(), Rejection> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if !ok {
        return Err(invalid(format!("{email:?} is not an email address")));
    }
    Ok(())
}

/// A phone number in international form: `+` and 7 to 15 digits.
fn check_phone(phone: &str) -> std::result::Result<(), Rejection> {
    let digits = phone.strip_prefix('+').unwrap_or("");
    if !(7..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(format!(
            "{phone:?} is not a phone number in international form (+ and 7 to 15 digits)"
        )));
    }
    Ok(())
}

/// A unit as residents and carriers type it: 1 to 32 characters, no control characters, and no
/// space at either end (`" 101"` would be a unit of its own that nobody can type).
pub fn check_unit(unit: &str) -> std::result::Result<(), Rejection> {
    if unit.trim().is_empty() || unit.chars().count() > 32 {
        return Err(invalid("a unit has 1 to 32 characters"));
    }
    if unit.chars().any(char::is_control) {
        return Err(invalid("the unit must not contain control characters"));
    }
    if unit.trim() != unit {
        return Err(invalid(format!(
            "the unit {unit:?} must not begin or end with a space"
        )));
    }
    Ok(())
}

/// A carrier's display name: 1 to 100 characters, no control characters, no space at either
/// end.
pub fn check_carrier_name(name: &str) -> std::result::Result<(), Rejection> {
    if name.trim().is_empty()
        || name.chars().count() > 100
        || name.chars().any(char::is_control)
        || name.trim() != name
    {
        return Err(invalid(
            "a name has 1 to 100 characters, no control characters and no space at either end",
        ));
    }
    Ok(())
}

/// A carrier code: digits only (kiosk keypads have nothing else), `MIN_CARRIER_CODE` to
/// `MAX_CARRIER_CODE` of them.
pub fn check_carrier_code(code: &str) -> std::result::Result<(), Rejection> {
    let n = code.chars().count();
    if !(MIN_CARRIER_CODE..=MAX_CARRIER_CODE).contains(&n)
        || !code.chars().all(|c| c.is_ascii_digit())
    {
        return Err(invalid(format!(
            "a carrier code is {MIN_CARRIER_CODE} to {MAX_CARRIER_CODE} digits"
        )));
    }
    Ok(())
}

impl Core {
    pub(crate) fn directory(&mut self, tx: &mut Tx, request: &Request) -> Result<Outcome> {
        let (by, kind) = match request {
            Request::RegisterResident {
                by,
                resident,
                unit,
                accessible,
                mode,
                contact,
            } => {
                check_resident_id(resident.as_str())?;
                check_unit(unit)?;
                check_contact(contact)?;
                let known = self.state.residents.contains_key(resident);
                match mode {
                    RegisterMode::Add if known => {
                        return reject(
                            RejectCode::AlreadyExists,
                            format!("resident {resident} already exists; edit them in the list"),
                        )
                    }
                    RegisterMode::Update if !known => {
                        return reject(
                            RejectCode::UnknownResident,
                            format!("no resident {resident} in the directory"),
                        )
                    }
                    _ => {}
                }
                (
                    by,
                    FactKind::ResidentRegistered {
                        resident: resident.clone(),
                        unit: unit.trim().to_owned(),
                        accessible: *accessible,
                        contact: contact.clone(),
                        tenancy: Default::default(),
                        roll: false,
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
            Request::RegisterCarrier {
                by,
                carrier,
                name,
                email,
            } => {
                check_carrier_id(carrier.as_str())?;
                check_carrier_name(name)?;
                let email = email.as_deref().map(str::trim);
                if let Some(e) = email.filter(|e| !e.is_empty()) {
                    check_email(e)?;
                }
                (
                    by,
                    FactKind::CarrierRegistered {
                        carrier: carrier.clone(),
                        name: name.trim().to_owned(),
                        email: email.map(str::to_owned),
                    },
                )
            }
            Request::SendCarrierCode { by, carrier } => {
                return self.send_carrier_code(tx, by, carrier);
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
                check_carrier_code(code)?;
                let code_hash = self.keys.carrier_code_hash(code);
                if self.state.carrier_codes.contains_key(&code_hash) {
                    return reject(
                        RejectCode::AlreadyExists,
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

    /// Draws a code no carrier holds, records it issued to `carrier`, and hands it to the shell
    /// for the carrier's registered address (`Effect::NotifyCarrier`). The reply names only its
    /// reference: the request may be the cloud's, and its answer is synced.
    fn send_carrier_code(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        carrier: &CarrierId,
    ) -> Result<Outcome> {
        let Some(c) = self.state.carriers.get(carrier) else {
            return reject(
                RejectCode::UnknownCarrier,
                format!("no carrier {carrier} in the directory"),
            );
        };
        if c.revoked {
            return reject(
                RejectCode::NotAllowedNow,
                format!("carrier {carrier} is deactivated; register it again first"),
            );
        }
        if c.email.is_none() {
            return reject(
                RejectCode::NotAllowedNow,
                format!(
                    "carrier {carrier} has no email address to send a code to; an admin adds one \
                     on the Carriers page"
                ),
            );
        }
        // 10^8 codes: a clash with a live one is rare; a few draws make it vanishingly so.
        let mut drawn = None;
        for _ in 0..8 {
            let code = random_pin(tx.entropy, SENT_CARRIER_CODE_DIGITS);
            let code_hash = self.keys.carrier_code_hash(&code);
            if !self.state.carrier_codes.contains_key(&code_hash) {
                drawn = Some((code, code_hash));
                break;
            }
        }
        let Some((code, code_hash)) = drawn else {
            return reject(
                RejectCode::AlreadyExists,
                "could not draw an unused code; try again",
            );
        };
        let id = self.record(
            tx,
            by.into(),
            Subject::none(),
            FactKind::CarrierCodeIssued {
                carrier: carrier.clone(),
                code_hash,
            },
        );
        tx.effects.push(Effect::NotifyCarrier {
            carrier: carrier.clone(),
            code,
            code_ref: id.to_string(),
        });
        Ok(Outcome::CarrierCodeSent {
            carrier: carrier.clone(),
            code_ref: id.to_string(),
        })
    }
}

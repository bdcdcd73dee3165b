//! The rent roll: bringing the directory in line with the property-management system's list of
//! residents, and the review of rows that partly matched someone.
//!
//! The shell reads the file (`locker-roll`: presets, columns, encodings) and hands over rows;
//! every rule is here:
//! * A row **matches exactly** when its id (the roll's own resident code, or one made from the
//!   unit and the name) is a resident's id, or an id staff linked to a resident: the resident is
//!   updated from it, and only when something differs, so importing the same roll twice changes
//!   nothing.
//! * A row **matches partly** when no id matches but an active resident whom no other row
//!   matches has the same email, or the same unit and name: it waits for staff
//!   (`resolve_roll_review`: the same person, someone new, or not now).
//! * **No match**: a resident is created.
//! * A resident whom a roll brought in and who is **missing from the roll** (or whose move-out
//!   date has passed) is moved out once `Policies::move_out_grace_ms` has passed since an
//!   import first found them missing; never deleted, and each parcel still waiting for them
//!   raises `moved_out_with_parcel`. Residents entered by hand are never moved out by a roll.
//! * A **rejected** row (bad email, unknown unit, duplicate id, …) names its line and why. The
//!   import applies all or nothing: refused while any row is rejected, unless staff skip them;
//!   a rejected row still counts as present, so a typo never moves anyone out.
//!
//! Dates are compared as UTC days: the grace period is counted in days, hours do not matter.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::core::{reject, Core, Result, Subject, Tx};
use crate::directory::{check_contact, check_name, check_resident_id, check_unit};
use crate::fact::{Actor, AlertKind, FactKind, Registration};
use crate::ids::{FactId, Millis, ParcelId, ResidentId};
use crate::input::{Contact, Operator, ReviewDecision, RollRow, Tenancy};
use crate::reply::{Outcome, RejectCode, Rejection};
use crate::state::{Location, Resident};
use crate::view::{
    RollChange, RollImportView, RollLeaving, RollPlan, RollRejection, RollReviewItem, RollSummary,
};

/// What applying a plan records.
enum Action {
    Register {
        resident: ResidentId,
        unit: String,
        accessible: bool,
        contact: Contact,
        tenancy: Tenancy,
    },
    Review {
        row: RollRow,
        key: String,
        candidate: ResidentId,
        reason: String,
    },
    OffRoll(ResidentId),
    MoveOut(ResidentId, Vec<ParcelId>),
}

/// The most rows one import takes (a roll for 100,000 homes fits twice over).
pub const MAX_ROLL_ROWS: usize = 250_000;

/// Registrations recorded in one fact (`ResidentsRegistered`).
const REGISTRATIONS_PER_FACT: usize = 1_000;

/// A date as `YYYY-MM-DD`, a real day of the calendar.
pub fn check_date(what: &str, date: &str) -> std::result::Result<(), Rejection> {
    if parse_date(date).is_none() {
        return Err(Rejection::new(
            RejectCode::InvalidInput,
            format!("{what} {date:?} is not a date (YYYY-MM-DD)"),
        ));
    }
    Ok(())
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
fn parse_date(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = date.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] || y < 1900 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// A name for matching: lower case, letters and digits only, words in order, so "Doe, Jane"
/// and "jane  doe" match.
fn name_key(name: &str) -> String {
    let lower = name.to_lowercase();
    let mut words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.sort_unstable();
    words.join(" ")
}

/// The id of a row without one of its own: unit and name, spaces as dashes, at most 64
/// characters.
fn made_id(unit: &str, name: &str) -> String {
    let slug = |s: &str| {
        s.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    };
    format!("{}-{}", slug(unit), slug(name))
        .chars()
        .take(64)
        .collect()
}

/// The row's id: its own, or one made from the unit and the name.
pub(crate) fn row_key(row: &RollRow) -> String {
    match row.resident.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => made_id(&row.unit, &row.name),
    }
}

fn opt(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Core {
    /// What importing `rows` would do now (a dry run). Changes nothing.
    pub fn plan_roll(&self, rows: &[RollRow], now: Millis) -> RollPlan {
        if rows.len() > MAX_ROLL_ROWS {
            return RollPlan {
                rows: rows.len() as u64,
                rejected: vec![RollRejection {
                    line: 0,
                    resident: None,
                    reason: format!("the roll has {} rows; at most {MAX_ROLL_ROWS}", rows.len()),
                }],
                ..RollPlan::default()
            };
        }
        self.plan(rows, now).0
    }

    /// The plan the last applied import carried out, once (for the shell to show what the
    /// step did, without planning again).
    pub fn take_roll_plan(&mut self) -> Option<RollPlan> {
        self.last_roll_plan.take()
    }

    /// The rows of the last import waiting for staff.
    pub fn roll_reviews(&self) -> Vec<RollReviewItem> {
        self.state
            .roll_reviews
            .iter()
            .map(|(id, r)| {
                let c = self.state.residents.get(&r.candidate);
                RollReviewItem {
                    review: Some(id.to_string()),
                    line: r.row.line,
                    key: r.key.clone(),
                    unit: r.row.unit.clone(),
                    name: r.row.name.clone(),
                    email: opt(&r.row.email).map(str::to_owned),
                    candidate: r.candidate.clone(),
                    candidate_unit: c.map(|c| c.unit.clone()).unwrap_or_default(),
                    candidate_name: c.and_then(|c| c.name.clone()),
                    reason: r.reason.clone(),
                    at: Some(r.at),
                }
            })
            .collect()
    }

    /// The last import applied, if any.
    pub fn last_roll_import(&self) -> Option<RollImportView> {
        let f = self.state.last_import.as_ref()?;
        let FactKind::RollImported {
            source,
            rows,
            created,
            updated,
            unchanged,
            review,
            rejected,
            moved_out,
            leaving,
        } = &f.kind
        else {
            return None;
        };
        Some(RollImportView {
            at: f.at,
            by: match &f.actor {
                Actor::Staff { id } => id.to_string(),
                Actor::Cloud => "the cloud".to_owned(),
                other => format!("{other:?}"),
            },
            source: source.clone(),
            summary: RollSummary {
                rows: *rows,
                created: *created,
                updated: *updated,
                unchanged: *unchanged,
                review: *review,
                rejected: *rejected,
                leaving: *leaving,
                moved_out: *moved_out,
            },
        })
    }

    /// Check one row; the contact and tenancy it gives.
    fn check_row(
        &self,
        row: &RollRow,
        key: &str,
    ) -> std::result::Result<(Contact, Tenancy), Rejection> {
        check_resident_id(key)?;
        if row.unit.trim().is_empty() {
            return Err(Rejection::new(
                RejectCode::InvalidInput,
                "the unit is empty",
            ));
        }
        check_unit(row.unit.trim())?;
        let units = &self.ctx.policies.units;
        if !units.is_empty() && !units.contains(row.unit.trim()) {
            return Err(Rejection::new(
                RejectCode::InvalidInput,
                format!(
                    "unit {:?} is not one of the building's units (directory.units)",
                    row.unit.trim()
                ),
            ));
        }
        if row.name.trim().is_empty() {
            return Err(Rejection::new(
                RejectCode::InvalidInput,
                "the name is empty",
            ));
        }
        check_name(row.name.trim())?;
        let contact = Contact {
            name: Some(row.name.trim().to_owned()),
            email: opt(&row.email).map(str::to_owned),
            phone: opt(&row.phone).map(str::to_owned),
            ..Contact::default()
        };
        check_contact(&contact)?;
        let t = &row.tenancy;
        let tenancy = Tenancy {
            lease_start: opt(&t.lease_start).map(str::to_owned),
            lease_end: opt(&t.lease_end).map(str::to_owned),
            move_in: opt(&t.move_in).map(str::to_owned),
            move_out: opt(&t.move_out).map(str::to_owned),
        };
        for (what, d) in [
            ("lease start", &tenancy.lease_start),
            ("lease end", &tenancy.lease_end),
            ("move-in", &tenancy.move_in),
            ("move-out", &tenancy.move_out),
        ] {
            if let Some(d) = d {
                check_date(what, d)?;
            }
        }
        Ok((contact, tenancy))
    }

    /// The plan, and what applying it records.
    fn plan(&self, rows: &[RollRow], now: Millis) -> (RollPlan, Vec<Action>) {
        let today = (now.0 / 86_400_000) as i64;
        let mut plan = RollPlan {
            rows: rows.len() as u64,
            ..RollPlan::default()
        };
        let mut actions = Vec::new();
        let residents = &self.state.residents;
        let find = |key: &str| -> Option<ResidentId> {
            if let Some(r) = self
                .state
                .roll_links
                .get(key)
                .filter(|r| residents.contains_key(*r))
            {
                return Some(r.clone());
            }
            let id = ResidentId(key.to_owned());
            residents.contains_key(&id).then_some(id)
        };

        // First pass: check each row, find duplicates and exact matches.
        struct Checked<'r> {
            row: &'r RollRow,
            key: String,
            contact: Contact,
            tenancy: Tenancy,
            target: Option<ResidentId>,
            past: bool,
        }
        let mut checked: Vec<Checked> = Vec::with_capacity(rows.len());
        let mut first_line: HashMap<String, u64> = HashMap::with_capacity(rows.len());
        // The first line that named each resident (two ids may lead to one: a link).
        let mut first_for: HashMap<ResidentId, u64> = HashMap::new();
        // Residents this roll accounts for: matched, rejected, or in review. Nobody here is
        // moved out by this import.
        let mut present: BTreeSet<ResidentId> = BTreeSet::new();
        for row in rows {
            let key = row_key(row);
            let reject_row = |plan: &mut RollPlan, reason: String| {
                plan.rejected.push(RollRejection {
                    line: row.line,
                    resident: (!key.is_empty()).then(|| key.clone()),
                    reason,
                })
            };
            let target = find(&key);
            if let Some(target) = &target {
                present.insert(target.clone());
            }
            if let Some(first) = first_line.get(&key) {
                reject_row(
                    &mut plan,
                    format!("the same resident ({key}) as line {first}"),
                );
                continue;
            }
            first_line.insert(key.clone(), row.line);
            if let Some(target) = &target {
                if let Some(first) = first_for.get(target) {
                    reject_row(
                        &mut plan,
                        format!("the same resident ({target}) as line {first}"),
                    );
                    continue;
                }
                first_for.insert(target.clone(), row.line);
            }
            match self.check_row(row, &key) {
                Err(r) => reject_row(&mut plan, r.message),
                Ok((contact, tenancy)) => {
                    let past = tenancy
                        .move_out
                        .as_deref()
                        .and_then(parse_date)
                        .is_some_and(|d| d < today);
                    checked.push(Checked {
                        row,
                        target,
                        key,
                        contact,
                        tenancy,
                        past,
                    });
                }
            }
        }

        // Residents a partial match may point at: active, and matched by no row.
        let mut by_email: HashMap<String, &ResidentId> = HashMap::new();
        let mut by_unit_name: HashMap<(String, String), &ResidentId> = HashMap::new();
        for (id, r) in residents
            .iter()
            .filter(|(id, r)| r.active && !present.contains(*id))
        {
            if let Some(e) = &r.email {
                by_email.entry(e.to_lowercase()).or_insert(id);
            }
            if let Some(n) = &r.name {
                by_unit_name
                    .entry((r.unit.clone(), name_key(n)))
                    .or_insert(id);
            }
        }

        for c in checked {
            let row = c.row;
            if c.past {
                plan.past += 1;
                if let Some(t) = &c.target {
                    // Listed, but gone: they leave like someone missing from the roll.
                    present.remove(t);
                }
                continue;
            }
            match &c.target {
                Some(target) => {
                    let r = &residents[target];
                    let changes = differences(r, row.unit.trim(), &c.contact, &c.tenancy);
                    if changes.is_empty() {
                        plan.unchanged += 1;
                    } else {
                        plan.update.push(RollChange {
                            line: row.line,
                            resident: target.clone(),
                            unit: row.unit.trim().to_owned(),
                            name: row.name.trim().to_owned(),
                            changes,
                        });
                        actions.push(Action::Register {
                            resident: target.clone(),
                            unit: row.unit.trim().to_owned(),
                            accessible: r.accessible,
                            contact: c.contact,
                            tenancy: c.tenancy,
                        });
                    }
                }
                None => {
                    let email = c.contact.email.as_deref().map(str::to_lowercase);
                    let partial = email
                        .as_ref()
                        .and_then(|e| by_email.get(e))
                        .map(|id| (*id, "the same email"))
                        .or_else(|| {
                            by_unit_name
                                .get(&(row.unit.trim().to_owned(), name_key(&row.name)))
                                .map(|id| (*id, "the same unit and name"))
                        });
                    match partial {
                        Some((candidate, why)) => {
                            let candidate = candidate.clone();
                            let cr = &residents[&candidate];
                            // One row per candidate: a second row that looks like them too
                            // is someone else (a household sharing an email).
                            if let Some(e) = &cr.email {
                                by_email.remove(&e.to_lowercase());
                            }
                            if let Some(n) = &cr.name {
                                by_unit_name.remove(&(cr.unit.clone(), name_key(n)));
                            }
                            let reason = format!(
                                "{why} as resident {candidate} (unit {}) but another id",
                                cr.unit
                            );
                            present.insert(candidate.clone());
                            plan.review.push(RollReviewItem {
                                review: None,
                                line: row.line,
                                key: c.key.clone(),
                                unit: row.unit.trim().to_owned(),
                                name: row.name.trim().to_owned(),
                                email: c.contact.email.clone(),
                                candidate: candidate.clone(),
                                candidate_unit: cr.unit.clone(),
                                candidate_name: cr.name.clone(),
                                reason: reason.clone(),
                                at: None,
                            });
                            actions.push(Action::Review {
                                row: row.clone(),
                                key: c.key,
                                candidate: candidate.clone(),
                                reason,
                            });
                        }
                        None => {
                            let resident = ResidentId(c.key);
                            plan.create.push(RollChange {
                                line: row.line,
                                resident: resident.clone(),
                                unit: row.unit.trim().to_owned(),
                                name: row.name.trim().to_owned(),
                                changes: Vec::new(),
                            });
                            actions.push(Action::Register {
                                resident,
                                unit: row.unit.trim().to_owned(),
                                accessible: false,
                                contact: c.contact,
                                tenancy: c.tenancy,
                            });
                        }
                    }
                }
            }
        }

        // Who leaves: brought in by a roll, active, and not on this one.
        let grace = self.ctx.policies.move_out_grace_ms;
        let mut waiting: BTreeMap<&ResidentId, Vec<ParcelId>> = BTreeMap::new();
        for p in self.state.parcels.values() {
            if let Some(r) = &p.resident {
                if matches!(
                    p.location,
                    Location::Compartment { .. } | Location::Desk | Location::Disputed { .. }
                ) {
                    waiting.entry(r).or_default().push(p.id.clone());
                }
            }
        }
        for (id, r) in residents {
            if !r.active || !r.on_roll || present.contains(id) {
                continue;
            }
            let since = r.off_roll_since;
            let moves_out_at = since.unwrap_or(now).plus(grace);
            let leaving = RollLeaving {
                resident: id.clone(),
                unit: r.unit.clone(),
                since,
                moves_out_at,
                parcels: waiting.get(id).cloned().unwrap_or_default(),
            };
            if since.is_some() && moves_out_at <= now {
                actions.push(Action::MoveOut(id.clone(), leaving.parcels.clone()));
                plan.move_out.push(leaving);
            } else {
                if since.is_none() {
                    actions.push(Action::OffRoll(id.clone()));
                }
                plan.leaving.push(leaving);
            }
        }
        (plan, actions)
    }

    pub(crate) fn import_roll(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        source: &str,
        rows: &[RollRow],
        skip_rejected: bool,
    ) -> Result<Outcome> {
        let source = source.trim();
        if source.is_empty() || source.chars().count() > 200 || source.chars().any(char::is_control)
        {
            return reject(
                RejectCode::InvalidInput,
                "say where the roll comes from (1 to 200 characters)",
            );
        }
        if rows.is_empty() {
            return reject(
                RejectCode::InvalidInput,
                "the roll lists no resident: importing it would move out everyone a roll brought \
                 in; nothing imported",
            );
        }
        if rows.len() > MAX_ROLL_ROWS {
            return reject(
                RejectCode::InvalidInput,
                format!(
                    "the roll has {} rows; at most {MAX_ROLL_ROWS} are imported at once",
                    rows.len()
                ),
            );
        }
        let (plan, actions) = self.plan(rows, tx.now);
        if !plan.rejected.is_empty() && !skip_rejected {
            let first = &plan.rejected[0];
            return reject(
                RejectCode::InvalidInput,
                format!(
                    "{} row(s) rejected, nothing imported; line {}: {} (fix them, or import \
                     without them)",
                    plan.rejected.len(),
                    first.line,
                    first.reason
                ),
            );
        }
        let summary = plan.summary();
        let actor: Actor = by.into();
        self.record(
            tx,
            actor.clone(),
            Subject::none(),
            FactKind::RollImported {
                source: source.to_owned(),
                rows: summary.rows,
                created: summary.created,
                updated: summary.updated,
                unchanged: summary.unchanged,
                review: summary.review,
                rejected: summary.rejected,
                moved_out: summary.moved_out,
                leaving: summary.leaving,
            },
        );
        let mut registrations = Vec::new();
        for action in actions {
            match action {
                Action::Register {
                    resident,
                    unit,
                    accessible,
                    contact,
                    tenancy,
                } => {
                    registrations.push(Registration {
                        resident,
                        unit,
                        accessible,
                        contact,
                        tenancy,
                    });
                    if registrations.len() == REGISTRATIONS_PER_FACT {
                        let residents = std::mem::take(&mut registrations);
                        self.record(
                            tx,
                            actor.clone(),
                            Subject::none(),
                            FactKind::ResidentsRegistered { residents },
                        );
                    }
                }
                Action::Review {
                    row,
                    key,
                    candidate,
                    reason,
                } => {
                    self.record(
                        tx,
                        actor.clone(),
                        Subject::none(),
                        FactKind::RollReviewQueued {
                            row,
                            key,
                            candidate,
                            reason,
                        },
                    );
                }
                Action::OffRoll(resident) => {
                    self.record(
                        tx,
                        actor.clone(),
                        Subject::none(),
                        FactKind::ResidentOffRoll { resident },
                    );
                }
                Action::MoveOut(resident, parcels) => {
                    self.record(
                        tx,
                        actor.clone(),
                        Subject::none(),
                        FactKind::ResidentDeactivated {
                            resident: resident.clone(),
                        },
                    );
                    for parcel in parcels {
                        let subject = match self.state.parcels.get(&parcel).map(|p| &p.location) {
                            Some(Location::Compartment { bank, door })
                            | Some(Location::Disputed { bank, door }) => Subject::door(bank, *door),
                            _ => Subject::none(),
                        };
                        self.raise_alert(
                            tx,
                            AlertKind::MovedOutWithParcel,
                            subject.parcel(&parcel),
                            format!(
                                "resident {resident} moved out (off the rent roll) and parcel \
                                 {parcel} still waits for them: return it to sender or find them"
                            ),
                        );
                    }
                }
            }
        }
        if !registrations.is_empty() {
            self.record(
                tx,
                actor,
                Subject::none(),
                FactKind::ResidentsRegistered {
                    residents: registrations,
                },
            );
        }
        self.last_roll_plan = Some(plan);
        Ok(Outcome::RollImported { summary })
    }

    pub(crate) fn resolve_roll_review(
        &mut self,
        tx: &mut Tx,
        by: &Operator,
        review: &str,
        decision: ReviewDecision,
    ) -> Result<Outcome> {
        let item = review
            .parse::<FactId>()
            .ok()
            .and_then(|id| self.state.roll_reviews.get(&id).cloned());
        let Some(item) = item else {
            return reject(
                RejectCode::InvalidInput,
                format!("no open review item {review} (a newer import may have replaced it)"),
            );
        };
        let actor: Actor = by.into();
        let register = |core: &Core, resident: &ResidentId, accessible: bool| {
            core.check_row(&item.row, &item.key)
                .map(|(contact, tenancy)| FactKind::ResidentRegistered {
                    resident: resident.clone(),
                    unit: item.row.unit.trim().to_owned(),
                    accessible,
                    contact,
                    tenancy,
                    roll: true,
                })
        };
        let facts = match decision {
            ReviewDecision::Same => {
                let Some(c) = self.state.residents.get(&item.candidate) else {
                    return reject(
                        RejectCode::UnknownResident,
                        format!("no resident {} in the directory", item.candidate),
                    );
                };
                vec![
                    register(self, &item.candidate, c.accessible)?,
                    FactKind::RollLinked {
                        key: item.key.clone(),
                        resident: item.candidate.clone(),
                    },
                ]
            }
            ReviewDecision::New => {
                let id = ResidentId(item.key.clone());
                if self.state.residents.contains_key(&id)
                    || self.state.roll_links.contains_key(&item.key)
                {
                    return reject(
                        RejectCode::AlreadyExists,
                        format!("resident {id} already exists; this row is them"),
                    );
                }
                vec![register(self, &id, false)?]
            }
            ReviewDecision::Dismiss => Vec::new(),
        };
        for kind in facts {
            self.record(tx, actor.clone(), Subject::none(), kind);
        }
        self.record(
            tx,
            actor,
            Subject::none(),
            FactKind::RollReviewResolved {
                review: review.to_owned(),
                decision,
            },
        );
        Ok(Outcome::Accepted)
    }
}

impl Core {
    /// Parcels left the hub's care another way than through a door (handed over at the desk):
    /// the alerts that were tasks about them (return it or find them, take it to the desk, it
    /// expired) are settled, as when they leave through a door.
    pub(crate) fn parcels_left(&mut self, tx: &mut Tx, parcels: &[ParcelId]) {
        self.clear_parcel_alerts(
            tx,
            Subject::none(),
            parcels,
            &[
                AlertKind::MovedOutWithParcel,
                AlertKind::DeskRequested,
                AlertKind::ParcelExpired,
            ],
        );
    }
}

/// What registering `contact` and `tenancy` at `unit` would change for `r`, in words.
fn differences(r: &Resident, unit: &str, contact: &Contact, tenancy: &Tenancy) -> Vec<String> {
    let mut changes = Vec::new();
    if r.unit != unit {
        changes.push(format!("unit {} → {unit}", r.unit));
    }
    let mut field = |what: &str, now: &Option<String>, given: &Option<String>| {
        if let Some(g) = given {
            if now.as_deref() != Some(g.as_str()) {
                changes.push(what.to_owned());
            }
        }
    };
    field("name", &r.name, &contact.name);
    field("email", &r.email, &contact.email);
    field("phone", &r.phone, &contact.phone);
    field("lease start", &r.tenancy.lease_start, &tenancy.lease_start);
    field("lease end", &r.tenancy.lease_end, &tenancy.lease_end);
    field("move-in", &r.tenancy.move_in, &tenancy.move_in);
    field("move-out", &r.tenancy.move_out, &tenancy.move_out);
    if !r.active {
        changes.push("reactivated".to_owned());
    } else if r.off_roll_since.is_some() {
        changes.push("back on the roll".to_owned());
    }
    if !r.on_roll {
        changes.push("now follows the roll".to_owned());
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_real_days() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(parse_date("2024-1-01"), None);
        assert_eq!(parse_date("24-01-01xx"), None);
        assert_eq!(parse_date("２０２４-01-01"), None);
    }

    #[test]
    fn names_match_in_any_order_and_case() {
        assert_eq!(name_key("Doe, Jane"), name_key("jane  DOE"));
        assert_ne!(name_key("Jane Doe"), name_key("Jane Roe"));
        assert_eq!(made_id("Bldg 2 #101", "Doe, Jane"), "bldg-2-101-doe-jane");
    }
}

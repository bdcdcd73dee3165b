//! The rent-roll import: exact, partial and no matches; all or nothing; moving out after the
//! grace period with parcels flagged; the review queue; a re-import that changes nothing.
//! The test site starts with r1 (101), r2 (102) and r3 (103), entered by hand.

mod common;

use common::*;
use locker_core::*;

fn row(line: u64, id: Option<&str>, unit: &str, name: &str, email: Option<&str>) -> RollRow {
    RollRow {
        line,
        resident: id.map(str::to_owned),
        unit: unit.into(),
        name: name.into(),
        email: email.map(str::to_owned),
        phone: None,
        tenancy: Tenancy::default(),
    }
}

fn import(rows: &[RollRow], skip_rejected: bool) -> Request {
    Request::ImportRoll {
        by: staff(),
        source: "roll.csv".into(),
        rows: rows.to_vec(),
        skip_rejected,
    }
}

fn summary(s: &mut Site, rows: &[RollRow]) -> RollSummary {
    match s.ok(import(rows, false)) {
        Outcome::RollImported { summary } => summary,
        other => panic!("{other:?}"),
    }
}

fn resident(s: &Site, id: &str) -> ResidentView {
    s.core
        .residents()
        .into_iter()
        .find(|r| r.resident.as_str() == id)
        .unwrap_or_else(|| panic!("{id} listed"))
}

/// Residents an output registers (an import writes them many to a fact).
fn registered(out: &Output) -> usize {
    out.facts
        .iter()
        .map(|f| match &f.kind {
            FactKind::ResidentRegistered { .. } => 1,
            FactKind::ResidentsRegistered { residents } => residents.len(),
            _ => 0,
        })
        .sum()
}

/// r1 on the roll (exact id), t-4 new: the roll the tests start from.
fn first_roll() -> Vec<RollRow> {
    vec![
        row(2, Some("r1"), "101", "Ann Lee", Some("ann@example.com")),
        row(3, Some("t-4"), "104", "Dan Fox", None),
    ]
}

#[test]
fn exact_matches_update_new_rows_create_and_hand_entered_residents_stay() {
    let mut s = Site::new();
    let plan = s.core.plan_roll(&first_roll(), s.now);
    assert_eq!(plan.create.len(), 1);
    assert_eq!(plan.create[0].resident.as_str(), "t-4");
    assert_eq!(plan.update.len(), 1);
    assert_eq!(
        plan.update[0].changes,
        vec!["name", "email", "now follows the roll"]
    );
    // r2 and r3 were entered by hand: a roll never moves them out.
    assert!(plan.leaving.is_empty() && plan.move_out.is_empty());

    let before = s.log.len();
    let sum = summary(&mut s, &first_roll());
    assert_eq!((sum.created, sum.updated, sum.unchanged), (1, 1, 0));
    assert!(s.log.len() > before);
    let r1 = resident(&s, "r1");
    assert_eq!(r1.name.as_deref(), Some("Ann Lee"));
    assert!(r1.on_roll);
    assert!(resident(&s, "t-4").active);
    assert!(resident(&s, "r2").active && !resident(&s, "r2").on_roll);
    let last = s.core.last_roll_import().expect("last import");
    assert_eq!(last.source, "roll.csv");
    assert_eq!(last.summary.created, 1);
}

#[test]
fn importing_the_same_roll_again_changes_no_resident() {
    let mut s = Site::new();
    summary(&mut s, &first_roll());
    let residents = s.core.residents();
    let out = s.cmd(import(&first_roll(), false));
    assert_eq!(registered(&out), 0);
    let Outcome::RollImported { summary } = outcome(&out) else {
        panic!()
    };
    assert_eq!(
        (summary.created, summary.updated, summary.unchanged),
        (0, 0, 2)
    );
    assert_eq!(s.core.residents(), residents);
}

#[test]
fn a_rejected_row_refuses_the_whole_import_unless_skipped() {
    let mut s = Site::new();
    let mut rows = first_roll();
    rows.push(row(4, Some("t-5"), "105", "Eve Ng", Some("not-an-email")));
    rows.push(row(5, Some("t-4"), "104", "Dan Fox", None));
    rows.push(row(6, Some("t-6"), "", "No Unit", None));
    let plan = s.core.plan_roll(&rows, s.now);
    let reasons: Vec<(u64, String)> = plan
        .rejected
        .iter()
        .map(|r| (r.line, r.reason.clone()))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons[0].0, 4);
    assert!(reasons[0].1.contains("not an email address"), "{reasons:?}");
    assert_eq!(reasons[1], (5, "the same resident (t-4) as line 3".into()));
    assert_eq!(reasons[2], (6, "the unit is empty".into()));

    let before = s.log.len();
    let refused = s.refused(import(&rows, false), RejectCode::InvalidInput);
    assert!(refused.message.contains("3 row(s) rejected"), "{refused:?}");
    assert!(refused.message.contains("line 4"), "{refused:?}");
    // Only the answer is recorded: no resident, no import.
    assert!(s.log[before..]
        .iter()
        .all(|f| matches!(f.kind, FactKind::Answered { .. })));
    assert!(s.core.last_roll_import().is_none());

    let Outcome::RollImported { summary } = s.ok(import(&rows, true)) else {
        panic!()
    };
    assert_eq!((summary.created, summary.rejected), (1, 3));
    assert!(!s
        .core
        .residents()
        .iter()
        .any(|r| r.resident.as_str() == "t-5"));
}

#[test]
fn a_resident_off_the_roll_is_moved_out_after_the_grace_period_and_their_parcel_flagged() {
    // Parcels held long enough that the code still opens after the grace period.
    let policies = Policies {
        hold_ambient_ms: 60 * DAY,
        ..Policies::default()
    };
    let mut s = Site::with(policies, "hub1", 1);
    summary(&mut s, &first_roll());
    let parcel = s.deliver("A", "r1", Size::Small, 1);

    // r1 leaves the roll: the grace period starts, nothing else changes.
    let only_t4 = vec![row(2, Some("t-4"), "104", "Dan Fox", None)];
    let sum = summary(&mut s, &only_t4);
    assert_eq!((sum.leaving, sum.moved_out), (1, 0));
    let since = resident(&s, "r1").off_roll_since.expect("off the roll");
    assert!(resident(&s, "r1").active);

    // Before the grace period ends: still leaving.
    s.advance(13 * DAY);
    let plan = s.core.plan_roll(&only_t4, s.now);
    assert_eq!(plan.leaving.len(), 1);
    assert_eq!(plan.leaving[0].since, Some(since));
    assert_eq!(plan.leaving[0].parcels, parcel.parcels);
    summary(&mut s, &only_t4);
    assert!(resident(&s, "r1").active);

    // After it: moved out, never deleted, and the waiting parcel raises an alert.
    s.advance(DAY);
    let out = s.cmd(import(&only_t4, false));
    let Outcome::RollImported { summary } = outcome(&out) else {
        panic!()
    };
    assert_eq!(summary.moved_out, 1);
    assert!(raised(&out, AlertKind::MovedOutWithParcel));
    let r1 = resident(&s, "r1");
    assert!(!r1.active && r1.off_roll_since.is_none());
    let flagged = s.alerts_of(AlertKind::MovedOutWithParcel);
    assert_eq!(flagged[0].parcel.as_ref(), Some(&parcel.parcels[0]));

    // The parcel stays collectable with its code; collecting it settles the alert.
    s.collect(&parcel);
    assert!(s.alerts_of(AlertKind::MovedOutWithParcel).is_empty());

    // Back on the roll: reactivated.
    let out = s.cmd(import(&first_roll(), false));
    assert_eq!(registered(&out), 1);
    assert!(resident(&s, "r1").active);
}

#[test]
fn coming_back_on_the_roll_within_the_grace_period_ends_it() {
    let mut s = Site::new();
    summary(&mut s, &first_roll());
    summary(&mut s, &first_roll()[1..]);
    assert!(resident(&s, "r1").off_roll_since.is_some());
    let plan = s.core.plan_roll(&first_roll(), s.now);
    assert_eq!(plan.update[0].changes, vec!["back on the roll"]);
    summary(&mut s, &first_roll());
    assert!(resident(&s, "r1").off_roll_since.is_none());
    s.advance(30 * DAY);
    let sum = summary(&mut s, &first_roll());
    assert_eq!((sum.leaving, sum.moved_out, sum.unchanged), (0, 0, 2));
}

#[test]
fn a_rejected_row_keeps_its_resident_on_the_roll() {
    let mut s = Site::new();
    summary(&mut s, &first_roll());
    let mut rows = first_roll();
    rows[0].email = Some("ann@@example".into());
    s.advance(30 * DAY);
    summary(&mut s, &rows[1..]);
    // r1 was off the roll in that import; with the typo they are present again.
    let plan = s.core.plan_roll(&rows, s.now);
    assert_eq!(plan.rejected.len(), 1);
    assert!(
        plan.leaving.is_empty() && plan.move_out.is_empty(),
        "{plan:?}"
    );
}

#[test]
fn a_passed_move_out_date_counts_as_leaving() {
    let mut s = Site::new();
    summary(&mut s, &first_roll());
    let mut rows = first_roll();
    rows[0].tenancy.move_out = Some("2023-11-01".into()); // before T0 (2023-11-14)
    let plan = s.core.plan_roll(&rows, s.now);
    assert_eq!(plan.past, 1);
    assert_eq!(plan.leaving.len(), 1);
    assert_eq!(plan.leaving[0].resident.as_str(), "r1");
    // A date to come is just recorded.
    rows[0].tenancy.move_out = Some("2024-01-31".into());
    let plan = s.core.plan_roll(&rows, s.now);
    assert_eq!(plan.update[0].changes, vec!["move-out"]);
}

#[test]
fn a_partial_match_waits_for_staff_who_link_it_or_create_someone_new() {
    let mut s = Site::new();
    s.ok(Request::RegisterResident {
        by: staff(),
        resident: "r2".into(),
        unit: "102".into(),
        accessible: true,
        mode: RegisterMode::Update,
        contact: Contact {
            email: Some("bo@example.com".into()),
            name: Some("Bo Chen".into()),
            ..Contact::default()
        },
    });
    let rows = vec![
        // Same email as r2, another id: partial.
        row(2, Some("T-55"), "102", "Bo Chen", Some("BO@example.com")),
        // Same unit and name as r3? r3 has no name: no match, created.
        row(3, Some("T-56"), "103", "Cy Doe", None),
    ];
    let sum = summary(&mut s, &rows);
    assert_eq!((sum.review, sum.created), (1, 1));
    let reviews = s.core.roll_reviews();
    assert_eq!(reviews.len(), 1);
    let item = &reviews[0];
    assert_eq!(item.candidate.as_str(), "r2");
    assert!(item.reason.contains("the same email"), "{item:?}");
    let review = item.review.clone().expect("queued");

    // The same person: r2 is updated and from now on the roll's T-55 is r2.
    s.ok(Request::ResolveRollReview {
        by: staff(),
        review: review.clone(),
        decision: ReviewDecision::Same,
    });
    assert!(s.core.roll_reviews().is_empty());
    assert!(resident(&s, "r2").on_roll && resident(&s, "r2").accessible);
    assert!(!s
        .core
        .residents()
        .iter()
        .any(|r| r.resident.as_str() == "T-55"));
    s.refused(
        Request::ResolveRollReview {
            by: staff(),
            review,
            decision: ReviewDecision::Same,
        },
        RejectCode::InvalidInput,
    );
    let sum = summary(&mut s, &rows);
    assert_eq!((sum.review, sum.created, sum.unchanged), (0, 0, 2));
}

#[test]
fn a_new_import_replaces_the_open_reviews_and_new_creates_the_row() {
    let mut s = Site::new();
    s.ok(Request::RegisterResident {
        by: staff(),
        resident: "r3".into(),
        unit: "103".into(),
        accessible: false,
        mode: RegisterMode::Update,
        contact: Contact {
            name: Some("Cy Doe".into()),
            ..Contact::default()
        },
    });
    // No id of its own: the row's id is made from unit and name; same unit and name as r3.
    let rows = vec![row(7, None, "103", "Doe, Cy", None)];
    summary(&mut s, &rows);
    let first = s.core.roll_reviews();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].key, "103-doe-cy");
    summary(&mut s, &rows);
    let second = s.core.roll_reviews();
    assert_eq!(second.len(), 1);
    assert_ne!(
        first[0].review, second[0].review,
        "the newest import's item"
    );
    s.refused(
        Request::ResolveRollReview {
            by: staff(),
            review: first[0].review.clone().unwrap_or_default(),
            decision: ReviewDecision::New,
        },
        RejectCode::InvalidInput,
    );
    s.ok(Request::ResolveRollReview {
        by: staff(),
        review: second[0].review.clone().unwrap_or_default(),
        decision: ReviewDecision::New,
    });
    let created = resident(&s, "103-doe-cy");
    assert_eq!(created.name.as_deref(), Some("Doe, Cy"));
    assert!(created.on_roll);
}

#[test]
fn a_big_roll_is_written_a_thousand_residents_to_a_fact() {
    let mut s = Site::new();
    let rows: Vec<RollRow> = (0..2_500)
        .map(|i| {
            row(
                i + 2,
                Some(&format!("t-{i}")),
                &format!("{}", 1000 + i),
                "Some One",
                None,
            )
        })
        .collect();
    let out = s.cmd(import(&rows, false));
    let batches: Vec<usize> = out
        .facts
        .iter()
        .filter_map(|f| match &f.kind {
            FactKind::ResidentsRegistered { residents } => Some(residents.len()),
            _ => None,
        })
        .collect();
    assert_eq!(batches, vec![1_000, 1_000, 500]);
    assert_eq!(s.core.residents().len(), 3 + 2_500);
    let mut replica = s.replica("hub2", 3);
    replica.merge_from(&s);
    assert_eq!(replica.core.residents(), s.core.residents());
}

#[test]
fn units_outside_the_buildings_list_are_rejected() {
    let policies = Policies {
        units: ["101", "102", "103", "104"].map(String::from).into(),
        ..Policies::default()
    };
    let mut s = Site::with(policies, "hub1", 1);
    let rows = vec![
        row(2, Some("t-4"), "104", "Dan Fox", None),
        row(3, Some("t-9"), "109", "Gus Hill", None),
    ];
    let plan = s.core.plan_roll(&rows, s.now);
    assert_eq!(plan.rejected.len(), 1);
    assert_eq!(plan.rejected[0].line, 3);
    assert!(plan.rejected[0]
        .reason
        .contains("not one of the building's units"));
    s.refused(import(&rows, false), RejectCode::InvalidInput);
}

#[test]
fn a_dry_run_records_nothing_and_a_replica_folds_the_import_the_same() {
    let mut s = Site::new();
    let before = s.log.len();
    let _ = s.core.plan_roll(&first_roll(), s.now);
    assert_eq!(s.log.len(), before);
    summary(&mut s, &first_roll());
    summary(&mut s, &first_roll()[1..]);
    let mut other = s.replica("hub2", 9);
    assert_eq!(other.core.residents(), s.core.residents());
    assert_eq!(other.core.last_roll_import(), s.core.last_roll_import());
    other.merge_from(&s);
    assert_eq!(other.core.residents(), s.core.residents());
}

#[test]
fn only_staff_import_and_the_cloud_cannot_ask() {
    let request = import(&first_roll(), false);
    assert!(!cloud_may_ask(&request));
    assert_eq!(need_for(&request), Need::Staff);
    let review = Request::ResolveRollReview {
        by: staff(),
        review: "x".into(),
        decision: ReviewDecision::Dismiss,
    };
    assert!(!cloud_may_ask(&review));
    assert_eq!(need_for(&review), Need::Staff);
    let kiosk = Caller::BankKiosk { bank: "A".into() };
    assert!(authorize(&kiosk, &request).is_err());
}

#[test]
fn an_import_with_a_blank_source_or_control_characters_in_a_name_is_refused() {
    let mut s = Site::new();
    s.refused(
        Request::ImportRoll {
            by: staff(),
            source: " ".into(),
            rows: first_roll(),
            skip_rejected: false,
        },
        RejectCode::InvalidInput,
    );
    let rows = vec![row(2, Some("t-4"), "104", "Dan\u{7}Fox", None)];
    let plan = s.core.plan_roll(&rows, s.now);
    assert!(plan.rejected[0].reason.contains("control characters"));
}

#[test]
fn one_resident_is_matched_by_one_row_at_most() {
    let mut s = Site::new();
    s.ok(Request::RegisterResident {
        by: staff(),
        resident: "r2".into(),
        unit: "102".into(),
        accessible: false,
        mode: RegisterMode::Update,
        contact: Contact {
            email: Some("home@example.com".into()),
            ..Contact::default()
        },
    });
    // A household sharing an email: one review against r2, the other row someone new.
    let rows = vec![
        row(2, Some("H-1"), "102", "Bo Chen", Some("home@example.com")),
        row(3, Some("H-2"), "102", "Di Chen", Some("home@example.com")),
    ];
    let plan = s.core.plan_roll(&rows, s.now);
    assert_eq!(plan.review.len(), 1, "{plan:?}");
    assert_eq!(plan.create.len(), 1, "{plan:?}");

    // Once linked, the row's id and the resident's own id are one resident: two rows naming
    // them are a duplicate.
    summary(&mut s, &rows);
    let review = s.core.roll_reviews()[0].review.clone().expect("queued");
    s.ok(Request::ResolveRollReview {
        by: staff(),
        review,
        decision: ReviewDecision::Same,
    });
    let twice = vec![
        row(2, Some("H-1"), "102", "Bo Chen", None),
        row(3, Some("r2"), "102", "Bo Chen", None),
    ];
    let plan = s.core.plan_roll(&twice, s.now);
    assert_eq!(plan.rejected.len(), 1, "{plan:?}");
    assert_eq!(plan.rejected[0].reason, "the same resident (r2) as line 2");
}

#[test]
fn an_empty_roll_is_refused_and_the_last_import_counts_who_is_leaving() {
    let mut s = Site::new();
    let refused = s.refused(import(&[], false), RejectCode::InvalidInput);
    assert!(refused.message.contains("lists no resident"), "{refused:?}");
    summary(&mut s, &first_roll());
    summary(&mut s, &first_roll()[1..]);
    let last = s.core.last_roll_import().expect("an import");
    assert_eq!(last.summary.leaving, 1);
}

#[test]
fn the_cloud_registering_a_resident_does_not_put_them_under_the_roll() {
    let mut s = Site::new();
    let fact = cloud_fact(
        1,
        s.now,
        FactKind::ResidentRegistered {
            resident: "c-1".into(),
            unit: "301".into(),
            accessible: false,
            contact: Contact::default(),
            tenancy: Tenancy::default(),
            roll: true,
        },
    );
    s.core.merge(s.now, vec![fact], &mut s.rng);
    let c1 = resident(&s, "c-1");
    assert!(c1.active && !c1.on_roll, "{c1:?}");
    // So a roll that does not list them never moves them out.
    summary(&mut s, &first_roll());
    s.advance(30 * DAY);
    let sum = summary(&mut s, &first_roll());
    assert_eq!((sum.leaving, sum.moved_out), (0, 0));
    assert!(resident(&s, "c-1").active);
}
